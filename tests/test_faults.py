"""Storage faults mid-call: a full disk (a real 1 MiB tmpfs) and a database that refuses one call's rows
(a real SQLite trigger) end only that call, as ``error`` with its ``call.ended``; the others go on;
/healthz says ``degraded``; a clean shutdown ends every call even when one fails."""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest
import websockets
from sqlalchemy import text
from websockets.exceptions import ConnectionClosed

from clients.simulate import frames_of
from models.wavfile import read_wav
from service.recorder import Recorder
from service.storage import Store
from tests.conftest import SAMPLE_WAV
from tests.server import INGEST_KEY, SUPERVISOR_TOKEN, RunningServer
from tests.waiting import until

AUTH = {"Authorization": f"Bearer {SUPERVISOR_TOKEN}"}
INGEST = {"Authorization": f"Bearer {INGEST_KEY}"}


@pytest.fixture(scope="module")
def frames():
    audio, rate = read_wav(SAMPLE_WAV)
    return frames_of(audio, rate, 8000, "pcm16")  # 20 ms stereo frames


@pytest.fixture()
def own_server(tmp_path, transcriber):
    """A server of this test's own: its /healthz is degraded for a while after a fault."""
    srv = RunningServer(tmp_path / "data", transcriber, resume_grace=3.0)
    yield srv
    srv.stop()


@pytest.fixture()
def small_disk(tmp_path):
    """Mount a real 1 MiB tmpfs at a path; unmounted after the test."""
    mounted = []

    def mount(path: Path) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(path)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root and mount rights): {done.stderr.strip()}")
        mounted.append(path)
        return path

    yield mount
    for path in mounted:
        subprocess.run(["umount", "-l", str(path)], check=False)


def start_msg(call_id: str) -> str:
    return json.dumps({"type": "start", "call_id": call_id, "agent_id": "a-1", "encoding": "pcm16",
                       "sample_rate": 8000, "channels": 2, "roles": ["caller", "agent"]})


async def stream(server, call_id: str, frames: list[bytes], pace: float = 0.004) -> dict | None:
    """Streams a call; returns the server's last reply (``stopped``, or an ``error`` with its ``close_code``)."""
    async with websockets.connect(server.ws + "/v1/stream", additional_headers=INGEST) as ws:
        await ws.send(start_msg(call_id))
        assert json.loads(await ws.recv())["type"] == "started"
        replies: list[dict] = []

        async def read():
            try:
                async for message in ws:
                    replies.append(json.loads(message))
            except ConnectionClosed:
                pass
            if replies and replies[-1]["type"] == "error":
                replies[-1]["close_code"] = ws.close_code

        reader = asyncio.create_task(read())
        try:
            for frame in frames:
                await ws.send(frame)
                await asyncio.sleep(pace)
            await ws.send(json.dumps({"type": "stop"}))
        except ConnectionClosed:
            pass
        await asyncio.wait_for(reader, 60)
        return replies[-1] if replies else None


async def watch(server, seen: list, stop: asyncio.Event) -> None:
    async with websockets.connect(f"{server.ws}/v1/supervise?token={SUPERVISOR_TOKEN}") as ws:
        while not stop.is_set():
            try:
                seen.append(json.loads(await asyncio.wait_for(ws.recv(), 0.2)))
            except asyncio.TimeoutError:
                pass


def get(server, path: str):
    return httpx.get(server.http + path, headers=AUTH, timeout=30)


async def test_a_full_disk_ends_only_that_call(own_server, small_disk, frames):
    full, other = f"full-{uuid.uuid4().hex[:6]}", f"other-{uuid.uuid4().hex[:6]}"
    small_disk(own_server.services.audio_files.root / full)  # 1 MiB: about 16 s of the call's two tracks
    calls = frames[: 25 * 50]
    error, stopped = await asyncio.gather(stream(own_server, full, calls), stream(own_server, other, calls))

    assert error["type"] == "error" and error["code"] == "storage_error" and error["close_code"] == 1011
    assert stopped["type"] == "stopped" and stopped["audio_seconds"] == pytest.approx(25.0, abs=0.05)
    row = await until(lambda: get(own_server, f"/v1/calls/{full}").json()["status"] == "error"
                         and get(own_server, f"/v1/calls/{full}").json(), "the full call ends as error")
    assert "recording failed" in row["end_reason"] and row["summary"]["end_status"] == "error"
    ended = get(own_server, f"/v1/calls/{full}/events?type=call.ended").json()
    assert [e["summary"]["end_status"] for e in ended] == ["error"]
    assert 5.0 < row["audio_seconds"] < 25.0  # ended mid-call, everything before kept
    audio = get(own_server, f"/v1/calls/{full}/audio")
    assert audio.status_code == 200 and len(audio.content) > 44 + 5 * 16000 * 4  # what reached the disk
    assert get(own_server, f"/v1/calls/{other}").json()["status"] == "ended"
    assert get(own_server, f"/v1/calls/{other}/events?type=transcript.final").json()

    health = httpx.get(own_server.http + "/healthz").json()
    assert health["status"] == "degraded" and any(r.startswith("disk") for r in health["reasons"])
    metrics = get(own_server, "/metrics").text
    assert "calmline_calls_ended_by_fault_total 1.0" in metrics or "calmline_calls_ended_by_fault 1.0" in metrics


async def test_a_database_fault_ends_only_that_call(own_server, frames):
    bad, good = f"dbfault-{uuid.uuid4().hex[:6]}", f"good-{uuid.uuid4().hex[:6]}"
    with own_server.services.store.engine.begin() as db:  # mid-call: its first events are stored, then refused
        db.execute(text(f"CREATE TRIGGER refuse BEFORE INSERT ON events WHEN NEW.call_id = '{bad}' AND NEW.seq > 3 "
                        "BEGIN SELECT RAISE(ABORT, 'injected fault'); END"))
    seen: list[dict] = []
    stop = asyncio.Event()
    watcher = asyncio.create_task(watch(own_server, seen, stop))
    await asyncio.sleep(0.5)
    calls = frames[: 25 * 50]
    error, stopped = await asyncio.gather(stream(own_server, bad, calls, pace=0.01), stream(own_server, good, calls))
    await until(lambda: any(e["type"] == "call.ended" and e["call_id"] == good for e in seen), "the good call's end")
    stop.set()
    await watcher

    assert error is None or (error["code"] == "storage_error" and error["close_code"] == 1011)
    assert stopped["type"] == "stopped"
    row = await until(lambda: get(own_server, f"/v1/calls/{bad}").json()["status"] == "error"
                         and get(own_server, f"/v1/calls/{bad}").json(), "the faulted call ends as error")
    assert row["end_reason"].startswith("database write failed")
    # Its call.ended could not be stored, but it went out live.
    live_end = [e for e in seen if e["call_id"] == bad and e["type"] == "call.ended"]
    assert [e["summary"]["end_status"] for e in live_end] == ["error"]
    assert [e["seq"] for e in get(own_server, f"/v1/calls/{bad}/events").json()] == [1, 2, 3]
    # The other call lost nothing, though its events shared batches with the refused ones.
    assert get(own_server, f"/v1/calls/{good}/events").json() == [e for e in seen if e["call_id"] == good]
    assert get(own_server, f"/v1/calls/{good}").json()["status"] == "ended"
    health = httpx.get(own_server.http + "/healthz").json()
    assert health["status"] == "degraded" and any(r.startswith("database") for r in health["reasons"])


def test_the_recorder_queue_is_bounded_and_counts_what_it_drops(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    recorder = Recorder(store, max_queued=50)
    recorder.create_call({"call_id": "c", "agent_id": "a-1", "status": "live", "started_at": time.time()})
    locker = store.engine.raw_connection()
    locker.execute("BEGIN EXCLUSIVE")  # the database is busy: the recorder waits, its queue fills
    try:
        for seq in range(1, 1001):
            recorder({"type": "floor", "call_id": "c", "seq": seq, "t": 0.0})
        assert recorder.dropped_events >= 900
        assert any(r.startswith("recorder_queue_full") for r in recorder.health.reasons())
    finally:
        locker.rollback()
        locker.close()
    loop = asyncio.new_event_loop()
    loop.run_until_complete(recorder.flush())
    loop.close()
    stored = store.get_events("c")
    assert len(stored) == 1000 - recorder.dropped_events and stored == sorted(stored, key=lambda e: e["seq"])
    recorder.close()
    store.close()


async def test_flushes_waiting_on_a_stuck_database_hold_no_thread_of_the_default_pool():
    """Every call's end waits for the recorder; with the database stuck, those waits must not take the default
    thread pool (6 threads here), which starting a call, /healthz and the REST reads need."""
    release = threading.Event()

    class StuckStore:
        def append_events(self, events):
            release.wait(60)

    recorder = Recorder(StuckStore())
    try:
        recorder({"type": "floor", "call_id": "c", "seq": 1, "t": 0.0})  # the writer thread is now stuck on it
        flushes = [asyncio.ensure_future(recorder.flush()) for _ in range(32)]  # 32 calls ending at once
        await asyncio.sleep(0.1)
        assert await asyncio.wait_for(asyncio.to_thread(lambda: "a start's store read"), 10) == "a start's store read"
        assert not any(f.done() for f in flushes)  # still waiting for the database, as they should
    finally:
        release.set()
    await asyncio.wait_for(asyncio.gather(*flushes), 30)
    recorder.close()


async def test_shutdown_ends_every_call_past_a_failing_one(tmp_path, transcriber, small_disk, frames):
    srv = RunningServer(tmp_path / "data", transcriber, resume_grace=30.0)
    failing, other = f"failing-{uuid.uuid4().hex[:6]}", f"other-{uuid.uuid4().hex[:6]}"
    disk = small_disk(srv.services.audio_files.root / failing)
    try:
        sockets = []
        for call_id in (failing, other):
            ws = await websockets.connect(srv.ws + "/v1/stream", additional_headers=INGEST)
            await ws.send(start_msg(call_id))
            assert json.loads(await ws.recv())["type"] == "started"
            for frame in frames[:50]:
                await ws.send(frame)
            sockets.append(ws)
        await until(lambda: all(get(srv, f"/v1/calls/{c}").json().get("audio_seconds", 0) >= 0.9
                                   for c in (failing, other)), "both calls stream")
        filler = disk / "filler"
        subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=64k"], capture_output=True)  # until the disk is full
        for frame in frames[50:55]:  # held in the recording's buffer, which can no longer be written
            await sockets[0].send(frame)
        await asyncio.sleep(0.2)
        await asyncio.to_thread(srv.stop)
    finally:
        for ws in sockets:
            await ws.close()
    store = Store(srv.settings.sqlalchemy_url)
    try:
        rows = {c: store.get_call(c) for c in (failing, other)}
        assert rows[other]["status"] == "interrupted"
        assert rows[failing]["status"] in ("interrupted", "error")
        for call_id in (failing, other):
            assert [e["type"] for e in store.get_events(call_id, ["call.ended"])] == ["call.ended"]
    finally:
        store.close()
