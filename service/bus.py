"""In-process event bus: every event to the recorder first, then to each live subscriber.

Events of calls held by other nodes (relayed through Redis, already stored) reach subscribers by ``deliver``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Callable

SUPERVISOR_ONLY = {"alert"}


@dataclass(eq=False)
class Subscription:
    accepts: Callable[[dict, str], bool]  # (event, agent_id of its call)
    queue: asyncio.Queue = field(default_factory=lambda: asyncio.Queue(maxsize=2000))
    overflowed: bool = False

    def __aiter__(self):
        return self

    async def __anext__(self) -> dict:
        return await self.queue.get()


class EventBus:
    def __init__(self) -> None:
        self._sinks: list[Callable[[dict], None]] = []
        self._subs: set[Subscription] = set()

    def add_sink(self, sink: Callable[[dict, str], None]) -> None:
        """A synchronous consumer that sees every event of this node's calls (and the call's agent), in
        order, before any subscriber."""
        self._sinks.append(sink)

    def publish(self, event: dict, agent_id: str) -> None:
        for sink in self._sinks:
            sink(event, agent_id)
        self.deliver(event, agent_id)

    def deliver(self, event: dict, agent_id: str) -> None:
        """To this node's subscribers only."""
        for sub in list(self._subs):
            if not sub.accepts(event, agent_id):
                continue
            try:
                sub.queue.put_nowait(event)
            except asyncio.QueueFull:
                # A stalled viewer must not hold up the call; it is told and reconnects.
                sub.overflowed = True

    def subscribe(self, accepts: Callable[[dict, str], bool]) -> Subscription:
        sub = Subscription(accepts)
        self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subs.discard(sub)

    def for_agent(self, agent_id: str) -> Subscription:
        return self.subscribe(lambda e, owner: owner == agent_id and e["type"] not in SUPERVISOR_ONLY)

    def for_supervisor(self, call_id: str | None = None) -> Subscription:
        return self.subscribe(lambda e, owner: call_id is None or e["call_id"] == call_id)
