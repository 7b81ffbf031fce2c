"""kill -9 of a real ``calmline serve`` mid-call, then a restart on the same data dir: the call is
``interrupted``, every event a supervisor saw live is stored, and the recording reaches at least
one second before the kill."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import websockets

from clients.tools.local_server import free_port
from clients.simulate import frames_of
from models.wavfile import read_wav
from tests.conftest import SAMPLE_WAV

pytestmark = pytest.mark.e2e  # kills and restarts a real server

ROOT = Path(__file__).resolve().parent.parent
KEY, SUP = "crash-ingest", "crash-supervisor"
SECONDS = 12.0  # of the sample call streamed before the kill


class Serve:
    """``calmline serve`` in its own process."""

    def __init__(self, data_dir: Path, port: int):
        env = {**os.environ, "PYTHONPATH": str(ROOT), "CALMLINE_INGEST_KEYS": KEY, "CALMLINE_SUPERVISOR_TOKENS": SUP,
               "CALMLINE_AGENT_TOKENS": "a-1=crash-agent", "CALMLINE_DEVICE": "cpu"}
        self.proc = subprocess.Popen([sys.executable, "-m", "service.cli", "serve", "--port", str(port),
                                      "--data-dir", str(data_dir)], cwd=ROOT, env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.http, self.ws = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}"
        deadline = time.monotonic() + 180
        while True:
            assert self.proc.poll() is None, "calmline serve exited"
            assert time.monotonic() < deadline, "calmline serve did not start"
            try:
                if httpx.get(self.http + "/healthz", timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)

    def get(self, path: str):
        return httpx.get(self.http + path, headers={"Authorization": f"Bearer {SUP}"}, timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(60)


async def test_kill_9_mid_call_then_restart(tmp_path):
    data, port = tmp_path / "data", free_port()
    audio, rate = read_wav(SAMPLE_WAV)
    frames = frames_of(audio, rate, 8000, "pcm16")[: int(SECONDS * 50)]
    server = Serve(data, port)
    seen: list[dict] = []
    try:
        async with websockets.connect(f"{server.ws}/v1/supervise?token={SUP}") as board, \
                websockets.connect(f"{server.ws}/v1/stream", additional_headers={"Authorization": f"Bearer {KEY}"}) as ws:
            await ws.send(json.dumps({"type": "start", "call_id": "crash-1", "agent_id": "a-1", "encoding": "pcm16",
                                      "sample_rate": 8000, "channels": 2, "roles": ["caller", "agent"]}))
            assert json.loads(await ws.recv())["type"] == "started"
            began = time.monotonic()
            for i, frame in enumerate(frames):  # real time, as a phone sends it
                await ws.send(frame)
                await asyncio.sleep(max(0.0, began + (i + 1) * 0.02 - time.monotonic()))
            sent = len(frames) * 0.02
            # The server has all of it, and the events it makes of it have gone out (quiet for 3 s).
            deadline = time.monotonic() + 120
            while server.get("/v1/calls/crash-1").json()["audio_seconds"] < sent - 0.3:  # the resampler holds a few ms
                assert time.monotonic() < deadline, "the server never caught up with the audio sent"
                await asyncio.sleep(0.1)
            while True:
                try:
                    seen.append(json.loads(await asyncio.wait_for(board.recv(), 3.0)))
                except asyncio.TimeoutError:
                    break
                assert time.monotonic() < deadline, "events never stopped coming"
            os.kill(server.proc.pid, signal.SIGKILL)  # mid-call: no stop, no clean shutdown
            server.proc.wait(30)
    finally:
        server.stop()
    assert [e["type"] for e in seen][:1] == ["call.started"] and any(e["type"] == "transcript.final" for e in seen)

    server = Serve(data, port)
    try:
        call = server.get("/v1/calls/crash-1").json()
        assert call["status"] == "interrupted"
        stored = server.get("/v1/calls/crash-1/events").json()
        assert stored[:-1] == seen  # every event it sent live, as sent
        # ... then the call.ended the restart wrote for it.
        assert stored[-1]["type"] == "call.ended" and stored[-1]["summary"]["end_status"] == "interrupted"
        assert stored[-1]["seq"] == seen[-1]["seq"] + 1
        response = server.get("/v1/calls/crash-1/audio")
        assert response.status_code == 200
        audio, rate = read_wav(response.content)
        recorded = len(audio) / rate
        assert recorded >= sent - 1.0, f"{recorded:.2f} s recorded of {sent:.2f} s sent"
        assert sorted(p.name for p in (data / "audio" / "crash-1").iterdir()) == ["call.wav"]  # finalized at restart
        # The server runs with umask 077: the database and the recordings are its user's alone.
        made = [data, *data.rglob("*")]
        assert data / "calmline.db" in made and data / "audio" / "crash-1" / "call.wav" in made
        assert {str(p.relative_to(data)): oct(p.stat().st_mode & 0o077) for p in made if p.stat().st_mode & 0o077} == {}
    finally:
        server.stop()
