"""Builds the event objects of DESIGN.md for one call and puts them on the bus, keeping the call's current state."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import fields

from service.bus import EventBus

# only the newest counts (per speaker for sentiment); call.assigned names the call's agent now
LATEST = {"sentiment", "floor", "cue", "call.assigned", "call.ended"}
MARKS = {"warning", "alert", "step.done"}  # each counts, the newest kept
SNAPSHOT_TYPES = LATEST | MARKS | {"call.started"}
SNAPSHOT_MARKS = 100


def event_of(output) -> tuple[str, float, dict]:
    """(type, t, fields) of a typed output (models.call_analysis, service.speaker): its class's ``EVENT``, its
    ``t``, and every other field under its own name, in declared order. DESIGN.md's event table is written
    once, in those dataclasses."""
    return output.EVENT, output.t, {f.name: getattr(output, f.name) for f in fields(output) if f.name != "t"}


class CallState:
    """A call as a board row shows it, as the events that made it: ``call.started``, the newest
    ``sentiment`` per speaker, ``floor`` and ``cue`` (and ``call.ended`` once sent), and the newest
    ``SNAPSHOT_MARKS`` warnings, alerts and steps. A board catches up with this, not the history."""

    def __init__(self) -> None:
        self._started: dict | None = None
        self._latest: dict[tuple[str, str | None], dict] = {}  # (type, speaker) -> newest event
        self._marks: deque = deque(maxlen=SNAPSHOT_MARKS)

    def add(self, event: dict) -> None:
        kind = event["type"]
        if kind == "call.started":
            self._started = event
        elif kind in LATEST:
            self._latest[(kind, event.get("speaker"))] = event
        elif kind in MARKS:
            self._marks.append(event)

    def events(self) -> list[dict]:
        found = ([self._started] if self._started else []) + list(self._latest.values()) + list(self._marks)
        return sorted(found, key=lambda e: e["seq"])


def snapshot_of(history: list[dict]) -> list[dict]:
    """The same snapshot, from a call's stored events (another node's call)."""
    state = CallState()
    for event in history:
        state.add(event)
    return state.events()


class CallEvents:
    def __init__(self, call_id: str, agent_id: str | None, bus: EventBus, first_seq: int = 1):
        self.call_id = call_id
        self.agent_id = agent_id  # whose panel gets the events; None (unassigned): supervisors only
        self._bus = bus
        self._seq = first_seq
        self.state = CallState()

    @property
    def last_seq(self) -> int:
        return self._seq - 1

    def snapshot(self) -> list[dict]:
        return self.state.events()

    def emit_all(self, outputs: list) -> None:
        """Typed outputs (the analysis's, the transcripts'), each as its event, in order."""
        for output in outputs:
            kind, t, payload = event_of(output)
            self.emit(kind, t, **payload)

    def emit(self, type_: str, t: float, **fields) -> dict:
        event = {"type": type_, "call_id": self.call_id, "seq": self._seq, "t": round(t, 3),
                 "ts": round(time.time(), 3), **fields}
        self._seq += 1
        self.state.add(event)
        self._bus.publish(event, self.agent_id)
        return event
