"""Builds the event objects of DESIGN.md for one call and puts them on the bus."""

from __future__ import annotations

import time

from service.bus import EventBus


class CallEvents:
    def __init__(self, call_id: str, agent_id: str | None, bus: EventBus, first_seq: int = 1):
        self.call_id = call_id
        self.agent_id = agent_id  # whose panel gets the events; None (unassigned): supervisors only
        self._bus = bus
        self._seq = first_seq

    def emit(self, type_: str, t: float, **fields) -> dict:
        event = {"type": type_, "call_id": self.call_id, "seq": self._seq, "t": round(t, 3),
                 "ts": round(time.time(), 3), **fields}
        self._seq += 1
        self._bus.publish(event, self.agent_id)
        return event
