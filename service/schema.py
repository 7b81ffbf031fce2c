"""The database schema brought to the newest migration, once, whichever of several nodes starts first."""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine

log = logging.getLogger("calmline.schema")

MIGRATIONS = Path(__file__).parent / "migrations"
BASELINE = "0001"  # the schema the single-node releases made with create_all
# pg_advisory_lock key: any constant the application owns; "calmline" in ASCII.
LOCK_KEY = 0x63616C6D6C696E65


def _config(connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def head() -> str:
    return ScriptDirectory.from_config(_config(None)).get_current_head()


def current(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine) -> str:
    """Migrate to head and return the revision. On PostgreSQL under an advisory lock: nodes that start
    together on an empty database wait for the first to make the tables instead of racing it."""
    postgres = engine.dialect.name == "postgresql"
    with engine.connect() as conn:
        if postgres:
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": LOCK_KEY})
            conn.commit()
        try:
            tables = set(inspect(conn).get_table_names())
            conn.commit()
            cfg = _config(conn)
            if "calls" in tables and "alembic_version" not in tables:
                # Made by a release before migrations: adopt it as the baseline rather than create it again.
                log.warning("adopting a database made before migrations", extra={"revision": BASELINE})
                command.stamp(cfg, BASELINE)
                conn.commit()
            command.upgrade(cfg, "head")
            conn.commit()
            return MigrationContext.configure(conn).get_current_revision()
        finally:
            if postgres:
                conn.rollback()
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": LOCK_KEY})
                conn.commit()
