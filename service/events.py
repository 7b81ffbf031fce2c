"""Builds the event objects of DESIGN.md for one call and puts them on the bus, keeping the call's current state."""

from __future__ import annotations

import time
from collections import deque

from service.bus import EventBus

LATEST = {"sentiment", "floor", "cue", "call.ended"}  # only the newest counts (per speaker for sentiment)
MARKS = {"warning", "alert", "step.done"}  # each counts, the newest kept
SNAPSHOT_MARKS = 100


class CallEvents:
    def __init__(self, call_id: str, agent_id: str, bus: EventBus, first_seq: int = 1):
        self.call_id = call_id
        self.agent_id = agent_id
        self._bus = bus
        self._seq = first_seq
        self._started: dict | None = None
        self._latest: dict[tuple[str, str | None], dict] = {}  # (type, speaker) -> newest event
        self._marks = deque(maxlen=SNAPSHOT_MARKS)  # the newest warnings, alerts and steps

    @property
    def last_seq(self) -> int:
        return self._seq - 1

    def snapshot(self) -> list[dict]:
        """The call as a board row shows it now, as the events that made it, in ``seq`` order:
        ``call.started``, the newest ``sentiment`` per speaker, ``floor`` and ``cue`` (and ``call.ended``
        while the call is ending), and the newest
        ``SNAPSHOT_MARKS`` warnings, alerts and steps. A watcher catches up with this, not the history."""
        events = ([self._started] if self._started else []) + list(self._latest.values()) + list(self._marks)
        return sorted(events, key=lambda e: e["seq"])

    def emit(self, type_: str, t: float, **fields) -> dict:
        event = {"type": type_, "call_id": self.call_id, "seq": self._seq, "t": round(t, 3),
                 "ts": round(time.time(), 3), **fields}
        self._seq += 1
        if type_ == "call.started":
            self._started = event
        elif type_ in LATEST:
            self._latest[(type_, fields.get("speaker"))] = event
        elif type_ in MARKS:
            self._marks.append(event)
        self._bus.publish(event, self.agent_id)
        return event
