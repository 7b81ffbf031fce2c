"""The adapters' shared contract (service/ingest/protocol.py): the base class, the one binary-frame guard, and
the rule that no adapter imports another."""

import ast
import json
from pathlib import Path

import pytest

from service.ingest.audiohook import AudioHookProtocol
from service.ingest.decoder import StreamDecoder
from service.ingest.jambonz import JambonzProtocol
from service.ingest.native import NativeProtocol
from service.ingest.protocol import Adapter, Close, Send, check_frame
from service.ingest.twilio import TwilioProtocol

ADAPTERS = {"native": NativeProtocol, "twilio": TwilioProtocol, "audiohook": AudioHookProtocol, "jambonz": JambonzProtocol}
INGEST = Path(__file__).resolve().parents[1] / "service" / "ingest"


def test_every_adapter_is_an_adapter_and_the_base_needs_both_receivers():
    assert all(issubclass(cls, Adapter) for cls in ADAPTERS.values())

    class TextOnly(Adapter):
        def receive_text(self, text):
            return []

    with pytest.raises(TypeError):
        TextOnly()  # receive_bytes has no default: a protocol says what its binary frames are


def test_the_base_defaults_are_a_one_way_platform():
    class Quiet(Adapter):
        def receive_text(self, text):
            return []

        def receive_bytes(self, data):
            return []

    a = Quiet()
    assert (a.forwards_events, a.resumable) == (False, False)
    assert a.flush() == [] and a.started({"audio_seconds": 0.0}) == [] and a.on_event({"type": "x"}) == []
    assert a.ended(3.0) == [Close(1000, "call ended")]
    assert a.rejected("overloaded", "busy", 1013) == [Close(1013, "overloaded: busy")]
    assert a.outgoing({"k": 1}) == {"k": 1}
    # Those that differ say so: native resumes, AudioHook answers back and numbers what it sends.
    assert NativeProtocol.resumable and AudioHookProtocol.forwards_events and not TwilioProtocol.resumable


def test_the_frame_guard_checks_size_then_readiness_then_whole_samples():
    stereo = StreamDecoder("pcm16", 8000, ("caller", "agent"))  # 4 bytes a frame
    assert check_frame(b"\0" * 9, 8, None).code == "frame_too_large"  # before anything else, even before a start
    assert check_frame(b"\0" * 4, 8, None).code == "bad_start"
    assert check_frame(b"\0" * 4, 8, stereo, "paused").message == "paused"
    problem = check_frame(b"\0" * 6, 8, stereo)
    assert (problem.code, problem.close_code) == ("bad_frame", 1007) and "4-byte" in problem.message
    assert check_frame(b"\0" * 8, 8, stereo) is None and check_frame(b"", 8, stereo) is None


def _native():
    p = NativeProtocol(256)
    p.receive_text(json.dumps({"type": "start", "call_id": "c-1", "agent_id": "a-1", "channels": 2}))
    return p


def _jambonz():
    p = JambonzProtocol(256)
    p.receive_text(json.dumps({"callSid": "c-1", "agent_id": "a-1", "mixType": "stereo"}))
    return p


def _reason(actions) -> str:
    """What the adapter tells the peer about a bad frame: the close reason, or AudioHook's disconnect info."""
    for a in actions:
        if isinstance(a, Close):
            return a.reason
        if isinstance(a, Send) and a.message.get("type") == "disconnect":
            return a.message["parameters"]["info"]
    return ""


@pytest.mark.parametrize("make", [_native, _jambonz], ids=["native", "jambonz"])
def test_adapters_refuse_the_same_frames_through_the_one_guard(make):
    assert "frame_too_large" in _reason(make().receive_bytes(b"\0" * 260))
    assert "bad_frame" in _reason(make().receive_bytes(b"\0" * 6))
    assert _reason(make().receive_bytes(b"\0" * 8)) == ""  # two whole stereo frames: audio


def test_no_adapter_imports_another_adapter():
    adapters = {f"service.ingest.{name}" for name in ADAPTERS}
    for name in ADAPTERS:
        tree = ast.parse((INGEST / f"{name}.py").read_text())
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert not imported & (adapters - {f"service.ingest.{name}"}), (name, imported & adapters)
        assert "service.live_calls" not in imported  # nor the live calls: an adapter knows the wire, not the server
