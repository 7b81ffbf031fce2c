"""The shared scheduler's policies, and one real transcription through it."""

import asyncio
import contextlib
import threading
import time

import numpy as np
import pytest

from models.wavfile import read_wav
from models.resample import resample
from models.scheduler import FINAL, PARTIAL, Job, TranscriptionScheduler
from models.transcriber import Transcript
from models.wer import wer
from tests.conftest import SAMPLE_GOLD, SAMPLE_WAV
from tests.waiting import until


class GatedTranscriber:
    """Records the windows jobs run in; holds the first window until released, so a queue builds up.

    A stand-in for the model only where the test is about queue order and packing, not about speech."""

    def __init__(self):
        self.gate = threading.Event()
        self.ran = []

    def transcribe_many(self, audios, words=True, lean=False):
        self.gate.wait(10)
        self.ran.append([float(a[0]) for a in audios])
        return [Transcript(f"job {a[0]:.0f}", -0.1, 0.0) for a in audios]


class Starts(GatedTranscriber):
    """Records the tag each window starts with, and holds at the gate only the windows whose first tag ``holds``
    picks: the rest run through."""

    def __init__(self, holds):
        super().__init__()
        self.holds = holds
        self.started = []

    def transcribe_many(self, audios, words=True, lean=False):
        self.started.append(float(audios[0][0]))
        if self.holds(audios[0][0]):
            self.gate.wait(10)
        self.ran.append([float(a[0]) for a in audios])
        return [Transcript(f"job {a[0]:.0f}", -0.1, 0.0) for a in audios]


async def holds_first(sched: TranscriptionScheduler) -> None:
    """Until a worker has taken the job queued first (the gate holds it there): a state, not a guess at time."""
    await until(lambda: sched.depth == 0, "a worker taking the first job", timeout=10, every=0.005)


@contextlib.asynccontextmanager
async def holding(**settings):
    """A scheduler whose worker holds job 0 until the test opens the gate, so a queue builds up behind it."""
    model = GatedTranscriber()
    sched = TranscriptionScheduler(model, **settings)
    try:
        blocker = sched.submit(job("c0", "caller", FINAL, 0))
        await holds_first(sched)
        yield model, sched, blocker
    finally:
        model.gate.set()
        sched.close()


@pytest.fixture
async def held():
    async with holding() as queue:
        yield queue


def job(call, speaker, kind, tag, utterance=1, seconds=5.0):
    """A job whose audio is ``seconds`` long: two 5 s jobs fill one window (12.4 s of its 13 s with gaps)."""
    return Job(call, speaker, utterance, kind, np.full(int(seconds * 16000), tag, dtype=np.float32))


async def test_finals_first_newest_partial_wins_and_order_kept(held):
    model, sched, blocker = held
    p1 = sched.submit(job("c1", "caller", PARTIAL, 1))
    p2 = sched.submit(job("c1", "caller", PARTIAL, 2))  # replaces 1: same speaker
    p3 = sched.submit(job("c2", "agent", PARTIAL, 3))
    f4 = sched.submit(job("c1", "agent", FINAL, 4))
    f5 = sched.submit(job("c2", "caller", FINAL, 5))
    model.gate.set()
    results = await asyncio.gather(blocker, p1, p2, p3, f4, f5)
    assert results[1] is None  # superseded, never run
    assert [r.text for r in results[2:]] == ["job 2", "job 3", "job 4", "job 5"]
    # Finals first, the caller's ahead of the agent's just before it, then partials oldest first, in small windows.
    assert model.ran == [[0], [5, 4], [2], [3]]
    assert sched.stats.partials_superseded == 1 and sched.stats.windows == 4


async def test_a_final_drops_the_pending_partial_of_its_speaker(held):
    model, sched, blocker = held
    partial = sched.submit(job("c1", "caller", PARTIAL, 1))
    final = sched.submit(job("c1", "caller", FINAL, 2))
    model.gate.set()
    assert await partial is None
    assert (await final).text == "job 2"
    await blocker
    assert model.ran == [[0], [2]]


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
        def transcribe_many(self, audios, words=True, lean=False):
            if audios[0][0] == 1:
                raise RuntimeError("boom")
            return super().transcribe_many(audios, words)

    model = Broken()
    model.gate.set()
    sched = TranscriptionScheduler(model)
    try:
        with pytest.raises(RuntimeError):
            await sched.submit(job("c", "caller", FINAL, 1))
        assert (await sched.submit(job("c", "caller", FINAL, 2))).text == "job 2"
    finally:
        sched.close()


async def test_fairness_between_calls_is_first_come_first_served(held):
    """A talkative call cannot push another call's final behind its own later ones (between callers' finals, or
    between agents'; a caller's final may pass an agent's queued just before it: the next test)."""
    model, sched, blocker = held
    busy = [sched.submit(job("busy", "caller", FINAL, i, utterance=i)) for i in (1, 2)]
    quiet = sched.submit(job("quiet", "caller", FINAL, 3))
    more = [sched.submit(job("busy", "caller", FINAL, i, utterance=i)) for i in (4, 5)]
    model.gate.set()
    await asyncio.gather(blocker, *busy, quiet, *more)
    assert model.ran == [[0], [1, 2], [3, 4], [5]]


async def test_a_callers_final_passes_agents_finals_queued_just_before_it_but_not_older_ones():
    """The floor waits on the caller's words: in a burst they go first, but an agent's final is passed only by
    callers' finals queued less than ``caller_lead`` after it."""
    async with holding(caller_lead=0.3) as (model, sched, blocker):
        old_agent = sched.submit(job("a", "agent", FINAL, 1))
        await asyncio.sleep(0.5)  # longer ago than the lead
        new_agent = sched.submit(job("b", "agent", FINAL, 2))
        caller = sched.submit(job("c", "caller", FINAL, 3))
        later_agent = sched.submit(job("d", "agent", FINAL, 4))
        assert sched.final_lag >= 0.5  # the oldest waiting
        model.gate.set()
        await asyncio.gather(blocker, old_agent, new_agent, caller, later_agent)
        assert model.ran == [[0], [1, 3], [2, 4]]


async def test_the_lag_is_the_oldest_finals_wait_even_when_a_caller_is_ahead_of_it():
    async with holding(caller_lead=2.0) as (model, sched, blocker):
        since = time.monotonic()
        agent = sched.submit(job("a", "agent", FINAL, 1))
        await asyncio.sleep(0.4)
        caller = sched.submit(job("c", "caller", FINAL, 2))  # queued ahead of the agent's
        # The agent's wait, not the caller's few milliseconds (measured, not guessed: a busy machine oversleeps).
        lag = sched.final_lag
        assert 0.4 <= lag <= time.monotonic() - since
        model.gate.set()
        await asyncio.gather(blocker, agent, caller)
        assert model.ran == [[0], [2, 1]]


async def test_partials_thin_out_under_load(held):
    """While a window runs, a speaker's partials pile up; only the newest is transcribed."""
    model, sched, blocker = held
    snapshots = [sched.submit(job("c1", "caller", PARTIAL, i, seconds=1.0)) for i in range(1, 8)]
    model.gate.set()
    results = await asyncio.gather(blocker, *snapshots)
    assert [r is None for r in results[1:]] == [True] * 6 + [False]
    assert model.ran == [[0], [7]] and sched.stats.partials_superseded == 6


async def test_short_utterances_share_a_window(held):
    model, sched, blocker = held
    rest = [sched.submit(job(f"c{i}", "caller", FINAL, i, seconds=2.0)) for i in range(1, 10)]
    model.gate.set()
    await asyncio.gather(blocker, *rest)
    # 2 s + 1.2 s gap each: four fit in 13 s, the fifth waits for the next window.
    assert model.ran == [[0], [1, 2, 3, 4], [5, 6, 7, 8], [9]]


async def test_real_model_through_the_scheduler(transcriber):
    """Utterances of both speakers of one call, packed: each gets its own words back."""
    audio, rate = read_wav(SAMPLE_WAV)
    parts = SAMPLE_GOLD["parts"][1:8]
    sched = TranscriptionScheduler(transcriber)
    try:
        results = await asyncio.gather(*[
            sched.submit(Job("c", p["speaker"], i, FINAL, resample(
                audio[int((p["start"] - 0.2) * rate): int((p["end"] + 0.3) * rate), 0 if p["speaker"] == "caller" else 1], rate)))
            for i, p in enumerate(parts)])
    finally:
        sched.close()
    for part, result in zip(parts, results):
        assert wer(part["text"], result.text) <= 0.2, (part["text"], result.text)
    # The first alone (a worker takes it at once), the other six (20.2 s and their gaps) in as few 13 s windows as
    # hold them.
    assert sched.stats.windows <= 4


async def test_an_early_final_is_withdrawn_while_queued_but_not_once_running(held):
    model, sched, running = held
    queued = sched.submit(job("c1", "caller", FINAL, 1))
    assert sched.withdraw(queued) and not sched.withdraw(running)
    model.gate.set()
    assert await queued is None and (await running).text == "job 0"
    assert model.ran == [[0]] and sched.stats.withdrawn == 1


async def test_an_early_final_ranks_from_when_its_end_would_be_confirmed(held):
    """A final started at a pause is speculation: a final confirmed less than its ``speculative`` seconds after it
    goes first on a busy machine; one confirmed later does not pass it."""
    model, sched, blocker = held
    # When each was queued, set rather than slept for: a busy machine's stall between two lines cannot reorder them.
    t = time.monotonic()
    early = Job("a", "agent", 1, FINAL, np.full(12 * 16000, 1, dtype=np.float32), submitted=t, speculative=0.3)
    confirmed, later = job("b", "agent", FINAL, 2, seconds=12), job("c", "agent", FINAL, 3, seconds=12)  # a window each
    confirmed.submitted, later.submitted = t + 0.1, t + 0.4  # within the early one's 0.3 s, and past it
    early_future, confirmed, later = sched.submit(early), sched.submit(confirmed), sched.submit(later)
    model.gate.set()
    await asyncio.gather(blocker, early_future, confirmed, later)
    assert model.ran == [[0], [2], [1], [3]]


async def test_the_lag_counts_an_early_final_from_its_confirmation(held):
    """How far behind the machine is (admission reads it): an early final's wait before its end is confirmed is the
    speaker's silence, not the machine's."""
    model, sched, blocker = held
    sched.submit(Job("a", "agent", 1, FINAL, np.full(16000, 1, dtype=np.float32), speculative=30.0))
    await asyncio.sleep(0.05)
    assert sched.final_lag == 0.0
    since = time.monotonic()
    sched.submit(job("b", "agent", FINAL, 2))
    await asyncio.sleep(0.05)
    assert 0.05 <= sched.final_lag <= time.monotonic() - since
    model.gate.set()


async def test_two_workers_run_windows_side_by_side():
    """While one window is held up, the second worker takes the next one: finals do not queue behind it."""

    model = Starts(holds=lambda tag: tag == 0)
    sched = TranscriptionScheduler(model, workers=2)
    try:
        slow = sched.submit(job("c0", "caller", FINAL, 0))
        await holds_first(sched)
        quick = sched.submit(job("c1", "caller", FINAL, 1))
        assert (await asyncio.wait_for(quick, 5)).text == "job 1"
        assert not slow.done()
        model.gate.set()
        assert (await slow).text == "job 0" and model.ran == [[1], [0]]
    finally:
        sched.close()


async def test_idle_only_once_every_job_has_its_result(held):
    """What a test waits on to stream only as fast as the server keeps up: a job being run is not idle."""
    model, sched, blocker = held
    assert sched.depth == 0 and not sched.idle  # job 0 is out of the queue but still running
    final = sched.submit(job("c1", "agent", FINAL, 1))
    assert not sched.idle
    model.gate.set()
    await asyncio.gather(blocker, final)
    # The worker marks itself done just after handing over the results.
    await until(lambda: sched.idle, "the scheduler idle", timeout=5, every=0.01)
    assert sched.idle


async def test_partials_leave_a_worker_free_for_finals():
    """With two workers, partials run on one at a time: the other stays free, so a final starts at once."""

    model = Starts(holds=lambda tag: tag < 10)  # partials (tags below 10) wait at the gate
    sched = TranscriptionScheduler(model, workers=2)
    try:
        partials = [sched.submit(job(f"c{i}", "caller", PARTIAL, i, seconds=4.0)) for i in range(1, 4)]
        await until(lambda: model.started, "a partial window started", timeout=5, every=0.01)
        await asyncio.sleep(0.2)  # time enough for the second worker to take a partial, were it allowed
        assert model.started == [1.0]  # one partial window running, the others wait for that worker
        final = sched.submit(job("c9", "agent", FINAL, 20))
        assert (await asyncio.wait_for(final, 5)).text == "job 20"  # the free worker took it at once
        model.gate.set()
        assert [r.text for r in await asyncio.gather(*partials)] == ["job 1", "job 2", "job 3"]
        assert model.started == [1.0, 20.0, 2.0, 3.0]
    finally:
        model.gate.set()
        sched.close()


async def test_a_run_takes_several_windows_finals_first_then_partials():
    """With batch 2 a run takes up to two windows: queued finals first, then partials (oldest first)."""

    class Windows(GatedTranscriber):
        def transcribe_windows(self, windows, words=True, lean=False):
            self.ran.append([[float(a[0]) for a in w] for w in windows])
            return [[Transcript(f"job {a[0]:.0f}", -0.1, 0.0) for a in w] for w in windows]

    model = Windows()
    sched = TranscriptionScheduler(model, batch=2)
    try:
        blocker = sched.submit(job("c0", "caller", FINAL, 0))
        await holds_first(sched)
        partials = [sched.submit(job(f"p{i}", "caller", PARTIAL, 10 + i, seconds=4.0)) for i in range(3)]
        finals = [sched.submit(job(f"f{i}", "agent", FINAL, 20 + i, seconds=10.0)) for i in range(3)]
        model.gate.set()
        await asyncio.gather(blocker, *partials, *finals)
    finally:
        sched.close()
    # 10 s finals: one a window, two windows a run; then the partials (4 s: one per 5 s partial window).
    assert model.ran == [[0], [[20], [21]], [22], [[10], [11]], [12]]


async def test_no_partial_starts_beside_a_final():
    """A partial beside a final would take half the cores from it: while any final runs, partials wait, even
    with a worker free (which still takes the next final at once)."""

    model = Starts(holds=lambda tag: tag == 10)  # the first final waits at the gate
    sched = TranscriptionScheduler(model, workers=2)
    try:
        held = sched.submit(job("c1", "caller", FINAL, 10))
        await until(lambda: model.started, "the first final started", timeout=5, every=0.01)
        partial = sched.submit(job("c2", "caller", PARTIAL, 1, seconds=4.0))
        quick = sched.submit(job("c3", "agent", FINAL, 20))
        assert (await asyncio.wait_for(quick, 5)).text == "job 20"  # the free worker took the final at once
        assert model.started == [10.0, 20.0] and not partial.done()  # ... but no partial beside the held one
        model.gate.set()
        assert (await held).text == "job 10" and (await asyncio.wait_for(partial, 5)).text == "job 1"
        assert model.started == [10.0, 20.0, 1.0]
    finally:
        model.gate.set()
        sched.close()


async def test_runs_are_lean_only_while_the_machine_is_busy():
    """A final alone on the machine takes the accurate window (it is ready before its utterance's end is
    confirmed anyway); finals queued behind another, and partials, take the cheaper one for a lone utterance."""

    class Leans(GatedTranscriber):
        def __init__(self):
            super().__init__()
            self.leans = {}

        def transcribe_many(self, audios, words=True, lean=False):
            self.leans[float(audios[0][0])] = lean
            return super().transcribe_many(audios, words)

    model = Leans()
    sched = TranscriptionScheduler(model, workers=1)
    try:
        alone = sched.submit(job("c0", "caller", FINAL, 0))
        await until(lambda: sched.depth == 0, "the first final taken", timeout=5, every=0.005)
        behind = [sched.submit(job(f"c{i}", "agent", FINAL, i, seconds=10.0)) for i in (1, 2)]  # one a window
        partial = sched.submit(job("c3", "caller", PARTIAL, 3, seconds=4.0))
        model.gate.set()
        await asyncio.gather(alone, *behind, partial)
    finally:
        model.gate.set()
        sched.close()
    # 0 ran with nothing else queued; 1 with 2 behind it; 2 alone again; the partial lean whatever the load.
    assert model.leans == {0.0: False, 1.0: True, 2.0: False, 3.0: True}
