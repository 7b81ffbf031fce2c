"""Writes calls and events to the store from one thread, in the order they happened."""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from typing import Callable

from service.storage import Store

log = logging.getLogger("calmline.recorder")


class Recorder:
    def __init__(self, store: Store):
        self.store = store
        # Called on the writer thread with each committed batch of (event, agent_id): the relay to other
        # nodes publishes only what is in the database, so a node that sees a gap can fill it from there.
        self.after_commit: list[Callable[[list[tuple[dict, str]]], None]] = []
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)
        self._thread.start()

    # Bus sink: called on the event loop for every event, must not block.
    def __call__(self, event: dict, agent_id: str | None = None) -> None:
        self._queue.put(("event", (event, agent_id)))

    def create_call(self, row: dict) -> None:
        self._queue.put(("create", row))

    def update_call(self, call_id: str, values: dict) -> None:
        self._queue.put(("update", (call_id, values)))

    async def flush(self) -> None:
        """Returns once everything queued before the call is in the store."""
        done = threading.Event()
        self._queue.put(("flush", done))
        await asyncio.to_thread(done.wait)

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
            try:
                if batch:
                    self.store.append_events([e for e, _ in batch])
                    for callback in self.after_commit:
                        callback(batch)
                if kind == "create":
                    self.store.create_call(item)
                elif kind == "update":
                    self.store.update_call(*item)
            except Exception:
                log.exception("store write failed", extra={"op": kind, "events": len(batch)})
            if kind == "flush":
                item.set()
            elif kind == "stop":
                return
