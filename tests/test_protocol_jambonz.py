"""jambonz listen / mod_audio_fork, message by message (no socket)."""

import json

import numpy as np
import pytest

from models.codecs import encode
from service.call_actions import Dtmf, Start
from service.ingest.jambonz import JambonzProtocol
from service.ingest.protocol import Close


def metadata(**over):
    msg = {"sampleRate": 8000, "mixType": "stereo", "callSid": "b6f1-22", "direction": "inbound", "from": "+1555",
           "to": "+1666", "accountSid": "acc", "agent_id": "a-1", "queue": "billing"}
    msg.update(over)
    return json.dumps({k: v for k, v in msg.items() if v is not None})


def codes(actions):
    return [(a.code, a.reason.split(":")[0]) for a in actions if isinstance(a, Close)]


def test_metadata_then_stereo_l16():
    p = JambonzProtocol()
    [s] = p.receive_text(metadata())
    assert isinstance(s, Start) and (s.call_id, s.agent_id, s.roles, s.source) == ("b6f1-22", "a-1", ("caller", "agent"), "jambonz")
    assert s.metadata["queue"] == "billing" and s.metadata["jambonz"]["from"] == "+1555"
    left = np.full(1600, 9000, np.int16)
    [audio] = p.receive_bytes(encode("pcm16", np.stack([left, np.zeros_like(left)], 1).reshape(-1)))
    assert np.abs(audio.frames["caller"]).max() > 0.1 and np.abs(audio.frames["agent"]).max() < 0.01
    assert p.receive_bytes(b"") == []  # mod_audio_fork's zero-length goodbye
    assert p.receive_text(json.dumps({"event": "dtmf", "dtmf": "5", "duration": 100})) == [Dtmf("5")]


def test_nested_metadata_and_mono():
    p = JambonzProtocol()
    [s] = p.receive_text(metadata(agent_id=None, mixType="mono", sampleRate=16000, metadata={"agent_id": "a-9"}))
    assert s.agent_id == "a-9" and s.roles == ("caller",) and s.sample_rate == 16000


def test_metadata_without_an_agent_starts_an_unassigned_call():
    [s] = JambonzProtocol().receive_text(metadata(agent_id=None))
    assert isinstance(s, Start) and s.agent_id is None


@pytest.mark.parametrize("first, expected", [
    (b"\x00\x00", [(1008, "bad_start")]),
    ("hello", [(1008, "bad_start")]),
    (metadata(agent_id="a/9"), [(1008, "bad_start")]),
    (metadata(callSid=None), [(1008, "bad_start")]),
    (metadata(sampleRate=11025), [(1003, "unsupported_rate")]),
    (metadata(mixType="quad"), [(1003, "unsupported_media")]),
])
def test_bad_openings(first, expected):
    p = JambonzProtocol()
    assert codes(p.receive_bytes(first) if isinstance(first, bytes) else p.receive_text(first)) == expected


def test_frame_errors():
    p = JambonzProtocol(max_frame_bytes=4096)
    p.receive_text(metadata())
    assert codes(p.receive_bytes(b"\x00" * 6)) == [(1007, "bad_frame")]  # stereo L16 is 4 bytes a frame
    p = JambonzProtocol(max_frame_bytes=4096)
    p.receive_text(metadata())
    assert codes(p.receive_bytes(b"\x00" * 8192)) == [(1009, "frame_too_large")]
