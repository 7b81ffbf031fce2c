"""Writes calls and events to the store from one thread, in the order they happened.

A write that fails is retried call by call, so one call's fault (a row the database refuses)
loses nothing of the other calls; the call whose rows cannot be written is reported through
``on_fault`` and ended by its owner. The queue of events is bounded: past ``MAX_QUEUED_EVENTS``
(the database far behind) new events are still delivered live but not stored, and counted.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from typing import Callable

from service.health import Health
from service.storage import Store

log = logging.getLogger("calmline.recorder")

MAX_QUEUED_EVENTS = 50_000  # about 25 MB of events; at 20 events/s per call, 40 s of 64 calls' events
RETRY_PAUSE = 0.2  # before one call's rows are tried again on their own (a lock held a moment)


class Recorder:
    def __init__(self, store: Store, health: Health | None = None, max_queued: int = MAX_QUEUED_EVENTS):
        self.store = store
        self.health = health or Health()
        self.max_queued = max_queued
        self.on_fault: Callable[[str, str], None] | None = None  # (call_id, reason), called from the recorder thread
        self.dropped_events = 0  # not stored: the queue was full
        self.failed_writes = 0  # writes the store refused, after the retry
        # Called on the writer thread with each committed batch of (event, agent_id): the relay to other
        # nodes publishes only what is in the database, so a node that sees a gap can fill it from there.
        self.after_commit: list[Callable[[list[tuple[dict, str]]], None]] = []
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)
        self._thread.start()

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    # Bus sink: called on the event loop for every event, must not block.
    def __call__(self, event: dict, agent_id: str | None = None) -> None:
        if self._queue.qsize() >= self.max_queued:
            self.dropped_events += 1
            self.health.fault("recorder_queue_full", f"{self.dropped_events} events not stored")
            return
        self._queue.put(("event", (event, agent_id)))

    # Calls' rows are never dropped: there are few, and a call without its row cannot be read back.
    def create_call(self, row: dict) -> None:
        self._queue.put(("create", row))

    def update_call(self, call_id: str, values: dict) -> None:
        self._queue.put(("update", (call_id, values)))

    async def flush(self) -> None:
        """Returns once everything queued before the call is in the store (or failed).

        Waits on a future, not in a thread: a slow database must not hold the default thread pool.
        """
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        self._queue.put(("flush", (loop, done)))
        await done

    def close(self) -> None:
        self._queue.put(("stop", None))
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            kind, item = self._queue.get()
            batch = []
            # Events that arrive together go in one transaction.
            while kind == "event":
                batch.append(item)
                try:
                    kind, item = self._queue.get_nowait()
                except queue.Empty:
                    kind, item = None, None
            if batch:
                self._write_events(batch)
            if kind == "create":
                self._write(item["call_id"], "create call", self.store.create_call, item)
            elif kind == "update":
                self._write(item[0], "update call", self.store.update_call, *item)
            elif kind == "flush":
                loop, done = item
                try:
                    loop.call_soon_threadsafe(lambda f=done: f.done() or f.set_result(None))
                except RuntimeError:  # the loop is closed: nobody waits any more
                    pass
            elif kind == "stop":
                return

    def _write_events(self, batch: list[tuple[dict, str]]) -> None:
        try:
            self.store.append_events([e for e, _ in batch])
            self._committed(batch)
            return
        except Exception as exc:
            log.warning("event batch failed, retried call by call", extra={"events": len(batch), "error": _what(exc)})
        by_call: dict[str, list[tuple[dict, str]]] = {}
        for item in batch:
            by_call.setdefault(item[0]["call_id"], []).append(item)
        time.sleep(RETRY_PAUSE)
        for call_id, items in by_call.items():
            try:
                self.store.append_events([e for e, _ in items])
                self._committed(items)
                continue
            except Exception:
                pass
            # Row by row: what the store accepts is kept, up to the first row it refuses.
            for item in items:
                if not self._write(call_id, f"event {item[0]['seq']}", self.store.append_events, [item[0]]):
                    break
                self._committed([item])

    def _committed(self, batch: list[tuple[dict, str]]) -> None:
        for callback in self.after_commit:
            try:
                callback(batch)
            except Exception:  # the relay's fault is not the store's: the rows are in
                log.exception("after-commit callback failed")

    def _write(self, call_id: str, what: str, write, *args) -> bool:
        for attempt in (1, 2):
            try:
                write(*args)
                return True
            except Exception as exc:
                if attempt == 1:
                    time.sleep(RETRY_PAUSE)
                    continue
                self.failed_writes += 1
                reason = f"database write failed ({_what(exc)})"
                # No parameters in the log: they hold what callers said.
                log.error("store write failed", extra={"call_id": call_id, "op": what, "error": _what(exc)})
                self.health.fault("database", reason)
                if self.on_fault is not None:
                    try:
                        self.on_fault(call_id, reason)
                    except Exception:
                        log.exception("fault handler failed", extra={"call_id": call_id})
        return False


def _what(exc: Exception) -> str:
    """The database's own message (SQLAlchemy's str() carries the SQL and its parameters)."""
    orig = getattr(exc, "orig", None) or exc
    return f"{type(orig).__name__}: {str(orig)[:160]}"
