"""The bench through HAProxy over several local nodes on one PostgreSQL and one Redis (all started here on
loopback): calls per node, transcript.final delays, and how long an event takes to reach a socket on a node
other than the one holding its call (the Redis relay, after the database commit).

    python tests/perf/cluster_bench.py --nodes 2 --calls 4 [--seconds 30] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import numpy as np  # noqa: E402
import websockets  # noqa: E402

from clients.simulate import stream_call  # noqa: E402
from tests.backends import CalmlineNode, HAProxy, PostgresServer, RedisServer  # noqa: E402
from tests.conftest import SAMPLE_WAV, clip_wav  # noqa: E402
from tests.server import INGEST_KEY, SUPERVISOR_TOKEN  # noqa: E402

SUP = {"Authorization": f"Bearer {SUPERVISOR_TOKEN}"}


def pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 3) if values else None


async def watch(node: CalmlineNode, arrivals: dict, stop: asyncio.Event) -> None:
    """Every event of every call as one node's supervisor socket delivers it: (call_id, seq) -> (time, event)."""
    async with websockets.connect(f"{node.ws}/v1/supervise", additional_headers=SUP, max_size=None) as ws:
        while not stop.is_set():
            try:
                raw = await asyncio.wait_for(ws.recv(), 0.5)
            except TimeoutError:
                continue
            event = json.loads(raw)
            arrivals.setdefault(event["call_id"], []).append((time.monotonic(), event))


async def bench(nodes: list[CalmlineNode], lb: HAProxy, calls: int, clip: Path, speed: float) -> dict:
    ids = {httpx.get(n.http + "/healthz").json()["node_id"]: i for i, n in enumerate(nodes)}
    stop = asyncio.Event()
    arrivals: list[dict] = [{} for _ in nodes]
    watchers = [asyncio.create_task(watch(n, arrivals[i], stop)) for i, n in enumerate(nodes)]
    await asyncio.sleep(1.0)  # the watchers are subscribed before the first call starts
    runs = await asyncio.gather(*[stream_call(clip, lb.ws, "a-1", INGEST_KEY, watch_token=SUPERVISOR_TOKEN,
                                              speed=speed, end_timeout=600) for _ in range(calls)])
    await asyncio.sleep(2.0)  # the last call.ended relayed to every node
    stop.set()
    await asyncio.gather(*watchers)
    per_node = {node_id: 0 for node_id in ids}
    relay, finals, exact = [], [], True
    for run in runs:
        row = httpx.get(f"{lb.http}/v1/calls/{run.call_id}", headers=SUP).json()
        recorded = httpx.get(f"{lb.http}/v1/calls/{run.call_id}/events", headers=SUP).json()
        per_node[row["node_id"]] += 1
        holder = ids[row["node_id"]]
        finals += run.final_delays()
        first_seen = {e["seq"]: t for t, e in arrivals[holder].get(run.call_id, [])}
        for i in range(len(nodes)):
            seen = arrivals[i].get(run.call_id, [])
            exact &= [e for _, e in seen] == recorded
            if i != holder:
                relay += [t - first_seen[e["seq"]] for t, e in seen if e["seq"] in first_seen]
    return {"calls": calls, "nodes": len(nodes), "calls_per_node": per_node, "every_socket_exact": exact,
            "final_delay_p50": pct(finals, 50), "final_delay_p95": pct(finals, 95), "final_delay_max": pct(finals, 100),
            "relay_delay_p50": pct(relay, 50), "relay_delay_p95": pct(relay, 95), "relay_delay_max": pct(relay, 100),
            "relayed_events": len(relay)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--calls", type=int, default=2, help="concurrent calls, through HAProxy")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each call (the sample call's start)")
    parser.add_argument("--speed", type=float, default=1.0)
    parser.add_argument("--json", help="also write the result to this file")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="calmline-cluster-bench-"))
    clip = clip_wav(SAMPLE_WAV, work / "call.wav", args.seconds)
    pg, redis_server = PostgresServer(), RedisServer()
    nodes, lb = [], None
    try:
        database = pg.new_database()
        nodes = [CalmlineNode(work / "data", database, redis_server.url, env={"CALMLINE_LOG_LEVEL": "warning"})
                 for _ in range(args.nodes)]
        for node in nodes:
            node.wait_ready()
        lb = HAProxy([n.address for n in nodes])
        result = asyncio.run(bench(nodes, lb, args.calls, clip, args.speed))
    finally:
        if lb:
            lb.stop()
        for node in nodes:
            node.stop()
        redis_server.stop()
        pg.stop()
    print(f"{result['calls']} calls of {args.seconds:.0f} s over {result['nodes']} nodes through HAProxy")
    print(f"  calls per node:            {result['calls_per_node']}")
    print(f"  every socket exact:        {'yes' if result['every_socket_exact'] else 'NO'}")
    print(f"  transcript.final delay:    p50 {result['final_delay_p50']} s, p95 {result['final_delay_p95']} s, "
          f"max {result['final_delay_max']} s")
    print(f"  cross-node relay delay:    p50 {result['relay_delay_p50']} s, p95 {result['relay_delay_p95']} s, "
          f"max {result['relay_delay_max']} s ({result['relayed_events']} events)")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
