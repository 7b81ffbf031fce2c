"""Deleting calls: one on request (``DELETE /v1/calls/{id}``), and those older than CALMLINE_RETENTION_DAYS."""

from __future__ import annotations

import asyncio
import logging
import time

log = logging.getLogger("calmline.retention")

PURGE_INTERVAL = 3600.0  # seconds between retention passes (the first runs at start)


def delete_call(services, call_id: str) -> bool:
    """Its row and events, then its recording. False when there was no such call."""
    found = services.store.delete_call(call_id)
    services.audio_files.delete(call_id)
    return found


def purge(services, now: float | None = None) -> int:
    """Deletes the ended calls that started more than ``retention_days`` ago; returns how many."""
    days = services.settings.retention_days
    if days <= 0:
        return 0
    cutoff = (now or time.time()) - days * 86400
    expired = [c for c in services.store.calls_started_before(cutoff) if services.calls.get(c) is None]
    for call_id in expired:
        delete_call(services, call_id)
    if expired:
        log.info("calls past retention deleted", extra={"calls": len(expired), "days": days})
    return len(expired)


async def run(services) -> None:
    """At start, then hourly, for as long as the server runs."""
    while True:
        try:
            await asyncio.to_thread(purge, services)
        except Exception:  # a failing pass is logged and tried again next hour
            log.exception("retention pass failed")
        await asyncio.sleep(PURGE_INTERVAL)
