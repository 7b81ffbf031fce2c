"""What an adapter asks the socket to do (send a message, close), and the helpers every adapter shares.

What it asks of the call itself (``Start``, ``Audio``, ``Stop``...) is the session's vocabulary: service.call_actions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass


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
