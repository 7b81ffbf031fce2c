"""Genesys Cloud AudioHook protocol version 2 on ``WS /v1/audiohook``, sans I/O.

Text messages share one envelope (``version``, ``id``, ``type``, ``seq``, ``serverseq``
or ``clientseq``, ``position``, ``parameters``); each side numbers its own messages
from 1. Audio is binary PCMU or L16 at 8 kHz, channels interleaved in the order
negotiated; ``external`` is the caller, ``internal`` the agent. The server answers
protocol errors with ``disconnect`` (reason ``error``) and waits for the client's
``close``; only the client closes the socket, after ``closed``.

The agent of the call comes from ``inputVariables.agent_id`` (an Architect flow sets it
per call), else ``customConfig.agent_id`` (an integration that is one agent's); a real
AudioHook Monitor usually names none, and the call is then unassigned until someone
assigns it (``PUT /v1/calls/{id}/agent``). When ``customConfig.transcripts`` is true the
call's transcripts go back in the Transcription Connector shape: ``event`` messages with
``transcript`` entities, finals only unless ``customConfig.partials`` is true, each with
its words as ``tokens``. ``update`` changes the language and closes the utterance in
progress there, as Genesys's reference restarts its detection.
"""

from __future__ import annotations

import math
import re
import uuid

from service.call_actions import Audio, Gap, Pause, Resume, Split, Start, Stop
from service.ingest.decoder import StreamDecoder
from service.ingest.protocol import CALL_ID, Adapter, Send, check_frame, frame_size, load_json, wire_safe

RATE = 8000
ROLES = {"external": "caller", "internal": "agent"}
FORMATS = {"PCMU": "mulaw", "L16": "pcm16"}
UUID = re.compile(r"^(?:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[1-5][0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}|"
                  r"00000000-0000-0000-0000-000000000000)$")
POSITION = re.compile(r"^PT(?:\d*\.)?\d+S$")
LANGUAGE = re.compile(r"^[a-z]{2,3}-[A-Za-z]{2,3}$")  # as Genesys's reference checks language codes
# What the transcriber takes: English (tiny.en, or any English model), whatever the accent.
SUPPORTED_LANGUAGES = ["en-US", "en-GB", "en-AU", "en-CA", "en-IE", "en-IN", "en-NZ", "en-ZA"]
NULL_UUID = "00000000-0000-0000-0000-000000000000"
CLIENT_TYPES = {"open", "close", "discarded", "error", "paused", "ping", "resumed", "update"}
AWAIT_OPEN, ACTIVE, PAUSED, CLOSING, FAILED = "await_open", "active", "paused", "closing", "failed"
# The disconnect info of each frame problem, in the words of Genesys's reference server.
AUDIOHOOK_FRAME_ERRORS = {"frame_too_large": "Binary message too large ({size} > {limit} bytes)", "bad_start": "{why}",
                          "bad_frame": "Binary data not a valid audio frame (size not a multiple of the frame)"}


def duration(seconds: float) -> str:
    """An ISO 8601 duration to the millisecond, however long the call (no significant digits lost)."""
    text = f"{max(0, round(seconds * 1000)) / 1000:.3f}".rstrip("0").rstrip(".")
    return f"PT{text}S"


def parse_duration(text) -> float:
    if not isinstance(text, str) or not POSITION.match(text):
        return 0.0
    seconds = float(text[2:-1])
    return seconds if math.isfinite(seconds) else 0.0  # "PT" and 400 digits: not a duration


class AudioHookProtocol(Adapter):
    forwards_events = True

    def __init__(self, max_frame_bytes: int = 65536, session_id: str | None = None, organization_id: str | None = None):
        self.max_frame_bytes = max_frame_bytes
        self.session_id = session_id
        self.organization_id = organization_id
        self.state = AWAIT_OPEN
        self.start: Start | None = None
        self.media: dict | None = None
        self.transcripts = False
        self.partials = False
        self.language = "en-US"
        self._languages: list[tuple[float, str]] = []  # (stream position, language) of each update
        self._opening_language = self.language
        self._client_seq = 0
        self._server_seq = 0
        self._decoder: StreamDecoder | None = None
        self._channels: list[str] = []
        self._pending_open: dict | None = None
        self._stream_seconds = 0.0  # the call's clock as this adapter moves it: audio received plus gaps
        self._gaps: list[tuple[float, float]] = []  # (where on the call's clock, seconds) of each discarded stretch

    # -- the envelope ------------------------------------------------------------

    def _message(self, type_: str, parameters: dict | None = None) -> Send:
        """A server message; ``seq`` and ``clientseq`` are stamped by ``outgoing`` as it leaves, in send order."""
        return Send({"version": "2", "id": self.session_id or NULL_UUID, "type": type_, "parameters": parameters or {}})

    def outgoing(self, message: dict) -> dict:
        self._server_seq += 1
        message["seq"] = self._server_seq
        message["clientseq"] = self._client_seq
        return message

    def _fail(self, info: str, reason: str = "error") -> list:
        if self.state == FAILED:
            return []
        self.state = FAILED
        # The call ends here; the socket stays open until the client's close, as the protocol asks.
        out = [self._message("disconnect", {"reason": reason, "info": info})]
        return out + ([Stop("error", info)] if self.start is not None else [])

    # -- input -------------------------------------------------------------------

    def receive_text(self, text: str) -> list:
        if len(text) > 65535 or frame_size(text) > self.max_frame_bytes:
            return self._fail("Client Error: Text message too large (>64K)")
        msg = load_json(text)
        if msg is None:
            return self._fail("Client Error: Text message not valid JSON")
        if not (isinstance(msg, dict) and msg.get("version") == "2" and isinstance(msg.get("type"), str)
                and isinstance(msg.get("id"), str) and UUID.match(msg["id"]) and isinstance(msg.get("seq"), int)
                and isinstance(msg.get("serverseq"), int) and isinstance(msg.get("parameters"), dict)
                and isinstance(msg.get("position"), str) and POSITION.match(msg["position"])):
            return self._fail("Client Error: Message not a well-formed client message")
        if self.state == FAILED:
            # After a disconnect the server only waits for the client's close; its closed still
            # acknowledges the latest message.
            self._client_seq = max(self._client_seq, msg["seq"])
            return [self._message("closed")] if msg["type"] == "close" else []
        if msg["seq"] != self._client_seq + 1:
            return self._fail("Client Error: Invalid seq value (not monotonically increasing)")
        self._client_seq = msg["seq"]
        if msg["serverseq"] > self._server_seq:
            return self._fail("Client Error: Invalid serverseq value")
        if self.session_id and msg["id"].lower() != self.session_id.lower():
            return self._fail("Client Error: Session identifier mismatch")
        self.session_id = self.session_id or msg["id"]
        kind, params = msg["type"], msg["parameters"]
        if kind not in CLIENT_TYPES:
            return self._fail(f"Client Error: Invalid Message: {kind[:40]!r} is not a supported client message")
        if kind == "ping":
            return [self._message("pong")]
        if kind == "close":
            if self.state in (CLOSING,):
                return []
            was_failed = self.state == FAILED
            self.state = CLOSING
            if self.start is not None and not was_failed:
                return [Stop()]  # the driver replies ``closed`` once the call is stored (``ended``)
            return [self._message("closed")]
        if kind == "error":
            return []  # the client tells us of its own trouble; nothing to answer
        if self.state == FAILED:
            return []
        if kind == "open":
            return self._open(params) if self.state == AWAIT_OPEN else []
        if self.state == AWAIT_OPEN:
            if kind == "update":
                return []
            return self._fail(f"Client Error: '{kind}' before open")
        if kind == "update":
            return self._update(params, parse_duration(msg["position"]))
        if self.start is None or self.state == CLOSING:
            return []  # no call to pause or skip (a connection probe, no media we take, or closing)
        if kind == "paused":
            self.state = PAUSED if self.state == ACTIVE else self.state
            return [Pause()]
        if kind in ("resumed", "discarded"):
            # Audio the client did not send: the call's clock skips ahead over it (a hole in the recording,
            # nothing allocated), so the timeline stays on the platform's clock.
            gap = parse_duration(params.get("discarded"))
            out = [Gap(gap)] if gap > 0 and self._decoder is not None else []
            if out:
                self._gaps.append((self._stream_seconds, gap))
                self._stream_seconds += gap
            if kind == "resumed":
                self.state = ACTIVE if self.state == PAUSED else self.state
                out.append(Resume())
            return out
        return []

    def receive_bytes(self, data: bytes) -> list:
        if self.state == FAILED:
            return []  # after a disconnect only the client's close is awaited
        not_ready = (f"Received audio in state {self.state.upper()}" if self.state != ACTIVE
                     else "Unexpected binary message: No media selected" if self._decoder is None else None)
        problem = check_frame(data, self.max_frame_bytes, self._decoder, not_ready)
        if problem:
            return self._fail("Client Error: " + AUDIOHOOK_FRAME_ERRORS[problem.code].format(
                size=len(data), limit=self.max_frame_bytes, why=problem.message))
        self._stream_seconds += len(data) / self._decoder.frame_bytes / RATE
        return [Audio(self._decoder(data))] if data else []

    def flush(self) -> list:
        return self._decoder.flush() if self._decoder is not None else []

    # -- the session's answers ---------------------------------------------------

    def _update(self, params: dict, position: float) -> list:
        language = params.get("language")
        if language is None:
            return []
        if not isinstance(language, str) or not LANGUAGE.match(language):
            return self._fail("Client Error: Invalid Message: update language is not a language code")
        self._languages.append((position, language))
        self.language = language
        # Genesys's reference restarts its detection here: the utterance in progress ends at the update.
        return [Split()] if self.start is not None and self.state == ACTIVE else []

    def started(self, call: dict) -> list:
        self.state = ACTIVE
        return [self._message("opened", self._pending_open)]

    def ended(self, audio_seconds: float) -> list:
        return [self._message("closed")] if self.state == CLOSING else []

    def rejected(self, code: str, message: str, close_code: int) -> list:
        self.start = None
        return self._fail(f"Server error: {code}: {message}")

    def on_event(self, event: dict) -> list:
        wanted = ("transcript.final", "transcript.partial") if self.partials else ("transcript.final",)
        if not self.transcripts or event["type"] not in wanted:
            return []
        if self.state not in (ACTIVE, PAUSED, CLOSING):
            return []
        channel = next((i for i, c in enumerate(self._channels) if ROLES[c] == event["speaker"]), 0)
        final = event["type"] == "transcript.final"
        language = self._language_at((event["start"] + event["end"]) / 2)
        interpretation = {"type": "display", "transcript": event["text"]}
        if final:
            interpretation["tokens"] = self._tokens(event.get("words") or [], language)
        data = {
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{event['call_id']}/{event['speaker']}/{event['start']}")),
            "channelId": channel, "isFinal": final,
            "offset": duration(event["start"]), "duration": duration(self._heard(event["start"], event["end"])),
            "alternatives": [{"confidence": event.get("confidence", 0.0) if final else 0.0, "languages": [language],
                              "interpretations": [interpretation]}],
        }
        return [self._message("event", {"entities": [{"type": "transcript", "data": data}]})]

    def _heard(self, start: float, end: float) -> float:
        """An utterance's length as heard: a discarded stretch inside it moved the call's clock, not the speech
        (Genesys's reference counts a final that spans a discard by its audio, as if the stretch were not there)."""
        inside = sum(max(0.0, min(end, at + gap) - max(start, at)) for at, gap in self._gaps)
        return max(0.0, end - start - inside)

    def _language_at(self, seconds: float) -> str:
        """The language in force at this point of the call: a final transcribed after an update may predate it."""
        return next((lang for position, lang in reversed(self._languages) if position <= seconds), self._opening_language)

    def _tokens(self, words: list[dict], language: str) -> list[dict]:
        """The final's aligned words as Connector tokens, each at its own millisecond (Genesys tells tokens by offset)."""
        tokens, last = [], -1
        for w in words:
            start_ms = max(round(w["start"] * 1000), last + 1)
            end_ms = max(round(w["end"] * 1000), start_ms)
            last = start_ms
            tokens.append({"type": "word", "value": w["word"], "confidence": w["confidence"],
                           "offset": duration(start_ms / 1000), "duration": duration((end_ms - start_ms) / 1000),
                           "language": language})
        return tokens

    # -- open --------------------------------------------------------------------

    def _open(self, params: dict) -> list:
        participant = params.get("participant")
        if not (isinstance(params.get("organizationId"), str) and UUID.match(params["organizationId"])
                and isinstance(params.get("conversationId"), str) and UUID.match(params["conversationId"])
                and isinstance(participant, dict) and isinstance(params.get("media"), list)):
            return self._fail("Client Error: Invalid Message: Invalid/missing parameters")
        if self.organization_id and params["organizationId"].lower() != self.organization_id.lower():
            return self._fail("organizationId does not match the Audiohook-Organization-Id header", "unauthorized")
        chosen = self._choose_media(params["media"])
        self._pending_open = {"media": [chosen] if chosen else [], "startPaused": False}
        if params.get("supportedLanguages") is True:
            self._pending_open["supportedLanguages"] = list(SUPPORTED_LANGUAGES)
        if isinstance(params.get("language"), str) and LANGUAGE.match(params["language"]):
            self.language = params["language"]
        self._opening_language = self.language
        if params["conversationId"] == NULL_UUID or chosen is None:
            # A connection probe, or nothing we can take: answer, but there is no call to record.
            self.state = ACTIVE
            return [self._message("opened", self._pending_open)]
        custom = params.get("customConfig") if isinstance(params.get("customConfig"), dict) else {}
        variables = params.get("inputVariables") if isinstance(params.get("inputVariables"), dict) else {}
        # The call's own agent (from the flow) before the integration's; none is fine: unassigned.
        agent_id = next((a for a in (variables.get("agent_id"), custom.get("agent_id"))
                         if isinstance(a, str) and CALL_ID.match(a)), None)
        self.transcripts = custom.get("transcripts") is True
        self.partials = custom.get("partials") is True
        self._channels = list(chosen["channels"])
        roles = tuple(ROLES[c] for c in self._channels)
        encoding = FORMATS[chosen["format"]]
        self._decoder = StreamDecoder(encoding, RATE, roles)
        metadata = {k: v for k, v in custom.items() if k not in ("agent_id", "transcripts", "partials")}
        metadata["audiohook"] = {"organizationId": params["organizationId"], "conversationId": params["conversationId"],
                                 "participantId": participant.get("id"), "sessionId": self.session_id}
        if isinstance(params.get("language"), str):
            metadata["language"] = params["language"]
        if variables:
            metadata["inputVariables"] = {k: v for k, v in variables.items() if k != "agent_id"}
        self.start = Start(params["conversationId"], agent_id, "audiohook", encoding, RATE, len(roles), roles, False, wire_safe(metadata))
        return [self.start]

    @staticmethod
    def _choose_media(offers: list) -> dict | None:
        """Both speakers if offered, else one; PCMU or L16 at 8 kHz. The first acceptable offer of the best kind."""
        good = [m for m in offers if isinstance(m, dict) and m.get("type") == "audio"
                and isinstance(m.get("format"), str) and m["format"] in FORMATS
                and m.get("rate") == RATE and not isinstance(m.get("rate"), bool)
                and isinstance(m.get("channels"), list) and 1 <= len(m["channels"]) <= 2
                and all(isinstance(c, str) and c in ROLES for c in m["channels"]) and len(set(m["channels"])) == len(m["channels"])]
        good.sort(key=lambda m: -len(m["channels"]))
        return dict(good[0]) if good else None
