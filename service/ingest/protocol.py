"""The wire side every ingest adapter shares: its contract (``Adapter``, every default in one place), what it asks
the socket to do (``Send``, ``Close``), the constants of the wire, and the one guard every binary frame passes.

An adapter is sans I/O: the driver (service/ingest/driver.py) hands it what the socket received and carries out
the list it returns, session calls (service/call_actions.py) and these socket actions in order.
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import NamedTuple

CALL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")  # call and agent ids, whatever the platform
DTMF_DIGITS = set("0123456789*#ABCD")

# Close codes (RFC 6455 section 7.4.1).
POLICY, UNSUPPORTED, INVALID_DATA, TOO_BIG = 1008, 1003, 1007, 1009


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


class Adapter(ABC):
    """What the driver asks of every protocol adapter, with the defaults of a platform that reads nothing back
    (Twilio one-way streams, jambonz listen). Subclasses implement ``receive_text`` and ``receive_bytes`` and
    override what their platform does differently."""

    # The call's events go to ``on_event`` as they happen, its answers back to the platform (AudioHook).
    forwards_events = False
    # A stream that drops leaves its call waiting for a resume (native); otherwise the call ends with the stream.
    resumable = False

    @abstractmethod
    def receive_text(self, text: str) -> list:
        """A text frame: the session calls and replies that follow, in order."""

    @abstractmethod
    def receive_bytes(self, data: bytes) -> list:
        """A binary frame (audio passes ``check_frame`` first): the session calls and replies that follow, in order."""

    def flush(self) -> list:
        """Audio the adapter still holds (resampler tails); the driver asks before the stream ends for any reason."""
        return []

    def started(self, call: dict) -> list:
        """The reply to the session opening the call (``call``: its ``audio_seconds`` so far)."""
        return []

    def ended(self, audio_seconds: float) -> list:
        """The reply once the session has ended or detached the call."""
        return [Close(1000, "call ended")]

    def rejected(self, code: str, message: str, close_code: int) -> list:
        """The reply to the session refusing the call or ending it on its own (a fault, a shutdown)."""
        return [Close(close_code, f"{code}: {message}")]

    def on_event(self, event: dict) -> list:
        """What one of the call's events becomes on the wire (read only when ``forwards_events``)."""
        return []

    def outgoing(self, message: dict) -> dict:
        """Every message as it leaves, in send order (AudioHook stamps its sequence numbers here)."""
        return message


class FrameProblem(NamedTuple):
    code: str
    message: str
    close_code: int


def check_frame(data: bytes, limit: int, decoder, not_ready: str | None = None) -> FrameProblem | None:
    """The guard every binary frame passes before it is decoded: within the size limit, sent once the call's
    media is known (``decoder`` set and no ``not_ready`` reason), a whole number of samples of every channel.
    None when the frame may be decoded; each adapter tells a problem its own way."""
    if len(data) > limit:
        return FrameProblem("frame_too_large", f"frame of {len(data)} bytes is over the {limit} byte limit", TOO_BIG)
    if not_ready is not None or decoder is None:
        return FrameProblem("bad_start", not_ready or "audio before the call's media is known", POLICY)
    if len(data) % decoder.frame_bytes:
        return FrameProblem("bad_frame", f"frame of {len(data)} bytes is not a whole number of "
                            f"{decoder.frame_bytes}-byte samples ({decoder.encoding}, {len(decoder.roles)} channel(s))", INVALID_DATA)
    return None


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


def optional_agent(value) -> str | None | bool:
    """A start's agent id: None where it names none (absent, null or empty: the call starts unassigned, DESIGN.md),
    False where it is malformed."""
    if value is None or value == "":
        return None
    return value if isinstance(value, str) and CALL_ID.match(value) else False


def fail(code: str, message: str, close_code: int) -> list:
    """A protocol error that ends the stream: close with ``code: message`` as the reason."""
    return [Close(close_code, f"{code}: {message}", error=code)]
