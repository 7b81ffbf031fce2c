"""jambonz ``listen`` and FreeSWITCH mod_audio_fork on ``WS /v1/jambonz``, sans I/O.

The first frame is JSON metadata (``callSid``, ``sampleRate``, ``mixType``, and the
verb's custom metadata with ``agent_id``, which jambonz merges into the top level);
then binary L16 little-endian. The stream ends when the socket closes. With
``mixType: stereo`` the left channel is the caller and the right the agent; ``mono``
and ``mixed`` carry one channel, taken as the caller.
"""

from __future__ import annotations

from service.call_actions import Audio, Dtmf, Start
from service.ingest.decoder import StreamDecoder
from service.ingest.protocol import (CALL_ID, DTMF_DIGITS, POLICY, TOO_BIG, UNSUPPORTED, Adapter, check_frame, fail,
                                     frame_size, load_json, optional_agent, wire_safe)

SUBPROTOCOLS = ("audio.jambonz.org", "audio.drachtio.org")
RATES = (8000, 16000, 24000, 32000, 48000, 64000)
CALL_FIELDS = {"sampleRate", "mixType", "callSid", "direction", "from", "to", "callId", "sipStatus", "sipReason",
               "callStatus", "callerId", "accountSid", "traceId", "applicationSid", "fsSipAddress", "parentCallSid",
               "originatingSipIp", "originatingSipTrunkName", "duration", "customerData", "apiBaseUrl", "fsPublicIp",
               "metadata"}


class JambonzProtocol(Adapter):
    def __init__(self, max_frame_bytes: int = 65536, subprotocol: str | None = None):
        self.max_frame_bytes = max_frame_bytes
        self.subprotocol = subprotocol
        self.start: Start | None = None
        self._decoder: StreamDecoder | None = None

    def receive_text(self, text: str) -> list:
        if frame_size(text) > self.max_frame_bytes:
            return fail("frame_too_large", f"text frame over {self.max_frame_bytes} bytes", TOO_BIG)
        msg = load_json(text)
        if self.start is None:
            if not isinstance(msg, dict):
                return fail("bad_start", "the first frame must be the JSON call metadata", POLICY)
            return self._open(msg)
        if isinstance(msg, dict) and msg.get("event") == "dtmf" and str(msg.get("dtmf", "")) in DTMF_DIGITS:
            return [Dtmf(str(msg["dtmf"]))]
        return []  # later text frames (playDone...) carry nothing the call needs

    def receive_bytes(self, data: bytes) -> list:
        problem = check_frame(data, self.max_frame_bytes, self._decoder, None if self.start else "audio before the JSON call metadata")
        if problem:
            return fail(*problem)
        return [Audio(self._decoder(data))] if data else []

    def flush(self) -> list:
        return self._decoder.flush() if self._decoder is not None else []

    def _open(self, msg: dict) -> list:
        # jambonz merges the verb's metadata into the top level; a nested "metadata" object is accepted too.
        custom = {k: v for k, v in msg.items() if k not in CALL_FIELDS}
        if isinstance(msg.get("metadata"), dict):
            custom.update(msg["metadata"])
        agent_id = optional_agent(custom.get("agent_id"))
        call_id = msg.get("callSid") or msg.get("call_sid") or msg.get("uuid")
        if agent_id is False:
            return fail("bad_start", "metadata.agent_id is malformed", POLICY)
        if not isinstance(call_id, str) or not CALL_ID.match(call_id):
            return fail("bad_start", "callSid is missing or malformed", POLICY)
        rate = msg.get("sampleRate", 8000)
        if rate not in RATES or isinstance(rate, bool):
            return fail("unsupported_rate", f"sampleRate must be one of {', '.join(map(str, RATES))}", UNSUPPORTED)
        mix = msg.get("mixType", "mono")
        if mix not in ("mono", "mixed", "stereo"):
            return fail("unsupported_media", "mixType must be mono, mixed or stereo", UNSUPPORTED)
        roles = ("caller", "agent") if mix == "stereo" else ("caller",)
        metadata = {k: v for k, v in custom.items() if k != "agent_id"}
        metadata["jambonz"] = {k: msg.get(k) for k in ("callSid", "from", "to", "direction", "callId", "accountSid")
                               if msg.get(k) is not None}
        self.start = Start(call_id, agent_id, "jambonz", "pcm16", rate, len(roles), roles, False, wire_safe(metadata))
        self._decoder = StreamDecoder("pcm16", rate, roles)
        return [self.start]
