"""Utterance segmentation on the sample call's channels against the script's gold times."""

import numpy as np
import pytest

from models.wavfile import read_wav
from models.resample import StreamResampler
from models.utterances import (PartialDue, PauseHeard, SegmenterConfig, SpeechResumed, SpeechStarted, UtteranceEnded,
                               UtteranceSegmenter)
from tests.conftest import SAMPLE_GOLD, SAMPLE_WAV


def segment(channel: int, config=None):
    audio, rate = read_wav(SAMPLE_WAV)
    resampler = StreamResampler(rate)
    seg = UtteranceSegmenter(config)
    out = []
    for i in range(0, len(audio), rate // 50):  # 20 ms frames, as they arrive live
        out += seg.feed(resampler(audio[i:i + rate // 50, channel]))
    return out + seg.flush()


@pytest.mark.parametrize("channel, speaker", [(0, "caller"), (1, "agent")])
def test_utterances_line_up_with_the_script(channel, speaker):
    events = segment(channel)
    ends = [e for e in events if isinstance(e, UtteranceEnded) and not e.too_short]
    gold = [p for p in SAMPLE_GOLD["parts"] if p["speaker"] == speaker]
    # Parts separated by 0.6 s or more come out as separate utterances (end_silence is 0.5 s).
    assert len(ends) == len(gold)
    for u, g in zip(ends, gold):
        # The start includes up to pre_roll (0.5 s) of audio before speech was detected.
        assert g["start"] - 0.6 <= u.start <= g["start"] + 0.3
        assert u.end == pytest.approx(g["end"], abs=0.25)
        assert len(u.audio) / 16000 == pytest.approx(u.end - u.start + 0.2, abs=0.1)
    starts = [e for e in events if isinstance(e, SpeechStarted)]
    assert [s.utterance for s in starts] == [u.utterance for u in ends]


def test_partials_about_once_a_second_of_speech():
    events = segment(1)
    for u in (e for e in events if isinstance(e, UtteranceEnded)):
        partials = [p for p in events if isinstance(p, PartialDue) and p.utterance == u.utterance]
        assert len(partials) == pytest.approx(int(u.end - u.start), abs=1)
        assert all(np.diff([p.end for p in partials]) >= 0.99)


def test_longer_end_silence_joins_breath_pauses():
    events = segment(0, SegmenterConfig(end_silence=0.9))
    caller_turns = {p["turn"] for p in SAMPLE_GOLD["parts"] if p["speaker"] == "caller"}
    assert len([e for e in events if isinstance(e, UtteranceEnded)]) == len(caller_turns)


def test_line_noise_and_a_click_make_no_utterance():
    rng = np.random.default_rng(1)
    noise = rng.normal(0, 0.003, 16000 * 3).astype(np.float32)
    noise[16000:16080] += 0.6  # a 5 ms click
    seg = UtteranceSegmenter()
    events = seg.feed(noise) + seg.flush()
    assert not [e for e in events if isinstance(e, UtteranceEnded) and not e.too_short]


def test_skip_keeps_the_clock_and_closes_the_utterance():
    audio, rate = read_wav(SAMPLE_WAV)
    seg = UtteranceSegmenter()
    from models.resample import resample
    speech = resample(audio[int(5.2 * rate):int(6.2 * rate), 0], rate)
    seg.feed(speech)
    assert seg.in_speech
    closed = seg.skip(2.0)
    assert isinstance(closed[-1], UtteranceEnded) and not seg.in_speech
    assert seg.now == pytest.approx(3.0, abs=0.04)


def test_a_pause_hands_over_the_finals_audio_early():
    """At post_roll seconds of silence the final's audio is complete: PauseHeard carries exactly it."""
    events = segment(0)
    heard = {}
    for e in events:
        if isinstance(e, PauseHeard):
            assert e.utterance not in heard  # once per pause
            # Heard at post_roll of silence: the rest of end_silence is still to come (within a chunk).
            cfg = SegmenterConfig()
            assert cfg.end_silence - cfg.post_roll - 0.04 <= e.confirmed_in <= cfg.end_silence - cfg.post_roll
            heard[e.utterance] = e
        elif isinstance(e, SpeechResumed):
            assert heard.pop(e.utterance).utterance == e.utterance  # only after a pause was heard
        elif isinstance(e, UtteranceEnded) and not e.too_short and e.utterance in heard:
            early = heard.pop(e.utterance)
            assert np.array_equal(early.audio, e.audio) and early.end == e.end
    ends = [e for e in events if isinstance(e, UtteranceEnded) and not e.too_short]
    early_ends = [e for e in ends if any(isinstance(p, PauseHeard) and p.utterance == e.utterance
                                         and events.index(p) < events.index(e) for p in events)]
    assert len(early_ends) >= len(ends) - 1  # all but one cut off by the end of the file


def test_a_long_monologue_ends_at_a_breath():
    # With end_silence 3 s the caller's turns run together into long utterances...
    joined = [e for e in segment(0, SegmenterConfig(end_silence=3.0, long_utterance=1000.0))
              if isinstance(e, UtteranceEnded) and not e.too_short]
    assert max(e.end - e.start for e in joined) > 8.0
    # ...unless long_utterance ends them at the next 0.2 s pause past 4 s.
    cut = [e for e in segment(0, SegmenterConfig(end_silence=3.0, long_utterance=4.0))
           if isinstance(e, UtteranceEnded) and not e.too_short]
    assert len(cut) > len(joined)
    for e in cut:
        assert len(e.audio) / 16000 == pytest.approx(e.end - e.start + 0.2, abs=0.05)  # at a pause, not mid-word
        assert e.end - e.start < 8.0


def test_max_utterance_is_a_hard_limit():
    ends = [e for e in segment(0, SegmenterConfig(end_silence=3.0, long_utterance=1000.0, max_utterance=3.0))
            if isinstance(e, UtteranceEnded)]
    assert ends and max(len(e.audio) / 16000 for e in ends) <= 3.05
