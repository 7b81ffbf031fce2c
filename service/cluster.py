"""The cluster view: this node's heartbeat in Redis, the nodes alive, and a dead node's calls ended by survivors.

A node refreshes its key every HEARTBEAT_S; the key expires after HEARTBEAT_TTL_S. A node holding live calls
in the database whose key has been gone for MISSING_S (so a Redis restart, which loses every key at once,
does not look like every node dying) has its calls ended as ``interrupted``, each with its ``call.ended``,
by whichever survivor gets there first (the database makes it exactly once: ``Store.end_orphans``).
Worst case from the kill to ``call.ended``: TTL + MISSING_S + one check interval, about 20 s.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

import redis.asyncio as aioredis

from service.audio_files import AudioFiles
from service.bus import EventBus
from service.relay import Relay
from service.storage import Store

log = logging.getLogger("calmline.cluster")

HEARTBEAT_S = 2.0
HEARTBEAT_TTL_S = 12.0
MISSING_S = 4.0
CHECK_S = 2.0
KEY = "calmline:node:"


class Cluster:
    def __init__(self, url: str, node_id: str, store: Store, bus: EventBus, relay: Relay, audio_files: AudioFiles,
                 live_count):
        self.node_id = node_id
        self.store = store
        self.bus = bus
        self.relay = relay
        self.audio_files = audio_files
        self._live_count = live_count  # () -> this node's live calls, for the heartbeat
        self._redis = aioredis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._started = time.time()
        self._missing: dict[str | None, float] = {}
        self._tasks: list[asyncio.Task] = []

    async def start(self) -> None:
        await self._beat()  # known to the others before it takes a call
        self._tasks = [asyncio.create_task(self.relay.run(), name="relay"),
                       asyncio.create_task(self._loop(HEARTBEAT_S, self._beat), name="heartbeat"),
                       asyncio.create_task(self._loop(CHECK_S, self.end_dead_nodes_calls), name="reaper")]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        try:
            await self._redis.delete(KEY + self.node_id)  # its calls are ended already: nothing to wait for
        except Exception:
            pass
        await self._redis.aclose()
        self.relay.close()

    async def nodes(self) -> list[dict]:
        """The nodes alive now, by their heartbeats."""
        found = []
        async for key in self._redis.scan_iter(match=KEY + "*", count=100):
            raw = await self._redis.get(key)
            if raw:
                beat = json.loads(raw)
                found.append({"node_id": beat["node_id"], "live_calls": beat["live_calls"],
                              "seen_s_ago": round(max(0.0, time.time() - beat["ts"]), 1)})
        return sorted(found, key=lambda n: n["node_id"])

    async def _loop(self, every: float, step) -> None:
        while True:
            await asyncio.sleep(every)
            try:
                await step()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis or the database away: try again next round
                log.warning("cluster step failed", extra={"step": step.__name__, "error": str(exc)})

    async def _beat(self) -> None:
        beat = {"node_id": self.node_id, "live_calls": self._live_count(), "started_at": self._started, "ts": time.time()}
        await self._redis.set(KEY + self.node_id, json.dumps(beat), px=int(HEARTBEAT_TTL_S * 1000))

    async def end_dead_nodes_calls(self) -> list[dict]:
        holders = await asyncio.to_thread(self.store.live_nodes)
        now = time.monotonic()
        dead = set()
        for node in holders - {self.node_id}:
            alive = node is not None and await self._redis.exists(KEY + node)
            if alive:
                self._missing.pop(node, None)
                continue
            since = self._missing.setdefault(node, now)
            if now - since >= MISSING_S:
                dead.add(node)
        if not dead:
            return []
        ended = await asyncio.to_thread(self.store.end_orphans, dead, "node stopped answering")
        for node in dead:
            self._missing.pop(node, None)
        await self.announce(ended)
        return ended

    async def announce(self, ended: list[dict]) -> None:
        """Calls this node ended for another: their audio made playable, their call.ended to every viewer."""
        for event in ended:
            log.warning("call of a dead node ended", extra={"call_id": event["call_id"]})
            await asyncio.to_thread(self.audio_files.finalize, event["call_id"])
            self.bus.deliver(event, event["agent_id"])
        if ended:
            await asyncio.to_thread(self.relay.publish, [(e, e["agent_id"]) for e in ended])
