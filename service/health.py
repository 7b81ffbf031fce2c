"""What is failing now: storage faults seen recently, for /healthz ("degraded") and /metrics."""

from __future__ import annotations

import threading
import time
from collections import Counter

# A fault (a full disk, a refused write, a full recorder queue) is reported this long after it was last seen.
FAULT_MEMORY = 60.0


class Health:
    """Written from the event loop and the recorder thread; read by /healthz and /metrics."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: dict[str, tuple[float, str]] = {}  # kind -> (last seen, monotonic; what)
        self.counts: Counter = Counter()  # faults seen per kind since start

    def fault(self, kind: str, detail: str) -> None:
        with self._lock:
            self._faults[kind] = (time.monotonic(), detail)
            self.counts[kind] += 1

    def reasons(self) -> list[str]:
        now = time.monotonic()
        with self._lock:
            for kind in [k for k, (seen, _) in self._faults.items() if now - seen > FAULT_MEMORY]:
                del self._faults[kind]
            return [f"{kind}: {detail}" for kind, (_, detail) in sorted(self._faults.items())]
