"""The session's own vocabulary: what an ingest adapter asks of a call (start it, give it audio, pause it,
stop it...) and how the session side refuses (``ProtocolError``). Plain dataclasses; ingest imports
them, this module imports nothing of ingest."""

from __future__ import annotations

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


class ProtocolError(Exception):
    """Raised by the session side (unknown call, call exists...); the driver reports it like an adapter error."""

    def __init__(self, code: str, message: str, close_code: int = 1008):
        super().__init__(message)
        self.code = code
        self.message = message
        self.close_code = close_code
