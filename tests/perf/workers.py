"""The throughput bench under each transcription-worker setting: which serves more calls within 1.5 s.

    python tests/perf/workers.py [--calls 16,20,24] [--workers 1,2] [--json out.json]

Runs ``calmline bench`` (clients.tools.bench.run_bench) once per setting of CALMLINE_WORKERS,
each against its own fresh server process, and prints the largest N per setting.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", default="16,20,24")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json")
    args = parser.parse_args()

    from clients.tools.bench import run_bench

    results = {}
    for workers in args.workers.split(","):
        os.environ["CALMLINE_WORKERS"] = workers  # read by the bench's server process
        print(f"\n== CALMLINE_WORKERS={workers}", flush=True)
        results[workers] = run_bench([int(n) for n in args.calls.split(",")], None, 1.0, "bundled", args.seconds,
                                     args.device)
    print()
    for workers, result in results.items():
        print(f"workers {workers}: largest N with p95 <= 1.5 s: {result['largest_n_p95_within_1_5_s'] or 'none'}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
