"""Twilio Media Streams, message by message (no socket), its signature and its per-call stream tickets."""

import base64
import json

import numpy as np
import pytest

from models.codecs import encode
from service.call_actions import Dtmf, Gap, Start, Stop, Suspend
from service.ingest.protocol import Close
from service.ingest.twilio import TwilioProtocol
from service.ingest.twilio_signature import candidate_urls, signature, valid
from service.ingest.twilio_ticket import SKEW, check, mint, stream_url

SID = "MZ" + "1" * 32


CALL = "CA" + "2" * 32


def start(seq="1", tracks=("inbound", "outbound"), fmt=None, params=None, call_sid=CALL):
    return json.dumps({"event": "start", "sequenceNumber": seq, "streamSid": SID, "start": {
        "accountSid": "AC" + "0" * 32, "streamSid": SID, "callSid": call_sid, "tracks": list(tracks),
        "mediaFormat": fmt or {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        "customParameters": {"agent_id": "a-1", "queue": "billing"} if params is None else params}})


def media(seq, track, ms, samples=160, value=1000):
    payload = base64.b64encode(encode("mulaw", np.full(samples, value, dtype=np.int16))).decode()
    return json.dumps({"event": "media", "sequenceNumber": str(seq), "streamSid": SID,
                       "media": {"track": track, "chunk": str(seq), "timestamp": str(ms), "payload": payload}})


def codes(actions):
    return [(a.code, a.reason.split(":")[0]) for a in actions if isinstance(a, Close)]


def test_normal_sequence():
    p = TwilioProtocol()
    assert p.receive_text(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"})) == []
    [s] = p.receive_text(start())
    assert isinstance(s, Start) and s.call_id == "CA" + "2" * 32 and s.agent_id == "a-1"
    assert s.roles == ("caller", "agent") and s.encoding == "mulaw" and s.source == "twilio"
    assert s.metadata["queue"] == "billing" and s.metadata["twilio"]["streamSid"] == SID
    assert s.continues  # a new stream for the same callSid (Twilio's pause) continues the call
    [a] = p.receive_text(media(2, "inbound", 0))
    [b] = p.receive_text(media(3, "outbound", 0))
    assert list(a.frames) == ["caller"] and list(b.frames) == ["agent"]
    assert p.receive_text(json.dumps({"event": "dtmf", "sequenceNumber": "4", "streamSid": SID,
                                      "dtmf": {"track": "inbound_track", "digit": "7"}})) == [Dtmf("7")]
    assert p.receive_text(json.dumps({"event": "mark", "sequenceNumber": "5", "streamSid": SID, "mark": {"name": "m"}})) == []
    # A hang-up sends stop: the call ends there, and its summary goes out at once.
    assert p.receive_text(json.dumps({"event": "stop", "sequenceNumber": "6", "streamSid": SID,
                                      "stop": {"accountSid": "AC", "callSid": "CA"}})) == [Stop()]
    [close] = p.ended(3.0)
    assert close.code == 1000


def test_a_start_without_an_agent_is_an_unassigned_call():
    [s] = TwilioProtocol().receive_text(start(params={"queue": "billing"}))
    assert isinstance(s, Start) and s.agent_id is None and s.metadata["queue"] == "billing"


def test_with_pauses_a_stop_detaches_the_call_for_a_new_stream():
    p = TwilioProtocol(pause=True)
    p.receive_text(start())
    assert p.receive_text(json.dumps({"event": "stop", "sequenceNumber": "2", "streamSid": SID,
                                      "stop": {"accountSid": "AC", "callSid": "CA"}})) == [Suspend()]


def test_a_start_that_names_no_format_or_tracks_gets_twilios_format_and_both_tracks():
    p = TwilioProtocol()
    [s] = p.receive_text(json.dumps({"event": "start", "sequenceNumber": "1", "streamSid": SID, "start": {
        "callSid": CALL, "streamSid": SID, "customParameters": {"agent_id": "a-1"}}}))
    assert isinstance(s, Start) and (s.encoding, s.sample_rate, s.channels) == ("mulaw", 8000, 2)
    assert s.roles == ("caller", "agent")
    [a] = p.receive_text(media(2, "outbound", 0))
    assert list(a.frames) == ["agent"]
    # Named, the tracks are taken as said: an inbound-only fork has the caller alone.
    q = TwilioProtocol()
    [s] = q.receive_text(start(tracks=("inbound",)))
    assert s.roles == ("caller",)


def test_audio_is_16k_and_gaps_in_a_track_skip_the_clock():
    p = TwilioProtocol()
    p.receive_text(start())
    total, gaps = 0, []
    for i, ms in enumerate([0, 20, 40, 100]):  # the frames for 60-100 ms never came
        out = p.receive_text(media(i + 2, "inbound", ms))
        gaps += [a for a in out if isinstance(a, Gap)]
        total += sum(len(a.frames["caller"]) for a in out if not isinstance(a, Gap))
    total += sum(len(a.frames["caller"]) for a in p.flush())
    assert total == pytest.approx(80 * 16, abs=4)  # only the audio that came: no zeros are made for the gap
    assert gaps == [Gap(0.04, ("caller",))]  # the gap moves the caller's clock on instead


def test_a_two_hour_timestamp_jump_allocates_nothing():
    p = TwilioProtocol()
    p.receive_text(start())
    p.receive_text(media(2, "inbound", 0))
    out = p.receive_text(media(3, "inbound", 7_200_000))
    assert out[0] == Gap(7199.98, ("caller",))
    assert sum(a.frames["caller"].nbytes for a in out[1:]) < 2000  # one 20 ms frame, not two hours of zeros


@pytest.mark.parametrize("messages, expected", [
    ([media(1, "inbound", 0)], [(1008, "bad_start")]),  # media before start
    ([start(fmt={"encoding": "audio/x-l16", "sampleRate": 16000, "channels": 1})], [(1003, "unsupported_media")]),
    ([start(params={"agent_id": "a 1"})], [(1008, "bad_start")]),  # a malformed agent_id
    ([start(seq="5"), media(4, "inbound", 0)], [(1008, "out_of_order")]),
    ([start(seq="1"), media(1, "inbound", 0)], [(1008, "out_of_order")]),  # a repeat
    ([start(), json.dumps({"event": "media", "sequenceNumber": "2", "media": {"track": "inbound", "payload": "@@"}})],
     [(1007, "bad_frame")]),
    (["x" * 70000], [(1009, "frame_too_large")]),
    (["not json"], [(1008, "bad_message")]),
])
def test_errors(messages, expected):
    p = TwilioProtocol()
    out = []
    for m in messages:
        out += p.receive_text(m)
    assert codes(out) == expected


def test_binary_frames_are_not_twilio():
    assert codes(TwilioProtocol().receive_bytes(b"\x00\x01")) == [(1003, "bad_message")]


def test_ingest_key_in_custom_parameters_when_the_handshake_had_none():
    p = TwilioProtocol(authorize=lambda t: t == "key")
    assert codes(p.receive_text(start())) == [(1008, "unauthorized")]
    p = TwilioProtocol(authorize=lambda t: t == "key")
    [s] = p.receive_text(start(params={"agent_id": "a-1", "token": "key"}))
    assert "token" not in s.metadata


def test_signature_of_the_stream_url():
    # The value Twilio's own RequestValidator gives for token 12345 and this URL.
    assert signature("12345", "wss://example.com/v1/twilio") == "ccJICYO7KLiZoW8QqJxo8M1ytBM="
    urls = candidate_urls("example.com:443", "/v1/twilio", "https")
    assert valid("12345", "ccJICYO7KLiZoW8QqJxo8M1ytBM=", urls)
    assert not valid("12346", "ccJICYO7KLiZoW8QqJxo8M1ytBM=", urls)
    assert not valid("12345", None, urls)


TOKEN = "12345"
NOW = 1_700_000_000


def test_a_ticket_lets_its_own_call_in_until_it_expires():
    ticket = mint(TOKEN, CALL, NOW + 300)
    assert check(TOKEN, ticket, CALL, NOW) is None
    assert check(TOKEN, ticket, CALL, NOW + 300 + SKEW) is None  # a clock a little ahead of the webhook's
    assert "expired" in check(TOKEN, ticket, CALL, NOW + 301 + SKEW)


def test_a_ticket_is_the_formula_the_readme_gives():
    import hashlib
    import hmac

    mac = base64.urlsafe_b64encode(hmac.new(TOKEN.encode(), f"{CALL}:{NOW}".encode(), hashlib.sha256).digest())
    assert mint(TOKEN, CALL, NOW) == f"{NOW}.{mac.rstrip(b'=').decode()}"
    assert stream_url("wss://example.com/", TOKEN, CALL, ttl=60, now=NOW) == \
        f"wss://example.com/v1/twilio/t/{mint(TOKEN, CALL, NOW + 60)}"


@pytest.mark.parametrize("ticket, call_sid, why", [
    (mint(TOKEN, CALL, NOW + 300), "CA" + "3" * 32, "not minted for this callSid"),  # another call's ticket
    (mint("other-token", CALL, NOW + 300), CALL, "not minted for this callSid"),
    (mint(TOKEN, CALL, NOW + 300).replace(f"{NOW + 300}.", f"{NOW + 9000}."), CALL, "not minted"),  # expiry moved
    (mint(TOKEN, CALL, NOW + 300)[:-1] + "A", CALL, "not minted"),  # the mac changed
    (mint(TOKEN, CALL, NOW + 300) + "=", CALL, "malformed"),
    ("", CALL, "malformed"),
    ("garbage", CALL, "malformed"),
    ("1." + "A" * 43 + "/x", CALL, "malformed"),
    ("9" * 400 + "." + "A" * 43, CALL, "malformed"),
    ("-5." + "A" * 43, CALL, "malformed"),
])
def test_a_ticket_for_another_call_or_tampered_or_garbage_is_refused(ticket, call_sid, why):
    assert why in check(TOKEN, ticket, call_sid, NOW)


def test_the_adapter_refuses_a_start_whose_callsid_the_check_refuses():
    ticket = mint(TOKEN, CALL, NOW + 300)
    seen = []

    def call_sid_check(sid):
        seen.append(sid)
        return check(TOKEN, ticket, sid, NOW)
    p = TwilioProtocol(call_sid_check=call_sid_check)
    [close] = p.receive_text(start(call_sid="CA" + "3" * 32))
    assert (close.code, close.error) == (1008, "bad_ticket") and "callSid" in close.reason
    assert p.start is None
    p = TwilioProtocol(call_sid_check=call_sid_check)
    assert codes(p.receive_text(start(call_sid=None))) == [(1008, "bad_ticket")]  # the streamSid is no callSid
    p = TwilioProtocol(call_sid_check=call_sid_check)
    [s] = p.receive_text(start())
    assert isinstance(s, Start) and s.call_id == CALL
    assert seen == ["CA" + "3" * 32, "", CALL]
