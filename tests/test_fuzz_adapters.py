"""Property-based fuzzing of every ingest adapter, sans I/O: hostile frames get a protocol close, never an exception.

A bounded, derandomized run of the grammar in tests/fuzz_grammar.py (the same every time, so a
failure reproduces); tests/perf/fuzz_adapters.py runs it for 100,000 inputs and more.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings

from service.ingest.audiohook import NULL_UUID
from tests.fuzz_grammar import ADAPTERS, AUDIOHOOK_OPEN, NATIVE_START, _envelope, check, run_one

BOUNDED = settings(max_examples=250, derandomize=True, deadline=None, database=None,
                   suppress_health_check=list(HealthCheck))


@pytest.mark.parametrize("name", sorted(ADAPTERS))
def test_adapter_survives_hostile_input(name):
    make, frames = ADAPTERS[name]

    @BOUNDED
    @given(frames)
    def prop(inputs):
        check(make(), inputs)

    prop()


@pytest.mark.parametrize("name, frames", [
    ("twilio", ['{"event": "start", "start": "x"}']),  # was AttributeError: 'str' object has no attribute 'get'
    ("twilio", ['{"event": "start", "start": {"mediaFormat": [], "customParameters": "x"}}']),
    ("twilio", ['{"event": "start", "sequenceNumber": 1e400}']),
    ("native", ['{"type": "start", "call_id": "c", "agent_id": "a", "channels": 1, "roles": [[1]]}']),
    ("native", ["[" * 30000 + "]" * 30000]),  # under the frame limit, deep enough for RecursionError
    ("audiohook", [json.dumps({"version": "2", "id": "6f1c1f6e-8a51-4c3e-9b1e-2b5f2d0c1a11", "type": "open", "seq": 1,
                               "serverseq": 0, "position": "PT0S", "parameters": {
                                   "organizationId": "0d3c52c5-4a4c-4b0b-8f0e-7d0b7f3c2a10",
                                   "conversationId": "8e2b3a6c-1f7d-4a8e-9c1b-3d4e5f6a7b8c", "participant": {},
                                   "media": [{"type": "audio", "format": ["PCMU"], "channels": [["external"]]}]}})]),
    ("jambonz", ['{"callSid": "c", "agent_id": "a", "x": "\\ud800", "sampleRate": 8000}']),
    # A connection probe (null conversation) then paused: was a Pause with no call, a 1011 in the driver.
    ("audiohook", [json.dumps(_envelope("open", 1, {**AUDIOHOOK_OPEN, "conversationId": NULL_UUID})),
                   json.dumps(_envelope("paused", 2, {})), json.dumps(_envelope("resumed", 3, {"discarded": "PT1S"}))]),
    ("audiohook", [json.dumps(_envelope("open", 1, AUDIOHOOK_OPEN)), json.dumps(_envelope("close", 2, {})),
                   json.dumps(_envelope("paused", 3, {}))]),  # paused after close
    ("native", [json.dumps({**NATIVE_START, "metadata": {"x": "\ud800", "n": float("nan")}})]),
])
def test_inputs_that_used_to_raise(name, frames):
    run_one(name, frames)
