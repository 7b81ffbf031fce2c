"""What an adapter asks of the session, and what it asks the socket to send: plain dataclasses."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

ROLES = ("caller", "agent")


@dataclass(frozen=True)
class Start:
    call_id: str
    agent_id: str | None  # None: unassigned until PUT /v1/calls/{id}/agent names the agent
    source: str
    encoding: str
    sample_rate: int
    channels: int
    roles: tuple[str, ...]
    resume: bool = False
    metadata: dict = field(default_factory=dict)
    # Resume the call when it waits detached, else start it (Twilio: a new stream for the same callSid).
    continues: bool = False


@dataclass(frozen=True)
class Audio:
    """16 kHz mono float32 for each role this frame carries (stereo streams: both, the same length)."""

    frames: dict[str, np.ndarray]


@dataclass(frozen=True)
class Gap:
    """Audio the platform skipped or lost: the call's clock moves on by ``seconds`` (for ``roles``, or every
    role when None) without any samples; the session caps it by wall-clock time."""

    seconds: float
    roles: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Dtmf:
    digit: str


@dataclass(frozen=True)
class Pause:
    pass


@dataclass(frozen=True)
class Resume:
    pass


@dataclass(frozen=True)
class Split:
    """Close the utterances in progress here (AudioHook ``update``: the language changed)."""


@dataclass(frozen=True)
class Stop:
    """The call is over: ``ended`` when the platform says so, ``error`` when the protocol broke."""

    status: str = "ended"
    reason: str | None = None


@dataclass(frozen=True)
class Suspend:
    """The stream ended but the call may go on in a new one: detach it for the resume grace, then end it
    with ``status`` if no stream takes it up."""

    status: str = "ended"


@dataclass(frozen=True)
class Send:
    """A message for the peer (JSON object)."""

    message: dict


@dataclass(frozen=True)
class Close:
    """Close the connection. ``code`` is the websocket close code; ``error`` ends the call as failed."""

    code: int
    reason: str
    error: str | None = None


class ProtocolError(Exception):
    """Raised by the session side (unknown call, call exists...); the driver reports it like an adapter error."""

    def __init__(self, code: str, message: str, close_code: int = 1008):
        super().__init__(message)
        self.code = code
        self.message = message
        self.close_code = close_code


def load_json(text: str) -> object:
    """A text frame's JSON value, or None when it is not JSON: each protocol answers that its own way."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: arrays nested thousands deep
        return None


def wire_safe(value):
    """Client JSON made safe to send on: lone surrogates (a JSON escape can make them) become "?", and
    NaN and infinities (which JSON has no words for) become null."""
    text = json.dumps(value, ensure_ascii=False).encode("utf-8", "replace").decode("utf-8")
    return json.loads(text, parse_constant=lambda _: None)


def close_reason(reason: str) -> str:
    """A close reason within the 123 bytes a close frame allows, cut on a character boundary."""
    return reason.encode("utf-8", "replace")[:123].decode("utf-8", "ignore")


def frame_size(text: str) -> int:
    """Bytes of a text frame as it came on the wire (UTF-8)."""
    return len(text.encode("utf-8", "surrogatepass"))


def fail(code: str, message: str, close_code: int) -> list:
    """A protocol error that ends the stream: close with ``code: message`` as the reason."""
    return [Close(close_code, f"{code}: {message}", error=code)]


class OneWayAdapter:
    """Defaults for platforms that read nothing back from us (Twilio one-way streams, jambonz listen)."""

    forwards_events = False
    resumable = False

    def started(self, call: dict) -> list:
        return []

    def ended(self, audio_seconds: float) -> list:
        return [Close(1000, "call ended")]

    def rejected(self, code: str, message: str, close_code: int) -> list:
        return [Close(close_code, f"{code}: {message}")]

    def on_event(self, event: dict) -> list:
        return []
