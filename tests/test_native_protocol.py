"""The native adapter message by message, with no socket: it is a pure translator."""

import json

import numpy as np
import pytest

from models import codecs
from service.call_actions import Audio, Dtmf, Pause, Resume, Start, Stop
from service.ingest.native import NativeProtocol
from service.ingest.protocol import Close, Send


def start(**over):
    msg = {"type": "start", "call_id": "c-1", "agent_id": "a-7", "encoding": "pcm16", "sample_rate": 8000,
           "channels": 2, "roles": ["caller", "agent"], "metadata": {"queue": "billing"}}
    msg.update(over)
    return json.dumps(msg)


def opened(**over):
    p = NativeProtocol(max_frame_bytes=4096)
    [s] = p.receive_text(start(**over))
    assert isinstance(s, Start)
    return p, s


def codes(actions):
    return [(a.message["code"] if isinstance(a, Send) else a.code) for a in actions]


def test_start_becomes_a_session_start():
    _, s = opened()
    assert (s.call_id, s.agent_id, s.encoding, s.sample_rate, s.roles) == ("c-1", "a-7", "pcm16", 8000, ("caller", "agent"))
    assert s.metadata == {"queue": "billing"} and s.resume is False and s.source == "native"


def test_a_start_may_name_no_agent_and_is_then_unassigned():
    for over in ({"agent_id": None}, {"agent_id": ""}, {}):
        msg = json.loads(start(**over))
        if not over:
            del msg["agent_id"]
        [s] = NativeProtocol().receive_text(json.dumps(msg))
        assert isinstance(s, Start) and s.agent_id is None and s.call_id == "c-1"


def test_mono_defaults_to_the_caller():
    _, s = opened(channels=1, roles=None)
    assert s.roles == ("caller",)


@pytest.mark.parametrize("encoding", ["pcm16", "mulaw", "alaw"])
@pytest.mark.parametrize("rate", [8000, 16000])
def test_audio_is_split_per_role_at_16k(encoding, rate):
    p, _ = opened(encoding=encoding, sample_rate=rate, roles=["agent", "caller"])
    t = np.arange(rate // 10) / rate
    left = (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16)  # the agent, by the roles above
    right = np.zeros_like(left)
    wire = codecs.encode(encoding, np.stack([left, right], 1).reshape(-1))
    audio = []
    for i in range(0, len(wire), 640):
        audio += p.receive_bytes(wire[i:i + 640])
    audio += p.flush()
    agent = np.concatenate([a.frames["agent"] for a in audio])
    caller = np.concatenate([a.frames["caller"] for a in audio])
    assert len(agent) == len(caller) == pytest.approx(1600, abs=2)  # 0.1 s at 16 kHz
    assert np.sqrt(np.mean(agent ** 2)) == pytest.approx(8000 / 32768 / np.sqrt(2), rel=0.08)
    assert np.abs(caller).max() < 0.01


def test_control_messages():
    p, _ = opened()
    assert p.receive_text('{"type":"dtmf","digit":"5"}') == [Dtmf("5")]
    assert p.receive_text('{"type":"pause"}') == [Pause()]
    assert p.receive_text('{"type":"resume"}') == [Resume()]
    assert p.receive_text('{"type":"stop"}') == [Stop()]
    assert codes(p.receive_bytes(b"\x00\x00\x00\x00")) == ["bad_message"]


@pytest.mark.parametrize("first, expected", [
    (b"\x00\x00", ["bad_start", 1008]),
    ("hello", ["bad_start", 1008]),
    ('{"type":"dtmf","digit":"1"}', ["bad_start", 1008]),
    (start(call_id=""), ["bad_start", 1008]),
    (start(call_id="a/b"), ["bad_start", 1008]),
    (start(agent_id=7), ["bad_start", 1008]),
    (start(agent_id="a 7"), ["bad_start", 1008]),
    (start(encoding="opus"), ["unsupported_encoding", 1003]),
    (start(sample_rate=44100), ["unsupported_rate", 1003]),
    (start(sample_rate=True), ["unsupported_rate", 1003]),
    (start(channels=3), ["bad_start", 1008]),
    (start(roles=["caller"]), ["bad_start", 1008]),
    (start(roles=["caller", "boss"]), ["bad_start", 1008]),
    (start(metadata=[1]), ["bad_start", 1008]),
])
def test_bad_first_frames(first, expected):
    p = NativeProtocol()
    actions = p.receive_bytes(first) if isinstance(first, bytes) else p.receive_text(first)
    assert codes(actions) == expected
    assert isinstance(actions[-1], Close) and actions[-1].reason.startswith(expected[0])


def test_frame_errors_after_start():
    p, _ = opened()
    assert codes(p.receive_bytes(b"\x00" * 6)) == ["bad_frame", 1007]  # stereo pcm16: multiples of 4
    assert codes(p.receive_bytes(b"\x00" * 4100)) == ["frame_too_large", 1009]
    assert codes(p.receive_text("x" * 5000)) == ["frame_too_large", 1009]
    assert codes(p.receive_text('{"type":"start"}')) == ["bad_message"]
    assert codes(p.receive_text('{"type":"dance"}')) == ["bad_message"]
    mu, _ = opened(encoding="mulaw", channels=1, roles=["agent"])
    assert isinstance(mu.receive_bytes(b"\xff" * 3)[0], Audio)  # one byte per sample: any length is whole


def test_replies():
    p, _ = opened(resume=True)
    [started] = p.started({"audio_seconds": 4.5})
    assert started.message == {"type": "started", "call_id": "c-1", "agent_id": "a-7", "resumed": True, "audio_seconds": 4.5}
    # A resume names the call's agent as it is now: one assigned since the start, or none yet.
    p, _ = opened(resume=True, agent_id=None)
    assert p.started({"audio_seconds": 4.5, "agent_id": "a-2"})[0].message["agent_id"] == "a-2"
    stopped, close = p.ended(12.3456)
    assert stopped.message == {"type": "stopped", "call_id": "c-1", "audio_seconds": 12.346}
    assert (close.code, close.error) == (1000, None)
    error, close = p.rejected("unknown_call", "no such call", 1008)
    assert error.message["code"] == "unknown_call" and close.code == 1008
