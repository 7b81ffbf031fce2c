"""Twilio Media Streams on ``WS /v1/twilio``, sans I/O.

Twilio sends JSON text frames only: ``connected``, ``start`` (customParameters carry
``agent_id``), ``media`` (base64 mu-law 8 kHz, track ``inbound`` = caller, ``outbound``
= agent), ``dtmf``, ``mark``, ``stop``. Twilio reads nothing the server says on a
one-way stream, so errors are told by the close code and reason.

Every field is read by type (a string where an object belongs is a protocol error, never a
traceback). A ``stop`` ends the call (a hang-up sends it, and the agent wants the summary then), unless
``pause`` is set (``CALMLINE_TWILIO_PAUSE``): then it detaches the call for the resume grace, since a platform
that "pauses" a stream (while a card number is read, say) stops it and starts a new one for the same
``callSid``, which continues the call. A ``start`` without ``mediaFormat`` is taken as Twilio's only format
(mu-law 8 kHz mono); one without ``tracks`` carries both.

On ``/v1/twilio/t/{ticket}`` the stream may carry one call only, the ticket's: ``call_sid_check`` tells why a
``start``'s ``callSid`` is refused (``bad_ticket``), or None.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable

from models.codecs import decode, to_float
from models.resample import StreamResampler
from service.call_actions import Audio, Dtmf, Gap, Start, Stop, Suspend
from service.ingest.decoder import flush_resamplers
from service.ingest.protocol import (CALL_ID, DTMF_DIGITS, INVALID_DATA, POLICY, TOO_BIG, UNSUPPORTED, Adapter, fail,
                                     frame_size, load_json, optional_agent, wire_safe)

TRACKS = {"inbound": "caller", "outbound": "agent"}
RATE = 8000
TWILIO_FORMAT = {"encoding": "audio/x-mulaw", "sampleRate": RATE, "channels": 1}
MIN_GAP_MS = 40  # a missing frame or two is jitter; more is audio the platform skipped


class TwilioProtocol(Adapter):
    def __init__(self, max_frame_bytes: int = 65536, authorize=None,
                 call_sid_check: Callable[[str], str | None] | None = None, pause: bool = False):
        self.max_frame_bytes = max_frame_bytes
        self.pause = pause
        # Set when the handshake proved nothing: the ingest key must then come as customParameters.token
        # (Twilio drops query strings from <Stream url> and cannot add headers).
        self.authorize = authorize
        # Set when a signed URL let the stream in: the signature proves the URL, only this ties it to one call.
        self.call_sid_check = call_sid_check
        self.start: Start | None = None
        self.stream_sid: str | None = None
        self._resamplers: dict[str, StreamResampler] = {}
        self._next_ms: dict[str, int] = {}  # where each track's next chunk should start
        self._last_seq = 0

    def receive_bytes(self, data: bytes) -> list:
        return fail("bad_message", "Twilio Media Streams sends JSON text frames only", UNSUPPORTED)

    def receive_text(self, text: str) -> list:
        # A 20 ms media frame is about 300 bytes; the limit leaves room for large start parameters.
        if frame_size(text) > self.max_frame_bytes:
            return fail("frame_too_large", f"message over {self.max_frame_bytes} bytes", TOO_BIG)
        msg = load_json(text)
        if not isinstance(msg, dict) or not isinstance(msg.get("event"), str):
            return fail("bad_message", "messages must be JSON objects with an event", POLICY)
        event = msg["event"]
        seq = _int(msg.get("sequenceNumber"))
        if seq is not None:
            if seq <= self._last_seq:
                # Twilio numbers every message after connected from 1; a repeat or a step back is a broken stream.
                return fail("out_of_order", f"sequenceNumber {seq} after {self._last_seq}", POLICY)
            self._last_seq = seq
        if event == "connected":
            return []
        if event == "start":
            return self._open(msg)
        if self.start is None:
            return fail("bad_start", f"{event[:40]!r} before start", POLICY)
        if event == "media":
            media = msg.get("media")
            if not isinstance(media, dict):
                return fail("bad_message", "media must be an object", POLICY)
            return self._media(media)
        if event == "dtmf":
            digit = _obj(msg.get("dtmf")).get("digit")
            return [Dtmf(digit)] if isinstance(digit, str) and digit in DTMF_DIGITS else []
        if event == "mark":
            return []
        if event == "stop":
            # Paused streams: the call may go on in a new stream, and ends after the resume grace otherwise.
            return [Suspend()] if self.pause else [Stop()]
        return []  # events added to the protocol later are not errors

    def flush(self) -> list:
        return flush_resamplers(self._resamplers)

    def _open(self, msg: dict) -> list:
        if self.start is not None:
            return fail("bad_message", "a second start on one stream", POLICY)
        start = msg.get("start")
        if not isinstance(start, dict):
            return fail("bad_start", "start must be an object", POLICY)
        # Twilio always says its format; a start that names none (a hand-made client) gets Twilio's one format.
        fmt = _obj(start.get("mediaFormat")) if "mediaFormat" in start else TWILIO_FORMAT
        if fmt.get("encoding") != "audio/x-mulaw" or _int(fmt.get("sampleRate")) != RATE or _int(fmt.get("channels")) != 1:
            return fail("unsupported_media", f"expected audio/x-mulaw 8000 Hz mono, got {json.dumps(fmt)[:60]}", UNSUPPORTED)
        params = start.get("customParameters")
        if params is not None and not isinstance(params, dict):
            return fail("bad_start", "start.customParameters must be an object", POLICY)
        params = params or {}
        if self.authorize is not None and not self.authorize(params.get("token")):
            return fail("unauthorized", "no valid ingest key (header, ?token= or customParameters.token)", POLICY)
        if self.call_sid_check is not None:
            # The ticket names a callSid, never the streamSid taken for a missing one: that matches no ticket.
            sid = start.get("callSid")
            refused = self.call_sid_check(sid if isinstance(sid, str) else "")
            if refused is not None:
                return fail("bad_ticket", refused, POLICY)
        agent_id = optional_agent(params.get("agent_id"))
        call_id = start.get("callSid") or msg.get("streamSid")
        if agent_id is False:
            return fail("bad_start", "customParameters.agent_id is malformed", POLICY)
        if not isinstance(call_id, str) or not CALL_ID.match(call_id):
            return fail("bad_start", "start.callSid is missing or malformed", POLICY)
        # Twilio lists the tracks it forks; where nothing says, both may come (an agent's audio is not dropped).
        tracks = start.get("tracks") or list(TRACKS)
        if not isinstance(tracks, list):
            return fail("bad_start", "start.tracks must be a list", POLICY)
        tracks = [t for t in tracks if isinstance(t, str) and t in TRACKS]
        if not tracks:
            return fail("unsupported_media", "no inbound or outbound track", UNSUPPORTED)
        roles = tuple(TRACKS[t] for t in ("inbound", "outbound") if t in tracks)
        sid = start.get("streamSid") or msg.get("streamSid")
        self.stream_sid = sid if isinstance(sid, str) else None
        metadata = {k: v for k, v in params.items() if k not in ("agent_id", "token")}
        metadata["twilio"] = {"callSid": call_id, "streamSid": self.stream_sid, "accountSid": start.get("accountSid")}
        self.start = Start(call_id, agent_id, "twilio", "mulaw", RATE, len(roles), roles, False, wire_safe(metadata), continues=True)
        self._resamplers = {role: StreamResampler(RATE) for role in roles}
        self._next_ms = {role: 0 for role in roles}
        return [self.start]

    def _media(self, media: dict) -> list:
        track = media.get("track", "inbound")
        role = TRACKS.get(track) if isinstance(track, str) else None
        if role not in self._resamplers:
            return []  # a track that was not asked for in start
        encoded = media.get("payload", "")
        if not isinstance(encoded, str):
            return fail("bad_frame", "media.payload must be a base64 string", INVALID_DATA)
        try:
            payload = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            return fail("bad_frame", "media.payload is not base64", INVALID_DATA)
        out = []
        stamp = _int(media.get("timestamp"))
        if stamp is not None:
            # Twilio skips silence on a track sometimes: the track's clock skips ahead (no samples are
            # made for it) so both speakers stay on one clock; the session caps it by real time.
            gap_ms = stamp - self._next_ms[role]
            if gap_ms >= MIN_GAP_MS:
                out.append(Gap(gap_ms / 1000, (role,)))
            self._next_ms[role] = max(self._next_ms[role], stamp) + len(payload) * 1000 // RATE
        out.append(Audio({role: self._resamplers[role](to_float(decode("mulaw", payload)))}))
        return out


def _int(value) -> int | None:
    """An integer field, whether Twilio sent it as a number or a string; None when it is neither."""
    if isinstance(value, float) and not value.is_integer():
        return None
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return None


def _obj(value) -> dict:
    return value if isinstance(value, dict) else {}
