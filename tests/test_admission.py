"""Admission end to end, on a real server with the real model: past CALMLINE_MAX_CALLS a new call is refused on
every protocol in that protocol's words, counted and logged, while the calls already taken finish with their
transcripts; a server that is behind refuses new calls until it has caught up; a burst of events does not
close the supervisor board."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import uuid

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from clients.tools.local_server import metric
from clients.simulate import paced, tracks_of
from models.wavfile import read_wav
from clients.wire import PROTOCOLS, wire_for
from tests.conftest import SAMPLE_WAV
from tests.server import INGEST_KEY, SUPERVISOR_TOKEN, RunningServer
from tests.waiting import until, wait

SUP = {"Authorization": f"Bearer {SUPERVISOR_TOKEN}"}
CLIP = 9.0  # seconds: the agent's greeting (0.8-4.3 s) and the caller's first words (5.1-6.7 s)


@pytest.fixture(scope="module")
def frames():
    audio, rate = read_wav(SAMPLE_WAV)
    return tracks_of(audio, rate, 8000)  # 20 ms frames of both speakers at 8 kHz, as every wire sends them


@pytest.fixture(scope="module")
def capped(tmp_path_factory, transcriber):
    srv = RunningServer(tmp_path_factory.mktemp("capped"), transcriber, max_calls=2, shed_lag=0.0, resume_grace=2.0)
    yield srv
    srv.stop()


class Refusals(logging.Handler):
    """The ``call refused`` log lines."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        if record.getMessage() == "call refused":
            self.records.append(record)


@pytest.fixture()
def refusals():
    handler = Refusals()
    logger = logging.getLogger("calmline.calls")
    logger.addHandler(handler)
    yield handler.records
    logger.removeHandler(handler)


class Call:
    """One call over one protocol's wire, driven step by step (open, stream, finish) so a test controls when."""

    def __init__(self, server: RunningServer, protocol: str):
        self.server, self.protocol = server, protocol
        self.wire = wire_for(protocol, INGEST_KEY)
        self.call_id = str(uuid.uuid4()) if protocol == "audiohook" else f"adm-{protocol}-{uuid.uuid4().hex[:8]}"
        self.ws = None

    async def open(self) -> dict | None:
        """Connects and sends the opening; the server's first reply, for protocols that give one."""
        host = self.server.ws.split("://", 1)[1]
        self.ws = await websockets.connect(self.server.ws + self.wire.path, additional_headers=self.wire.headers(host),
                                           subprotocols=self.wire.subprotocols or None)
        for message in self.wire.opening(self.call_id, "a-1", ["caller", "agent"], {}):
            await self.ws.send(message)
        if self.wire.expects_start_reply:
            raw = await asyncio.wait_for(self.ws.recv(), 60)
            self.wire.is_open_reply(raw)  # keeps AudioHook's serverseq
            return json.loads(raw)
        return None

    async def taken(self) -> None:
        """Opened and live on the server (Twilio and jambonz say nothing back when a call starts)."""
        await until(lambda: self.server.services.calls.get(self.call_id) is not None, f"{self.call_id} live")

    async def stream(self, frames, speed: float = 2.0) -> None:
        async for tracks in paced(frames, speed):
            for message in self.wire.frame(tracks):
                await self.ws.send(message)

    async def finish(self) -> None:
        closing = self.wire.closing()
        for message in closing:
            await self.ws.send(message)
        if not closing:
            await self.ws.close()
        try:
            async for raw in self.ws:  # native: stopped, then the server closes; AudioHook: closed, then we do
                if isinstance(raw, str) and json.loads(raw).get("type") == "closed":
                    break
        except ConnectionClosed:
            pass
        await self.ws.close()

    def stored(self) -> tuple[dict, list[dict]]:
        """The call's row once it has ended, and its events."""
        def ended():
            r = httpx.get(f"{self.server.http}/v1/calls/{self.call_id}", headers=SUP, timeout=30)
            return r.status_code == 200 and r.json()["status"] != "live" and r.json()
        row = wait(ended, f"{self.call_id} ended", 120)
        return row, httpx.get(f"{self.server.http}/v1/calls/{self.call_id}/events", headers=SUP, timeout=30).json()


def refused_count(server, reason: str) -> float:
    text = httpx.get(server.http + "/metrics", headers=SUP, timeout=30).text
    return metric(text, f'calmline_calls_refused_total{{reason="{reason}"}}')


async def refusal_of(call: Call) -> tuple[dict | None, int, str]:
    """Opens ``call`` expecting a refusal: (the protocol's message, if any; close code; close reason)."""
    said = await call.open()
    if call.protocol == "audiohook":
        # AudioHook: disconnect (reason error) and the server waits for the client's close, as the protocol has it.
        await call.ws.send(call.wire.closing()[0])
        closed = json.loads(await asyncio.wait_for(call.ws.recv(), 60))
        assert closed["type"] == "closed"
        await call.ws.close()
        return said, 1000, ""
    try:
        while True:
            await asyncio.wait_for(call.ws.recv(), 60)
    except ConnectionClosed as exc:
        return said, exc.rcvd.code, exc.rcvd.reason


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_past_the_cap_a_new_call_is_refused_and_the_calls_taken_finish(capped, frames, protocol, refusals):
    before = refused_count(capped, "max_calls")
    first, second = Call(capped, protocol), Call(capped, protocol)
    for call in (first, second):
        await call.open()
        await call.taken()
    await asyncio.gather(first.stream(frames[:100]), second.stream(frames[:100]))  # the first 2 s

    health = httpx.get(capped.http + "/healthz").json()
    assert health["status"] == "degraded" and health["admission"]["accepting"] is False
    assert any(r.startswith("max_calls: 2 live calls of 2") for r in health["reasons"]), health["reasons"]

    third = Call(capped, protocol)
    said, code, reason = await refusal_of(third)
    if protocol == "native":
        assert said["type"] == "error" and said["code"] == "overloaded"
        assert "at capacity" in said["message"] and "CALMLINE_MAX_CALLS=2" in said["message"]
    if protocol == "audiohook":
        assert said["type"] == "disconnect" and said["parameters"]["reason"] == "error"
        assert said["parameters"]["info"].startswith("Server error: overloaded: at capacity"), said
    else:
        assert code == 1013 and reason.startswith("overloaded: at capacity"), (code, reason)
    assert refused_count(capped, "max_calls") == before + 1
    assert [(r.call_id, r.reason, r.source) for r in refusals] == [(third.call_id, "max_calls", protocol)]
    assert INGEST_KEY not in json.dumps(vars(refusals[0]), default=str)
    assert httpx.get(f"{capped.http}/v1/calls/{third.call_id}", headers=SUP).status_code == 404

    # Nothing of the calls taken is lost: they go on and end with their transcripts.
    await asyncio.gather(first.stream(frames[100 : int(CLIP * 50)]), second.stream(frames[100 : int(CLIP * 50)]))
    await asyncio.gather(first.finish(), second.finish())
    for call in (first, second):
        row, events = call.stored()
        assert row["status"] == "ended", row
        finals = {e["speaker"]: e["text"] for e in events if e["type"] == "transcript.final"}
        assert set(finals) == {"agent", "caller"} and all(finals.values()), finals
    health = wait(lambda: (h := httpx.get(capped.http + "/healthz").json())["admission"]["accepting"] and h,
                  "taking calls again")
    assert health["status"] == "ok"


class Gated:
    """The real transcriber behind a gate: while it is shut every window waits, as on a machine that cannot keep up."""

    def __init__(self, inner):
        self._inner = inner
        self.gate = threading.Event()

    def transcribe_many(self, *args, **kwargs):
        self.gate.wait()
        return self._inner.transcribe_many(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._inner, name)


async def test_a_server_behind_refuses_new_calls_until_it_has_caught_up(tmp_path, transcriber, frames, refusals):
    gated = Gated(transcriber)
    srv = RunningServer(tmp_path / "data", gated, max_calls=0, shed_lag=1.0)
    try:
        first = Call(srv, "native")
        assert (await first.open())["type"] == "started"
        await first.stream(frames[: int(CLIP * 50)], speed=3.0)  # utterances end: their finals queue up

        health = await until(lambda: (h := httpx.get(srv.http + "/healthz").json())["admission"]["shedding"] and h,
                             "shedding")
        assert health["status"] == "degraded" and any(r.startswith("overloaded: ") for r in health["reasons"])
        second = Call(srv, "native")
        said, code, reason = await refusal_of(second)
        assert said["type"] == "error" and said["code"] == "overloaded" and "behind" in said["message"]
        assert code == 1013 and reason.startswith("overloaded: this server is"), (code, reason)
        assert refused_count(srv, "behind") == 1 and refused_count(srv, "max_calls") == 0
        assert [(r.call_id, r.reason) for r in refusals] == [(second.call_id, "behind")]

        # The call taken goes on: its partials are not transcribed while behind, its finals all are.
        await first.stream(frames[int(CLIP * 50) : int(2 * CLIP * 50)], speed=3.0)
        thinned = metric(httpx.get(srv.http + "/metrics", headers=SUP).text, "calmline_transcription_partials_thinned_total")
        assert thinned > 0
        gated.gate.set()
        await first.finish()
        row, events = first.stored()
        assert row["status"] == "ended"
        finals = [e for e in events if e["type"] == "transcript.final"]
        assert {e["speaker"] for e in finals} == {"agent", "caller"} and all(e["text"] for e in finals)

        # Caught up, and calm for a while (hysteresis): new calls are taken again.
        await until(lambda: not httpx.get(srv.http + "/healthz").json()["admission"]["shedding"], "caught up", 120)
        third = Call(srv, "native")
        assert (await third.open())["type"] == "started"
        await third.finish()
    finally:
        gated.gate.set()
        srv.stop()


async def test_a_burst_of_events_folds_into_the_boards_state_instead_of_closing_it(server, frames):
    call = Call(server, "native")
    assert (await call.open())["type"] == "started"
    await call.stream(frames[:50])
    session = server.services.calls.get(call.call_id)
    async with websockets.connect(f"{server.ws}/v1/supervise?token={SUPERVISOR_TOKEN}") as board:
        async def seen(kind: str, seq: int | None = None) -> list[dict]:
            got = []
            while True:
                event = json.loads(await board.recv())
                if event["call_id"] == call.call_id:
                    got.append(event)
                    if event["type"] == kind and (seq is None or event["seq"] == seq):
                        return got

        await asyncio.wait_for(seen("call.started"), 60)
        burst = 3000  # more than a subscriber may fall behind (bus.BACKLOG), all in one turn of the server's loop
        done = threading.Event()
        last = {}

        def emit_burst():
            for i in range(burst):
                if i % 2:
                    session.events.emit("transcript.partial", 1.0, speaker="caller", text=f"word {i}", start=0.0, end=1.0)
                else:
                    last.update(session.events.emit("floor", 1.0, state="caller", venting=False,
                                                    finished_venting=False, confidence=None))
            done.set()

        coalesced = metric(httpx.get(server.http + "/metrics", headers=SUP).text, "calmline_board_events_coalesced_total")
        server.services.calls._loop.call_soon_threadsafe(emit_burst)
        assert await asyncio.to_thread(done.wait, 60)
        got = await asyncio.wait_for(seen("floor", last["seq"]), 60)  # the newest state reaches the board
        assert len(got) < burst  # folded, not replayed event by event
        after = metric(httpx.get(server.http + "/metrics", headers=SUP).text, "calmline_board_events_coalesced_total")
        assert after > coalesced
        await call.finish()
        ended = await asyncio.wait_for(seen("call.ended"), 120)  # still open, still live
        assert ended[-1]["seq"] > last["seq"]
