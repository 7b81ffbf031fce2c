"""A loaded machine, reproducibly: a pytest plugin that makes every transcription window take longer.

    SLOW_DECODE=1.0 python -m pytest -p tests.perf.slow_decode tests/test_live_path.py

Each window (finals and partials alike) waits ``SLOW_DECODE`` seconds (default 0.6) before it is decoded,
as when other work holds the cores: finals come seconds late, partials thin out, two speakers' finals
leave out of start order. A test that waits for states passes under it; one that relies on timing does not.
"""

from __future__ import annotations

import os
import time

import pytest


@pytest.fixture(scope="session", autouse=True)
def _slow_decode():
    from models.transcriber import Transcriber

    extra = float(os.environ.get("SLOW_DECODE", "0.6"))
    # Every model call goes through transcribe_windows (transcribe_many is one window of it), batched or not.
    plain = Transcriber.transcribe_windows

    def slow(self, windows, *args, **kwargs):
        time.sleep(extra)
        return plain(self, windows, *args, **kwargs)

    Transcriber.transcribe_windows = slow
    yield
    Transcriber.transcribe_windows = plain
