"""The shared scheduler's policies, and one real transcription through it."""

import asyncio
import threading

import numpy as np
import pytest

from clients.wavfile import read_wav
from models.resample import resample
from models.scheduler import FINAL, PARTIAL, Job, TranscriptionScheduler
from models.transcriber import Transcript
from models.wer import wer
from tests.conftest import SAMPLE_GOLD, SAMPLE_WAV


class GatedTranscriber:
    """Records the order jobs run in; holds the first job until released, so a queue builds up.

    A stand-in for the model only where the test is about queue order, not about speech."""

    def __init__(self):
        self.gate = threading.Event()
        self.ran = []

    def transcribe(self, audio, beam_size=1):
        self.gate.wait(10)
        self.ran.append(float(audio[0]))
        return Transcript(f"job {audio[0]:.0f}", -0.1, 0.0)


def job(call, speaker, kind, tag, utterance=1):
    return Job(call, speaker, utterance, kind, np.full(160, tag, dtype=np.float32))


async def test_finals_first_newest_partial_wins_and_order_kept():
    model = GatedTranscriber()
    sched = TranscriptionScheduler(model)
    try:
        blocker = sched.submit(job("c0", "caller", FINAL, 0))
        await asyncio.sleep(0.05)  # the worker now holds job 0
        p1 = sched.submit(job("c1", "caller", PARTIAL, 1))
        p2 = sched.submit(job("c1", "caller", PARTIAL, 2))  # replaces 1: same speaker
        p3 = sched.submit(job("c2", "agent", PARTIAL, 3))
        f4 = sched.submit(job("c1", "agent", FINAL, 4))
        f5 = sched.submit(job("c2", "caller", FINAL, 5))
        model.gate.set()
        results = await asyncio.gather(blocker, p1, p2, p3, f4, f5)
        assert results[1] is None  # superseded, never run
        assert model.ran == [0, 4, 5, 2, 3]  # finals in order, then partials oldest first
        assert sched.stats.partials_superseded == 1
    finally:
        sched.close()


async def test_a_final_drops_the_pending_partial_of_its_speaker():
    model = GatedTranscriber()
    sched = TranscriptionScheduler(model)
    try:
        blocker = sched.submit(job("c0", "caller", FINAL, 0))
        await asyncio.sleep(0.05)
        partial = sched.submit(job("c1", "caller", PARTIAL, 1))
        final = sched.submit(job("c1", "caller", FINAL, 2))
        model.gate.set()
        assert await partial is None
        assert (await final).text == "job 2"
        await blocker
        assert model.ran == [0, 2]
    finally:
        sched.close()


async def test_partials_of_many_calls_all_get_served():
    """No starvation: each speaker's latest partial runs even while others keep submitting."""
    model = GatedTranscriber()
    model.gate.set()
    sched = TranscriptionScheduler(model)
    try:
        futures = [sched.submit(job(f"c{i % 6}", "caller", PARTIAL, i)) for i in range(60)]
        results = await asyncio.gather(*futures)
        served_calls = {int(r.text.split()[1]) % 6 for r in results if r is not None}
        assert served_calls == set(range(6))
    finally:
        sched.close()


async def test_a_failing_model_fails_the_job_not_the_worker():
    class Broken(GatedTranscriber):
        def transcribe(self, audio, beam_size=1):
            if audio[0] == 1:
                raise RuntimeError("boom")
            return super().transcribe(audio)

    model = Broken()
    model.gate.set()
    sched = TranscriptionScheduler(model)
    try:
        with pytest.raises(RuntimeError):
            await sched.submit(job("c", "caller", FINAL, 1))
        assert (await sched.submit(job("c", "caller", FINAL, 2))).text == "job 2"
    finally:
        sched.close()


async def test_real_model_through_the_scheduler(transcriber):
    audio, rate = read_wav(SAMPLE_WAV)
    part = SAMPLE_GOLD["parts"][2]  # "I ordered one book, just one book, ..."
    clip = resample(audio[int((part["start"] - 0.2) * rate): int((part["end"] + 0.3) * rate), 0], rate)
    sched = TranscriptionScheduler(transcriber)
    try:
        result = await sched.submit(Job("c", "caller", 1, FINAL, clip))
    finally:
        sched.close()
    assert wer(part["text"], result.text) <= 0.1
