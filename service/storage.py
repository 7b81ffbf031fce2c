"""Calls and their events in SQL (SQLite by default, PostgreSQL for a cluster), written as they happen.

The tables below describe the schema at the newest migration (service/migrations); the migrations make it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from sqlalchemy import (JSON, Column, Float, Index, Integer, MetaData, String, Table, Text, create_engine, delete,
                        event, func, insert, select, update)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from service import schema

metadata = MetaData()

calls = Table(
    "calls", metadata,
    Column("call_id", String(128), primary_key=True),
    Column("agent_id", String(128), index=True),  # none until an agent is assigned
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
    Column("node_id", String(128)),  # the node that holds (or held) the call's stream
    Index("ix_calls_status_node", "status", "node_id"),
)

events = Table(
    "events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("call_id", String(128), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("type", String(32), nullable=False),
    Column("body", Text, nullable=False),  # the event exactly as it went out
    # One event per seq of a call: a second writer of the same seq (a node that stalled while another
    # ended its calls) fails instead of doubling the timeline. Also the index of reading it in order.
    Index("ux_events_call_seq", "call_id", "seq", unique=True),
)

LIVE = "live"


@dataclass
class CallPage:
    calls: list[dict]
    total: int


def engine_url(url: str):
    """DESIGN.md's plain ``postgresql://user@host/db`` goes through psycopg 3, the driver the base install ships."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def make_engine(url: str, pool_size: int = 5):
    parsed = engine_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(parsed)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # pre_ping: a connection the server closed (restart, failover) is replaced, not handed to a request.
    return create_engine(parsed, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


class Store:
    def __init__(self, url: str, pool_size: int = 5, migrate: bool = True):
        self.engine = make_engine(url, pool_size)
        if migrate:
            schema.upgrade(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    def live_nodes(self) -> set[str | None]:
        """The nodes holding live calls (None: a call made before calls had a node)."""
        with self.engine.connect() as db:
            return set(db.execute(select(calls.c.node_id).where(calls.c.status == LIVE).distinct()).scalars())

    def end_orphans(self, node_ids: set[str | None] | None, reason: str) -> list[dict]:
        """Ends the live calls of nodes that are gone (all live calls when ``node_ids`` is None) as
        ``interrupted``, each with its ``call.ended``; returns those events. Exactly once whoever else
        tries at the same moment: the row changes only while it is still live, in the same transaction
        as the event, whose (call_id, seq) is unique."""
        query = select(calls.c.call_id).where(calls.c.status == LIVE)
        if node_ids is not None:
            named = [n for n in node_ids if n is not None]
            cond = calls.c.node_id.in_(named) if named else None
            if None in node_ids:
                cond = calls.c.node_id.is_(None) if cond is None else (cond | calls.c.node_id.is_(None))
            if cond is None:
                return []
            query = query.where(cond)
        with self.engine.connect() as db:
            call_ids = list(db.execute(query).scalars())
        ended = []
        for call_id in call_ids:
            try:
                event = self._end_orphan(call_id, reason)
            except IntegrityError:  # another node wrote the same seq first: it ended the call
                continue
            if event is not None:
                ended.append(event)
        return ended

    def _end_orphan(self, call_id: str, reason: str) -> dict | None:
        now = time.time()
        with self.engine.begin() as db:
            claimed = db.execute(update(calls).where(calls.c.call_id == call_id, calls.c.status == LIVE)
                                 .values(status="interrupted", end_reason=reason, ended_at=now)).rowcount
            if not claimed:
                return None
            row = db.execute(select(calls).where(calls.c.call_id == call_id)).mappings().first()
            timeline = [json.loads(b) for b in db.execute(
                select(events.c.body).where(events.c.call_id == call_id).order_by(events.c.seq)).scalars()]
            duration = max([e.get("t", 0.0) for e in timeline] + [row["audio_seconds"] or 0.0])
            summary = {"duration": round(duration, 3), "end_status": "interrupted", **summary_of(timeline)}
            event = {"type": "call.ended", "call_id": call_id, "seq": (timeline[-1]["seq"] if timeline else 0) + 1,
                     "t": round(duration, 3), "ts": round(now, 3), "agent_id": row["agent_id"],
                     "metadata": row["metadata"], "summary": summary}
            db.execute(update(calls).where(calls.c.call_id == call_id).values(
                audio_seconds=round(duration, 3), summary=summary, peak_heat=summary["peak_heat"],
                warning_count=len(summary["warnings"])))
            db.execute(insert(events).values(call_id=call_id, seq=event["seq"], type=event["type"],
                                             body=json.dumps(event)))
        return event

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

    def delete_call(self, call_id: str) -> bool:
        """The call's events and row, in one transaction; False when there was no such call."""
        with self.engine.begin() as db:
            db.execute(delete(events).where(events.c.call_id == call_id))
            return db.execute(delete(calls).where(calls.c.call_id == call_id)).rowcount > 0

    def calls_started_before(self, cutoff: float) -> list[str]:
        """Ids of calls, not live, that started before ``cutoff`` (unix seconds)."""
        with self.engine.connect() as db:
            return list(db.execute(select(calls.c.call_id).where(calls.c.started_at < cutoff, calls.c.status != LIVE)).scalars())

    def get_call(self, call_id: str) -> dict | None:
        with self.engine.connect() as db:
            row = db.execute(select(calls).where(calls.c.call_id == call_id)).mappings().first()
        return dict(row) if row else None

    def get_events(self, call_id: str, types: list[str] | None = None, after: int | None = None,
                   before: int | None = None) -> list[dict]:
        """A call's events in seq order; ``after``/``before`` bound the seq (exclusive), to fill a gap."""
        query = select(events.c.body).where(events.c.call_id == call_id)
        if types:
            query = query.where(events.c.type.in_(types))
        if after is not None:
            query = query.where(events.c.seq > after)
        if before is not None:
            query = query.where(events.c.seq < before)
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


def summary_of(timeline: list[dict]) -> dict:
    """A call's summary rebuilt from its recorded events, for a call whose node died before it could
    summarize: what the agent did, the warnings, the caller's heat; a follow-up only if the agent promised one."""
    steps = [{"move": e["move"], "t": e["t"], "evidence": e.get("evidence")} for e in timeline if e["type"] == "step.done"]
    heat = [e["heat"] for e in timeline if e["type"] == "sentiment" and e.get("speaker") == "caller"
            and e.get("heat") is not None]
    promised = next((s for s in steps if s["move"] == "follow_up"), None)
    return {
        "steps_done": steps,
        "warnings": [{"kind": e["kind"], "t": e["t"], "quote": e.get("quote")} for e in timeline if e["type"] == "warning"],
        "peak_heat": round(max(heat, default=0.0), 3),
        "final_heat": round(heat[-1] if heat else 0.0, 3),
        "follow_up": {"promised": promised is not None,
                      "item": promised["evidence"] if promised else
                      "Suggested: call the customer back to make sure the problem is solved.", "due": None},
    }


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    # WAL: readers (REST, replay) never wait for the writer; NORMAL: no fsync per event.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()
