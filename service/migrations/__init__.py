"""Alembic migrations of the calls and events schema; run by ``service.schema.upgrade``."""
