"""The limits on a connection: a call must start soon, a silent stream is a lost one, calls have a maximum length,
a stream sent faster than real time is read at real time past its lead, and sockets are capped in number and size."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid

import httpx
import numpy as np
import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from service import config
from service.app import server_config
from service.auth import load_credentials
from service.call_actions import ProtocolError, Start
from tests.server import INGEST_KEY, SUPERVISOR_TOKEN, RunningServer

AUTH = {"Authorization": f"Bearer {INGEST_KEY}"}
FRAME = np.zeros(320, dtype="<i2").tobytes()  # 20 ms of 8 kHz stereo silence


def start_msg(call_id: str) -> str:
    return json.dumps({"type": "start", "call_id": call_id, "agent_id": "a-1", "encoding": "pcm16",
                       "sample_rate": 8000, "channels": 2, "roles": ["caller", "agent"]})


@pytest.fixture(scope="module")
def limited(tmp_path_factory, transcriber):
    srv = RunningServer(tmp_path_factory.mktemp("limited"), transcriber, first_message_timeout=1.0, idle_timeout=1.5,
                        max_call_seconds=2.0, stream_lead=1.0, resume_grace=0.5, max_connections=6)
    yield srv
    srv.stop()


def call_row(server, call_id: str) -> dict:
    return httpx.get(f"{server.http}/v1/calls/{call_id}", headers={"Authorization": f"Bearer {SUPERVISOR_TOKEN}"},
                     timeout=30).json()


async def wait_row(server, call_id: str, status: str, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while (row := call_row(server, call_id)).get("status") != status:
        assert time.monotonic() < deadline, f"call {call_id} never became {status}: {row}"
        await asyncio.sleep(0.1)
    return row


@pytest.mark.parametrize("path, first", [("/v1/stream", None), ("/v1/twilio", {"event": "connected"})])
async def test_a_socket_that_never_starts_a_call_is_closed(limited, path, first):
    async with websockets.connect(f"{limited.ws}{path}?token={INGEST_KEY}") as ws:
        if first is not None:
            await ws.send(json.dumps(first))
        began = time.monotonic()
        with pytest.raises(ConnectionClosed) as closed:
            while True:  # the native protocol says why first; Twilio has no messages back
                message = await asyncio.wait_for(ws.recv(), 30)
                reply = json.loads(message)
                assert reply["type"] == "error" and reply["code"] == "no_start"
    assert closed.value.rcvd.code == 1008 and "no call started" in closed.value.rcvd.reason
    assert time.monotonic() - began < 25


async def test_a_stream_that_falls_silent_counts_as_lost_and_keeps_its_audio(limited):
    call_id = f"idle-{uuid.uuid4().hex[:8]}"
    async with websockets.connect(f"{limited.ws}/v1/stream", additional_headers=AUTH) as ws:
        await ws.send(start_msg(call_id))
        assert json.loads(await ws.recv())["type"] == "started"
        for _ in range(25):  # half a second of audio, then nothing, the socket left open
            await ws.send(FRAME)
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 30)
    assert closed.value.rcvd.code == 1001 and "sent nothing" in closed.value.rcvd.reason
    row = await wait_row(limited, call_id, "dropped")  # not resumed within the grace
    assert row["audio_seconds"] == pytest.approx(0.5, abs=0.021)


async def test_a_call_ends_at_its_maximum_length(limited):
    call_id = f"long-{uuid.uuid4().hex[:8]}"
    async with websockets.connect(f"{limited.ws}/v1/stream", additional_headers=AUTH) as ws:
        await ws.send(start_msg(call_id))
        assert json.loads(await ws.recv())["type"] == "started"
        began = time.monotonic()
        try:
            for n in range(150):  # 3 s, at real time so the lead does not come into it
                await ws.send(FRAME)
                await asyncio.sleep(max(0.0, began + (n + 1) * 0.02 - time.monotonic()))
        except ConnectionClosed:
            pass  # closed by the server at 2 s
        replies = []
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                replies.append(json.loads(await asyncio.wait_for(ws.recv(), 30)))
        assert closed.value.rcvd.code == 1008
    assert [r["code"] for r in replies if r["type"] == "error"] == ["call_too_long"]
    row = await wait_row(limited, call_id, "ended")
    assert 2.0 <= row["audio_seconds"] < 2.1
    assert "longer than 2 s" in row["end_reason"]


async def test_a_stream_sent_faster_than_real_time_is_read_at_real_time_past_its_lead(limited):
    call_id = f"fast-{uuid.uuid4().hex[:8]}"
    leads, done = [], threading.Event()

    def watch(began: float) -> None:
        while not done.is_set():
            session = limited.services.calls.get(call_id)
            if session is not None:
                leads.append(session.audio_seconds - (time.monotonic() - began))
            time.sleep(0.02)

    async with websockets.connect(f"{limited.ws}/v1/stream", additional_headers=AUTH) as ws:
        began = time.monotonic()
        watcher = threading.Thread(target=watch, args=(began,), daemon=True)
        watcher.start()
        await ws.send(start_msg(call_id))
        assert json.loads(await ws.recv())["type"] == "started"
        for _ in range(90):  # 1.8 s of audio sent at once (under the 2 s maximum length)
            await ws.send(FRAME)
        await ws.send(json.dumps({"type": "stop"}))
        ended = json.loads(await asyncio.wait_for(ws.recv(), 60))
        took = time.monotonic() - began
        done.set()
        watcher.join()
    assert ended["type"] == "stopped" and ended["audio_seconds"] == pytest.approx(1.8, abs=0.001)  # nothing lost
    # The lead, and what one frame can add: 20 ms, or the resampler's first output, held back until then (108 ms).
    assert leads and max(leads) <= 1.0 + 0.15
    assert took >= 1.8 - 1.0 - 0.15  # 1.8 s of audio cannot be taken in before 0.65 s have passed


async def test_websockets_past_the_cap_are_refused_with_503(limited):
    url = f"{limited.ws}/v1/supervise?token={SUPERVISOR_TOKEN}"
    deadline = time.monotonic() + 60
    while limited.services.sockets.open:  # the tests before may still be closing theirs: a state, not a pause
        assert time.monotonic() < deadline, f"{limited.services.sockets.open} websockets never closed"
        await asyncio.sleep(0.05)
    opened = []
    try:
        for _ in range(6):
            opened.append(await websockets.connect(url))
        with pytest.raises(InvalidStatus) as refused:
            await websockets.connect(url)
        assert refused.value.response.status_code == 503
        assert json.loads(refused.value.response.body)["code"] == "too_many_connections"
        metrics = httpx.get(f"{limited.http}/metrics", headers={"Authorization": f"Bearer {SUPERVISOR_TOKEN}"}).text
        assert "calmline_websockets_open 6.0" in metrics and "calmline_websockets_refused_total 1.0" in metrics
        await opened.pop().close()
        deadline = time.monotonic() + 30
        while True:  # the server counts the socket closed once its handler has returned
            try:
                opened.append(await websockets.connect(url))
                break
            except InvalidStatus:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
    finally:
        for ws in opened:
            await ws.close()


async def test_a_frame_far_over_the_limit_is_refused_by_the_websocket_layer(server):
    call_id = f"big-{uuid.uuid4().hex[:8]}"
    async with websockets.connect(f"{server.ws}/v1/stream", additional_headers=AUTH, max_size=None) as ws:
        await ws.send(start_msg(call_id))
        assert json.loads(await ws.recv())["type"] == "started"
        await ws.send(b"\0" * (4 * server.settings.max_frame_bytes))
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 30)
    assert closed.value.rcvd.code == 1009  # message too big: refused before the frame is buffered whole
    # A lost stream, as any abnormal close: ended after the resume grace, before the next test watches a-1's socket.
    await wait_row(server, call_id, "dropped")


def test_the_websocket_layer_holds_little_per_socket(tmp_path):
    settings = config.load(environ={}, data_dir=tmp_path, max_frame_bytes=65536, max_connections=100)
    cfg = server_config(None, settings)
    assert cfg.ws_max_size == 2 * 65536 + 4096  # was 16 MiB
    assert cfg.ws_max_queue <= 4  # was 32 messages
    assert cfg.limit_concurrency == 100 + 64  # HTTP still answered with the sockets at their cap


async def test_a_resume_racing_with_the_calls_end_is_told_it_ended(server):
    call_id = f"race-{uuid.uuid4().hex[:8]}"
    async with websockets.connect(f"{server.ws}/v1/stream", additional_headers=AUTH) as ws:
        await ws.send(start_msg(call_id))
        assert json.loads(await ws.recv())["type"] == "started"
        for _ in range(25):
            await ws.send(FRAME)
        ws.transport.abort()  # gone without a close: the call waits for a resume
    calls = server.services.calls
    deadline = time.monotonic() + 30
    while (session := calls.get(call_id)) is None or session.connected:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)

    async def race():
        # The grace runs out (its end begins) and a resume arrives before the end has finished.
        ending = asyncio.create_task(calls.end(session, "dropped", "stream lost and not resumed"))
        await asyncio.sleep(0)
        try:
            await calls.open(Start(call_id, "a-1", "native", "pcm16", 8000, 2, ("caller", "agent"), resume=True))
        except ProtocolError as exc:
            return exc.code, await ending
        return "resumed", await ending

    loop = server.services.calls._loop  # the server's own loop, in its thread
    code, _ = await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(race(), loop))
    assert code == "unknown_call"  # before: KeyError, a 1011 to the platform
    await wait_row(server, call_id, "dropped")


def test_development_tokens_only_on_a_loopback_address(tmp_path):
    for host in ("127.0.0.1", "::1", "localhost"):
        assert load_credentials(config.load(environ={}, data_dir=tmp_path, host=host)).development
    for host in ("0.0.0.0", "10.1.2.3", "calmline.example.com"):
        with pytest.raises(SystemExit, match="needs real tokens"):
            load_credentials(config.load(environ={}, data_dir=tmp_path / host, host=host))
    configured = config.load(environ={"CALMLINE_INGEST_KEYS": "k"}, data_dir=tmp_path, host="0.0.0.0")
    assert not load_credentials(configured).development
