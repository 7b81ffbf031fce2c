"""Every kind of bad input gets a clear error, and nothing already accepted is lost."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from clients.simulate import frames_of
from models.wavfile import read_wav
from tests.conftest import SAMPLE_GOLD, SAMPLE_WAV
from tests.server import AGENT_TOKENS, INGEST_KEY, SUPERVISOR_TOKEN

TEST_DATABASES = ["sqlite", "postgresql"]  # access rules and bad input: the same on either database

AUTH = {"Authorization": f"Bearer {INGEST_KEY}"}


def start_msg(call_id=None, **over):
    msg = {"type": "start", "call_id": call_id or f"t-{uuid.uuid4().hex[:8]}", "agent_id": "a-1",
           "encoding": "pcm16", "sample_rate": 8000, "channels": 2, "roles": ["caller", "agent"]}
    msg.update(over)
    return msg


@pytest.fixture(scope="module")
def frames():
    audio, rate = read_wav(SAMPLE_WAV)
    return frames_of(audio, rate, 8000, "pcm16")  # 20 ms stereo frames


async def expect_close(ws, code: str, close_code: int):
    reply = json.loads(await ws.recv())
    assert reply["type"] == "error" and reply["code"] == code and reply["message"]
    with pytest.raises(ConnectionClosed) as closed:
        await ws.recv()
    assert closed.value.rcvd.code == close_code
    assert closed.value.rcvd.reason.startswith(code)
    return reply


async def send_fast(ws, frames):
    for f in frames:
        await ws.send(f)
        await asyncio.sleep(0.002)  # faster than real time, but not one burst


def get(server, path, **params):
    return httpx.get(server.http + path, params=params, headers={"Authorization": f"Bearer {SUPERVISOR_TOKEN}"}, timeout=30)


async def wait_status(server, call_id, status, timeout=30.0):
    for _ in range(int(timeout / 0.2)):
        call = get(server, f"/v1/calls/{call_id}")
        if call.status_code == 200 and call.json()["status"] == status:
            return call.json()
        await asyncio.sleep(0.2)
    raise AssertionError(f"call {call_id} never became {status}: {call.text}")


def audio_seconds(server, call_id) -> float:
    audio, rate = read_wav(get(server, f"/v1/calls/{call_id}/audio").content)
    return len(audio) / rate


@pytest.mark.parametrize("first, code", [
    (b"\x00\x01" * 160, "bad_start"),
    ("this is not json", "bad_start"),
    (json.dumps({"type": "stop"}), "bad_start"),
    (json.dumps(start_msg(call_id="../../etc/passwd")), "bad_start"),
    (json.dumps(start_msg(roles=["caller", "caller"])), "bad_start"),
])
async def test_first_frame_must_be_a_valid_start(server, first, code):
    async with websockets.connect(server.ws + "/v1/stream", additional_headers=AUTH) as ws:
        await ws.send(first)
        await expect_close(ws, code, 1008)


@pytest.mark.parametrize("over, code", [
    ({"encoding": "opus"}, "unsupported_encoding"),
    ({"sample_rate": 44100}, "unsupported_rate"),
])
async def test_unsupported_media_is_refused(server, over, code):
    msg = start_msg(**over)
    async with websockets.connect(server.ws + "/v1/stream", additional_headers=AUTH) as ws:
        await ws.send(json.dumps(msg))
        await expect_close(ws, code, 1003)
    assert get(server, f"/v1/calls/{msg['call_id']}").status_code == 404


@pytest.mark.parametrize("bad_frame, code, close_code", [
    (b"\x00" * 7, "bad_frame", 1007),  # not a whole stereo pcm16 sample
    (b"\x00" * 65540, "frame_too_large", 1009),
])
async def test_bad_frame_mid_call_keeps_what_came_before(server, frames, bad_frame, code, close_code):
    msg = start_msg()
    # The greeting, the caller's first sentence and the pause after it: 0 to 9 s of the sample.
    accepted = frames[: 9 * 50]
    async with websockets.connect(server.ws + "/v1/stream", additional_headers=AUTH) as ws:
        await ws.send(json.dumps(msg))
        assert json.loads(await ws.recv())["type"] == "started"
        await send_fast(ws, accepted)
        await ws.send(bad_frame)
        await expect_close(ws, code, close_code)
    call = await wait_status(server, msg["call_id"], "error")
    assert call["end_reason"].startswith(code)
    assert call["audio_seconds"] == pytest.approx(9.0, abs=0.05)
    assert audio_seconds(server, msg["call_id"]) == pytest.approx(9.0, abs=0.05)
    events = get(server, f"/v1/calls/{msg['call_id']}/events").json()
    assert [e["type"] for e in events][0] == "call.started" and events[-1]["type"] == "call.ended"
    texts = " ".join(e["text"] for e in events if e["type"] == "transcript.final").lower()
    assert "fed up" in texts  # the caller's words before the bad frame were transcribed and kept


async def test_malformed_text_mid_call_is_reported_and_the_call_goes_on(server, frames):
    msg = start_msg()
    async with websockets.connect(server.ws + "/v1/stream", additional_headers=AUTH) as ws:
        await ws.send(json.dumps(msg))
        await ws.recv()
        await send_fast(ws, frames[:50])
        await ws.send("{not json")
        assert json.loads(await ws.recv())["code"] == "bad_message"
        await ws.send(json.dumps({"type": "dtmf", "digit": "X"}))
        assert json.loads(await ws.recv())["code"] == "bad_message"
        await send_fast(ws, frames[50:100])
        await ws.send(json.dumps({"type": "stop"}))
        stopped = json.loads(await ws.recv())
    assert stopped == {"type": "stopped", "call_id": msg["call_id"], "audio_seconds": pytest.approx(2.0, abs=0.01)}
    assert (await wait_status(server, msg["call_id"], "ended"))["audio_seconds"] == pytest.approx(2.0, abs=0.01)


@pytest.mark.parametrize("headers, status", [
    ({}, 401),
    ({"Authorization": "Bearer wrong-key"}, 401),
    ({"Authorization": f"Bearer {AGENT_TOKENS['a-1']}"}, 403),  # an agent token is not an ingest key
])
async def test_ingest_needs_an_ingest_key(server, headers, status):
    with pytest.raises(InvalidStatus) as refused:
        async with websockets.connect(server.ws + "/v1/stream", additional_headers=headers):
            pass
    assert refused.value.response.status_code == status
    assert json.loads(refused.value.response.body)["code"] in ("unauthorized", "forbidden")


async def test_ingest_key_in_query_string(server):
    async with websockets.connect(f"{server.ws}/v1/stream?token={INGEST_KEY}") as ws:
        await ws.send(json.dumps(start_msg()))
        assert json.loads(await ws.recv())["type"] == "started"


async def test_vanished_client_resumes_the_same_call(server, frames):
    msg = start_msg()
    ws = await websockets.connect(server.ws + "/v1/stream", additional_headers=AUTH)
    await ws.send(json.dumps(msg))
    await ws.recv()
    await send_fast(ws, frames[: 9 * 50])
    ws.transport.abort()  # the network dies: no stop, no close frame
    deadline = time.monotonic() + 30  # the server notices the dead socket when it next reads it: later under load
    while (live := get(server, f"/v1/calls/{msg['call_id']}").json())["connected"]:
        assert time.monotonic() < deadline, "the server never noticed the connection was gone"
        await asyncio.sleep(0.1)
    assert live["status"] == "live" and live["connected"] is False
    async with websockets.connect(server.ws + "/v1/stream", additional_headers=AUTH) as ws:
        await ws.send(json.dumps({**msg, "resume": True}))
        started = json.loads(await ws.recv())
        assert started["type"] == "started" and started["resumed"] is True
        assert started["audio_seconds"] == pytest.approx(9.0, abs=0.05)
        await send_fast(ws, frames[9 * 50 : 14 * 50])
        await ws.send(json.dumps({"type": "stop"}))
        assert json.loads(await ws.recv())["audio_seconds"] == pytest.approx(14.0, abs=0.05)
    call = await wait_status(server, msg["call_id"], "ended")
    assert audio_seconds(server, msg["call_id"]) == pytest.approx(14.0, abs=0.05)
    events = get(server, f"/v1/calls/{msg['call_id']}/events").json()
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert [e["type"] for e in events].count("call.started") == 1
    texts = " ".join(e["text"] for e in events if e["type"] == "transcript.final").lower()
    assert "fed up" in texts and "twelve" in texts.replace("12", "twelve")  # before and after the drop
    assert call["status"] == "ended"


async def test_vanished_client_that_never_returns_leaves_a_dropped_call(server, frames):
    msg = start_msg()
    ws = await websockets.connect(server.ws + "/v1/stream", additional_headers=AUTH)
    await ws.send(json.dumps(msg))
    await ws.recv()
    # Cut in the middle of the caller's first sentence: its audio must still be transcribed.
    cut = SAMPLE_GOLD["parts"][1]["start"] + 1.2
    await send_fast(ws, frames[: int(cut * 50)])
    ws.transport.abort()
    call = await wait_status(server, msg["call_id"], "dropped", timeout=server.settings.resume_grace + 30)
    assert call["audio_seconds"] == pytest.approx(cut, abs=0.05)
    assert audio_seconds(server, msg["call_id"]) == pytest.approx(cut, abs=0.05)
    events = get(server, f"/v1/calls/{msg['call_id']}/events").json()
    assert events[-1]["type"] == "call.ended" and events[-1]["summary"]["end_status"] == "dropped"
    caller = [e["text"].lower() for e in events if e["type"] == "transcript.final" and e["speaker"] == "caller"]
    assert caller and "fed up" in caller[-1]


async def test_resume_of_unknown_call_and_duplicate_call_id(server):
    async with websockets.connect(server.ws + "/v1/stream", additional_headers=AUTH) as ws:
        await ws.send(json.dumps(start_msg(resume=True)))
        await expect_close(ws, "unknown_call", 1008)
    msg = start_msg()
    async with websockets.connect(server.ws + "/v1/stream", additional_headers=AUTH) as first:
        await first.send(json.dumps(msg))
        await first.recv()
        async with websockets.connect(server.ws + "/v1/stream", additional_headers=AUTH) as second:
            await second.send(json.dumps(msg))
            await expect_close(second, "call_exists", 1008)
        await first.send(json.dumps({"type": "stop"}))
        assert json.loads(await first.recv())["type"] == "stopped"

