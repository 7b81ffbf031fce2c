"""Two real `calmline serve` nodes (one PostgreSQL, one Redis, one shared data dir, different ports) behind
Debian's HAProxy running docker/haproxy.cfg: what one node holds, the other shows, live and recorded."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from types import SimpleNamespace

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from clients.simulate import stream_call
from tests.backends import CalmlineNode, HAProxy
from tests.conftest import SAMPLE_WAV, clip_wav
from tests.server import INGEST_KEY, SUPERVISOR_TOKEN

SUP = {"Authorization": f"Bearer {SUPERVISOR_TOKEN}"}


@pytest.fixture(scope="module")
def cluster(postgres, redis_server, tmp_path_factory):
    database = postgres.new_database()  # empty: the two nodes race to migrate it
    shared = tmp_path_factory.mktemp("shared-data")
    nodes = [CalmlineNode(shared, database, redis_server.url) for _ in range(2)]  # at the same moment
    lb = None
    try:
        health = [node.wait_ready() for node in nodes]
        lb = HAProxy([node.address for node in nodes])
        yield SimpleNamespace(a=nodes[0], b=nodes[1], lb=lb, ids=[h["node_id"] for h in health])
    finally:
        if lb is not None:
            lb.stop()
        for node in nodes:
            node.stop()


async def until(check, what: str, timeout: float = 60.0, every: float = 0.25):
    """Polls ``check`` (async) until it returns something truthy; that value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await check()
        if value:
            return value
        await asyncio.sleep(every)
    raise AssertionError(f"{what} not within {timeout:.0f} s")


async def collect(ws, call_id: str, into: list) -> None:
    """A supervisor socket's events of one call, until its call.ended."""
    while True:
        event = json.loads(await ws.recv())
        if event["call_id"] == call_id:
            into.append(event)
            if event["type"] == "call.ended":
                return


def test_both_nodes_started_together_on_an_empty_database(cluster):
    a, b = cluster.a, cluster.b
    assert cluster.ids[0] != cluster.ids[1] and cluster.ids[0].endswith(f":{a.port}")  # default hostname:port
    for node in (a, b):
        health = httpx.get(node.http + "/healthz").json()
        assert health["status"] == "ok"
        assert sorted(n["node_id"] for n in health["cluster"]) == sorted(cluster.ids)


async def test_a_call_on_node_a_is_seen_live_and_served_by_node_b(cluster, tmp_path):
    a, b = cluster.a, cluster.b
    call_id = f"x-{uuid.uuid4().hex[:8]}"
    clip = clip_wav(SAMPLE_WAV, tmp_path / "clip.wav", 20)
    async with httpx.AsyncClient(base_url=b.http, headers=SUP, timeout=30) as on_b, \
            websockets.connect(f"{b.ws}/v1/supervise", additional_headers=SUP) as early:
        early_events: list[dict] = []
        early_task = asyncio.create_task(collect(early, call_id, early_events))
        streaming = asyncio.create_task(stream_call(clip, a.ws, "a-1", INGEST_KEY, call_id=call_id, speed=1.0))

        async def row_live():
            r = await on_b.get(f"/v1/calls/{call_id}")
            return r.status_code == 200 and r.json()["status"] == "live" and r.json()

        row = await until(row_live, "the call's row on node B")
        assert row["node_id"] == cluster.ids[0]
        live = (await on_b.get("/v1/calls", params={"status": "live"})).json()
        assert call_id in [c["call_id"] for c in live["calls"]]

        async def some_audio():
            r = await on_b.get(f"/v1/calls/{call_id}/audio")
            return r.status_code == 200 and len(r.content) > 44 + 16000 and r

        audio = await until(some_audio, "a second of the live call's audio from node B")
        assert audio.content[:4] == b"RIFF" and audio.headers["content-type"] == "audio/wav"
        so_far = (await on_b.get(f"/v1/calls/{call_id}/events")).json()
        assert so_far and so_far[0]["type"] == "call.started"

        # A viewer that joins late, on B: history from the database, then the live tail.
        late_events: list[dict] = []
        async with websockets.connect(f"{b.ws}/v1/supervise?call_id={call_id}", additional_headers=SUP) as late:
            late_task = asyncio.create_task(collect(late, call_id, late_events))

            # The stream's reconnect that the load balancer sent to B: refused, naming A.
            async with websockets.connect(f"{b.ws}/v1/stream", additional_headers={"Authorization": f"Bearer {INGEST_KEY}"}) as ws:
                await ws.send(json.dumps({"type": "start", "call_id": call_id, "agent_id": "a-1", "encoding": "pcm16",
                                          "sample_rate": 8000, "channels": 2, "roles": ["caller", "agent"],
                                          "resume": True}))
                reply = json.loads(await ws.recv())
                assert reply["type"] == "error" and reply["code"] == "call_elsewhere"
                assert cluster.ids[0] in reply["message"]
                with pytest.raises(ConnectionClosed) as closed:
                    await ws.recv()
                assert closed.value.rcvd.code == 1008
            assert (await on_b.get(f"/v1/calls/{call_id}")).json()["status"] == "live"  # still streaming on A

            assert not streaming.done()  # everything above happened mid-call
            await asyncio.wait_for(streaming, 120)
            await asyncio.wait_for(asyncio.gather(early_task, late_task), 120)
        recorded = (await on_b.get(f"/v1/calls/{call_id}/events")).json()
    assert [e["seq"] for e in recorded] == list(range(1, len(recorded) + 1))
    assert recorded[-1]["type"] == "call.ended" and any(e["type"] == "transcript.final" for e in recorded)
    assert early_events == recorded  # every event, in order, none twice
    assert late_events == recorded
    ended = httpx.get(f"{b.http}/v1/calls/{call_id}", headers=SUP).json()
    assert ended["status"] == "ended" and ended["node_id"] == cluster.ids[0]
    wav = httpx.get(f"{b.http}/v1/calls/{call_id}/audio", headers=SUP)
    assert wav.status_code == 200 and abs((len(wav.content) - 44) / 4 / 16000 - 20.0) < 0.5


async def test_a_call_through_haproxy(cluster, tmp_path):
    clip = clip_wav(SAMPLE_WAV, tmp_path / "clip.wav", 6)
    # The watcher's socket goes through HAProxy too, so it may be on the other node than the stream.
    run = await stream_call(clip, cluster.lb.ws, "a-2", INGEST_KEY, watch_token=SUPERVISOR_TOKEN, speed=2.0)
    assert run.events[0]["type"] == "call.started" and run.events[-1]["type"] == "call.ended"
    assert [e["seq"] for e in run.events] == list(range(1, len(run.events) + 1))
    row = httpx.get(f"{cluster.lb.http}/v1/calls/{run.call_id}", headers=SUP).json()
    assert row["status"] == "ended" and row["node_id"] in cluster.ids


async def test_kill_9_of_node_a_mid_call_leaves_the_call_interrupted_on_b(cluster, tmp_path):
    a, b = cluster.a, cluster.b
    call_id = f"k-{uuid.uuid4().hex[:8]}"
    clip = clip_wav(SAMPLE_WAV, tmp_path / "clip.wav", 40)
    async with httpx.AsyncClient(base_url=b.http, headers=SUP, timeout=30) as on_b, \
            websockets.connect(f"{b.ws}/v1/supervise?call_id={call_id}", additional_headers=SUP) as watcher:
        seen: list[dict] = []
        watching = asyncio.create_task(collect(watcher, call_id, seen))
        streaming = asyncio.create_task(stream_call(clip, a.ws, "a-1", INGEST_KEY, call_id=call_id, speed=1.0))

        async def some_audio():
            r = await on_b.get(f"/v1/calls/{call_id}/audio")
            return r.status_code == 200 and len(r.content) > 44 + 3 * 64000

        await until(some_audio, "three seconds of the call on node B")
        assert seen and seen[0]["type"] == "call.started"
        a.kill()
        killed_at = time.monotonic()
        with pytest.raises((ConnectionClosed, OSError)):
            await asyncio.wait_for(streaming, 30)

        async def interrupted():
            r = await on_b.get(f"/v1/calls/{call_id}")
            return r.json()["status"] == "interrupted" and r.json()

        row = await until(interrupted, "the dead node's call interrupted", timeout=45, every=0.5)
        took = time.monotonic() - killed_at
        print(f"call interrupted on node B {took:.1f} s after kill -9 of node A")
        assert took < 30, f"took {took:.1f} s"
        await asyncio.wait_for(watching, 60)
        ended = seen[-1]
        assert ended["type"] == "call.ended" and ended["summary"]["end_status"] == "interrupted"
        assert [e["seq"] for e in seen] == list(range(1, len(seen) + 1))
        recorded = (await on_b.get(f"/v1/calls/{call_id}/events")).json()
        assert [e for e in recorded if e["type"] == "call.ended"] == [ended]
        assert row["audio_seconds"] == ended["t"] > 2.0
        wav = await on_b.get(f"/v1/calls/{call_id}/audio")  # the recording up to the crash, now a file
        assert wav.status_code == 200 and len(wav.content) > 44 + 3 * 64000

    # HAProxy stops sending to the dead node once its health check fails.
    async def only_b():
        async with httpx.AsyncClient(timeout=5) as lb:
            ids = set()
            for _ in range(4):
                r = await lb.get(cluster.lb.http + "/healthz")
                if r.status_code != 200:
                    return False
                ids.add(r.json()["node_id"])
            return ids == {cluster.ids[1]}

    await until(only_b, "HAProxy failing over to node B", timeout=30)
    health = httpx.get(b.http + "/healthz").json()
    assert [n["node_id"] for n in health["cluster"]] == [cluster.ids[1]]


async def test_a_gap_in_relayed_events_is_filled_from_the_database_and_nothing_doubles(postgres, redis_server,
                                                                                       transcriber, tmp_path):
    """Another node's events that never came through Redis (lost, or sent before this viewer knew the call)
    reach the viewer from the database, in order; an event relayed twice goes out once."""
    import redis

    from service.relay import CHANNEL
    from service.storage import Store
    from tests.server import RunningServer

    database = postgres.new_database()
    server = RunningServer(tmp_path, transcriber, database_url=database, redis_url=redis_server.url, node_id="viewer")
    other = Store(database)
    r = redis.Redis.from_url(redis_server.url)
    try:
        r.set("calmline:node:ghost", json.dumps({"node_id": "ghost", "live_calls": 1, "ts": time.time()}), ex=60)
        call_id = f"g-{uuid.uuid4().hex[:8]}"
        timeline = [{"type": "call.started", "call_id": call_id, "seq": 1, "t": 0.0, "ts": time.time(), "agent_id": "a-1",
                     "metadata": {}}] + [{"type": "transcript.final", "call_id": call_id, "seq": n, "t": float(n),
                                          "ts": time.time(), "speaker": "caller", "text": f"line {n}", "start": n - 1.0,
                                          "end": float(n)} for n in range(2, 7)]

        def relay(*events):
            r.publish(CHANNEL, json.dumps({"node": "ghost", "events": [[e, "a-1"] for e in events]}))

        async with websockets.connect(f"{server.ws}/v1/agents/a-1/events", additional_headers=SUP) as panel:
            # Once a relayed event of another call arrives, the panel has read its backlog (without our call).
            marker = {**timeline[0], "call_id": f"m-{uuid.uuid4().hex[:8]}"}
            relay(marker)
            assert json.loads(await asyncio.wait_for(panel.recv(), 30)) == marker
            other.create_call({"call_id": call_id, "agent_id": "a-1", "status": "live", "started_at": time.time(),
                               "node_id": "ghost"})
            other.append_events(timeline[:5])
            relay(timeline[4])  # seq 5 only: 1 to 4 never came through Redis
            got = [json.loads(await asyncio.wait_for(panel.recv(), 30)) for _ in range(5)]
            assert got == timeline[:5]
            other.append_events(timeline[5:])
            relay(timeline[4], timeline[5])  # 5 again, then 6
            assert json.loads(await asyncio.wait_for(panel.recv(), 30)) == timeline[5]
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(panel.recv(), 1.0)
    finally:
        r.close()
        other.close()
        server.stop()


def test_a_restarted_node_ends_only_the_calls_it_left_live(postgres, redis_server, transcriber, tmp_path):
    """In a cluster a node that starts again under its name ends the calls it left live (with their
    call.ended); the other nodes' live calls are theirs. Alone (no Redis), every live call was its own."""
    import redis

    from service.storage import Store
    from tests.server import RunningServer

    database = postgres.new_database()
    before = Store(database)
    for call_id, node in (("mine", "n1"), ("theirs", "n2")):
        before.create_call({"call_id": call_id, "agent_id": "a-1", "status": "live", "started_at": time.time(),
                            "node_id": node})
        before.append_events([{"type": "call.started", "call_id": call_id, "seq": 1, "t": 0.0, "ts": time.time(),
                               "agent_id": "a-1", "metadata": {}}])
    r = redis.Redis.from_url(redis_server.url)
    r.set("calmline:node:n2", json.dumps({"node_id": "n2", "live_calls": 1, "ts": time.time()}), ex=60)
    server = RunningServer(tmp_path / "cluster", transcriber, database_url=database, redis_url=redis_server.url,
                           node_id="n1")
    try:
        assert before.get_call("mine")["status"] == "interrupted"
        assert [e["type"] for e in before.get_events("mine")] == ["call.started", "call.ended"]
        assert before.get_call("theirs")["status"] == "live"
    finally:
        server.stop()
        r.delete("calmline:node:n2")
        r.close()
    alone = RunningServer(tmp_path / "alone", transcriber, database_url=database, node_id="n1")
    try:
        assert before.get_call("theirs")["status"] == "interrupted"
        assert before.get_events("theirs")[-1]["summary"]["end_status"] == "interrupted"
    finally:
        alone.stop()
        before.close()
