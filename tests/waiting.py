"""Waiting for a state in the end-to-end tests: poll a check until it holds or a generous deadline passes."""

from __future__ import annotations

import asyncio
import time


async def until(check, what: str, timeout: float = 60.0, every: float = 0.1):
    """Polls ``check`` (plain, not async) from a coroutine until it returns something truthy; that value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        await asyncio.sleep(every)
    raise AssertionError(f"{what} not within {timeout:.0f} s")


def wait(check, what: str, timeout: float = 60.0, every: float = 0.2):
    """The same from plain code (a test that is not a coroutine)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"{what} not within {timeout:.0f} s")
