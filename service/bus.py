"""In-process event bus: every event to the recorder first, then to each live subscriber.

Events of calls held by other nodes (relayed through Redis, already stored) reach subscribers by ``deliver``.
A subscriber that falls ``BACKLOG`` events behind is closed (it reconnects and catches up), except the
supervisor board: its backlog is folded into each call's current state, so a slow board skips what it
would have overwritten anyway and is never dropped.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Callable

SUPERVISOR_ONLY = {"alert"}
BACKLOG = 2000  # events a subscriber may fall behind


class BoardQueue(asyncio.Queue):
    """A queue that is never full: past ``limit`` waiting events, the backlog is folded into what a board row
    shows (``service.events.CallState``: each call's start, newest sentiment per speaker, floor, cue, end, and
    its newest marks), dropping the rest (transcripts, superseded states), in the order they came."""

    def __init__(self, limit: int, on_fold: Callable[[int], None]):
        super().__init__()
        self.limit = limit
        self._fold_at = limit
        self._on_fold = on_fold

    def _put(self, item) -> None:
        super()._put(item)
        if len(self._queue) > self._fold_at:
            self._fold()

    def _fold(self) -> None:
        from service.events import CallState  # events builds on the bus

        states: dict[str, CallState] = {}
        for event in self._queue:
            states.setdefault(event["call_id"], CallState()).add(event)
        keep = {id(e) for state in states.values() for e in state.events()}
        kept = [e for e in self._queue if id(e) in keep]
        dropped = len(self._queue) - len(kept)
        self._queue.clear()
        self._queue.extend(kept)
        # With many calls their states alone may be long: fold again only once as much again has come.
        self._fold_at = max(self.limit, 2 * len(kept))
        self._on_fold(dropped)


@dataclass(eq=False)
class Subscription:
    accepts: Callable[[dict, str], bool]  # (event, agent_id of its call)
    queue: asyncio.Queue = field(default_factory=lambda: asyncio.Queue(maxsize=BACKLOG))
    overflowed: bool = False

    def __aiter__(self):
        return self

    async def __anext__(self) -> dict:
        return await self.queue.get()


class EventBus:
    def __init__(self) -> None:
        self._sinks: list[Callable[[dict], None]] = []
        self._subs: set[Subscription] = set()
        self.coalesced = 0  # events slow boards skipped (their backlog folded into each call's state)

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

    def for_board(self) -> Subscription:
        """Every call's events, for the supervisor board: a slow one gets each call's newest state, never 1013."""
        sub = Subscription(lambda e, owner: True, BoardQueue(BACKLOG, self._folded))
        self._subs.add(sub)
        return sub

    def _folded(self, dropped: int) -> None:
        self.coalesced += dropped

    def for_supervisor(self, call_id: str | None = None) -> Subscription:
        return self.subscribe(lambda e, owner: call_id is None or e["call_id"] == call_id)
