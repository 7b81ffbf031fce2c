"""Silero with one row per stream: the same probabilities as the shipped graph, and the same utterances when
every live speaker's chunks are decided together (service.vad_batch)."""

import asyncio

import numpy as np
import onnxruntime
import pytest

from models.resample import resample
from models.utterances import UtteranceSegmenter, VoiceChunk
from models.vad import CHUNK, SileroStream, shipped_model_path, speech_probs
from models.wavfile import read_wav
from service.vad_batch import VadBatch
from tests.conftest import SAMPLE_WAV


@pytest.fixture(scope="module")
def voices():
    """Five streams of real speech and silence at 16 kHz, of different lengths and offsets."""
    audio, rate = read_wav(SAMPLE_WAV)
    channels = [resample(audio[:, ch], rate) for ch in (0, 1)]
    return [channels[0][: 16000 * 12], channels[1][: 16000 * 12], channels[0][16000 * 5: 16000 * 14],
            channels[1][16000 * 9: 16000 * 20], np.zeros(16000 * 3, dtype=np.float32)]


def shipped_probs(audio: np.ndarray) -> list[float]:
    """One stream through the graph faster-whisper ships, a chunk a call, as its own VAD runs it."""
    session = onnxruntime.InferenceSession(shipped_model_path(), providers=["CPUExecutionProvider"])
    h = c = np.zeros((1, 1, 128), dtype=np.float32)
    window = np.zeros((1, 64 + CHUNK), dtype=np.float32)
    out = []
    for i in range(len(audio) // CHUNK):
        window[0, 64:] = audio[i * CHUNK:(i + 1) * CHUNK]
        prob, h, c = session.run(None, {"input": window, "h": h, "c": c})
        window[0, :64] = window[0, -64:]
        out.append(float(np.asarray(prob).reshape(-1)[0]))
    return out


def test_streams_decided_together_get_the_shipped_graphs_probabilities(voices):
    streams = [SileroStream() for _ in voices]
    got: list[list[float]] = [[] for _ in voices]
    rng = np.random.default_rng(3)
    for i in range(max(len(v) for v in voices) // CHUNK):
        # Streams drop out as they end and come in any order: the batch changes size and order, each state
        # stays its own.
        live = [int(k) for k in rng.permutation(len(voices)) if len(voices[k]) >= (i + 1) * CHUNK]
        probs = speech_probs([streams[k] for k in live], [voices[k][i * CHUNK:(i + 1) * CHUNK] for k in live])
        for k, p in zip(live, probs):
            got[k].append(float(p))
    for k, audio in enumerate(voices):
        want = shipped_probs(audio)
        assert len(got[k]) == len(want)
        assert np.max(np.abs(np.array(got[k]) - np.array(want))) < 1e-5
    assert max(got[0]) > 0.9 and max(got[4]) < 0.1  # speech heard as speech, silence as silence


def _events(items):
    """Comparable form of segmenter output: the audio arrays by length."""
    return [(type(e).__name__,) + tuple((k, len(v) if isinstance(v, np.ndarray) else v) for k, v in vars(e).items())
            for e in items]


def _same(got, want):
    """The same events, numbers to 1e-6 relative: loudness and pitch of a batch come from numpy calls over
    all its rows, not over one chunk."""
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g[0] == w[0] and [k for k, _ in g[1:]] == [k for k, _ in w[1:]]
        for (_, a), (_, b) in zip(g[1:], w[1:]):
            assert (a == pytest.approx(b, rel=1e-6)) if isinstance(b, float) else a == b, (g, w)


class _Track:
    """The part of a SpeakerTrack the batcher uses."""

    def __init__(self, k):
        self.call_id, self.role = f"call-{k}", "caller"
        self.segmenter = UtteranceSegmenter()
        self.out = []
        self.fault = None

    def segments(self, items):
        self.out += items


async def test_a_batch_of_speakers_segments_each_as_its_own_vad_would(voices):
    alone = []
    for audio in voices:
        seg = UtteranceSegmenter()
        alone.append(_events(seg.feed(audio) + seg.flush()))

    batch = VadBatch(wait=0.005)
    tracks = [_Track(k) for k in range(len(voices))]
    frame = 320 * 2  # 20 ms at 16 kHz, as a call's frames arrive
    for i in range(0, max(len(v) for v in voices), frame):
        for track, audio in zip(tracks, voices):
            if i < len(audio):
                track.segmenter.push(audio[i:i + frame])
                batch.due(track)
        if i % (frame * 10) == 0:
            await asyncio.sleep(0.01)  # the loop runs the batch now and then, as it does between frames
    await asyncio.sleep(0.02)
    assert all(t.segmenter.waiting() is None for t in tracks)  # the batch decided every whole chunk itself
    assert batch.stats.chunks == sum(len(v) // CHUNK for v in voices)
    for track in tracks:
        track.segments(track.segmenter.flush())  # what is left is less than a chunk: the utterances close
    for track, want in zip(tracks, alone):
        _same(_events(track.out), want)
        assert any(isinstance(e, VoiceChunk) for e in track.out)
    assert batch.stats.chunks > 3 * batch.stats.calls  # decided together, not one call per chunk


def test_flush_and_gap_analyse_what_was_pushed_first(voices):
    speech = voices[0][: 16000 * 4]
    fed = UtteranceSegmenter()
    want = _events(fed.feed(speech) + fed.gap(16000) + fed.flush())
    pushed = UtteranceSegmenter()
    pushed.push(speech)
    assert pushed.now == 0.0  # nothing decided yet
    _same(_events(pushed.gap(16000) + pushed.flush()), want)
    assert pushed.now == fed.now
    with pytest.raises(ValueError):
        pushed.advance(0.5)  # no whole chunk waits


def test_pitch_and_loudness_of_a_batch_are_those_of_each_chunk(voices):
    """A row's features do not depend on the other rows of its batch (silent rows, whose sums divide by
    zero, among them); and they are right on tones of known pitch and level."""
    from models.prosody import loudness_db, loudnesses_db, pitch_hz, pitches_hz

    t = np.arange(CHUNK) / 16000
    tones = np.stack([a * np.sin(2 * np.pi * f * t) for f, a in ((90, 0.5), (150, 0.1), (330, 0.25))]).astype(np.float32)
    assert pitches_hz(tones) == pytest.approx([90, 150, 330], rel=0.02)
    assert loudnesses_db(tones) == pytest.approx(20 * np.log10(np.array([0.5, 0.1, 0.25]) / np.sqrt(2)), abs=0.2)

    audio = np.concatenate(voices[:2])
    chunks = audio[: len(audio) // CHUNK * CHUNK].reshape(-1, CHUNK)
    one = [pitch_hz(c) for c in chunks]
    many = pitches_hz(chunks)
    assert [p is None for p in many] == [p is None for p in one]
    assert sum(p is not None for p in one) > 100  # voiced chunks were there to compare
    assert [p for p in many if p] == pytest.approx([p for p in one if p], rel=1e-6)
    assert loudnesses_db(chunks) == pytest.approx([loudness_db(c) for c in chunks], abs=1e-3)  # dB


class _Broken(_Track):
    def segments(self, items):
        raise RuntimeError("a bug in one call's analysis")


async def test_a_fault_in_one_speakers_analysis_stays_with_that_speaker(voices):
    batch = VadBatch(wait=0.001)
    good, broken = _Track(0), _Broken(1)
    for track in (good, broken):
        track.segmenter.push(voices[0][: 16000 * 2])
        batch.due(track)
    await asyncio.sleep(0.05)
    assert isinstance(broken.fault, RuntimeError)
    assert broken.segmenter.waiting() is not None  # left out of the batch from its fault on
    assert good.fault is None and good.segmenter.waiting() is None and good.out


async def test_a_fault_in_a_batch_ends_that_calls_stream_and_no_other(tmp_path, voices):
    """A real session on the batch: a fault while analysing one call's voice comes out of that call's next
    frame (AnalysisFailed, which ends its stream as a fault in ``feed`` did before the batch); another call on
    the same batch goes on, its audio decided."""
    from models.coach import playbook
    from models.utterances import SegmenterConfig
    from service.audio_files import CallAudio
    from service.call_actions import Start
    from service.events import CallEvents
    from service.session import AnalysisFailed, CallSession
    from service.session_deps import SessionDeps

    class Bus:
        def publish(self, event, agent_id):
            pass

    batch = VadBatch(wait=0.001)
    deps = SessionDeps(None, None, SegmenterConfig(), playbook.load(None), ("card",), None, batch)
    sessions = []
    for call in ("ok", "bad"):
        start = Start(call, "a-1", "native", "pcm16", 16000, 1, ("caller",))
        sessions.append(CallSession(start, deps, CallAudio(tmp_path / call, ["caller"]), CallEvents(call, "a-1", Bus())))
    ok, bad = sessions

    def broken(role, chunk):
        raise RuntimeError("a bug in the analysis")

    bad.analysis.voice = broken
    silence = np.zeros(16000, dtype=np.float32)  # a second of silence: voice chunks, no utterance to transcribe
    for session in sessions:
        session.feed({"caller": silence})
    await asyncio.sleep(0.05)
    with pytest.raises(AnalysisFailed, match="caller"):
        bad.feed({"caller": silence})
    ok.feed({"caller": silence})
    await asyncio.sleep(0.05)
    assert ok.tracks["caller"].segmenter.now == pytest.approx(2.0, abs=CHUNK / 16000)
    bad.tracks["caller"].flush()  # the end of the call does not analyse it again
    for session in sessions:
        session.audio.close()


def test_pitch_is_within_the_voice_range_or_none_on_noisy_and_clipped_chunks():
    """A lag that is no peak once sent the interpolated period anywhere: a negative pitch, and NaN semitones."""
    from models.prosody import F0_MAX, F0_MIN, pitches_hz

    rng = np.random.default_rng(0)
    t = np.arange(512) / 16000
    n = 1500
    rows = [rng.normal(0, 0.1, (n, 512)),
            np.sin(2 * np.pi * rng.uniform(40, 600, (n, 1)) * t) + rng.uniform(0, 1, (n, 1)) * rng.normal(0, 1, (n, 512)),
            np.sign(np.sin(2 * np.pi * rng.uniform(50, 500, (n, 1)) * t)) * rng.uniform(0, 1, (n, 1))
            + rng.normal(0, 0.3, (n, 512)) * rng.uniform(0, 1, (n, 1))]
    found = [h for x in rows for h in pitches_hz(x.astype(np.float32)) if h is not None]
    assert len(found) > 50
    assert all(np.isfinite(h) and F0_MIN * 0.95 <= h <= F0_MAX * 1.05 for h in found), sorted(found)[:3]
