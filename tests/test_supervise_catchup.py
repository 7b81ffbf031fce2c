"""The supervisor board catches up with each live call's current state, not its history: with 20 long
calls it stays connected (the history of 80,000 events overflowed its queue: 1013, reconnect, forever)."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from tests.server import INGEST_KEY, SUPERVISOR_TOKEN, RunningServer

CALLS, EVENTS = 20, 4000


@pytest.fixture()
def board_server(tmp_path, transcriber):
    srv = RunningServer(tmp_path / "data", transcriber)
    yield srv
    srv.stop()


def on_server(srv, coro):
    """Runs a coroutine on the server's own event loop (the sessions belong to it)."""
    return asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, srv.services.calls._loop))


async def long_history(srv):
    """4,000 events per call, as a long call makes them, all stored."""
    for session in srv.services.calls.all():
        for i in range(EVENTS):
            t = i * 0.25
            if i % 100 == 0:
                session.events.emit("warning", t, kind="blame", quote="that's our policy", advice="own it")
            elif i % 10 == 0:
                session.events.emit("sentiment", t, speaker="caller", text_score=-0.5, arousal=0.7, heat=i / EVENTS,
                                    trend="rising")
            elif i % 7 == 0:
                session.events.emit("floor", t, state="caller_speaking", venting=True, finished_venting=False,
                                    confidence=0.8)
            else:
                session.events.emit("transcript.partial", t, speaker="caller", text="I have called three times " * 3,
                                    start=t - 2, end=t)
        await srv.services.recorder.flush()


async def keep_talking(srv):
    """Meanwhile every call goes on: 20 events a second each (until cancelled)."""
    while True:
        for session in srv.services.calls.all():
            session.events.emit("transcript.partial", 1000.0, speaker="agent", text="let me check that for you",
                                start=999.0, end=1000.0)
        await asyncio.sleep(0.05)


async def test_the_board_stays_connected_with_20_long_calls(board_server):
    srv = board_server
    ingest = []
    for n in range(CALLS):
        ws = await websockets.connect(srv.ws + "/v1/stream", additional_headers={"Authorization": f"Bearer {INGEST_KEY}"})
        await ws.send(json.dumps({"type": "start", "call_id": f"long-{n}", "agent_id": "a-1", "encoding": "pcm16",
                                  "sample_rate": 8000, "channels": 2, "roles": ["caller", "agent"]}))
        assert json.loads(await ws.recv())["type"] == "started"
        ingest.append(ws)
    await on_server(srv, long_history(srv))
    talking = on_server(srv, keep_talking(srv))
    try:
        got: list[dict] = []
        async with websockets.connect(f"{srv.ws}/v1/supervise?token={SUPERVISOR_TOKEN}", max_queue=None) as board:
            deadline = time.monotonic() + 20
            calls_new: set[str] = set()
            try:
                # Connected until every call has shown both its state and something new, and 5 s more.
                while time.monotonic() < deadline:
                    got.append(json.loads(await asyncio.wait_for(board.recv(), 10)))
                    if got[-1]["type"] == "transcript.partial" and got[-1]["speaker"] == "agent":
                        calls_new.add(got[-1]["call_id"])
                    if len(calls_new) == CALLS and deadline - time.monotonic() > 5:
                        deadline = time.monotonic() + 5
            except ConnectionClosed as closed:
                pytest.fail(f"the board was closed ({closed.rcvd.code if closed.rcvd else 'no code'}) "
                            f"after {len(got)} events")
        started = {e["call_id"] for e in got if e["type"] == "call.started"}
        assert started == {f"long-{n}" for n in range(CALLS)}
        assert calls_new == started
        catch_up = [e for e in got if not (e["type"] == "transcript.partial" and e["speaker"] == "agent")]
        # Per call: call.started, the newest sentiment and floor, and its 40 warnings, not 4,000 events.
        assert len(catch_up) <= CALLS * (1 + 1 + 1 + EVENTS // 100)
        heat = {e["call_id"]: e["heat"] for e in catch_up if e["type"] == "sentiment"}
        assert heat == {c: (EVENTS - 10) / EVENTS for c in started}  # the newest, so the row is right
        seqs = {}
        for e in got:
            assert e["seq"] > seqs.get(e["call_id"], 0), "each call's events in order, none twice"
            seqs[e["call_id"]] = e["seq"]

        # Following one call still gets its whole history, then what is new.
        async with websockets.connect(f"{srv.ws}/v1/supervise?call_id=long-3&token={SUPERVISOR_TOKEN}",
                                      max_queue=None) as one:
            history = []
            while len(history) < EVENTS + 2:
                history.append(json.loads(await asyncio.wait_for(one.recv(), 30)))
        assert [e["seq"] for e in history] == list(range(1, EVENTS + 3)) and {e["call_id"] for e in history} == {"long-3"}
    finally:
        talking.cancel()
        for ws in ingest:
            await ws.close()
