"""Hostile input at the door, against the real server: odd tokens, event sockets from other origins,
a Twilio stream paused (stopped, then a new stream for the same call)."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid

import httpx
import numpy as np
import pytest
import websockets
from websockets.exceptions import InvalidStatus

from clients.wire import TwilioWire
from tests.server import AGENT_TOKENS, INGEST_KEY, SUPERVISOR_TOKEN


@pytest.mark.parametrize("headers, query", [
    ({"Authorization": "Bearer t\u00f6ken".encode()}, ""),  # UTF-8 bytes on the wire
    ({"Authorization": "Bearer t\u00f6ken".encode("latin-1")}, ""),
    ({"Authorization": ("Bearer " + AGENT_TOKENS["a-1"] + "\u00e9").encode()}, ""),
    ({}, "?token=t%C3%B6ken"),
    ({}, "?token=%E2%82%AC%F0%9F%92%B3"),
    ({"Authorization": b"Basic " + base64.b64encode("u:p\u00e4ss".encode())}, ""),
    ({"Authorization": "Basic \u00e4\u00e4".encode()}, ""),
])
def test_non_ascii_tokens_are_401_not_500(server, headers, query):
    r = httpx.get(f"{server.http}/v1/calls{query}", headers=headers, timeout=30)
    assert r.status_code == 401, r.text


def basic(password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"x:{password}".encode()).decode()}


def test_basic_is_401_on_rest_whatever_token_it_holds(server):
    r = httpx.get(f"{server.http}/v1/calls", headers=basic(SUPERVISOR_TOKEN), timeout=30)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    # A Basic header is refused outright, not passed over for the ?token= beside it.
    r = httpx.get(f"{server.http}/v1/calls", params={"token": SUPERVISOR_TOKEN}, headers=basic(SUPERVISOR_TOKEN))
    assert r.status_code == 401
    assert httpx.get(f"{server.http}/v1/calls", headers={"Authorization": f"Bearer {SUPERVISOR_TOKEN}"}).status_code == 200


@pytest.mark.parametrize("path, token", [("/v1/agents/a-1/events", AGENT_TOKENS["a-1"]),
                                         ("/v1/supervise", SUPERVISOR_TOKEN), ("/v1/stream", INGEST_KEY)])
async def test_basic_is_401_on_sockets_other_than_jambonz(server, path, token):
    with pytest.raises(InvalidStatus) as refused:
        async with websockets.connect(server.ws + path, additional_headers=basic(token)):
            pass
    assert refused.value.response.status_code == 401
    async with websockets.connect(server.ws + path, additional_headers={"Authorization": f"Bearer {token}"}):
        pass  # the same token as a bearer is good


@pytest.mark.parametrize("auth", [b"Basic " + base64.b64encode("u:p\u00e4ss".encode()), "Basic \u00e4\u00e4".encode()])
async def test_non_ascii_basic_on_jambonz_is_401(server, auth):
    with pytest.raises(InvalidStatus) as refused:
        async with websockets.connect(server.ws + "/v1/jambonz", subprotocols=["audio.jambonz.org"],
                                      additional_headers={"Authorization": auth.decode("latin-1")}):
            pass
    assert refused.value.response.status_code == 401


async def test_non_ascii_token_on_a_socket_is_401(server):
    for path in ("/v1/stream?token=%C3%A9", "/v1/supervise?token=%C3%A9", "/v1/agents/a-1/events?token=%C3%A9"):
        with pytest.raises(InvalidStatus) as refused:
            async with websockets.connect(server.ws + path):
                pass
        assert refused.value.response.status_code == 401


def own_origin(server) -> str:
    return server.http  # http://127.0.0.1:PORT, as the panel's page sends it


@pytest.mark.parametrize("path", ["/v1/agents/a-1/events", "/v1/supervise"])
async def test_event_sockets_refuse_other_origins(server, monkeypatch, path):
    token = AGENT_TOKENS["a-1"] if "agents" in path else SUPERVISOR_TOKEN
    url = f"{server.ws}{path}?token={token}"
    for origin in ("https://evil.example", "http://127.0.0.1:1", "null", f"{own_origin(server)}.evil.example"):
        with pytest.raises(InvalidStatus) as refused:
            async with websockets.connect(url, origin=origin):
                pass
        assert refused.value.response.status_code == 403, origin
        assert "origin" in refused.value.response.body.decode()
    async with websockets.connect(url, origin=own_origin(server)):
        pass  # the server's own pages
    async with websockets.connect(url):
        pass  # no Origin: not a browser
    monkeypatch.setattr(server.settings, "allowed_origins", ["https://panel.example.com"])
    async with websockets.connect(url, origin="https://panel.example.com"):
        pass  # a configured origin
    with pytest.raises(InvalidStatus):
        async with websockets.connect(url, origin="https://evil.example"):
            pass


def test_allowed_origins_setting_from_env_and_flag():
    import argparse

    from service import config

    assert config.load(environ={"CALMLINE_ALLOWED_ORIGINS": "https://a.example, https://b.example:8443"}
                       ).allowed_origins == ["https://a.example", "https://b.example:8443"]
    parser = argparse.ArgumentParser()
    config.add_arguments(parser)
    assert config.load(parser.parse_args(["--allowed-origins", "https://c.example"]), environ={}
                       ).allowed_origins == ["https://c.example"]


def tone_frames(seconds: float) -> list[np.ndarray]:
    tone = (np.sin(np.arange(int(seconds * 8000)) * 0.3) * 3000).astype(np.int16)
    return [tone[i:i + 160] for i in range(0, len(tone), 160)]


async def stream_twilio(server, call_id: str, seconds: float) -> None:
    wire = TwilioWire(INGEST_KEY)
    async with websockets.connect(server.ws + wire.path) as ws:
        for m in wire.opening(call_id, "a-1", ["caller", "agent"], {}):
            await ws.send(m)
        for f in tone_frames(seconds):
            for m in wire.frame([f, f]):
                await ws.send(m)
        for m in wire.closing():
            await ws.send(m)
        await ws.wait_closed()
        assert ws.close_code == 1000


async def test_with_twilio_pause_a_stop_then_a_new_stream_continues_the_call(server, monkeypatch):
    monkeypatch.setattr(server.settings, "twilio_pause", True)  # read at each stream's handshake
    call_id = "CA" + uuid.uuid4().hex
    async with websockets.connect(f"{server.ws}/v1/supervise?call_id={call_id}&token={SUPERVISOR_TOKEN}") as sup:
        await stream_twilio(server, call_id, 1.0)
        await stream_twilio(server, call_id, 1.0)  # a paused stream: stop, then a new <Stream> for the callSid
        events = []
        while not events or events[-1]["type"] != "call.ended":
            events.append(json.loads(await asyncio.wait_for(sup.recv(), 120)))
    assert [e["type"] for e in events].count("call.started") == 1
    assert events[-1]["summary"]["end_status"] == "ended"
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    async with httpx.AsyncClient(base_url=server.http, headers={"Authorization": f"Bearer {SUPERVISOR_TOKEN}"}) as c:
        call = (await c.get(f"/v1/calls/{call_id}")).json()
    assert call["status"] == "ended" and call["audio_seconds"] >= 2.0  # both streams' audio on one call


async def test_two_starts_of_one_new_call_id_at_once_one_is_call_exists(server):
    call_id = "race-" + uuid.uuid4().hex
    start = json.dumps({"type": "start", "call_id": call_id, "agent_id": "a-1", "encoding": "pcm16",
                        "sample_rate": 16000, "channels": 1})

    # Both connected first, then both starts sent together: the second arrives while the first is checked.
    a, b = await asyncio.gather(*(websockets.connect(f"{server.ws}/v1/stream?token={INGEST_KEY}") for _ in range(2)))
    await asyncio.gather(a.send(start), b.send(start))
    ra, rb = [json.loads(await asyncio.wait_for(ws.recv(), 60)) for ws in (a, b)]
    try:
        replies = sorted([ra.get("code", ra["type"]), rb.get("code", rb["type"])])
        assert replies == ["call_exists", "started"], (ra, rb)
    finally:
        for ws in (a, b):
            try:
                await ws.send(json.dumps({"type": "stop"}))
            except websockets.ConnectionClosed:
                pass  # the refused one is closed already
            await ws.close()
