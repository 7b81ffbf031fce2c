"""Calls and their events in SQL (SQLite by default, any SQLAlchemy URL), written as they happen."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from sqlalchemy import (JSON, Column, Float, Integer, MetaData, String, Table, Text, create_engine, event, func,
                        insert, select, update)

metadata = MetaData()

calls = Table(
    "calls", metadata,
    Column("call_id", String(128), primary_key=True),
    Column("agent_id", String(128), index=True),  # null: unassigned (an AudioHook monitor names none)
    Column("status", String(16), nullable=False),  # live, ended, dropped, error, interrupted
    Column("end_reason", String(200)),
    Column("source", String(32)),
    Column("started_at", Float, nullable=False, index=True),
    Column("ended_at", Float),
    Column("audio_seconds", Float, default=0.0),
    Column("metadata", JSON),
    Column("media", JSON),
    Column("summary", JSON),
    Column("peak_heat", Float, index=True),  # from the summary, for searching
    Column("warning_count", Integer, index=True),
)

events = Table(
    "events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("call_id", String(128), nullable=False, index=True),
    Column("seq", Integer, nullable=False),
    Column("type", String(32), nullable=False),
    Column("body", Text, nullable=False),  # the event exactly as it went out
)

LIVE = "live"


@dataclass
class CallPage:
    calls: list[dict]
    total: int


class Store:
    def __init__(self, url: str):
        self.engine = create_engine(url, future=True)
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        metadata.create_all(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    def mark_interrupted(self) -> int:
        """At start: calls still live belong to a process that died; say so instead of lying."""
        with self.engine.begin() as db:
            return db.execute(update(calls).where(calls.c.status == LIVE).values(
                status="interrupted", end_reason="server stopped mid-call", ended_at=time.time())).rowcount

    def create_call(self, row: dict) -> None:
        with self.engine.begin() as db:
            db.execute(insert(calls).values(**row))

    def update_call(self, call_id: str, values: dict) -> None:
        with self.engine.begin() as db:
            db.execute(update(calls).where(calls.c.call_id == call_id).values(**values))

    def append_events(self, batch: list[dict]) -> None:
        rows = [{"call_id": e["call_id"], "seq": e["seq"], "type": e["type"], "body": json.dumps(e)} for e in batch]
        with self.engine.begin() as db:
            db.execute(insert(events), rows)

    def get_call(self, call_id: str) -> dict | None:
        with self.engine.connect() as db:
            row = db.execute(select(calls).where(calls.c.call_id == call_id)).mappings().first()
        return dict(row) if row else None

    def get_events(self, call_id: str, types: list[str] | None = None) -> list[dict]:
        query = select(events.c.body).where(events.c.call_id == call_id)
        if types:
            query = query.where(events.c.type.in_(types))
        with self.engine.connect() as db:
            return [json.loads(b) for b in db.execute(query.order_by(events.c.seq)).scalars()]

    def list_calls(self, agent_id: str | None = None, status: str | None = None, since: float | None = None,
                   until: float | None = None, min_peak_heat: float | None = None, min_warnings: int | None = None,
                   limit: int = 50, offset: int = 0) -> CallPage:
        query = select(calls)
        if min_peak_heat is not None:
            query = query.where(calls.c.peak_heat >= min_peak_heat)
        if min_warnings is not None:
            query = query.where(calls.c.warning_count >= min_warnings)
        if agent_id:
            query = query.where(calls.c.agent_id == agent_id)
        if status:
            query = query.where(calls.c.status == status)
        if since is not None:
            query = query.where(calls.c.started_at >= since)
        if until is not None:
            query = query.where(calls.c.started_at < until)
        with self.engine.connect() as db:
            total = db.execute(select(func.count()).select_from(query.subquery())).scalar()
            rows = db.execute(query.order_by(calls.c.started_at.desc()).limit(limit).offset(offset)).mappings().all()
        return CallPage([dict(r) for r in rows], total)


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    # WAL: readers (REST, replay) never wait for the writer; NORMAL: no fsync per event.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()
