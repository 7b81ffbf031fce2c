"""Hostile input for the ingest adapters: Hypothesis strategies and the property every adapter must keep.

Each strategy makes one connection's frames for one protocol: valid messages of that protocol
(so the adapter gets past its start and into every state), mutated by replacing or deleting fields
at any depth with values of the wrong JSON type (a string for an object, numbers as strings, arrays,
null, huge numbers), mixed with text that is not JSON, JSON nested thousands deep, and binary
frames of odd sizes. ``check`` feeds them to a fresh adapter, sans I/O, and asserts what the
driver relies on: only known actions, every close a protocol close code with a sendable reason,
every message sendable as UTF-8 JSON, audio finite and per role. Used by tests/test_fuzz_adapters.py
(bounded, derandomized) and tests/perf/fuzz_adapters.py (100,000 inputs and more).
"""

from __future__ import annotations

import copy
import json
import math

import numpy as np
from hypothesis import strategies as st

from service.ingest.audiohook import AudioHookProtocol
from service.call_actions import ROLES, Audio, Dtmf, Gap, Pause, Resume, Split, Start, Stop, Suspend
from service.ingest.jambonz import JambonzProtocol
from service.ingest.native import NativeProtocol
from service.ingest.protocol import CALL_ID, Close, Send, close_reason
from service.ingest.twilio import TwilioProtocol

CLOSE_CODES = {1000, 1003, 1007, 1008, 1009}
MAX_FRAME = 65536
SESSION = "6f1c1f6e-8a51-4c3e-9b1e-2b5f2d0c1a11"
ORG = "0d3c52c5-4a4c-4b0b-8f0e-7d0b7f3c2a10"

WORDS = ["", "start", "media", "stop", "open", "close", "inbound", "outbound", "external", "internal", "PCMU", "L16",
         "audio", "audio/x-mulaw", "pcm16", "mulaw", "stereo", "mono", "PT7200S", "PT0.5S", "PT" + "9" * 400 + "S",
         "7200000", "-1", "1e400", "NaN", "\u00e9\u20ac", "\ud800", "a-1", "null", "[]", "{}", "9" * 5000,
         "00000000-0000-0000-0000-000000000000", "@@@=", "AAAA"]
SCALARS = (st.none() | st.booleans() | st.integers(-(2 ** 80), 2 ** 80) | st.sampled_from([0, 1, 2, 8000, 16000, -1])
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12) | st.sampled_from(WORDS))
HOSTILE = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                       | st.dictionaries(st.text(max_size=6) | st.sampled_from(WORDS[:16]), inner, max_size=3),
                       max_leaves=6)
RAW_TEXT = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", "null", "[]", "{}", "1", '"str"', "{", '{"event":', "\x00"]),
    st.integers(1, 32_000).map(lambda n: "[" * n + "]" * n),  # nesting deep enough to blow the parser's stack
    st.integers(4000, 6000).map(lambda n: "9" * n),  # an integer longer than Python parses by default
    st.integers(MAX_FRAME - 10, MAX_FRAME + 10).map(lambda n: "x" * n),
)
BINARY = st.one_of(
    st.binary(max_size=700),
    st.sampled_from([0, 1, 2, 3, 159, 160, 161, 319, 320, 321, 641, MAX_FRAME - 1, MAX_FRAME, MAX_FRAME + 1])
    .map(lambda n: b"\x7f" * n),
)


def _paths(value, prefix=()):
    """Every place in a JSON value a field can be replaced or deleted: (path to its container, key)."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield prefix, k
            yield from _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield prefix, i
            yield from _paths(v, prefix + (i,))


@st.composite
def mutated(draw, template: dict, most: int = 3) -> dict:
    msg = copy.deepcopy(template)
    for _ in range(draw(st.integers(0, most))):
        paths = list(_paths(msg))
        if not paths:
            break
        where, key = draw(st.sampled_from(paths))
        container = msg
        for step in where:
            container = container[step]
        if draw(st.booleans()) and isinstance(container, dict):
            del container[key]
        else:
            container[key] = draw(HOSTILE)
    return msg


def _text(msg_strategy):
    """A message as a text frame, now and then replaced by something that is not one."""
    return st.one_of(msg_strategy.map(json.dumps), msg_strategy.map(json.dumps), msg_strategy.map(json.dumps),
                     HOSTILE.map(json.dumps), RAW_TEXT)


# -- native ------------------------------------------------------------------------

NATIVE_START = {"type": "start", "call_id": "c-1", "agent_id": "a-1", "encoding": "pcm16", "sample_rate": 8000,
                "channels": 2, "roles": ["caller", "agent"], "metadata": {"queue": "q"}}


@st.composite
def native_frames(draw) -> list:
    start = draw(_text(mutated(NATIVE_START)))
    later = st.one_of(BINARY, _text(mutated({"type": "dtmf", "digit": "5"})),
                      _text(st.sampled_from([{"type": "pause"}, {"type": "resume"}, {"type": "stop"}]).flatmap(mutated)))
    return [start] + draw(st.lists(later, max_size=8))


# -- Twilio --------------------------------------------------------------------------

def _twilio_start(seq: int) -> dict:
    return {"event": "start", "sequenceNumber": str(seq), "streamSid": "MZ1", "start": {
        "accountSid": "AC1", "streamSid": "MZ1", "callSid": "CA1", "tracks": ["inbound", "outbound"],
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        "customParameters": {"agent_id": "a-1"}}}


def _twilio_media(seq: int) -> dict:
    return {"event": "media", "sequenceNumber": str(seq), "streamSid": "MZ1",
            "media": {"track": "inbound", "chunk": str(seq), "timestamp": str(20 * seq), "payload": "f39/fw=="}}


@st.composite
def twilio_frames(draw) -> list:
    out = [json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}),
           draw(_text(mutated(_twilio_start(1))))]
    for seq in range(2, 2 + draw(st.integers(0, 7))):
        kind = draw(st.sampled_from(["media", "media", "dtmf", "mark", "stop", "binary"]))
        if kind == "binary":
            out.append(draw(BINARY))
        elif kind == "media":
            out.append(draw(_text(mutated(_twilio_media(seq)))))
        else:
            body = {"dtmf": {"digit": "5"}, "mark": {"name": "m"}, "stop": {"callSid": "CA1"}}[kind]
            out.append(draw(_text(mutated({"event": kind, "sequenceNumber": str(seq), "streamSid": "MZ1", kind: body}))))
    return out


# -- AudioHook -----------------------------------------------------------------------

def _envelope(type_: str, seq: int, parameters: dict) -> dict:
    return {"version": "2", "id": SESSION, "type": type_, "seq": seq, "serverseq": 0, "position": "PT0S",
            "parameters": parameters}


AUDIOHOOK_OPEN = {"organizationId": ORG, "conversationId": "8e2b3a6c-1f7d-4a8e-9c1b-3d4e5f6a7b8c",
                  "participant": {"id": "p", "ani": "+1555", "aniName": "A", "dnis": "+1800"},
                  "media": [{"type": "audio", "format": "PCMU", "channels": ["external", "internal"], "rate": 8000}],
                  "language": "en-US", "customConfig": {"agent_id": "a-1", "transcripts": True}}
AUDIOHOOK_LATER = [("ping", {"rtt": "PT0.01S"}), ("paused", {}), ("resumed", {"start": "PT1S", "discarded": "PT2S"}),
                   ("discarded", {"start": "PT1S", "discarded": "PT7200S"}), ("update", {"language": "en-GB"}),
                   ("error", {"code": 500, "message": "x"}), ("close", {"reason": "end"}), ("bogus", {})]


@st.composite
def audiohook_frames(draw) -> list:
    out = [draw(_text(mutated(_envelope("open", 1, AUDIOHOOK_OPEN), most=2)))]
    for seq in range(2, 2 + draw(st.integers(0, 7))):
        if draw(st.booleans()):
            out.append(draw(BINARY))
        else:
            type_, params = draw(st.sampled_from(AUDIOHOOK_LATER))
            out.append(draw(_text(mutated(_envelope(type_, seq, params), most=2))))
    return out


# -- jambonz -------------------------------------------------------------------------

JAMBONZ_START = {"callSid": "c-1", "sampleRate": 8000, "mixType": "stereo", "from": "+1555", "agent_id": "a-1",
                 "metadata": {"queue": "q"}}


@st.composite
def jambonz_frames(draw) -> list:
    start = draw(_text(mutated(JAMBONZ_START)))
    later = st.one_of(BINARY, BINARY, _text(mutated({"event": "dtmf", "dtmf": "5", "duration": 100})))
    return [start] + draw(st.lists(later, max_size=8))


ADAPTERS = {
    "native": (lambda: NativeProtocol(MAX_FRAME), native_frames()),
    "twilio": (lambda: TwilioProtocol(MAX_FRAME), twilio_frames()),
    "audiohook": (lambda: AudioHookProtocol(MAX_FRAME, SESSION, ORG), audiohook_frames()),
    "jambonz": (lambda: JambonzProtocol(MAX_FRAME), jambonz_frames()),
}


# -- the property --------------------------------------------------------------------

def _sendable(message: dict) -> None:
    # As the driver sends it: starlette's send_json (ensure_ascii=False), then UTF-8 on the wire.
    json.dumps(message, ensure_ascii=False, allow_nan=False).encode("utf-8")


def _check_start(start: Start) -> None:
    # An AudioHook call may start unassigned (no agent in the open); any agent it names is a valid id.
    assert CALL_ID.match(start.call_id) and (start.agent_id is None or CALL_ID.match(start.agent_id)), start
    assert start.roles and set(start.roles) <= set(ROLES) and len(set(start.roles)) == len(start.roles) == start.channels
    assert start.sample_rate in (8000, 16000, 24000, 32000, 48000, 64000)
    _sendable({"metadata": start.metadata})


def check(adapter, frames: list) -> int:
    """Feed the frames as the driver would; returns the number of frames read before a close."""
    roles: tuple[str, ...] = ()
    closed = False
    live = False  # a call is open: only then may the adapter ask for session calls
    fed = 0

    def apply(actions: list) -> None:
        nonlocal roles, closed, live
        assert isinstance(actions, list)
        for action in actions:
            if isinstance(action, Start):
                _check_start(action)
                assert not live, "a second start on one connection"
                roles, live = action.roles, True
                apply(adapter.started({"audio_seconds": 0.0}))
            elif isinstance(action, (Audio, Gap, Dtmf, Pause, Resume, Split)) and not live:
                raise AssertionError(f"{type(action).__name__} with no call open")
            elif isinstance(action, Audio):
                assert roles and set(action.frames) <= set(roles), (roles, action.frames.keys())
                for samples in action.frames.values():
                    assert samples.dtype == np.float32 and samples.ndim == 1 and np.isfinite(samples).all()
            elif isinstance(action, Gap):
                assert math.isfinite(action.seconds) and action.seconds > 0
                assert action.roles is None or set(action.roles) <= set(roles)
            elif isinstance(action, Send):
                _sendable(adapter.outgoing(action.message))
            elif isinstance(action, (Stop, Suspend)):
                live = False
                apply(adapter.ended(1.0))
            elif isinstance(action, Close):
                assert action.code in CLOSE_CODES, action
                assert isinstance(action.reason, str) and close_reason(action.reason)
                closed, live = True, False
            else:
                assert isinstance(action, (Dtmf, Pause, Resume, Split)), action

    for frame in frames:
        if closed:
            break
        fed += 1
        apply(adapter.receive_bytes(frame) if isinstance(frame, bytes) else adapter.receive_text(frame))
    if live:  # the driver drains the adapter when a call's stream ends
        apply(adapter.flush())
    return fed


def run_one(name: str, frames: list) -> int:
    make, _ = ADAPTERS[name]
    return check(make(), frames)

