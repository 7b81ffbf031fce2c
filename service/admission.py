"""Admission control: whether this node takes a new call now, and how thin partials run under load.

The load signal is the lag: how long the oldest queued final has waited for a transcription worker
(``TranscriptionScheduler.final_lag``), or how late the event loop runs a timer (the audio path, VAD and the
coach run there: a starved loop delays every call before any final is queued), whichever is more. It is
sampled four times a second. Past ``shed_lag`` seconds the
node is *shedding*: new calls are refused (``overloaded``) and no partials are transcribed, so the
workers spend themselves on the finals of the calls already taken. It stops shedding once the lag has
stayed under half of ``shed_lag`` for ``CALM_SECONDS`` (hysteresis: one empty queue between two full
ones does not reopen the door). Before that, partials thin out as the lag grows: a speaker's next
partial waits at least ``partial_interval + PARTIAL_BACKOFF * (lag - PARTIAL_LAG_FLOOR)`` seconds of their audio.
``max_calls`` caps the live calls whatever the lag (a burst of calls arrives before any lag shows).

The policy is pure (no sockets; time from a clock function, so it is unit-tested); ``sample`` is the
loop that feeds it while the server runs.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from typing import Callable

CALM_SECONDS = 10.0  # the lag must stay low this long before new calls are taken again
RESUME_FRACTION = 0.5  # ... low meaning under this fraction of shed_lag
PARTIAL_BACKOFF = 4.0  # seconds of speech added between a speaker's partials per second of lag ...
PARTIAL_LAG_FLOOR = 0.25  # ... past this much: a window in progress is not being behind
SLACK = 0.05  # partial times are rounded to the millisecond and come on 32 ms VAD chunks
SAMPLE_INTERVAL = 0.25  # how often the lag is read while the server runs
CALLS_PER_CORE = 8  # the default cap on CPU: `calmline bench` showed 2 quiet cores carry 16 calls at a p95 of about 1 s

MAX_CALLS = "max_calls"  # refusal reasons, as /metrics labels them
BEHIND = "behind"


def default_max_calls(device: str, cores: int | None = None) -> int:
    """The cap when CALMLINE_MAX_CALLS is auto (-1): per core on CPU; none on a GPU (the lag decides)."""
    if device == "cuda":
        return 0
    cores = cores or len(os.sched_getaffinity(0))
    return CALLS_PER_CORE * cores


class Admission:
    def __init__(self, max_calls: int, shed_lag: float, lag: Callable[[], float],
                 clock: Callable[[], float] = time.monotonic):
        self.max_calls = max_calls  # 0: no cap
        self.shed_lag = shed_lag  # 0: never shed on load
        self._lag = lag
        self._clock = clock
        self.lag = 0.0  # the newest sample: the larger of the two below
        self.final_lag = 0.0
        self.loop_lag = 0.0  # set by ``sample``
        self.shedding = False
        self._high_at = float("-inf")  # when the lag was last seen at or over the resume level
        self.refused: Counter = Counter()  # reason -> calls refused since start
        self.partials_thinned = 0

    def observe(self, loop_lag: float | None = None) -> float:
        """Read the lag now (with the event loop's, when given) and move the shedding state; returns the lag."""
        if loop_lag is not None:
            self.loop_lag = loop_lag
        self.final_lag = self._lag()
        lag = self.lag = max(self.final_lag, self.loop_lag)
        if self.shed_lag <= 0:
            return lag
        now = self._clock()
        if lag >= self.shed_lag * RESUME_FRACTION:
            self._high_at = now
        if lag >= self.shed_lag:
            self.shedding = True
        elif self.shedding and now - self._high_at >= CALM_SECONDS:
            self.shedding = False
        return lag

    def refusal(self, live_calls: int) -> tuple[str, str] | None:
        """Why a new call must be refused now, as (reason, message), or None to take it. Counted when refused."""
        self.observe()
        if self.max_calls and live_calls >= self.max_calls:
            found = (MAX_CALLS, f"at capacity: {live_calls} live calls, the maximum this server takes "
                                f"(CALMLINE_MAX_CALLS={self.max_calls}); try again later")
        elif self.shedding:
            found = (BEHIND, f"this server is {self.lag:.1f} s behind (over {self.shed_lag:g} s); new calls are "
                             f"refused until it catches up; try again later")
        else:
            return None
        self.refused[found[0]] += 1
        return found

    def partial_due(self, since_last: float, partial_interval: float) -> bool:
        """Whether a speaker's partial, ``since_last`` seconds of their audio after the previous one, is
        transcribed; counted as thinned when not."""
        if self.shed_lag <= 0:
            return True  # load shedding off altogether: every partial runs, as before admission existed
        if self.shedding:
            ok = False
        else:
            ok = since_last >= partial_interval + PARTIAL_BACKOFF * max(0.0, self.lag - PARTIAL_LAG_FLOOR) - SLACK
        if not ok:
            self.partials_thinned += 1
        return ok

    def reasons(self, live_calls: int) -> list[str]:
        """For /healthz: why this node refuses new calls now (empty while it takes them)."""
        out = []
        if self.shedding:
            out.append(f"overloaded: {self.lag:.1f} s behind (transcription {self.final_lag:.1f} s, event loop "
                       f"{self.loop_lag:.1f} s); new calls refused, partials paused")
        if self.max_calls and live_calls >= self.max_calls:
            out.append(f"max_calls: {live_calls} live calls of {self.max_calls}; new calls refused")
        return out

    def state(self, live_calls: int) -> dict:
        return {"accepting": not self.shedding and not (self.max_calls and live_calls >= self.max_calls),
                "shedding": self.shedding, "max_calls": self.max_calls, "shed_lag_s": self.shed_lag,
                "transcription_lag_s": round(self.final_lag, 3), "loop_lag_s": round(self.loop_lag, 3),
                "refused": dict(self.refused)}


async def sample(admission: Admission, interval: float = SAMPLE_INTERVAL) -> None:
    """Keep the lag and the shedding state fresh while the server runs (a task of the app's lifespan); how much
    later than asked each sleep ends is the event loop's lag."""
    loop = asyncio.get_running_loop()
    late = 0.0
    while True:
        admission.observe(late)
        asked = loop.time() + interval
        await asyncio.sleep(interval)
        late = max(0.0, loop.time() - asked)
