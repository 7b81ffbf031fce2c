"""The running Calmline server: ingest, sessions, events, storage, auth, config and CLI."""
