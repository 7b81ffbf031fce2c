"""Recordings streamed from disk: little memory whatever the length, byte ranges, concurrent readers, one finalize."""

from __future__ import annotations

import asyncio
import io
import json
import os
import time
import tracemalloc
import uuid
import wave
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import websockets

from service.storage import LIVE
from tests.server import INGEST_KEY, SUPERVISOR_TOKEN

AUTH = {"Authorization": f"Bearer {SUPERVISOR_TOKEN}"}
RATE = 16000
HOUR_FRAMES = 3600 * RATE
MARKS = {"caller": [(0, 1111), (HOUR_FRAMES // 2, 2222), (HOUR_FRAMES - 1, 3333)],
         "agent": [(7, -1234), (HOUR_FRAMES // 3, 4444)]}


def recorded_call(server, frames: dict[str, np.ndarray | int], status: str = "ended") -> str:
    """A stored call whose raw tracks are on disk (as a crash or a live call leaves them); no WAV yet."""
    call_id = f"rec-{uuid.uuid4().hex[:8]}"
    directory = server.services.audio_files.root / call_id
    directory.mkdir(parents=True)
    for role, data in frames.items():
        path = directory / f"{role}.pcm"
        if isinstance(data, int):  # a sparse track of this many samples: an hour costs no disk or time
            with open(path, "wb") as f:
                f.truncate(data * 2)
        else:
            path.write_bytes(data.astype("<i2").tobytes())
    server.services.store.create_call({"call_id": call_id, "agent_id": "a-1", "status": status, "source": "native",
                                       "started_at": time.time(), "audio_seconds": 0.0, "metadata": {}})
    return call_id


def expected_wav(caller: np.ndarray, agent: np.ndarray) -> bytes:
    n = max(len(caller), len(agent))
    stereo = np.zeros((n, 2), dtype="<i2")
    stereo[: len(caller), 0] = caller
    stereo[: len(agent), 1] = agent
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(stereo.tobytes())
    return buf.getvalue()


def test_an_hour_long_recording_streams_with_a_few_mib(server):
    call_id = recorded_call(server, {"caller": HOUR_FRAMES, "agent": HOUR_FRAMES - RATE})
    directory = server.services.audio_files.root / call_id
    for role, marks in MARKS.items():
        with open(directory / f"{role}.pcm", "r+b") as f:
            for frame, value in marks:
                f.seek(frame * 2)
                f.write(np.int16(value).tobytes())
    size = 44 + HOUR_FRAMES * 4
    found: dict[tuple[str, int], int] = {}
    wanted = {frame * 4 + channel * 2: (role, frame) for channel, role in enumerate(("caller", "agent"))
              for frame, _ in MARKS[role]}
    # Measured with nothing else running in the server (calls left by other tests would allocate too).
    deadline = time.monotonic() + 120
    while server.services.calls.all() or server.services.scheduler.depth:
        assert time.monotonic() < deadline, "the shared server never went idle"
        time.sleep(0.2)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        received = 0
        header = b""
        with httpx.stream("GET", f"{server.http}/v1/calls/{call_id}/audio", headers=AUTH, timeout=120) as r:
            assert r.status_code == 200 and r.headers["content-type"] == "audio/wav"
            assert int(r.headers["content-length"]) == size
            for chunk in r.iter_bytes():
                if len(header) < 44:
                    header += chunk[: 44 - len(header)]
                data_start = received - 44
                for offset, key in wanted.items():
                    at = offset - data_start
                    if 0 <= at < len(chunk) - 1 and received + at >= 44:
                        found[key] = int(np.frombuffer(chunk[at: at + 2], dtype="<i2")[0])
                received += len(chunk)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert received == size
    with wave.open(io.BytesIO(header + b"\0" * 4)) as w:
        assert (w.getnchannels(), w.getframerate(), w.getnframes()) == (2, RATE, HOUR_FRAMES)
    assert found == {(role, frame): value for role, marks in MARKS.items() for frame, value in marks}
    # The old way built the whole WAV in memory: 460 MB for this hour.
    assert peak < 8 * 2**20, f"{peak / 2**20:.1f} MiB allocated while streaming an hour"
    assert sorted(p.name for p in directory.iterdir()) == ["agent.pcm", "caller.pcm"]  # nothing written to serve it


def test_byte_ranges(server):
    rng = np.random.default_rng(1)
    caller, agent = rng.integers(-30000, 30000, 3 * RATE), rng.integers(-30000, 30000, 2 * RATE)
    call_id = recorded_call(server, {"caller": caller, "agent": agent})
    whole = expected_wav(caller, agent)
    url = f"{server.http}/v1/calls/{call_id}/audio"

    def get(range_=None):
        return httpx.get(url, headers={**AUTH, **({"Range": range_} if range_ else {})}, timeout=30)

    r = get()
    assert r.status_code == 200 and r.content == whole and r.headers["accept-ranges"] == "bytes"
    for spec, start, end in [("bytes=0-43", 0, 43), ("bytes=44-47", 44, 47), ("bytes=1001-150000", 1001, 150000),
                             ("bytes=100000-", 100000, len(whole) - 1), ("bytes=-10", len(whole) - 10, len(whole) - 1),
                             (f"bytes=5-{len(whole) * 2}", 5, len(whole) - 1)]:
        r = get(spec)
        assert r.status_code == 206, spec
        assert r.content == whole[start: end + 1], spec
        assert r.headers["content-range"] == f"bytes {start}-{end}/{len(whole)}", spec
    assert get(f"bytes={len(whole)}-").status_code == 416
    assert get("bytes=0-1,5-9").status_code == 200  # several ranges: the whole file, as RFC 9110 allows
    assert get("bytes=9-5").status_code == 200 and get("bytes=x-").status_code == 200  # invalid: ignored
    # After the finalize, the same bytes come from the WAV file.
    assert server.services.audio_files.finalize(call_id) is not None
    assert get("bytes=1001-150000").content == whole[1001:150001] and get().content == whole


def test_concurrent_readers_and_finalize_agree(server):
    rng = np.random.default_rng(2)
    caller, agent = rng.integers(-30000, 30000, 20 * RATE), rng.integers(-30000, 30000, 19 * RATE)
    call_id = recorded_call(server, {"caller": caller, "agent": agent})
    whole = expected_wav(caller, agent)
    files = server.services.audio_files
    with ThreadPoolExecutor(10) as pool:
        reads = [pool.submit(httpx.get, f"{server.http}/v1/calls/{call_id}/audio", headers=AUTH, timeout=60)
                 for _ in range(8)]
        finals = [pool.submit(files.finalize, call_id) for _ in range(2)]
        assert all(f.result() == files.wav_path(call_id) for f in finals)
        assert all(r.result().content == whole for r in reads)
    directory = files.root / call_id
    assert sorted(p.name for p in directory.iterdir()) == ["call.wav"]  # the tracks removed, no temporary left
    assert files.wav_path(call_id).read_bytes() == whole


async def test_a_live_call_is_served_without_writing_and_finalized_once_at_its_end(server):
    call_id = f"live-{uuid.uuid4().hex[:8]}"
    tone = (np.sin(np.arange(160) / 3) * 8000).astype("<i2")
    frame = np.repeat(tone, 2).tobytes()  # 20 ms, 8 kHz, stereo
    directory = server.services.audio_files.root / call_id
    async with websockets.connect(server.ws + "/v1/stream", additional_headers={"Authorization": f"Bearer {INGEST_KEY}"}) as ws:
        await ws.send(json.dumps({"type": "start", "call_id": call_id, "agent_id": "a-1", "encoding": "pcm16",
                                  "sample_rate": 8000, "channels": 2, "roles": ["caller", "agent"]}))
        await ws.recv()
        for _ in range(100):
            await ws.send(frame)
        async with httpx.AsyncClient(headers=AUTH, timeout=30) as client:
            deadline = time.monotonic() + 30
            while True:
                first, second = await asyncio.gather(*[client.get(f"{server.http}/v1/calls/{call_id}/audio")
                                                      for _ in range(2)])
                assert first.status_code == second.status_code == 200
                with wave.open(io.BytesIO(first.content)) as w:
                    if w.getnframes() >= 1.9 * RATE:  # the 100 frames reached the server (the resampler holds a few)
                        break
                assert time.monotonic() < deadline, "the live recording never reached 2 s"
                await asyncio.sleep(0.1)
            assert sorted(p.name for p in directory.iterdir()) == ["agent.pcm", "caller.pcm"]
            call = (await client.get(f"{server.http}/v1/calls/{call_id}")).json()
            assert call["status"] == LIVE
        await ws.send(json.dumps({"type": "stop"}))
        stopped = json.loads(await ws.recv())
        assert stopped["type"] == "stopped"
    assert sorted(p.name for p in directory.iterdir()) == ["call.wav"]
    frames = round(stopped["audio_seconds"] * RATE)
    with wave.open(str(directory / "call.wav")) as w:
        assert w.getnframes() == frames
    assert os.stat(directory / "call.wav").st_size == 44 + frames * 4
