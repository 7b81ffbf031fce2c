"""Events across nodes: each committed batch published to Redis, other nodes' batches handed to the local bus.

Published only after the database commit (from the recorder's writer thread, in the order written), so a
viewer that sees a gap in a call's seq can always fill it from the database. Redis pub/sub keeps the order
of one publisher; a message lost while Redis was away shows up as such a gap at the call's next event.
"""

from __future__ import annotations

import asyncio
import json
import logging

import redis
import redis.asyncio as aioredis

from service.bus import EventBus

log = logging.getLogger("calmline.relay")

CHANNEL = "calmline:events"


class Relay:
    def __init__(self, url: str, node_id: str, bus: EventBus):
        self.node_id = node_id
        self.bus = bus
        self._publisher = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._url = url

    def publish(self, batch: list[tuple[dict, str | None]]) -> None:
        """Writer thread (or a worker thread): one message per committed batch, events in seq order."""
        message = json.dumps({"node": self.node_id, "events": [[event, agent_id] for event, agent_id in batch]})
        try:
            self._publisher.publish(CHANNEL, message)
        except redis.RedisError as exc:
            # Stored already; other nodes' viewers fill the gap from the database at the call's next event.
            log.warning("event relay publish failed", extra={"events": len(batch), "error": str(exc)})

    async def run(self) -> None:
        """Hand other nodes' events to this node's subscribers until cancelled; reconnects after a failure."""
        while True:
            client = aioredis.from_url(self._url)
            try:
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe(CHANNEL)
                    async for message in pubsub.listen():
                        if message["type"] == "message":
                            self._deliver(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis away or restarting: try again shortly
                log.warning("event relay subscription lost", extra={"error": str(exc)})
                await asyncio.sleep(1.0)
            finally:
                await client.aclose()

    def _deliver(self, data: bytes) -> None:
        try:
            message = json.loads(data)
        except ValueError:
            log.warning("event relay message is not JSON")
            return
        if message.get("node") == self.node_id:
            return  # this node's own subscribers had these events first-hand
        for event, agent_id in message.get("events", []):
            self.bus.deliver(event, agent_id)

    def close(self) -> None:
        self._publisher.close()
