"""Storage on SQLite and a real PostgreSQL: migrations, one event per (call_id, seq), dead nodes' calls ended once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest
from sqlalchemy import (JSON, Column, Float, Integer, MetaData, String, Table, Text, create_engine, inspect, insert,
                        select)
from sqlalchemy.exc import IntegrityError

from service import schema
from service.storage import Store, calls, events

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.e2e)])
def url(request, tmp_path):
    if request.param == "postgresql":
        return request.getfixturevalue("postgres").new_database()
    return f"sqlite:///{tmp_path / 'calmline.db'}"


def a_call(call_id: str, node_id: str | None, **over) -> dict:
    row = {"call_id": call_id, "agent_id": "a-1", "status": "live", "source": "native", "started_at": time.time(),
           "metadata": {"ticket": 7}, "audio_seconds": 0.0, "node_id": node_id}
    row.update(over)
    return row


def an_event(call_id: str, seq: int, type_: str = "transcript.final", t: float = 1.0, **fields) -> dict:
    return {"type": type_, "call_id": call_id, "seq": seq, "t": t, "ts": time.time(), **fields}


def test_migrations_reach_head_and_run_again_harmlessly(url):
    store = Store(url)
    assert schema.current(store.engine) == schema.head() == "0002"
    assert schema.upgrade(store.engine) == "0002"  # a second node starting later: nothing to do
    columns = {c["name"]: c for c in inspect(store.engine).get_columns("calls")}
    assert columns["agent_id"]["nullable"] and "node_id" in columns
    store.create_call(a_call("unassigned", "n1", agent_id=None))  # a call without an agent (yet)
    assert store.get_call("unassigned")["agent_id"] is None
    store.close()


def test_the_plain_postgresql_url_goes_through_psycopg_with_the_pool_size_set(postgres):
    url = postgres.new_database()
    assert url.startswith("postgresql://")  # as DESIGN.md writes it, no driver named
    store = Store(url, pool_size=3)
    assert store.engine.dialect.driver == "psycopg" and store.engine.pool.size() == 3
    store.close()


def test_one_event_per_call_and_seq_and_read_in_seq_order(url):
    store = Store(url)
    store.create_call(a_call("c1", "n1"))
    store.append_events([an_event("c1", 2), an_event("c1", 1, "call.started"), an_event("c1", 3)])
    with pytest.raises(IntegrityError):
        store.append_events([an_event("c1", 2, text="a second writer of seq 2")])
    store.append_events([an_event("c2", 2)])  # the same seq in another call is fine
    assert [e["seq"] for e in store.get_events("c1")] == [1, 2, 3]
    assert [e["seq"] for e in store.get_events("c1", after=1, before=3)] == [2]
    assert "text" not in store.get_events("c1", after=1, before=3)[0]
    store.close()


def test_a_dead_nodes_calls_end_once_whoever_ends_them(url):
    """Two survivors (two engines, like two nodes) end the dead node's calls at the same moment: each call
    gets exactly one call.ended, after its last event, with a summary rebuilt from its events."""
    store = Store(url)
    for n in range(5):
        store.create_call(a_call(f"dead-{n}", "node-a"))
        store.append_events([an_event(f"dead-{n}", 1, "call.started", 0.0),
                             an_event(f"dead-{n}", 2, "sentiment", 3.5, speaker="caller", heat=0.8),
                             an_event(f"dead-{n}", 3, "warning", 4.0, kind="blame", quote="not my fault")])
    store.create_call(a_call("alive", "node-b"))
    survivors = [Store(url), Store(url)]
    results: list[list[dict]] = [[], []]
    barrier = threading.Barrier(2)

    def survive(i):
        barrier.wait()
        results[i] = survivors[i].end_orphans({"node-a"}, "node stopped answering")

    threads = [threading.Thread(target=survive, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ended = results[0] + results[1]
    assert sorted(e["call_id"] for e in ended) == [f"dead-{n}" for n in range(5)]
    for n in range(5):
        timeline = store.get_events(f"dead-{n}")
        assert [e["type"] for e in timeline].count("call.ended") == 1
        last = timeline[-1]
        assert last["type"] == "call.ended" and last["seq"] == 4 and last["t"] == 4.0
        assert last["summary"]["end_status"] == "interrupted" and last["summary"]["peak_heat"] == 0.8
        assert [w["kind"] for w in last["summary"]["warnings"]] == ["blame"]
        row = store.get_call(f"dead-{n}")
        assert row["status"] == "interrupted" and row["warning_count"] == 1
    assert store.get_call("alive")["status"] == "live"
    assert store.end_orphans({"node-a"}, "again") == []
    for s in survivors + [store]:
        s.close()


def _old_schema() -> MetaData:
    """The tables exactly as the releases before migrations made them (metadata.create_all)."""
    old = MetaData()
    Table("calls", old,
          Column("call_id", String(128), primary_key=True), Column("agent_id", String(128), nullable=False, index=True),
          Column("status", String(16), nullable=False), Column("end_reason", String(200)), Column("source", String(32)),
          Column("started_at", Float, nullable=False, index=True), Column("ended_at", Float),
          Column("audio_seconds", Float, default=0.0), Column("metadata", JSON), Column("media", JSON),
          Column("summary", JSON), Column("peak_heat", Float, index=True), Column("warning_count", Integer, index=True))
    Table("events", old,
          Column("id", Integer, primary_key=True, autoincrement=True),
          Column("call_id", String(128), nullable=False, index=True), Column("seq", Integer, nullable=False),
          Column("type", String(32), nullable=False), Column("body", Text, nullable=False))
    return old


def test_a_database_made_before_migrations_is_adopted(tmp_path):
    url = f"sqlite:///{tmp_path / 'calmline.db'}"
    engine = create_engine(url)
    old = _old_schema()
    old.create_all(engine)
    with engine.begin() as db:
        db.execute(insert(old.tables["calls"]).values(call_id="before", agent_id="a-1", status="ended",
                                                      started_at=1.0, metadata={"k": 1}))
        db.execute(insert(old.tables["events"]).values(call_id="before", seq=1, type="call.started",
                                                       body=json.dumps(an_event("before", 1, "call.started"))))
    engine.dispose()
    store = Store(url)
    assert schema.current(store.engine) == "0002"
    assert store.get_call("before")["metadata"] == {"k": 1} and store.get_call("before")["node_id"] is None
    assert [e["seq"] for e in store.get_events("before")] == [1]
    with pytest.raises(IntegrityError):
        store.append_events([an_event("before", 1)])
    store.close()


def test_four_nodes_upgrading_an_empty_postgresql_at_once(postgres):
    """`calmline db upgrade` in four processes started together: the advisory lock lets one make the tables
    while the others wait, then find them at head. Without it the losers die on duplicate tables."""
    url = postgres.new_database()
    env = {**os.environ, "PYTHONPATH": ROOT}
    procs = [subprocess.Popen([sys.executable, "-m", "service.cli", "db", "upgrade", "--database-url", url],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], [err[-800:] for _, err in outputs]
    assert all("revision 0002" in out for out, _ in outputs)
    store = Store(url, migrate=False)
    assert schema.current(store.engine) == "0002"
    with store.engine.connect() as db:
        assert db.execute(select(calls.c.call_id)).all() == [] and db.execute(select(events.c.id)).all() == []
    store.close()
