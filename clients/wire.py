"""What a softphone or PBX sends, per protocol, as pure message builders (the simulator does the I/O).

Each wire turns "start a call", "here are 20 ms of both speakers" and "hang up" into
that protocol's messages: native Calmline, Twilio Media Streams, Genesys AudioHook v2,
and jambonz listen.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
import uuid

import numpy as np

from models.codecs import encode

PROTOCOLS = ("native", "twilio", "audiohook", "jambonz")


def interleave(encoding: str, tracks: list[np.ndarray]) -> bytes:
    """One frame of every channel, sample by sample, in the wire encoding."""
    return encode(encoding, np.stack(tracks, axis=1).reshape(-1))


class NativeWire:
    path = "/v1/stream"
    subprotocols: list[str] = []
    expects_start_reply = True

    def __init__(self, key: str, encoding: str = "pcm16", rate: int = 8000, **_):
        self.key, self.encoding, self.rate = key, encoding, rate

    def headers(self, host: str) -> dict:
        return {"Authorization": f"Bearer {self.key}"}

    def opening(self, call_id: str, agent: str, roles: list[str], metadata: dict) -> list:
        return [json.dumps({"type": "start", "call_id": call_id, "agent_id": agent, "encoding": self.encoding,
                            "sample_rate": self.rate, "channels": len(roles), "roles": roles, "metadata": metadata})]

    def is_open_reply(self, message) -> bool:
        return json.loads(message).get("type") == "started"

    def frame(self, tracks: list[np.ndarray]) -> list:
        return [interleave(self.encoding, tracks)]

    def closing(self) -> list:
        return [json.dumps({"type": "stop"})]


class TwilioWire:
    """Both tracks of a <Start><Stream track="both_tracks">: inbound is the caller, outbound the agent."""

    path = "/v1/twilio"
    subprotocols: list[str] = []
    expects_start_reply = False
    rate = 8000
    encoding = "mulaw"

    def __init__(self, key: str, **_):
        self.key = key
        self.stream_sid = "MZ" + secrets.token_hex(16)
        self.call_sid = None
        self.seq = 0
        self.sent_ms = 0
        self.tracks: list[str] = []

    def headers(self, host: str) -> dict:
        return {}

    def _next(self) -> str:
        self.seq += 1
        return str(self.seq)

    def opening(self, call_id: str, agent: str, roles: list[str], metadata: dict) -> list:
        self.call_sid = call_id
        self.tracks = ["inbound", "outbound"][: len(roles)]
        params = {"agent_id": agent, "token": self.key, **{k: str(v) for k, v in metadata.items()}}
        start = {"event": "start", "sequenceNumber": self._next(), "streamSid": self.stream_sid,
                 "start": {"accountSid": "AC" + "0" * 32, "streamSid": self.stream_sid, "callSid": call_id,
                           "tracks": self.tracks, "customParameters": params,
                           "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}}
        return [json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}), json.dumps(start)]

    def frame(self, tracks: list[np.ndarray]) -> list:
        out = []
        for name, samples in zip(self.tracks, tracks):
            out.append(json.dumps({"event": "media", "sequenceNumber": self._next(), "streamSid": self.stream_sid,
                                   "media": {"track": name, "chunk": str(self.seq), "timestamp": str(self.sent_ms),
                                             "payload": base64.b64encode(encode("mulaw", samples)).decode()}}))
        self.sent_ms += len(tracks[0]) * 1000 // 8000
        return out

    def closing(self) -> list:
        return [json.dumps({"event": "stop", "sequenceNumber": self._next(), "streamSid": self.stream_sid,
                            "stop": {"accountSid": "AC" + "0" * 32, "callSid": self.call_sid}})]


class AudioHookWire:
    """A Genesys AudioHook v2 client: external (caller) and internal (agent) in one stereo PCMU stream."""

    path = "/v1/audiohook"
    subprotocols: list[str] = []
    expects_start_reply = True
    rate = 8000

    def __init__(self, key: str, secret: str | None = None, transcripts: bool = False, encoding: str = "mulaw", **_):
        self.key, self.secret, self.transcripts = key, secret, transcripts
        self.encoding = "pcm16" if encoding == "pcm16" else "mulaw"
        self.session_id = str(uuid.uuid4())
        self.org_id = str(uuid.uuid4())
        self.seq = 0
        self.server_seq = 0
        self.samples = 0

    def headers(self, host: str) -> dict:
        from service.ingest import http_signature

        headers = {"Audiohook-Organization-Id": self.org_id, "Audiohook-Session-Id": self.session_id,
                   "Audiohook-Correlation-Id": str(uuid.uuid4()), "X-API-KEY": self.key}
        if self.secret:
            created = int(time.time())
            components = ["@request-target", "@authority", "audiohook-organization-id", "audiohook-session-id",
                          "audiohook-correlation-id", "x-api-key"]
            inner = ("(" + " ".join(f'"{c}"' for c in components) + f');keyid="{self.key}";'
                     f'nonce="{base64.b64encode(secrets.token_bytes(18)).decode()}";alg="hmac-sha256";'
                     f"created={created};expires={created + 30}")
            values = {"@request-target": self.path, "@authority": host,
                      **{k.lower(): v for k, v in headers.items()}}
            base = http_signature.signature_base(components, values, inner)
            headers["Signature-Input"] = f"sig1={inner}"
            headers["Signature"] = f"sig1=:{http_signature.sign(base, self.secret)}:"
        return headers

    def message(self, type_: str, parameters: dict) -> str:
        self.seq += 1
        return json.dumps({"version": "2", "id": self.session_id, "type": type_, "seq": self.seq,
                           "serverseq": self.server_seq, "position": f"PT{self.samples / self.rate:g}S",
                           "parameters": parameters})

    def opening(self, call_id: str, agent: str, roles: list[str], metadata: dict) -> list:
        channels = ["external", "internal"][: len(roles)]
        fmt = "L16" if self.encoding == "pcm16" else "PCMU"
        return [self.message("open", {
            "organizationId": self.org_id, "conversationId": call_id,
            "participant": {"id": str(uuid.uuid4()), "ani": "+15550100", "aniName": "Caller", "dnis": "+15550199"},
            "media": [{"type": "audio", "format": fmt, "channels": channels, "rate": 8000}],
            "language": "en-US", "customConfig": {"agent_id": agent, "transcripts": self.transcripts, **metadata}})]

    def is_open_reply(self, message) -> bool:
        msg = json.loads(message)
        self.server_seq = msg.get("seq", self.server_seq)
        return msg.get("type") == "opened"

    def frame(self, tracks: list[np.ndarray]) -> list:
        self.samples += len(tracks[0])
        return [interleave(self.encoding, tracks)]

    def closing(self) -> list:
        return [self.message("close", {"reason": "end"})]


class JambonzWire:
    """jambonz listen with mixType stereo: caller left, agent right, L16; the verb's metadata carries agent_id."""

    path = "/v1/jambonz"
    subprotocols = ["audio.jambonz.org"]
    expects_start_reply = False
    encoding = "pcm16"

    def __init__(self, key: str, rate: int = 8000, **_):
        self.key, self.rate = key, rate

    def headers(self, host: str) -> dict:
        return {"Authorization": "Basic " + base64.b64encode(f"jambonz:{self.key}".encode()).decode()}

    def opening(self, call_id: str, agent: str, roles: list[str], metadata: dict) -> list:
        return [json.dumps({"sampleRate": self.rate, "mixType": "stereo" if len(roles) == 2 else "mono",
                            "callSid": call_id, "direction": "inbound", "from": "+15550100", "to": "+15550199",
                            "agent_id": agent, **metadata})]

    def frame(self, tracks: list[np.ndarray]) -> list:
        return [interleave("pcm16", tracks)]

    def closing(self) -> list:
        return []  # mod_audio_fork ends by closing the socket


def wire_for(protocol: str, key: str, **options):
    return {"native": NativeWire, "twilio": TwilioWire, "audiohook": AudioHookWire, "jambonz": JambonzWire}[protocol](key, **options)
