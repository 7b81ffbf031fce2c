"""The admission policy and the board's folding queue, without a socket: hysteresis, the cap, partial thinning."""

from __future__ import annotations

import argparse

import pytest

from service import config
from service.admission import BEHIND, CALM_SECONDS, MAX_CALLS, Admission, default_max_calls
from service.bus import BoardQueue


class Clock:
    def __init__(self):
        self.now = 100.0
        self.lag = 0.0

    def __call__(self) -> float:
        return self.now


def policy(max_calls=0, shed_lag=1.5):
    clock = Clock()
    return Admission(max_calls, shed_lag, lambda: clock.lag, clock), clock


def at(admission, clock, t, lag):
    clock.now, clock.lag = 100.0 + t, lag
    admission.observe()
    return admission.shedding


def test_sheds_past_the_lag_and_takes_calls_again_only_after_a_calm_spell():
    a, clock = policy(shed_lag=1.5)
    assert a.refusal(live_calls=50) is None  # no cap, no lag
    assert not at(a, clock, 0, 1.4)
    assert at(a, clock, 1, 1.5)
    reason, message = a.refusal(live_calls=3)
    assert reason == BEHIND and "1.5 s behind" in message and "try again later" in message
    # Under the shed level but not under half of it: still behind, and the calm spell has not begun.
    assert at(a, clock, 2, 1.0)
    assert at(a, clock, 3, 0.2)
    assert at(a, clock, 2 + CALM_SECONDS - 0.1, 0.0)
    assert not at(a, clock, 2 + CALM_SECONDS + 0.1, 0.0)
    assert a.refusal(live_calls=3) is None
    assert a.refused == {BEHIND: 1}


def test_a_stalled_event_loop_counts_as_behind():
    a, clock = policy(shed_lag=1.5)
    clock.lag = 0.0
    a.observe(loop_lag=2.0)  # no final waits, but the audio path is 2 s late
    assert a.shedding and a.lag == 2.0 and a.refusal(live_calls=1)[0] == BEHIND
    assert a.state(1)["loop_lag_s"] == 2.0 and a.state(1)["transcription_lag_s"] == 0.0


def test_a_lag_that_hovers_at_the_threshold_does_not_flap():
    a, clock = policy(shed_lag=1.5)
    states = [at(a, clock, t, 1.6 if t % 2 else 0.9) for t in range(1, 40)]
    assert states == [True] * len(states)  # 0.9 is over half of 1.5: never calm
    states = [at(a, clock, 40 + t, 1.6 if t % 3 == 0 else 0.1) for t in range(1, 40)]
    assert all(states)  # a high sample every 3 s keeps it shedding; it never reopened in between


def test_the_cap_refuses_whatever_the_lag_and_counts_by_reason():
    a, clock = policy(max_calls=2, shed_lag=1.5)
    assert a.refusal(live_calls=1) is None
    reason, message = a.refusal(live_calls=2)
    assert reason == MAX_CALLS and "CALMLINE_MAX_CALLS=2" in message
    at(a, clock, 0, 5.0)
    assert a.refusal(live_calls=2)[0] == MAX_CALLS  # the cap is named first
    assert a.refusal(live_calls=0)[0] == BEHIND
    assert a.refused == {MAX_CALLS: 2, BEHIND: 1}
    assert a.state(2)["accepting"] is False and a.state(2)["shedding"] is True
    assert [r.split(":")[0] for r in a.reasons(2)] == ["overloaded", "max_calls"]


def test_no_shedding_when_the_lag_limit_is_off():
    a, clock = policy(shed_lag=0)
    assert not at(a, clock, 0, 60.0)
    assert a.refusal(live_calls=500) is None and a.reasons(500) == []
    assert a.partial_due(1.0, 1.0) and a.partials_thinned == 0  # nor thinned: off is off


def test_partials_thin_as_the_lag_grows_and_stop_while_shedding():
    a, clock = policy(shed_lag=1.5)
    at(a, clock, 0, 0.1)  # a window in progress: not behind
    assert a.partial_due(1.0, 1.0) and a.partial_due(0.999, 1.0)  # rounding of the chunk times
    assert not a.partial_due(0.5, 1.0)
    at(a, clock, 1, 1.25)  # 1 s past the floor: 4 s more between a speaker's partials
    assert not a.partial_due(4.5, 1.0)
    assert a.partial_due(5.0, 1.0)
    at(a, clock, 2, 1.5)  # shedding: none at all, however long since the last
    assert a.shedding and not a.partial_due(60.0, 1.0)
    assert a.partials_thinned == 3


def test_default_cap_is_per_core_on_cpu_and_none_on_a_gpu():
    assert default_max_calls("cpu", cores=2) == 16
    assert default_max_calls("cuda") == 0


def test_settings_take_auto_a_number_or_zero():
    parser = argparse.ArgumentParser()
    config.add_arguments(parser)
    assert config.load(parser.parse_args([]), environ={}).max_calls == -1  # auto
    assert config.load(parser.parse_args([]), environ={"CALMLINE_MAX_CALLS": "0"}).max_calls == 0
    assert config.load(parser.parse_args(["--max-calls", "auto"]), environ={"CALMLINE_MAX_CALLS": "3"}).max_calls == -1
    s = config.load(parser.parse_args(["--max-calls", "7", "--shed-lag", "2.5"]), environ={})
    assert (s.max_calls, s.shed_lag) == (7, 2.5)
    with pytest.raises(SystemExit, match="CALMLINE_MAX_CALLS"):
        config.load(environ={"CALMLINE_MAX_CALLS": "lots"})


def ev(call_id, seq, type_, **fields):
    return {"type": type_, "call_id": call_id, "seq": seq, "t": seq / 10, **fields}


def test_board_queue_keeps_every_event_while_the_viewer_keeps_up():
    folded = []
    q = BoardQueue(10, folded.append)
    events = [ev("c1", i, "transcript.partial", speaker="caller", text="x") for i in range(1, 11)]
    for e in events:
        q.put_nowait(e)
    assert [q.get_nowait() for _ in range(q.qsize())] == events and folded == []


def test_board_queue_folds_a_backlog_into_each_calls_state_in_order():
    folded = []
    q = BoardQueue(50, folded.append)
    sent = [ev("c1", 1, "call.started", agent_id="a-1"), ev("c2", 1, "call.started", agent_id="a-2")]
    for seq in range(2, 200):
        for call in ("c1", "c2"):
            sent.append(ev(call, seq, ("floor", "transcript.partial", "sentiment")[seq % 3], speaker="caller", state="x"))
    sent.append(ev("c1", 200, "warning", kind="blame"))
    sent.append(ev("c2", 200, "call.ended", summary={}))
    for e in sent:
        q.put_nowait(e)
        assert q.qsize() <= 100  # never unbounded, never full
    got = [q.get_nowait() for _ in range(q.qsize())]
    assert sum(folded) == len(sent) - len(got) and folded
    for call in ("c1", "c2"):
        mine = [e for e in got if e["call_id"] == call]
        assert [e["seq"] for e in mine] == sorted(e["seq"] for e in mine)  # in the order they came
        newest = {t: max(e["seq"] for e in sent if e["call_id"] == call and e["type"] == t) for t in ("floor", "sentiment")}
        for kind, seq in newest.items():
            assert any(e["type"] == kind and e["seq"] == seq for e in mine), (call, kind)
    assert ("c1", "warning") in {(e["call_id"], e["type"]) for e in got}
    assert ("c2", "call.ended") in {(e["call_id"], e["type"]) for e in got}
