"""Genesys AudioHook v2, message by message (no socket), and the HTTP message signature."""

import json
import re
import uuid

import numpy as np
import pytest

from models.codecs import encode
from service.ingest.audiohook import AudioHookProtocol
from service.ingest.audiohook import duration
from service.call_actions import Audio, Gap, Pause, Resume, Split, Start, Stop
from service.ingest.protocol import Send
from service.ingest import http_signature
from service.ingest.nonces import NonceCache, NonceCacheFull

SESSION = str(uuid.uuid4())
ORG = str(uuid.uuid4())
CONV = str(uuid.uuid4())


class Client:
    """Builds client messages with the envelope AudioHook requires and keeps its own sequence."""

    def __init__(self, protocol):
        self.p = protocol
        self.seq = 0
        self.server_seq = 0

    def send(self, type_, parameters=None, seq=None, position="PT0S"):
        self.seq = self.seq + 1 if seq is None else seq
        actions = self.p.receive_text(json.dumps({"version": "2", "id": SESSION, "type": type_, "seq": self.seq,
                                                  "serverseq": self.server_seq, "position": position,
                                                  "parameters": parameters or {}}))
        return [self.leave(a) for a in actions]

    def leave(self, action):
        if isinstance(action, Send):
            self.p.outgoing(action.message)  # as the driver stamps it on the way out
            self.server_seq = action.message["seq"]
        return action


def open_params(media=None, custom=None, **extra):
    return {"organizationId": ORG, "conversationId": CONV,
            "participant": {"id": str(uuid.uuid4()), "ani": "+1555", "aniName": "A", "dnis": "+1800"},
            "media": media or [{"type": "audio", "format": "PCMU", "channels": ["external", "internal"], "rate": 8000},
                               {"type": "audio", "format": "PCMU", "channels": ["external"], "rate": 8000}],
            "language": "en-US", "customConfig": {"agent_id": "a-1", "transcripts": True} if custom is None else custom,
            **extra}


def messages(actions, type_=None):
    return [a.message for a in actions if isinstance(a, Send) and (type_ is None or a.message["type"] == type_)]


def opened(custom=None, media=None, **extra):
    p = AudioHookProtocol(session_id=SESSION, organization_id=ORG)
    c = Client(p)
    [start] = c.send("open", open_params(media, custom, **extra))
    assert isinstance(start, Start)
    [reply] = [c.leave(a) for a in p.started({"audio_seconds": 0})]
    return p, c, start, reply.message


def disconnect_info(actions):
    [d] = messages(actions, "disconnect")
    assert d["parameters"]["reason"] in ("error", "unauthorized")
    return d["parameters"]["info"]


def test_open_negotiates_stereo_and_numbers_messages():
    p, c, start, reply = opened()
    assert start.call_id == CONV and start.agent_id == "a-1" and start.roles == ("caller", "agent")
    assert start.encoding == "mulaw" and start.source == "audiohook"
    assert reply["type"] == "opened" and reply["seq"] == 1 and reply["clientseq"] == 1 and reply["id"] == SESSION
    assert reply["parameters"]["media"] == [{"type": "audio", "format": "PCMU", "channels": ["external", "internal"], "rate": 8000}]
    [pong] = c.send("ping", {"rtt": "PT0.01S"})
    assert pong.message["type"] == "pong" and pong.message["seq"] == 2 and pong.message["clientseq"] == 2


def test_audio_channels_follow_the_negotiated_order():
    p, c, start, _ = opened(media=[{"type": "audio", "format": "L16", "channels": ["internal", "external"], "rate": 8000}])
    assert start.roles == ("agent", "caller") and start.encoding == "pcm16"
    frame = encode("pcm16", np.stack([np.full(1600, 8000, np.int16), np.zeros(1600, np.int16)], 1).reshape(-1))
    [audio] = p.receive_bytes(frame)
    assert np.abs(audio.frames["agent"]).max() > 0.1 and np.abs(audio.frames["caller"]).max() < 0.01


def test_pause_resume_and_discarded_keep_the_timeline():
    p, c, _, _ = opened()
    assert c.send("paused") == [Pause()]
    out = c.send("resumed", {"start": "PT8S", "discarded": "PT2S"})
    assert out == [Gap(2.0), Resume()]  # the clock skips ahead: no samples are made for the gap
    out = c.send("discarded", {"start": "PT9S", "discarded": "PT0.5S"})
    assert out == [Gap(0.5)]
    assert c.send("discarded", {"start": "PT10S", "discarded": "PT7200S"}) == [Gap(7200.0)]  # capped by the session


def test_close_ends_the_call_and_closed_follows():
    p, c, _, _ = opened()
    assert c.send("close", {"reason": "end"}) == [Stop()]
    [closed] = [c.leave(a) for a in p.ended(12.0)]
    assert closed.message["type"] == "closed" and closed.message["clientseq"] == 2


FINAL = {"type": "transcript.final", "call_id": CONV, "speaker": "agent", "text": "Thank you.", "start": 1.25,
         "end": 3.35, "t": 3.35, "seq": 9, "confidence": 0.873,
         "words": [{"word": "Thank", "start": 1.25, "end": 1.6, "confidence": 0.91},
                   {"word": "you.", "start": 1.6, "end": 3.35, "confidence": 0.836}]}


def test_transcripts_go_back_in_the_connector_shape():
    p, c, _, _ = opened()
    [event] = p.on_event(FINAL)
    entity = event.message["parameters"]["entities"][0]
    assert event.message["type"] == "event" and entity["type"] == "transcript"
    data = entity["data"]
    assert data["channelId"] == 1 and data["isFinal"] is True and data["offset"] == "PT1.25S" and data["duration"] == "PT2.1S"
    uuid.UUID(data["id"])
    [alternative] = data["alternatives"]
    assert alternative["confidence"] == 0.873 and alternative["languages"] == ["en-US"]
    assert alternative["interpretations"] == [{"type": "display", "transcript": "Thank you.", "tokens": [
        {"type": "word", "value": "Thank", "confidence": 0.91, "offset": "PT1.25S", "duration": "PT0.35S", "language": "en-US"},
        {"type": "word", "value": "you.", "confidence": 0.836, "offset": "PT1.6S", "duration": "PT1.75S", "language": "en-US"}]}]
    # The caller's channel is where it was negotiated.
    [event] = p.on_event({**FINAL, "speaker": "caller"})
    assert event.message["parameters"]["entities"][0]["data"]["channelId"] == 0
    quiet, _, _, _ = opened(custom={"agent_id": "a-1"})
    assert quiet.on_event(FINAL) == []


def test_finals_only_unless_partials_are_asked_for():
    partial = {"type": "transcript.partial", "call_id": CONV, "speaker": "caller", "text": "I want", "start": 0.5,
               "end": 1.5, "t": 1.5, "seq": 3}
    p, _, _, _ = opened()
    assert p.on_event(partial) == [] and p.on_event({**FINAL, "type": "sentiment"}) == []
    p, _, _, _ = opened(custom={"transcripts": True, "partials": True})
    [event] = p.on_event(partial)
    data = event.message["parameters"]["entities"][0]["data"]
    assert data["isFinal"] is False and data["channelId"] == 0
    assert data["alternatives"][0]["interpretations"][0]["transcript"] == "I want"
    assert len(p.on_event(FINAL)) == 1


def test_token_offsets_are_distinct_milliseconds():
    # Genesys tells tokens apart by offset: two words the aligner put at one instant still get their own.
    words = [{"word": w, "start": 2.0, "end": 2.0, "confidence": 0.5} for w in ("a", "b", "c")]
    p, _, _, _ = opened()
    [event] = p.on_event({**FINAL, "words": words})
    tokens = event.message["parameters"]["entities"][0]["data"]["alternatives"][0]["interpretations"][0]["tokens"]
    assert [t["offset"] for t in tokens] == ["PT2S", "PT2.001S", "PT2.002S"]


@pytest.mark.parametrize("seconds, text", [(0, "PT0S"), (0.1, "PT0.1S"), (1.25, "PT1.25S"), (1234.567, "PT1234.567S"),
                                           (98765.4321, "PT98765.432S"), (7200.0004, "PT7200S"), (-0.01, "PT0S")])
def test_durations_keep_milliseconds_however_long_the_call(seconds, text):
    assert duration(seconds) == text


def test_long_call_offsets_keep_milliseconds():
    p, _, _, _ = opened()
    [event] = p.on_event({**FINAL, "start": 4321.234, "end": 4323.5, "words": [
        {"word": "late", "start": 4321.234, "end": 4321.9, "confidence": 0.9}]})
    data = event.message["parameters"]["entities"][0]["data"]
    assert data["offset"] == "PT4321.234S" and data["duration"] == "PT2.266S"
    token = data["alternatives"][0]["interpretations"][0]["tokens"][0]
    assert token["offset"] == "PT4321.234S" and token["duration"] == "PT0.666S"


def test_supported_languages_only_when_asked():
    _, _, _, reply = opened(supportedLanguages=True)
    languages = reply["parameters"]["supportedLanguages"]
    assert "en-US" in languages and all(re.match(r"^[a-z]{2,3}-[A-Za-z]{2,3}$", code) for code in languages)
    _, _, _, reply = opened()
    assert "supportedLanguages" not in reply["parameters"]
    # A probe (null conversation) asking for them gets them too.
    c = Client(AudioHookProtocol(session_id=SESSION))
    [reply] = messages(c.send("open", {**open_params(supportedLanguages=True), "conversationId": "00000000-0000-0000-0000-000000000000"}))
    assert reply["parameters"]["supportedLanguages"] == languages


def test_update_changes_the_language_and_closes_the_utterance_there():
    p, c, _, _ = opened()
    assert c.send("update", {"language": "en-GB"}, position="PT3S") == [Split()]
    [event] = p.on_event({**FINAL, "start": 3.1, "end": 4.0})
    data = event.message["parameters"]["entities"][0]["data"]
    assert data["alternatives"][0]["languages"] == ["en-GB"]
    assert {t["language"] for t in data["alternatives"][0]["interpretations"][0]["tokens"]} == {"en-GB"}
    # A final of speech before the update, transcribed after it, keeps the language it was spoken in.
    [event] = p.on_event(FINAL)
    assert event.message["parameters"]["entities"][0]["data"]["alternatives"][0]["languages"] == ["en-US"]
    assert c.send("update", {}) == []  # nothing to change
    assert c.send("paused") == [Pause()]
    assert c.send("update", {"language": "en-US"}) == []  # paused: nothing is being heard
    assert "language" in disconnect_info(c.send("update", {"language": "English please"}))


def test_update_before_open_is_ignored():
    c = Client(AudioHookProtocol(session_id=SESSION))
    assert c.send("update", {"language": "en-GB"}) == []


def test_unsupported_media_offer_gets_opened_with_no_media():
    p = AudioHookProtocol(session_id=SESSION)
    c = Client(p)
    out = c.send("open", open_params(media=[{"type": "audio", "format": "opus", "channels": ["external"], "rate": 48000}]))
    [reply] = messages(out)
    assert reply["type"] == "opened" and reply["parameters"]["media"] == []
    assert not [a for a in out if isinstance(a, Start)]
    assert "No media selected" in disconnect_info(p.receive_bytes(b"\x00" * 160))


@pytest.mark.parametrize("before_open, info", [
    (lambda c: c.send("paused"), "before open"),
    (lambda c: c.p.receive_bytes(b"\xff" * 320), "Received audio in state AWAIT_OPEN"),
])
def test_messages_before_open(before_open, info):
    c = Client(AudioHookProtocol(session_id=SESSION))
    assert info in disconnect_info(before_open(c))


def test_ping_and_close_before_open_are_answered():
    c = Client(AudioHookProtocol(session_id=SESSION))
    assert messages(c.send("ping")) [0]["type"] == "pong"
    assert messages(c.send("close", {"reason": "end"}))[0]["type"] == "closed"


def test_out_of_order_sequence_number():
    p, c, _, _ = opened()
    out = c.send("ping", seq=5)
    assert "Invalid seq value" in disconnect_info(out)
    assert Stop("error", disconnect_info(out)) in out or any(isinstance(a, Stop) for a in out)
    # After a disconnect only the client's close is answered.
    assert c.send("ping", seq=6) == []
    assert messages(c.send("close", {"reason": "disconnect"}, seq=7))[0]["type"] == "closed"


@pytest.mark.parametrize("raw, info", [
    ("x" * 70000, "too large"),
    ("{not json", "not valid JSON"),
    (json.dumps({"version": "1", "id": SESSION, "type": "open", "seq": 1, "serverseq": 0, "position": "PT0S", "parameters": {}}),
     "well-formed"),
    (json.dumps({"version": "2", "id": str(uuid.uuid4()), "type": "ping", "seq": 1, "serverseq": 0, "position": "PT0S",
                 "parameters": {}}), "Session identifier mismatch"),
    (json.dumps({"version": "2", "id": SESSION, "type": "dance", "seq": 1, "serverseq": 0, "position": "PT0S",
                 "parameters": {}}), "not a supported client message"),
])
def test_malformed_messages(raw, info):
    assert info in disconnect_info(AudioHookProtocol(session_id=SESSION).receive_text(raw))


def test_oversized_and_ragged_audio_frames():
    p, c, _, _ = opened()
    assert "too large" in disconnect_info(p.receive_bytes(b"\xff" * 70000))
    p, c, _, _ = opened()
    assert "not a valid audio frame" in disconnect_info(p.receive_bytes(b"\xff" * 3))  # stereo PCMU: 2-byte frames


def test_organization_must_match_the_header():
    p = AudioHookProtocol(session_id=SESSION, organization_id=str(uuid.uuid4()))
    out = Client(p).send("open", open_params())
    assert messages(out, "disconnect")[0]["parameters"]["reason"] == "unauthorized"


def test_agent_from_input_variables_then_custom_config_else_unassigned():
    _, _, start, _ = opened(inputVariables={"agent_id": "a-flow", "queue": "billing"})
    assert start.agent_id == "a-flow" and start.metadata["inputVariables"] == {"queue": "billing"}
    _, _, start, _ = opened(custom={"agent_id": "a-int"}, inputVariables={"queue": "billing"})
    assert start.agent_id == "a-int"
    for custom, variables in [({}, {}), ({"transcripts": True}, {"agent_id": ""}), ({"agent_id": "bad id!"}, {"agent_id": 7})]:
        p, c, start, reply = opened(custom=custom, inputVariables=variables)
        assert start.agent_id is None and reply["type"] == "opened" and reply["parameters"]["media"]
        assert start.metadata["audiohook"]["conversationId"] == CONV
    # An unassigned call streams and closes like any other.
    frame = encode("mulaw", np.zeros(160, dtype=np.int16))
    [audio] = p.receive_bytes(bytes(b for pair in zip(frame, frame) for b in pair))
    assert set(audio.frames) == {"caller", "agent"}
    assert c.send("close", {"reason": "end"}) == [Stop()]


def test_closed_after_a_disconnect_carries_the_latest_clientseq():
    p, c, _, _ = opened()
    assert "Invalid seq value" in disconnect_info(c.send("ping", seq=5))
    c.send("ping", seq=6)
    c.send("error", {"code": 500, "message": "client trouble"}, seq=7)
    [closed] = messages(c.send("close", {"reason": "disconnect"}, seq=8))
    assert closed["type"] == "closed" and closed["clientseq"] == 8 and closed["seq"] == c.server_seq
    # A normal close: closed acknowledges the close itself.
    p, c, _, _ = opened()
    c.send("ping")
    c.send("update", {"language": "en-US"})
    assert c.send("close", {"reason": "end"}) == [Stop()]
    [closed] = [c.leave(a) for a in p.ended(3.0)]
    assert closed.message["clientseq"] == 4


def test_signature_reference_vector():
    """The test vector of the AudioHook reference implementation."""
    inner = ('("@request-target" "@authority" "audiohook-organization-id" "audiohook-session-id" '
             '"audiohook-correlation-id" "x-api-key");keyid="SGVsbG8sIEkgYW0gdGhlIEFQSSBrZXkh";'
             'nonce="VGhpc0lzQVVuaXF1ZU5vbmNl";alg="hmac-sha256";created=1641013200;expires=3282026430')
    headers = {"audiohook-organization-id": "d7934305-0972-4844-938e-9060eef73d05",
               "audiohook-session-id": "30b0e395-84d3-4570-ac13-9a62d8f514c0",
               "audiohook-correlation-id": "e160e428-53e2-487c-977d-96989bf5c99d",
               "x-api-key": "SGVsbG8sIEkgYW0gdGhlIEFQSSBrZXkh", "signature-input": f"sig1={inner}",
               "signature": "sig1=:NZBwyBHRRyRoeLqy1IzOa9VYBuI8TgMFt2GRDkDuJh4=:"}
    secret = "TXlTdXBlclNlY3JldEtleVRlbGxOby0xITJAMyM0JDU="
    signed = http_signature.verify("/api/v1/voicebiometrics/ws", "audiohook.example.com", headers, secret, now=1641013201)
    assert signed == ("VGhpc0lzQVVuaXF1ZU5vbmNl", 1641013200)  # what the replay check keeps
    with pytest.raises(http_signature.SignatureError, match="does not match"):
        http_signature.verify("/api/v1/other", "audiohook.example.com", headers, secret, now=1641013201)
    with pytest.raises(http_signature.SignatureError, match="not current"):
        http_signature.verify("/api/v1/voicebiometrics/ws", "audiohook.example.com", headers, secret, now=1641013300)
    with pytest.raises(http_signature.SignatureError, match="does not match"):
        http_signature.verify("/api/v1/voicebiometrics/ws", "audiohook.example.com", headers,
                              "b3RoZXItc2VjcmV0LXRoYXQtaXMtd3Jvbmc=", now=1641013201)
    with pytest.raises(http_signature.SignatureError, match="missing"):
        http_signature.verify("/x", "h", {"x-api-key": "k"}, secret, now=0)


def test_a_nonce_is_refused_until_its_signature_could_no_longer_pass():
    cache = NonceCache()
    assert not cache.seen_before("n1", created=1000, now=1000)
    assert cache.seen_before("n1", created=1000, now=1001)  # the replay
    assert not cache.seen_before("n2", created=1000, now=1001)  # another nonce
    last = 1000 + http_signature.MAX_AGE + http_signature.SKEW  # verify's last accepting second for created=1000
    assert cache.seen_before("n1", created=1000, now=last)
    assert not cache.seen_before("n1", created=last + 1, now=last + 1)  # forgotten once nothing could pass with it
    assert len(cache) == 1  # n2 went with it


def test_the_nonce_cache_stays_within_its_bound():
    cache = NonceCache(limit=3)
    for i in range(3):
        assert not cache.seen_before(f"n{i}", created=1000, now=1000)
    with pytest.raises(NonceCacheFull):
        cache.seen_before("n3", created=1000, now=1001)  # full of current nonces: refused, not grown
    assert len(cache) == 3 and cache.seen_before("n0", created=1000, now=1001)
    assert not cache.seen_before("n3", created=1020, now=1020)  # the expired ones go first
    assert len(cache) == 1


def test_a_discard_inside_an_utterance_does_not_lengthen_it():
    # 2 s of stereo audio heard, then 0.5 s discarded mid-utterance, then 1 s more: the final spans
    # 1.0-3.5 on the call's clock, of which 0.5 s was never heard (Genesys's "Discard During Utterance").
    p, c, _, _ = opened()
    frame = bytes(8000 * 2 * 2)  # 2 s of stereo PCMU
    assert isinstance(p.receive_bytes(frame)[0], Audio)
    assert c.send("discarded", {"start": "PT2S", "discarded": "PT0.5S"}) == [Gap(0.5)]
    p.receive_bytes(bytes(8000 * 2))
    [event] = p.on_event({**FINAL, "start": 1.0, "end": 3.5, "words": []})
    data = event.message["parameters"]["entities"][0]["data"]
    assert data["offset"] == "PT1S" and data["duration"] == "PT2S"
    # An utterance wholly after the discard keeps its length; the discard only moved it on the clock.
    [later] = p.on_event({**FINAL, "start": 3.5, "end": 4.0, "words": []})
    assert later.message["parameters"]["entities"][0]["data"]["duration"] == "PT0.5S"
