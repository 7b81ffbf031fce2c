"""The native protocol of ``WS /v1/stream`` (DESIGN.md), sans I/O.

Feed it what the socket received; it returns the session calls and replies that
follow. A start message opens the call; binary frames are interleaved samples.
"""

from __future__ import annotations

from models.codecs import ENCODINGS
from service.call_actions import ROLES, Audio, Dtmf, Pause, Resume, Start, Stop
from service.ingest.decoder import StreamDecoder
from service.ingest.protocol import (CALL_ID, DTMF_DIGITS, POLICY, TOO_BIG, UNSUPPORTED, Adapter, Close, Send, check_frame,
                                     fail, frame_size, load_json, optional_agent, wire_safe)

RATES = (8000, 16000)


def error(code: str, message: str) -> Send:
    return Send({"type": "error", "code": code, "message": message})


def fatal(code: str, message: str, close_code: int) -> list:
    """The native protocol says why in an error message before it closes."""
    return [error(code, message), *fail(code, message, close_code)]


class NativeProtocol(Adapter):
    resumable = True

    def __init__(self, max_frame_bytes: int = 65536):
        self.max_frame_bytes = max_frame_bytes
        self.start: Start | None = None
        self.stopped = False
        self._decoder: StreamDecoder | None = None

    def receive_text(self, text: str) -> list:
        if frame_size(text) > self.max_frame_bytes:
            return fatal("frame_too_large", f"text frame over {self.max_frame_bytes} bytes", TOO_BIG)
        msg = load_json(text)
        if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
            if self.start is None:
                return fatal("bad_start", "the first frame must be a JSON start message", POLICY)
            return [error("bad_message", "text frames must be JSON objects with a type")]
        if self.start is None:
            return self._open(msg)
        kind = msg["type"]
        if kind == "dtmf":
            digit = str(msg.get("digit", ""))
            if digit not in DTMF_DIGITS:
                return [error("bad_message", "dtmf digit must be one of 0-9 * # A-D")]
            return [Dtmf(digit)]
        if kind == "pause":
            return [Pause()]
        if kind == "resume":
            return [Resume()]
        if kind == "stop":
            self.stopped = True
            return [Stop()]
        if kind == "start":
            return [error("bad_message", "the call has already started")]
        return [error("bad_message", f"unknown message type {kind[:40]!r}")]

    def receive_bytes(self, data: bytes) -> list:
        problem = check_frame(data, self.max_frame_bytes, self._decoder,
                              None if self.start else "the first frame must be a JSON start message, not audio")
        if problem:
            return fatal(*problem)
        if self.stopped:
            return [error("bad_message", "audio after stop is ignored")]
        return [Audio(self._decoder(data))] if data else []

    def flush(self) -> list:
        return self._decoder.flush() if self._decoder is not None else []

    def started(self, call: dict) -> list:
        # The call's agent, which an assignment may have changed since the start this stream sent.
        return [Send({"type": "started", "call_id": self.start.call_id, "agent_id": call.get("agent_id", self.start.agent_id),
                      "resumed": self.start.resume, "audio_seconds": call.get("audio_seconds", 0.0)})]

    def ended(self, audio_seconds: float) -> list:
        return [Send({"type": "stopped", "call_id": self.start.call_id, "audio_seconds": round(audio_seconds, 3)}),
                Close(1000, "call ended")]

    def rejected(self, code: str, message: str, close_code: int) -> list:
        return fatal(code, message, close_code)

    def _open(self, msg: dict) -> list:
        if msg["type"] != "start":
            return fatal("bad_start", f"the first frame must be a start message, not {msg['type'][:40]!r}", POLICY)
        call_id, agent_id = msg.get("call_id"), optional_agent(msg.get("agent_id"))
        if not isinstance(call_id, str) or not CALL_ID.match(call_id):
            return fatal("bad_start", "call_id must be 1-128 characters of letters, digits and . _ : -", POLICY)
        if agent_id is False:
            return fatal("bad_start", "agent_id must be 1-128 characters of letters, digits and . _ : -", POLICY)
        encoding = msg.get("encoding", "pcm16")
        if encoding not in ENCODINGS:
            return fatal("unsupported_encoding", f"encoding must be one of {', '.join(ENCODINGS)}", UNSUPPORTED)
        rate = msg.get("sample_rate", 16000)
        if rate not in RATES or isinstance(rate, bool):
            return fatal("unsupported_rate", "sample_rate must be 8000 or 16000", UNSUPPORTED)
        channels = msg.get("channels", 1)
        if channels not in (1, 2) or isinstance(channels, bool):
            return fatal("bad_start", "channels must be 1 or 2", POLICY)
        roles = msg.get("roles") or list(ROLES[:channels])
        if (not isinstance(roles, list) or len(roles) != channels or any(not isinstance(r, str) or r not in ROLES for r in roles)
                or len(set(roles)) != channels):
            return fatal("bad_start", f"roles must name each of the {channels} channel(s): caller, agent", POLICY)
        metadata = msg.get("metadata") or {}
        if not isinstance(metadata, dict):
            return fatal("bad_start", "metadata must be an object", POLICY)
        self.start = Start(call_id, agent_id, "native", encoding, rate, channels, tuple(roles),
                           bool(msg.get("resume", False)), wire_safe(metadata))
        self._decoder = StreamDecoder(encoding, rate, self.start.roles)
        return [self.start]
