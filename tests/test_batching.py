"""Several windows per model call (the GPU path), run on the CPU: the same texts as one window at a time."""

import asyncio
import threading
from types import SimpleNamespace

import numpy as np
import pytest

from clients.tools import realspeech
from models.packing import plan
from models.resample import MODEL_RATE
from models.scheduler import FINAL, Job, TranscriptionScheduler

pytestmark = pytest.mark.skipif(not realspeech.available(),
                                reason="needs asterisk-core-sounds-en-wav, asterisk-core-sounds-en, pocketsphinx-testdata")


def _windows(pool, count):
    """Real utterances packed as the scheduler packs a queue of finals: ``count`` windows' worth."""
    out, rest = [], [c.audio for c in pool]
    while rest and len(out) < count:
        n = plan([len(a) / MODEL_RATE for a in rest])
        out.append(rest[:n])
        rest = rest[n:]
    return out


@pytest.fixture(scope="module")
def pool():
    return realspeech.clips()[::9][:16]


def _same(batched, alone):
    assert [r.text for r in batched] == [r.text for r in alone]
    for b, a in zip(batched, alone):
        assert [w.text for w in b.words] == [w.text for w in a.words]
        assert np.allclose([w.start for w in b.words], [w.start for w in a.words], atol=0.05)
        assert b.redecoded == a.redecoded


def test_a_batch_of_windows_gives_each_window_its_texts_alone(transcriber, pool):
    windows = _windows(pool, 3)
    assert len(windows) == 3 and any(len(w) > 1 for w in windows)  # packed windows, several in the batch
    batched = transcriber.transcribe_windows(windows)
    for window, got in zip(windows, batched):
        alone = transcriber.transcribe_many(window)
        _same(got, alone)
        assert all(r.text for r in got)


def test_partials_batched_without_words(transcriber, pool):
    windows = [[c.audio] for c in pool[:4]]  # lone utterances, four windows in one call
    batched = transcriber.transcribe_windows(windows, words=False)
    assert [[r.text for r in rs] for rs in batched] == [[transcriber.transcribe_many(w, words=False)[0].text]
                                                        for w in windows]
    assert all(not rs[0].words for rs in batched)


def test_what_a_window_got_wrong_is_redone_alone_within_the_batch(transcriber, pool):
    """A stretch of silence packed between speech comes back without words: that item is redone alone,
    in each of two windows of the batch, as it would be window by window."""
    silence = np.zeros(3 * MODEL_RATE, dtype=np.float32)
    windows = [[pool[0].audio, silence, pool[1].audio], [pool[2].audio, silence]]
    batched = transcriber.transcribe_windows(windows)
    for window, got in zip(windows, batched):
        alone = transcriber.transcribe_many(window)
        _same(got, alone)
        assert got[1].redecoded  # the silence was redone on its own
        assert got[0].text  # the speech beside it kept its words


def _spy(monkeypatch, transcriber) -> SimpleNamespace:
    """Records each encoder run's window size and each decode's (windows, with segment times), and runs them."""
    seen = SimpleNamespace(sizes=[], decodes=[])
    encode, generate = transcriber._encode, transcriber._generate
    monkeypatch.setattr(transcriber, "_encode", lambda audios, s: seen.sizes.append(s) or encode(audios, s))
    monkeypatch.setattr(transcriber, "_generate", lambda encoded, budgets, stamped=False: (
        seen.decodes.append((len(budgets), stamped)) or generate(encoded, budgets, stamped)))
    return seen


@pytest.mark.parametrize("lean, seconds", [(False, 20.0), (True, 15.0)])
def test_the_last_resort_takes_the_window_a_lone_utterance_would(transcriber, pool, lean, seconds, monkeypatch):
    """What a packed window got wrong is redone in a lone utterance's window (15 s when lean), not Whisper's
    own 30 s: a packed window that skips every utterance in it sends them all there at once."""
    silence = np.zeros(3 * MODEL_RATE, dtype=np.float32)
    sizes = _spy(monkeypatch, transcriber).sizes
    got = transcriber.transcribe_many([pool[1].audio, silence, pool[2].audio], lean=lean)  # 12.6 s with the gaps
    assert got[1].redecoded and got[0].text and got[2].text
    assert sizes[0] == 15.0  # the packed window
    assert sizes[-1] == seconds and 30.0 not in sizes


def test_a_lone_utterance_that_looped_is_redone_in_whispers_own_window(transcriber, pool, monkeypatch):
    """A lone utterance whose decode looped (more words than anyone says) cannot be mended by the same window
    and prompt: the last resort decodes it in 30 s."""
    sizes = _spy(monkeypatch, transcriber).sizes
    generate, loop = transcriber._generate, transcriber.tokenizer.encode(" no no no no") * 40
    monkeypatch.setattr(transcriber, "_generate", lambda encoded, budgets, stamped=False: (
        [(loop, -0.1)] if len(sizes) == 1 else generate(encoded, budgets, stamped)))
    [got] = transcriber.transcribe_many([pool[0].audio], lean=True)
    assert sizes == [15.0, 30.0]
    assert got.redecoded and got.text and "no no no" not in got.text


def test_a_packed_window_decodes_with_segment_times_and_a_lone_one_without(transcriber, pool, monkeypatch):
    """Whisper without segment times often ends a packed window's text at its first gap (tests/perf/packed_skips.py);
    on a CPU a lone utterance keeps the cheaper decode."""
    decodes = _spy(monkeypatch, transcriber).decodes
    transcriber.transcribe_many([c.audio for c in pool[:3]])
    packed, decodes[:] = [stamped for _, stamped in decodes], []
    transcriber.transcribe_many([pool[0].audio])
    calls = [stamped for _, stamped in decodes]
    assert packed[0] is True and calls and not any(calls)


def test_where_runs_hold_several_windows_a_run_is_one_decode(transcriber, pool, monkeypatch):
    """The model takes one kind of prompt a batch: with runs of several windows (a GPU), a lone utterance takes the
    segment times too, so a run of a lone window and a packed one of the same size (such runs are lean: 15 s) is
    one pass, not two."""
    monkeypatch.setattr(transcriber, "batch", 4)
    calls = _spy(monkeypatch, transcriber).decodes
    got = transcriber.transcribe_windows([[pool[0].audio], [pool[1].audio, pool[2].audio]], lean=True)
    assert calls[0] == (2, True)
    assert all(r.text and "<|" not in r.text for rs in got for r in rs)


class Held:
    """The real model behind a gate: the worker holds its first run until the test opens it, so a queue builds up."""

    def __init__(self, transcriber):
        self.transcriber = transcriber
        self.gate = threading.Event()
        self.runs = []

    def transcribe_many(self, audios, words=True, lean=False):
        self.gate.wait(60)
        self.runs.append(1)
        return self.transcriber.transcribe_many(audios, words)

    def transcribe_windows(self, windows, words=True, lean=False):
        self.runs.append(len(windows))
        return self.transcriber.transcribe_windows(windows, words)


async def test_the_scheduler_takes_several_windows_a_run(transcriber, pool):
    """With batch 3, a queue of finals goes through in runs of up to 3 windows, each final with the text
    that window by window gives it."""
    audios = [c.audio for c in pool]
    alone = transcriber.transcribe_in_windows(audios)
    model = Held(transcriber)
    sched = TranscriptionScheduler(model, batch=3)
    try:
        blocker = sched.submit(Job("c", "agent", 0, FINAL, pool[-1].audio))
        for _ in range(500):  # the worker has taken the blocker and waits at the gate
            if sched.depth == 0:
                break
            await asyncio.sleep(0.01)
        futures = [sched.submit(Job(f"c{i}", "caller", i, FINAL, a)) for i, a in enumerate(audios)]
        model.gate.set()
        results = await asyncio.wait_for(asyncio.gather(*futures), 600)
        await blocker
    finally:
        sched.close()
    assert [r.text for r in results] == [r.text for r in alone]
    assert model.runs[0] == 1 and max(model.runs) == 3  # the blocker alone, then batches of windows
    assert sum(model.runs) == sched.stats.windows == 1 + len(_windows(pool, 99))
    assert sched.stats.runs == len(model.runs)


def test_a_lone_utterance_takes_the_full_window_unless_lean(transcriber, pool, monkeypatch):
    """``lean``: one utterance alone is encoded in the 15 s window packed ones take, with about the same words as
    in 20 s, its full window; a packed window takes 15 s whatever is asked; the words keep their times inside the
    utterance."""
    from models.packing import FULL_WINDOW, WINDOW
    from models.wer import wer

    sizes = _spy(monkeypatch, transcriber).sizes
    lone = [c for c in pool if c.seconds < 8][:4]
    for clip in lone:
        sizes.clear()
        lean = transcriber.transcribe_many([clip.audio], lean=True)[0]
        assert sizes == [WINDOW]
        sizes.clear()
        full = transcriber.transcribe_many([clip.audio])[0]
        assert sizes == [FULL_WINDOW]
        assert wer(full.text, lean.text) <= 0.25 and wer(clip.text, lean.text) <= 0.3, (clip.text, lean.text)
        assert lean.words and all(0 <= w.start <= w.end <= clip.seconds + 0.01 for w in lean.words)
    for ask in (True, False):
        sizes.clear()
        transcriber.transcribe_many([c.audio for c in lone[:2]], lean=ask)
        assert sizes[0] == WINDOW  # packed (a retry of what it got wrong may follow)


async def test_runs_on_a_gpu_batch_are_always_lean():
    """With ``batch`` > 1, windows of two sizes in one run would take two passes of the model: every run is lean
    (a lone utterance in the window packed ones take), however few finals wait."""

    class Windows:
        def __init__(self):
            self.leans = []
            self.gate = threading.Event()

        def transcribe_windows(self, windows, words=True, lean=False):
            self.gate.wait(10)
            self.leans.append(lean)
            return [[None for _ in w] for w in windows]

        def transcribe_many(self, audios, words=True, lean=False):
            return self.transcribe_windows([audios], words, lean)[0]

    model = Windows()
    sched = TranscriptionScheduler(model, batch=2)
    try:
        audio = np.zeros(16000 * 10, dtype=np.float32)  # 10 s: one a window
        first = sched.submit(Job("c0", "agent", 1, FINAL, audio))
        for _ in range(500):  # the worker has taken the first and waits at the gate
            if sched.depth == 0:
                break
            await asyncio.sleep(0.01)
        queued = [sched.submit(Job(f"c{i}", "agent", 1, FINAL, audio)) for i in range(1, 4)]
        model.gate.set()
        await asyncio.gather(first, *queued)
    finally:
        model.gate.set()
        sched.close()
    # The first run alone on an idle machine, then two windows with one more waiting, then the last: all lean.
    assert len(model.leans) == 3 and all(model.leans)
