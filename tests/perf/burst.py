"""A burst of dense calls: how late the caller's words, the agent's and the floor's releases reach the client.

    python tests/perf/burst.py [--calls 16] [--stagger 0] [--lead 0,2]

The floor corpus's validation calls (tests/data/corpus, rendered on demand), ``--calls`` of them (repeated
round-robin), streamed at real-time pace through a fresh server per ``--lead`` value (``CALMLINE_CALLER_LEAD``),
after two calls that warm it up. ``--stagger 0`` starts them in the same second: every agent greets and every
caller vents at once, the worst burst of finals a floor of agents can make; ``--stagger 1.5`` is calls
arriving one after another. Prints, per lead: the caller's and the agent's transcript.final delays (arrival
after the end of the utterance's audio) and the floor's releases' lateness (arrival after their audio time:
the events where finished_venting turns true), p50 and p95.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from clients.tools.evaluate.floor import live_releases, cache_wav, load_part, stream_on  # noqa: E402
from clients.tools.local_server import LocalServer  # noqa: E402


def lateness(runs: list) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"caller": [], "agent": [], "release": []}
    for run in runs:
        for e, got in zip(run.events, run.received_at):
            if e["type"] == "transcript.final" and e["speaker"] in out:
                out[e["speaker"]].append(got - run.sent_at(e["end"]))
        releases, shown = live_releases(run)  # where finished_venting turns true, and when it reached the client
        out["release"] += [s - r for r, s in zip(releases, shown)]
    return out


def _cell(values: list[float]) -> str:
    return f"{np.percentile(values, 50):.2f} / {np.percentile(values, 95):.2f}" if values else "n/a"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=16)
    ap.add_argument("--stagger", type=float, default=0.0, help="seconds between call starts")
    ap.add_argument("--lead", default="0,2", help="CALMLINE_CALLER_LEAD values, one server each")
    args = ap.parse_args()
    calls = load_part("validation")
    wavs = [cache_wav("validation", c) for c in calls]
    burst = [wavs[i % len(wavs)] for i in range(args.calls)]
    print(f"{args.calls} dense calls (floor corpus, validation), starts {args.stagger} s apart, {os.cpu_count()} cores")
    print(f"{'lead s':>6} {'caller final p50/p95 s':>22} {'agent final p50/p95 s':>22} {'release shown p50/p95 s':>24}")
    for lead in (float(x) for x in args.lead.split(",")):
        os.environ["CALMLINE_CALLER_LEAD"] = str(lead)
        server = LocalServer("bundled")
        try:
            asyncio.run(stream_on(server, wavs[:2], 2, "warm"))
            late = lateness(asyncio.run(stream_on(server, burst, len(burst), "burst", args.stagger)))
        finally:
            server.stop()
        cells = [_cell(late[k]) for k in ("caller", "agent", "release")]
        print(f"{lead:>6.1f} {cells[0]:>22} {cells[1]:>22} {cells[2]:>24}", flush=True)


if __name__ == "__main__":
    main()
