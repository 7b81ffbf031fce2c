"""How fast and how shared this machine is while the bench runs: a yardstick for comparing its rows across hours.

The same build on the same 2-core machine gives a 32-call p95 of 0.8 s in one hour and 1.5 s in another, so a
bench row means little without the machine's speed beside it. Two readings: the milliseconds one core takes to
encode a 15 s window with the bundled tiny.en, whatever model the bench runs (the largest single cost of a final
on CPU, and what a slower or shared core slows first), and the share of the machine's CPU time the hypervisor
gave to someone else (steal, from /proc/stat) over a row.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class CpuTimes:
    """The machine's CPU jiffies since boot, all cores: everything counted, and the part stolen from it."""

    total: int
    steal: int

    def steal_share(self, later: "CpuTimes") -> float:
        """Stolen share of the CPU time between this reading and ``later`` (0 where no time passed)."""
        total = later.total - self.total
        return (later.steal - self.steal) / total if total > 0 else 0.0


def cpu_times(stat: Path = Path("/proc/stat")) -> CpuTimes:
    """The ``cpu`` line of /proc/stat: user nice system idle iowait irq softirq steal (guest time is inside user)."""
    for line in stat.read_text().splitlines():
        if line.startswith("cpu "):
            values = [int(v) for v in line.split()[1:9]]
            values += [0] * (8 - len(values))
            return CpuTimes(total=sum(values), steal=values[7])
    raise ValueError(f"{stat} has no cpu line")


def encode_ms(seconds: float = 15.0, repeats: int = 5) -> float:
    """Median milliseconds one core takes to encode a ``seconds`` window of quiet noise with the bundled model,
    after one warm-up; the model is loaded here, in this process, on the CPU."""
    from models.transcriber import Transcriber

    transcriber = Transcriber("bundled", "cpu", cpu_threads=1, workers=1)
    audio = np.random.default_rng(0).normal(0, 0.003, int(seconds * 16000)).astype(np.float32)
    transcriber._encode([audio], seconds)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        transcriber._encode([audio], seconds)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)
