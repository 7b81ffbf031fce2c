"""A long fuzz of every ingest adapter (sans I/O): N generated connections each, counting exceptions and hangs.

    python tests/perf/fuzz_adapters.py --inputs 100000 [--adapters native,twilio] [--hang 1.0]

The grammar and the property are tests/fuzz_grammar.py's (the suite runs them bounded); here
Hypothesis only generates (no shrinking, no database) and every failure is counted, not raised,
so one run reports them all. An input is one connection's frames; frames counts the messages fed.
A hang is an input that takes longer than --hang seconds; one stuck for 30 s is interrupted.
"""

from __future__ import annotations

import argparse
import collections
import json
import signal
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402

from tests.fuzz_grammar import ADAPTERS, check  # noqa: E402


class Stuck(Exception):
    pass


def _alarm(signum, frame):
    raise Stuck()


def fuzz(name: str, inputs: int, hang: float) -> dict:
    make, strategy = ADAPTERS[name]
    stats = {"inputs": 0, "frames": 0, "exceptions": 0, "hangs": 0, "slowest_s": 0.0}
    kinds: collections.Counter = collections.Counter()
    first: dict[str, str] = {}

    @settings(max_examples=inputs, phases=[Phase.generate], database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def one(frames):
        stats["inputs"] += 1
        t0 = time.perf_counter()
        signal.setitimer(signal.ITIMER_REAL, 30)
        try:
            stats["frames"] += check(make(), frames)
        except Stuck:
            stats["hangs"] += 1
        except Exception as exc:  # counted and shown, never raised: the run goes on
            stats["exceptions"] += 1
            kind = f"{type(exc).__name__}: {str(exc)[:80]}"
            kinds[kind] += 1
            first.setdefault(kind, traceback.format_exc(limit=3) + "input: " + repr(frames)[:300])
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        took = time.perf_counter() - t0
        stats["slowest_s"] = round(max(stats["slowest_s"], took), 4)
        if took > hang:
            stats["hangs"] += 1

    t0 = time.monotonic()
    one()
    stats["seconds"] = round(time.monotonic() - t0, 1)
    stats["exception_kinds"] = dict(kinds)
    for kind, where in first.items():
        print(f"--- {name}: {kind}\n{where}", file=sys.stderr)
    return stats


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=100_000, help="generated connections per adapter")
    parser.add_argument("--adapters", default=",".join(sorted(ADAPTERS)))
    parser.add_argument("--hang", type=float, default=1.0, help="seconds one input may take before it counts as a hang")
    args = parser.parse_args()
    signal.signal(signal.SIGALRM, _alarm)
    report = {}
    for name in args.adapters.split(","):
        report[name] = fuzz(name, args.inputs, args.hang)
        print(json.dumps({name: report[name]}), flush=True)
    bad = sum(r["exceptions"] + r["hangs"] for r in report.values())
    print(json.dumps({"total_inputs": sum(r["inputs"] for r in report.values()), "exceptions_and_hangs": bad}))
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
