"""Caller state end to end: dev-set calls through the real server and model, judged against their gold."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from clients.tools.evaluate.calls import releases, turns_of
from clients.simulate import stream_call
from tests.server import INGEST_KEY, SUPERVISOR_TOKEN

CALLS = Path(__file__).parent / "data" / "calls"


def gold(name):
    return json.loads((CALLS / f"{name}.gold.json").read_text())


async def stream(server, name, speed):
    run = await stream_call(CALLS / f"{name}.wav", server.ws, "a-1", INGEST_KEY, watch_token=SUPERVISOR_TOKEN,
                            speed=speed, encoding="mulaw")
    return run.events


@pytest.fixture(scope="module")
async def question_call(server):
    """Venting in three sentences with 0.6 s breath pauses, ending on a question; at real-time pace."""
    return await stream(server, "c02_question_yield", 1.0)


@pytest.fixture(scope="module")
async def heat_calls(server, question_call):
    names = ["c03_escalating", "c04_calming", "c05_interrupt"]
    events = await asyncio.gather(*(stream(server, n, 2.0) for n in names))
    return dict(zip(names, events))


def test_breath_pauses_never_release_and_the_question_does_within_1_5_s(question_call):
    vent = turns_of(gold("c02_question_yield"))[0]
    assert vent.speaker == "caller" and len(vent.parts) == 3
    rel = releases(question_call)
    assert not [r for r in rel if vent.start < r < vent.end]  # two 0.6 s breath pauses inside
    after = [r - vent.end for r in rel if r >= vent.end]
    assert after and after[0] <= 1.5
    floor = [e for e in question_call if e["type"] == "floor" and vent.start < e["t"] < vent.end]
    assert any(e["state"] == "caller_pausing" for e in floor)  # the pauses were seen, and held
    assert any(e["venting"] for e in floor)


def test_sentiment_events_per_speaker(question_call):
    readings = [e for e in question_call if e["type"] == "sentiment"]
    assert {e["speaker"] for e in readings} == {"caller", "agent"}
    for e in readings:
        assert -1 <= e["text_score"] <= 1 and 0 <= e["arousal"] <= 1 and 0 <= e["heat"] <= 1
        assert e["trend"] in ("rising", "steady", "falling")
    finals = [e for e in question_call if e["type"] == "transcript.final"]
    assert len(readings) == len(finals)


def caller_heat(events):
    return [e["heat"] for e in events if e["type"] == "sentiment" and e["speaker"] == "caller"]


def test_heat_rises_across_an_escalating_call(heat_calls):
    heat = caller_heat(heat_calls["c03_escalating"])
    assert heat[-1] >= heat[0] + 0.3
    assert heat[-1] >= 0.7
    trends = [e["trend"] for e in heat_calls["c03_escalating"] if e["type"] == "sentiment" and e["speaker"] == "caller"]
    assert "rising" in trends[-3:]


def test_heat_falls_when_the_caller_calms_down(heat_calls):
    heat = caller_heat(heat_calls["c04_calming"])
    assert max(heat[:2]) >= 0.6
    assert heat[-1] <= max(heat[:2]) - 0.3
    trends = [e["trend"] for e in heat_calls["c04_calming"] if e["type"] == "sentiment" and e["speaker"] == "caller"]
    assert trends[-1] == "falling"


def test_agent_talking_over_a_venting_caller_is_overlap(heat_calls):
    turns = turns_of(gold("c05_interrupt"))
    vent, barge = turns[0], turns[1]
    assert barge.speaker == "agent" and barge.start < vent.end
    overlap = [e for e in heat_calls["c05_interrupt"] if e["type"] == "floor" and e["state"] == "overlap"]
    assert overlap and barge.start - 0.1 <= overlap[0]["t"] <= vent.end
    assert overlap[0]["venting"] is True
