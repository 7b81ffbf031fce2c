"""Every telephony protocol end to end: the bundled sample call gives the same finals as the native protocol."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import httpx
import numpy as np
import pytest
import websockets
from websockets.exceptions import InvalidStatus

from clients.simulate import stream_call
from models.codecs import to_int16
from models.wavfile import read_wav, write_wav
from clients.wire import AudioHookWire, TwilioWire
from models.resample import MODEL_RATE, resample
from models.utterances import SegmenterConfig
from tests.conftest import SAMPLE_WAV
from tests.server import INGEST_KEY, SUPERVISOR_TOKEN, RunningServer

SECRET = "c2VjcmV0LWZvci1hdWRpb2hvb2stdGVzdHMtb25seQ=="  # base64
TWILIO_TOKEN = "twilio-test-auth-token"
SPEED = 3.0


@pytest.fixture(scope="module")
def signed_server(tmp_path_factory, transcriber):
    # Paused Twilio streams on (a stop holds the call for a new stream), with a short resume grace: a Twilio
    # call ends that long after its last stop.
    srv = RunningServer(tmp_path_factory.mktemp("signed"), transcriber, audiohook_client_secret=SECRET,
                        twilio_auth_token=TWILIO_TOKEN, resume_grace=10.0, twilio_pause=True)
    yield srv
    srv.stop()


def same_finals(server, transcriber, a, b):
    """The same utterances (speaker and times exactly: VAD is deterministic), and the same words for each.

    The live texts cannot be compared as they are: the scheduler packs utterances of every call into one
    window, and Whisper reads the same words differently depending on what shares the window with them,
    which depends on timing. So each utterance is taken from the call's recording (what its protocol
    delivered) and transcribed alone, through the one-utterance path; the same audio in through two
    protocols must then give the very same text."""
    assert [(s, st, e) for s, _, st, e in finals(a)] == [(s, st, e) for s, _, st, e in finals(b)]
    assert alone(server, transcriber, a) == alone(server, transcriber, b)


_alone: dict[bytes, str] = {}  # one text per distinct utterance audio: Whisper is deterministic on the same input


def alone(server, transcriber, run) -> list[str]:
    """Each final's utterance, as the call's recording has it, transcribed on its own."""
    response = httpx.get(f"{server.http}/v1/calls/{run.call_id}/audio", timeout=60,
                         headers={"Authorization": f"Bearer {SUPERVISOR_TOKEN}"})
    assert response.status_code == 200
    pcm = to_int16(read_wav(response.content)[0])
    texts = []
    for speaker, _, start, end in finals(run):
        # What the segmenter gives the transcriber: from the utterance's start to post_roll after its speech.
        cut = pcm[int(round(start * MODEL_RATE)): int(round((end + SegmenterConfig.post_roll) * MODEL_RATE)),
                  ROLES.index(speaker)]
        key = speaker.encode() + cut.tobytes()
        if key not in _alone:
            [_alone[key]] = [t.text for t in transcriber.transcribe_many([cut.astype(np.float32) / 32768])]
        texts.append(_alone[key])
    assert any(texts)
    return texts


ROLES = ["caller", "agent"]  # the recording's channels


def finals(run):
    """(speaker, text, start, end) in time order: two speakers' finals may leave the same window in either order."""
    return sorted(((e["speaker"], e["text"], e["start"], e["end"]) for e in run.events if e["type"] == "transcript.final"),
                  key=lambda f: (f[2], f[0]))


async def call(server, protocol, **kw):
    return await stream_call(SAMPLE_WAV, server.ws, "a-1", INGEST_KEY, watch_token=SUPERVISOR_TOKEN, speed=SPEED,
                             protocol=protocol, **kw)


@pytest.fixture(scope="module")
async def mulaw_runs(server):
    """Native mu-law, Twilio and AudioHook PCMU carry the same 8 kHz mu-law samples."""
    native, twilio, audiohook = await asyncio.gather(
        call(server, "native", encoding="mulaw"), call(server, "twilio"),
        call(server, "audiohook", wire_options={"transcripts": True}))
    return native, twilio, audiohook


@pytest.fixture(scope="module")
async def l16_runs(server, mulaw_runs):
    return await asyncio.gather(call(server, "native", encoding="pcm16"), call(server, "jambonz"))


def test_twilio_finals_match_native(server, transcriber, mulaw_runs):
    native, twilio, _ = mulaw_runs
    assert len(finals(native)) >= 12
    same_finals(server, transcriber, twilio, native)
    assert twilio.events[-1]["summary"]["end_status"] == "ended"


def test_audiohook_finals_match_native_and_go_back_as_events(server, transcriber, mulaw_runs):
    native, _, audiohook = mulaw_runs
    same_finals(server, transcriber, audiohook, native)
    types = [r.get("type") for r in audiohook.replies]
    assert types[0] == "opened" and types[-1] == "closed"
    seqs = [r["seq"] for r in audiohook.replies]
    assert seqs == list(range(1, len(seqs) + 1))
    sent = [r["parameters"]["entities"][0]["data"] for r in audiohook.replies if r.get("type") == "event"]
    final_texts = [d["alternatives"][0]["interpretations"][0]["transcript"] for d in sent if d["isFinal"]]
    assert sorted(final_texts) == sorted(f[1] for f in finals(audiohook))


def test_jambonz_finals_match_native(server, transcriber, l16_runs):
    native, jambonz = l16_runs
    same_finals(server, transcriber, jambonz, native)
    assert jambonz.events[-1]["summary"]["end_status"] == "ended"  # a clean socket close ends the call


async def test_audiohook_signature_and_key_at_the_handshake(signed_server):
    wire = AudioHookWire(INGEST_KEY, secret=SECRET)
    host = f"127.0.0.1:{signed_server.settings.port}"
    async with websockets.connect(signed_server.ws + "/v1/audiohook", additional_headers=wire.headers(host)) as ws:
        await ws.send(wire.opening(str(uuid.uuid4()), "a-1", ["caller", "agent"], {})[0])
        assert json.loads(await ws.recv())["type"] == "opened"
    bad = [AudioHookWire(INGEST_KEY, secret="b3RoZXItc2VjcmV0").headers(host),  # wrong secret
           AudioHookWire(INGEST_KEY).headers(host),  # unsigned
           AudioHookWire("not-a-key", secret=SECRET).headers(host)]
    for headers in bad:
        with pytest.raises(InvalidStatus) as refused:
            async with websockets.connect(signed_server.ws + "/v1/audiohook", additional_headers=headers):
                pass
        assert refused.value.response.status_code == 401


async def test_a_replayed_audiohook_handshake_is_refused(signed_server):
    wire = AudioHookWire(INGEST_KEY, secret=SECRET)
    headers = wire.headers(f"127.0.0.1:{signed_server.settings.port}")
    async with websockets.connect(signed_server.ws + "/v1/audiohook", additional_headers=headers):
        pass
    with pytest.raises(InvalidStatus) as refused:  # the same signed handshake, captured and sent again
        async with websockets.connect(signed_server.ws + "/v1/audiohook", additional_headers=headers):
            pass
    assert refused.value.response.status_code == 401
    assert "signature nonce already used" in refused.value.response.body.decode()


@pytest.mark.parametrize("name", ["X-API-KEY", "Signature", "Signature-Input", "Authorization",
                                  "Audiohook-Session-Id"])
async def test_audiohook_headers_given_twice_are_400(signed_server, name):
    headers = AudioHookWire(INGEST_KEY, secret=SECRET).headers(f"127.0.0.1:{signed_server.settings.port}")
    twice = list(headers.items())
    twice.append((name, headers.get(name, f"Bearer {INGEST_KEY}")))  # the same value again: still refused
    if name == "Authorization":
        twice.append((name, f"Bearer {INGEST_KEY}"))
    with pytest.raises(InvalidStatus) as refused:
        async with websockets.connect(signed_server.ws + "/v1/audiohook", additional_headers=twice):
            pass
    assert refused.value.response.status_code == 400
    assert f"{name} given more than once" in refused.value.response.body.decode()


def test_two_servers_in_one_process_each_have_their_metrics(server, signed_server):
    for srv in (server, signed_server):
        text = httpx.get(f"{srv.http}/metrics", headers={"Authorization": f"Bearer {SUPERVISOR_TOKEN}"}).text
        assert "calmline_live_calls" in text and "calmline_transcript_final_delay_seconds_bucket" in text


def signed(url: str, token: str = TWILIO_TOKEN) -> dict:
    from service.ingest.twilio_signature import signature

    return {"X-Twilio-Signature": signature(token, url)}


async def twilio_ticket_stream(url: str, call_sid: str, seconds: float = 1.0) -> tuple[int, str]:
    """A tone streamed as Twilio streams it to a signed ``url``: the close code and reason the server gave."""
    wire = TwilioWire("")  # no ingest key: the signed URL and its ticket are the credentials
    tone = (np.sin(np.arange(int(seconds * 8000)) * 0.3) * 3000).astype(np.int16)
    async with websockets.connect(url, additional_headers=signed(url)) as ws:
        try:
            for m in wire.opening(call_sid, "a-1", ["caller", "agent"], {}):
                await ws.send(m)
            for i in range(0, len(tone), 160):
                for m in wire.frame([tone[i:i + 160]] * 2):
                    await ws.send(m)
            await ws.send(wire.closing()[0])
        except websockets.ConnectionClosed:
            pass  # refused at the start: what it said is in the close frame
        await ws.wait_closed()
        return ws.close_code, ws.close_reason


async def test_twilio_needs_a_ticket_for_the_call_when_signatures_are_on(signed_server):
    from service.ingest.twilio_ticket import SKEW, mint, stream_url

    base = f"ws://127.0.0.1:{signed_server.settings.port}"
    supervisor = {"Authorization": f"Bearer {SUPERVISOR_TOKEN}"}
    call_a, call_b = ("CA" + uuid.uuid4().hex for _ in range(2))

    # The fixed URL's signature, captured once, would replay forever: the plain path is refused.
    with pytest.raises(InvalidStatus) as refused:
        async with websockets.connect(base + "/v1/twilio", additional_headers=signed(base + "/v1/twilio")):
            pass
    assert refused.value.response.status_code == 403
    assert b"/v1/twilio/t/<ticket>" in refused.value.response.body

    url_a = stream_url(base, TWILIO_TOKEN, call_a)
    for headers in ({}, signed(url_a, "wrong"), signed(base + "/v1/twilio")):  # unsigned, badly signed, another URL's
        with pytest.raises(InvalidStatus) as refused:
            async with websockets.connect(url_a, additional_headers=headers):
                pass
        assert refused.value.response.status_code == 403

    # Call A's ticket (and its signature) cannot carry call B.
    code, reason = await twilio_ticket_stream(url_a, call_b)
    assert code == 1008 and reason.startswith("bad_ticket:") and "callSid" in reason
    expired = f"{base}/v1/twilio/t/{mint(TWILIO_TOKEN, call_a, int(time.time()) - SKEW - 60)}"
    code, reason = await twilio_ticket_stream(expired, call_a)
    assert code == 1008 and reason.startswith("bad_ticket:") and "expired" in reason
    async with httpx.AsyncClient(base_url=signed_server.http, headers=supervisor) as c:
        for refused_call in (call_a, call_b):
            assert (await c.get(f"/v1/calls/{refused_call}")).status_code == 404

    # Call A's own ticket streams it, and again after Twilio's pause (stop, then a new stream for the callSid).
    async with websockets.connect(f"{base}/v1/supervise?call_id={call_a}&token={SUPERVISOR_TOKEN}") as sup:
        assert await twilio_ticket_stream(url_a, call_a) == (1000, "call ended")
        assert await twilio_ticket_stream(url_a, call_a) == (1000, "call ended")
        events = []
        while not events or events[-1]["type"] != "call.ended":
            events.append(json.loads(await asyncio.wait_for(sup.recv(), 120)))
    assert [e["type"] for e in events].count("call.started") == 1
    async with httpx.AsyncClient(base_url=signed_server.http, headers=supervisor) as c:
        stored = (await c.get(f"/v1/calls/{call_a}")).json()
    assert stored["status"] == "ended" and stored["source"] == "twilio" and stored["audio_seconds"] >= 2.0


async def test_a_twilio_stop_ends_the_call_and_a_later_stream_for_it_is_told_why_it_is_refused(server):
    call_sid = "CA" + uuid.uuid4().hex
    url = f"{server.ws}/v1/twilio?token={INGEST_KEY}"
    async with websockets.connect(f"{server.ws}/v1/supervise?call_id={call_sid}&token={SUPERVISOR_TOKEN}") as sup:
        # The stream's close comes after the call has ended (its last finals, call.ended, the stored row).
        assert await twilio_ticket_stream(url, call_sid) == (1000, "call ended")
        async with httpx.AsyncClient(base_url=server.http, headers={"Authorization": f"Bearer {SUPERVISOR_TOKEN}"}) as c:
            stored = (await c.get(f"/v1/calls/{call_sid}")).json()
        assert stored["status"] == "ended" and stored["summary"] is not None
        events = []
        while not events or events[-1]["type"] != "call.ended":
            events.append(json.loads(await asyncio.wait_for(sup.recv(), 30)))
    # Without CALMLINE_TWILIO_PAUSE a new stream for the callSid is a call that already ended, and says so.
    code, reason = await twilio_ticket_stream(url, call_sid)
    assert code == 1008 and reason == f"call_exists: call {call_sid} has ended (ended); a new stream cannot continue it"


async def test_twilio_tickets_without_the_auth_token_are_refused(server):
    from service.ingest.twilio_ticket import stream_url

    url = stream_url(server.ws, TWILIO_TOKEN, "CA" + uuid.uuid4().hex)
    with pytest.raises(InvalidStatus) as refused:
        async with websockets.connect(url, additional_headers=signed(url)):
            pass
    assert refused.value.response.status_code == 403
    assert b"CALMLINE_TWILIO_AUTH_TOKEN" in refused.value.response.body


async def test_jambonz_subprotocols_and_basic_auth(server):
    import base64
    for sub in ("audio.jambonz.org", "audio.drachtio.org"):
        auth = {"Authorization": "Basic " + base64.b64encode(f"x:{INGEST_KEY}".encode()).decode()}
        async with websockets.connect(server.ws + "/v1/jambonz", subprotocols=[sub], additional_headers=auth) as ws:
            assert ws.subprotocol == sub
    with pytest.raises(InvalidStatus) as refused:
        bad = {"Authorization": "Basic " + base64.b64encode(b"x:wrong").decode()}
        async with websockets.connect(server.ws + "/v1/jambonz", subprotocols=["audio.jambonz.org"], additional_headers=bad):
            pass
    assert refused.value.response.status_code == 401


async def test_streamdouble_streams_a_call_into_twilio(server, tmp_path):
    """A Twilio client nobody on the team wrote: streamdouble, forking both tracks of the sample call."""
    sd_api = pytest.importorskip("streamdouble.api")
    from streamdouble.audio import wav_to_ulaw_frames
    from streamdouble.session import SessionConfig

    audio, rate = read_wav(SAMPLE_WAV)
    caller, agent = tmp_path / "caller.wav", tmp_path / "agent.wav"
    for path, channel in ((caller, 0), (agent, 1)):
        write_wav(path, resample(audio[: 20 * rate, channel], rate, 8000)[:, None], 8000)
    before = {c["call_id"] for c in httpx.get(f"{server.http}/v1/calls", params={"limit": 500},
                                              headers={"Authorization": f"Bearer {SUPERVISOR_TOKEN}"}).json()["calls"]}
    config = SessionConfig(custom_parameters={"agent_id": "a-1", "token": INGEST_KEY}, fork=True,
                           tracks=["inbound", "outbound"], agent_frames=wav_to_ulaw_frames(agent))
    report = await sd_api.call(f"{server.ws}/v1/twilio", audio_path=caller, config=config)
    assert report.violations == []
    deadline = time.monotonic() + 120  # the call ends once its last finals are out: later under load
    while time.monotonic() < deadline:
        calls = httpx.get(f"{server.http}/v1/calls", params={"limit": 500, "status": "ended"},
                          headers={"Authorization": f"Bearer {SUPERVISOR_TOKEN}"}).json()["calls"]
        new = [c for c in calls if c["call_id"] not in before and c["source"] == "twilio"]
        if new:
            break
        await asyncio.sleep(0.3)
    [stored] = new
    events = httpx.get(f"{server.http}/v1/calls/{stored['call_id']}/events",
                       headers={"Authorization": f"Bearer {SUPERVISOR_TOKEN}"}).json()
    said = " ".join(e["text"] for e in events if e["type"] == "transcript.final").lower()
    assert "bright books" in said.replace("brightbooks", "bright books") and "fed up" in said
    assert {e["speaker"] for e in events if e["type"] == "transcript.final"} == {"caller", "agent"}
    assert stored["audio_seconds"] == pytest.approx(20.0, abs=0.5)


async def test_a_native_call_may_start_without_an_agent_and_is_assigned_later(server):
    call_id = "unassigned-" + uuid.uuid4().hex[:8]
    sup = {"Authorization": f"Bearer {SUPERVISOR_TOKEN}"}
    async with websockets.connect(f"{server.ws}/v1/supervise?call_id={call_id}&token={SUPERVISOR_TOKEN}") as watch, \
            websockets.connect(f"{server.ws}/v1/stream?token={INGEST_KEY}") as ws:
        await ws.send(json.dumps({"type": "start", "call_id": call_id, "encoding": "pcm16", "sample_rate": 8000,
                                  "channels": 1}))
        started = json.loads(await asyncio.wait_for(ws.recv(), 30))
        assert started["type"] == "started" and started["agent_id"] is None
        await ws.send((np.sin(np.arange(8000) * 0.3) * 3000).astype(np.int16).tobytes())
        async with httpx.AsyncClient(base_url=server.http, headers=sup) as c:
            row = (await c.get(f"/v1/calls/{call_id}")).json()
            assert row["agent_id"] is None and row["status"] == "live"
            assigned = await c.put(f"/v1/calls/{call_id}/agent", json={"agent_id": "a-2"})
            assert assigned.status_code == 200 and assigned.json()["previous_agent_id"] is None
        await ws.send(json.dumps({"type": "stop"}))
        while json.loads(await asyncio.wait_for(ws.recv(), 60))["type"] != "stopped":
            pass
        types = []
        while not types or types[-1] != "call.ended":
            event = json.loads(await asyncio.wait_for(watch.recv(), 60))
            types.append(event["type"])
            if event["type"] == "call.started":
                assert event["agent_id"] is None
    assert "call.assigned" in types
    async with httpx.AsyncClient(base_url=server.http, headers=sup) as c:
        assert (await c.get(f"/v1/calls/{call_id}")).json()["agent_id"] == "a-2"


async def test_a_reassigned_call_resumes_naming_the_agent_it_started_with(server):
    call_id = "reassigned-" + uuid.uuid4().hex[:8]
    start = {"type": "start", "call_id": call_id, "agent_id": "a-1", "encoding": "pcm16", "sample_rate": 8000,
             "channels": 1}
    tone = (np.sin(np.arange(8000) * 0.3) * 3000).astype(np.int16).tobytes()
    async with websockets.connect(f"{server.ws}/v1/stream?token={INGEST_KEY}") as ws:
        await ws.send(json.dumps(start))
        assert json.loads(await asyncio.wait_for(ws.recv(), 30))["type"] == "started"
        await ws.send(tone)
        async with httpx.AsyncClient(base_url=server.http, headers={"Authorization": f"Bearer {SUPERVISOR_TOKEN}"}) as c:
            assert (await c.put(f"/v1/calls/{call_id}/agent", json={"agent_id": "a-2"})).status_code == 200
        # The softphone's connection drops (no stop): the call waits for a resume.
    async with httpx.AsyncClient(base_url=server.http, headers={"Authorization": f"Bearer {SUPERVISOR_TOKEN}"}) as c:
        async def detached():
            return (await c.get(f"/v1/calls/{call_id}")).json()["connected"] is False
        deadline = time.monotonic() + 30  # the server sees the close when its reader next runs: later under load
        while not await detached():
            assert time.monotonic() < deadline, "the server never saw the first stream go"
            await asyncio.sleep(0.05)
    async with websockets.connect(f"{server.ws}/v1/stream?token={INGEST_KEY}") as ws:
        # The softphone knows only the agent it started the call with.
        await ws.send(json.dumps({**start, "resume": True}))
        started = json.loads(await asyncio.wait_for(ws.recv(), 30))
        assert started["type"] == "started" and started["resumed"] is True and started["agent_id"] == "a-2", started
        await ws.send(tone)
        await ws.send(json.dumps({"type": "stop"}))
        while json.loads(await asyncio.wait_for(ws.recv(), 60))["type"] != "stopped":
            pass
    async with httpx.AsyncClient(base_url=server.http, headers={"Authorization": f"Bearer {SUPERVISOR_TOKEN}"}) as c:
        call = (await c.get(f"/v1/calls/{call_id}")).json()
    assert call["status"] == "ended" and call["agent_id"] == "a-2" and call["audio_seconds"] >= 2.0
