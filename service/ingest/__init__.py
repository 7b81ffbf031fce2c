"""Ingest protocol adapters: pure translators from wire messages to session calls."""
