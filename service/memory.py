"""Hands the memory that ended calls freed back to the system (glibc's allocator keeps it otherwise).

What a call allocates on the worker threads (CTranslate2's buffers, the database rows, the recording's
chunks) is freed when it is done, but glibc keeps freed memory in its arenas, one more arena per thread
that allocates at once (up to 8 a core), and returns only what lies at the top of an arena. In a long run the
free pieces scatter and the RSS climbs (tests/perf/memory_hunt.py with the real model: 25 calls, +15 MB;
``malloc_trim(0)`` then gave back 68 MB; the 30-minute soak: +11 % over warm). Two remedies, both settings:
fewer arenas (``malloc_arenas``, before the threads start) so freed pieces are reused, and a periodic
``malloc_trim(0)`` (``malloc_trim``), which returns every free page of every arena, off the event loop.
On a C library other than glibc both do nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import time

log = logging.getLogger("calmline.memory")

M_ARENA_MAX = -8  # mallopt's parameter number, from glibc's malloc.h


def _libc():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim, libc.mallopt  # noqa: B018 -- glibc only: musl has neither
        return libc
    except (OSError, AttributeError):
        return None


_LIBC = _libc()


def limit_arenas(count: int) -> bool:
    """At most ``count`` malloc arenas from now on (0: glibc's default); True when the allocator took it.
    Call it before the threads that allocate start: an arena made already stays."""
    if count <= 0 or _LIBC is None:
        return False
    return bool(_LIBC.mallopt(M_ARENA_MAX, count))


def trim() -> float:
    """Return every free page of every arena to the system; the seconds it took."""
    started = time.perf_counter()
    if _LIBC is not None:
        _LIBC.malloc_trim(0)
    return time.perf_counter() - started


async def trim_every(interval: float) -> None:
    """``trim`` every ``interval`` seconds while the server runs (a task of the app's lifespan). On a thread:
    it walks every arena (about 20 ms per 100 MB held, test_long_run), which the event loop must not wait for."""
    while True:
        await asyncio.sleep(interval)
        took = await asyncio.to_thread(trim)
        log.debug("malloc_trim", extra={"seconds": round(took, 4)})
