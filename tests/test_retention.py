"""Deleting calls: DELETE /v1/calls/{id} (supervisors only, not while live) and CALMLINE_RETENTION_DAYS."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import httpx
import numpy as np
import websockets

from service import retention
from service.storage import Store
from tests.server import AGENT_TOKENS, INGEST_KEY, SUPERVISOR_TOKEN, RunningServer

SUP = {"Authorization": f"Bearer {SUPERVISOR_TOKEN}"}
AGENT = {"Authorization": f"Bearer {AGENT_TOKENS['a-1']}"}
FRAME = np.repeat((np.sin(np.arange(160) / 3) * 8000).astype("<i2"), 2).tobytes()  # 20 ms, 8 kHz stereo


async def a_call(server, call_id: str, stop: bool = True):
    ws = await websockets.connect(server.ws + "/v1/stream", additional_headers={"Authorization": f"Bearer {INGEST_KEY}"})
    await ws.send(json.dumps({"type": "start", "call_id": call_id, "agent_id": "a-1", "encoding": "pcm16",
                              "sample_rate": 8000, "channels": 2, "roles": ["caller", "agent"]}))
    assert json.loads(await ws.recv())["type"] == "started"
    for _ in range(50):
        await ws.send(FRAME)
    if stop:
        await ws.send(json.dumps({"type": "stop"}))
        assert json.loads(await ws.recv())["type"] == "stopped"
        await ws.close()
    return ws


def endpoints(call_id: str) -> list[str]:
    return [f"/v1/calls/{call_id}", f"/v1/calls/{call_id}/events", f"/v1/calls/{call_id}/audio"]


async def test_delete_a_call(server):
    call_id = f"del-{uuid.uuid4().hex[:6]}"
    await a_call(server, call_id)
    audio_dir = server.services.audio_files.root / call_id
    async with httpx.AsyncClient(base_url=server.http, timeout=30) as http:
        assert all([(await http.get(p, headers=SUP)).status_code == 200 for p in endpoints(call_id)])
        assert (await http.delete(f"/v1/calls/{call_id}", headers=AGENT)).status_code == 403  # even the call's own agent
        assert (await http.delete(f"/v1/calls/{call_id}")).status_code == 401
        assert audio_dir.exists()
        deleted = await http.delete(f"/v1/calls/{call_id}", headers=SUP)
        assert deleted.status_code == 204 and deleted.content == b""
        for path in endpoints(call_id):
            assert (await http.get(path, headers=SUP)).status_code == 404, path
            assert (await http.get(path, headers=AGENT)).status_code == 404, path
        assert (await http.delete(f"/v1/calls/{call_id}", headers=SUP)).status_code == 404
        listing = (await http.get("/v1/calls", headers=SUP, params={"limit": 500})).json()
        assert call_id not in [c["call_id"] for c in listing["calls"]]
    assert not audio_dir.exists()
    assert server.services.store.get_events(call_id) == []


async def test_a_live_call_cannot_be_deleted(server):
    call_id = f"live-{uuid.uuid4().hex[:6]}"
    ws = await a_call(server, call_id, stop=False)
    try:
        async with httpx.AsyncClient(base_url=server.http, timeout=30) as http:
            refused = await http.delete(f"/v1/calls/{call_id}", headers=SUP)
            assert refused.status_code == 409 and "live" in refused.text
            assert (await http.get(f"/v1/calls/{call_id}", headers=SUP)).json()["status"] == "live"
            await ws.send(json.dumps({"type": "stop"}))
            assert json.loads(await ws.recv())["type"] == "stopped"
            assert (await http.delete(f"/v1/calls/{call_id}", headers=SUP)).status_code == 204
    finally:
        await ws.close()


def test_retention_days_deletes_older_calls_at_start(tmp_path, transcriber):
    data = tmp_path / "data"
    data.mkdir()
    store = Store(f"sqlite:///{(data / 'calmline.db').resolve()}")
    now = time.time()
    ages = {"old-1": 40, "old-2": 31, "recent": 29, "new": 0}  # days
    for call_id, days in ages.items():
        store.create_call({"call_id": call_id, "agent_id": "a-1", "status": "ended", "started_at": now - days * 86400,
                           "ended_at": now - days * 86400 + 60, "audio_seconds": 60.0})
        store.append_events([{"type": "call.started", "call_id": call_id, "seq": 1, "t": 0.0}])
        (data / "audio" / call_id).mkdir(parents=True)
        (data / "audio" / call_id / "call.wav").write_bytes(b"RIFF")
    store.close()

    srv = RunningServer(data, transcriber, retention_days=30.0)
    try:
        deadline = time.monotonic() + 30
        while srv.services.store.get_call("old-2") is not None:  # the first pass runs as the server starts
            assert time.monotonic() < deadline, "calls past retention never deleted"
            time.sleep(0.1)
        for call_id in ("old-1", "old-2"):
            assert httpx.get(f"{srv.http}/v1/calls/{call_id}", headers=SUP).status_code == 404
            assert not (data / "audio" / call_id).exists() and srv.services.store.get_events(call_id) == []
        for call_id in ("recent", "new"):
            assert httpx.get(f"{srv.http}/v1/calls/{call_id}", headers=SUP).status_code == 200
            assert (data / "audio" / call_id / "call.wav").exists()

        async def later_pass():
            """The pass the hourly task runs, as if a year had gone by: all ended calls go, a live one stays."""
            ws = await a_call(srv, "still-live", stop=False)
            try:
                deleted = await asyncio.to_thread(retention.purge, srv.services, now + 365 * 86400)
                assert srv.services.store.get_call("still-live")["status"] == "live"
            finally:
                await ws.close()
            return deleted

        assert asyncio.run(later_pass()) == 2
        assert srv.services.store.get_call("recent") is None and not (data / "audio" / "new").exists()
    finally:
        srv.stop()


def test_retention_setting_from_env_and_flag():
    import argparse

    from service import config

    assert config.load(environ={}).retention_days == 0  # default: keep everything
    assert config.load(environ={"CALMLINE_RETENTION_DAYS": "90"}).retention_days == 90.0
    parser = argparse.ArgumentParser()
    config.add_arguments(parser)
    args = parser.parse_args(["--retention-days", "7"])
    assert config.load(args, environ={"CALMLINE_RETENTION_DAYS": "90"}).retention_days == 7.0
