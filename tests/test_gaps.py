"""Gaps in a stream (AudioHook discarded/resumed, Twilio timestamp jumps): the clock skips ahead without
allocating, capped by wall-clock time; an utterance open across a gap stays one utterance."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import httpx
import numpy as np
import websockets

from models.wavfile import read_wav
from clients.wire import AudioHookWire, TwilioWire
from models.resample import MODEL_RATE, resample
from models.utterances import UtteranceEnded, UtteranceSegmenter
from service.session import GAP_SLACK
from tests.conftest import SAMPLE_WAV
from tests.server import INGEST_KEY, SUPERVISOR_TOKEN


def caller_speech(start: float, end: float) -> np.ndarray:
    audio, rate = read_wav(SAMPLE_WAV)
    caller = audio[:, 0] if audio.ndim == 2 else audio
    return resample(caller[int(start * rate):int(end * rate)].astype(np.float32), rate, MODEL_RATE)


def utterances(segmenter: UtteranceSegmenter, parts: list, gap_at: int | None = None, gap: float = 0.0) -> list:
    out = []
    for i, part in enumerate(parts):
        if i == gap_at:
            segmenter.gap(int(gap * MODEL_RATE))
        out += segmenter.feed(part)
    out += segmenter.flush()
    return [u for u in out if isinstance(u, UtteranceEnded) and not u.too_short]


def test_an_utterance_open_across_a_gap_stays_whole():
    # "I ordered one book, just one book, and you sent me twelve of them." (7.28-10.38 s), cut mid-speech.
    speech = caller_speech(6.9, 10.8)
    half = int(1.6 * MODEL_RATE)
    whole = utterances(UtteranceSegmenter(), [speech[:half], speech[half:]])
    gapped = utterances(UtteranceSegmenter(), [speech[:half], speech[half:]], gap_at=1, gap=3.0)
    assert len(gapped) == len(whole) == 1
    [u] = gapped
    assert u.end - u.start > 3.0 + 2.5  # the utterance spans the gap on the call's clock
    assert len(u.audio) <= len(speech)  # and its audio is only what came: no zeros for the gap


def rss_mb() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


async def healthz_latency(server) -> float:
    async with httpx.AsyncClient(base_url=server.http, timeout=60) as c:
        t0 = time.monotonic()
        r = await c.get("/healthz")
        assert r.status_code == 200
        return time.monotonic() - t0


async def wait_for_call(server, call_id: str, status: str | None = None, deadline: float = 120.0) -> dict:
    async with httpx.AsyncClient(base_url=server.http, headers={"Authorization": f"Bearer {SUPERVISOR_TOKEN}"},
                                 timeout=30) as c:
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            r = await c.get(f"/v1/calls/{call_id}")
            if r.status_code == 200 and (status is None or r.json()["status"] == status):
                return r.json()
            await asyncio.sleep(0.2)
    raise AssertionError(f"call {call_id} never reached {status}")


def frames(seconds: float, rate: int = 8000) -> list[np.ndarray]:
    tone = (np.sin(np.arange(int(seconds * rate)) * 0.3) * 3000).astype(np.int16)
    return [tone[i:i + 160] for i in range(0, len(tone), 160)]


def assert_capped(server, call: dict, opened: float, rss_before: float, latency: float):
    elapsed = time.monotonic() - opened
    # Two hours were claimed; no more than real time (plus slack) can have passed on the call's clock.
    assert call["audio_seconds"] <= elapsed + GAP_SLACK + 0.5, (call["audio_seconds"], elapsed)
    assert call["audio_seconds"] >= 1.0
    assert latency < 2.0, latency  # /healthz answers right after the gap message: the loop was not held
    assert rss_mb() - rss_before < 100, (rss_before, rss_mb())  # not 2 h x 16 kHz x 4 bytes (460 MB) of zeros
    wav = server.settings.data_dir / "audio" / call["call_id"] / "call.wav"
    assert wav.stat().st_size < (elapsed + GAP_SLACK + 1) * MODEL_RATE * 4 + 1000


async def test_twilio_timestamp_jump_of_two_hours_is_capped_and_allocates_nothing(server):
    wire = TwilioWire(INGEST_KEY)
    call_id = "CA" + uuid.uuid4().hex
    rss_before = rss_mb()
    async with websockets.connect(server.ws + wire.path) as ws:
        for m in wire.opening(call_id, "a-1", ["caller", "agent"], {}):
            await ws.send(m)
        opened = time.monotonic()
        for f in frames(1.0):
            for m in wire.frame([f, f]):
                await ws.send(m)
        wire.sent_ms += 7_200_000  # the next frames claim two hours later
        for m in wire.frame([frames(0.02)[0]] * 2):
            await ws.send(m)
        latency = await healthz_latency(server)
        for m in wire.closing():
            await ws.send(m)
        await ws.wait_closed()
    call = await wait_for_call(server, call_id, "ended")
    assert_capped(server, call, opened, rss_before, latency)


async def test_audiohook_discarded_of_two_hours_is_capped_and_allocates_nothing(server):
    wire = AudioHookWire(INGEST_KEY)
    call_id = str(uuid.uuid4())
    rss_before = rss_mb()
    async with websockets.connect(server.ws + wire.path, additional_headers=wire.headers("")) as ws:
        for m in wire.opening(call_id, "a-1", ["caller", "agent"], {}):
            await ws.send(m)
        while not wire.is_open_reply(await ws.recv()):
            pass
        opened = time.monotonic()
        for f in frames(1.0):
            for m in wire.frame([f, f]):
                await ws.send(m)
        await ws.send(wire.message("discarded", {"start": "PT1S", "discarded": "PT7200S"}))
        latency = await healthz_latency(server)
        await ws.send(wire.message("close", {"reason": "end"}))
        async for message in ws:
            if json.loads(message).get("type") == "closed":
                break
    call = await wait_for_call(server, call_id, "ended")
    assert_capped(server, call, opened, rss_before, latency)
