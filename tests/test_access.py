"""Access is checked on every endpoint: no token 401, another agent's call 403, unknown call 404."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import websockets
from websockets.exceptions import InvalidStatus

from clients.simulate import stream_call
from tests.conftest import SAMPLE_WAV, clip_wav
from tests.server import AGENT_TOKENS, INGEST_KEY, SUPERVISOR_TOKEN

TEST_DATABASES = ["sqlite", "postgresql"]  # access rules and bad input: the same on either database


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
async def call_of_a2(server, tmp_path_factory):
    """A short call of agent a-2 (the first 3 seconds of the sample, streamed fast)."""
    short = clip_wav(SAMPLE_WAV, tmp_path_factory.mktemp("clip") / "short.wav", 3)
    run = await stream_call(short, server.ws, "a-2", INGEST_KEY, watch_token=SUPERVISOR_TOKEN, speed=20)
    return run.call_id


@pytest.mark.parametrize("path", ["/v1/calls", "/v1/calls/{id}", "/v1/calls/{id}/events", "/v1/calls/{id}/audio",
                                  "/metrics", "/v1/whoami"])
@pytest.mark.parametrize("headers", [{}, bearer("nope"), {"Authorization": "Basic Og=="}])
def test_no_or_unknown_token_is_401(server, call_of_a2, path, headers):
    r = httpx.get(server.http + path.format(id=call_of_a2), headers=headers)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    assert r.json() == {"type": "error", "code": "unauthorized", "message": "missing or unknown token"}


@pytest.mark.parametrize("path", ["/v1/calls/{id}", "/v1/calls/{id}/events", "/v1/calls/{id}/audio"])
def test_agent_reading_another_agents_call_is_403(server, call_of_a2, path):
    url = server.http + path.format(id=call_of_a2)
    assert httpx.get(url, headers=bearer(AGENT_TOKENS["a-1"])).status_code == 403
    assert httpx.get(url, headers=bearer(AGENT_TOKENS["a-2"])).status_code == 200
    assert httpx.get(url, headers=bearer(SUPERVISOR_TOKEN)).status_code == 200
    assert httpx.get(url, params={"token": AGENT_TOKENS["a-2"]}).status_code == 200


def test_ingest_key_reads_nothing(server, call_of_a2):
    assert httpx.get(f"{server.http}/v1/calls/{call_of_a2}", headers=bearer(INGEST_KEY)).status_code == 403
    refused = httpx.get(f"{server.http}/metrics", headers=bearer(AGENT_TOKENS["a-1"]))
    assert refused.status_code == 403 and refused.json()["code"] == "forbidden"


def test_agent_lists_only_their_own_calls(server, call_of_a2):
    mine = httpx.get(f"{server.http}/v1/calls", headers=bearer(AGENT_TOKENS["a-2"])).json()
    assert call_of_a2 in [c["call_id"] for c in mine["calls"]]
    assert {c["agent_id"] for c in mine["calls"]} == {"a-2"}
    theirs = httpx.get(f"{server.http}/v1/calls", headers=bearer(AGENT_TOKENS["a-1"])).json()
    assert call_of_a2 not in [c["call_id"] for c in theirs["calls"]]
    r = httpx.get(f"{server.http}/v1/calls", params={"agent_id": "a-2"}, headers=bearer(AGENT_TOKENS["a-1"]))
    assert r.status_code == 403


def test_call_list_filters(server, call_of_a2):
    sup = bearer(SUPERVISOR_TOKEN)
    assert httpx.get(f"{server.http}/v1/calls", params={"since": "yesterday"}, headers=sup).status_code == 400
    assert httpx.get(f"{server.http}/v1/calls", params={"min_peak_heat": "hot"}, headers=sup).status_code == 400
    found = httpx.get(f"{server.http}/v1/calls", params={"since": "2020-01-01", "until": "", "agent_id": "a-2"},
                      headers=sup).json()
    assert call_of_a2 in [c["call_id"] for c in found["calls"]]
    future = httpx.get(f"{server.http}/v1/calls", params={"since": 4102444800}, headers=sup).json()
    assert future["calls"] == [] and future["total"] == 0


def test_unknown_call_is_404_and_bad_paging_is_400(server):
    # Every refused REST request says why in the one error shape the ingest errors use.
    missing = httpx.get(f"{server.http}/v1/calls/nope", headers=bearer(SUPERVISOR_TOKEN))
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("application/json")
    assert missing.json() == {"type": "error", "code": "not_found", "message": "no call nope"}
    bad = httpx.get(f"{server.http}/v1/calls", params={"limit": "x"}, headers=bearer(SUPERVISOR_TOKEN))
    assert bad.status_code == 400 and bad.json()["code"] == "bad_request" and "limit" in bad.json()["message"]
    nowhere = httpx.get(f"{server.http}/v1/no-such-thing", headers=bearer(SUPERVISOR_TOKEN))
    assert nowhere.status_code == 404 and nowhere.json()["code"] == "not_found"
    assert httpx.get(f"{server.http}/v1/calls", params={"limit": 0}, headers=bearer(SUPERVISOR_TOKEN)).status_code == 400


def test_healthz_is_open_and_metrics_count_work(server, call_of_a2):
    health = httpx.get(f"{server.http}/healthz").json()
    assert health["status"] == "ok" and health["device"] == "cpu"
    text = httpx.get(f"{server.http}/metrics", headers=bearer(SUPERVISOR_TOKEN)).text
    jobs = [line for line in text.splitlines() if line.startswith("calmline_transcription_jobs_total")]
    assert jobs and float(jobs[0].split()[-1]) > 0


@pytest.mark.parametrize("path, token, status", [
    ("/v1/agents/a-1/events", None, 401),
    ("/v1/agents/a-1/events", "bad", 401),
    ("/v1/agents/a-1/events", AGENT_TOKENS["a-2"], 403),
    ("/v1/agents/a-1/events", INGEST_KEY, 403),
    ("/v1/supervise", AGENT_TOKENS["a-1"], 403),
    ("/v1/supervise", None, 401),
])
async def test_event_sockets_refuse_the_wrong_token(server, path, token, status):
    headers = bearer(token) if token else {}
    with pytest.raises(InvalidStatus) as refused:
        async with websockets.connect(server.ws + path, additional_headers=headers):
            pass
    assert refused.value.response.status_code == status


async def test_agent_socket_sees_only_own_calls_and_supervisor_sees_all(server, tmp_path):
    async with websockets.connect(f"{server.ws}/v1/agents/a-1/events?token={AGENT_TOKENS['a-1']}") as agent1, \
            websockets.connect(f"{server.ws}/v1/supervise", additional_headers=bearer(SUPERVISOR_TOKEN)) as sup:
        run = await stream_call(clip_wav(SAMPLE_WAV, tmp_path / "short.wav", 2), server.ws, "a-2", INGEST_KEY, speed=20)
        seen_by_sup = []
        while not seen_by_sup or seen_by_sup[-1]["type"] != "call.ended":
            event = json.loads(await sup.recv())
            if event["call_id"] == run.call_id:
                seen_by_sup.append(event)
        assert seen_by_sup[0]["type"] == "call.started"
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(agent1.recv(), 0.5)


def test_alerts_stay_with_supervisors_in_recorded_events(server, call_of_a2):
    """An agent reads a recorded call as it saw it live: without the supervisor-only alerts."""
    server.services.store.append_events([{"type": "alert", "call_id": call_of_a2, "seq": 100000, "t": 2.0,
                                          "kind": "escalation", "detail": "caller heat rising"}])
    url = f"{server.http}/v1/calls/{call_of_a2}/events"
    as_agent = httpx.get(url, headers=bearer(AGENT_TOKENS["a-2"])).json()
    as_supervisor = httpx.get(url, headers=bearer(SUPERVISOR_TOKEN)).json()
    assert as_agent and not [e for e in as_agent if e["type"] == "alert"]
    assert [e["kind"] for e in as_supervisor if e["type"] == "alert"] == ["escalation"]
    assert len(as_supervisor) == len(as_agent) + 1
    ended = httpx.get(f"{server.http}/v1/calls/{call_of_a2}", headers=bearer(AGENT_TOKENS["a-2"])).json()
    assert "alerts" not in ended["summary"]
