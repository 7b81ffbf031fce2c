"""The end-of-vent model on each writer's dev calls, fitted on the other writers' alone, beside silence timers.

    python tests/perf/floor_hands.py [--settings TH,HTH,ASK,SETTLE]

The floor corpus's dev part is written by several hands (the first hand's calls carry no mark, the
second's ``_b_``, later hands a prefix ``h3_``, ...). A decision learned from some writers that holds on
another's calls is what a new customer's calls need: for each hand, the model fitted on every other
hand (as ``calmline train floor`` folds them) at the committed model's thresholds and settle (or the
ones given), and 1.2 and 1.5 s silence timers on the same calls, with the figures of ``calmline eval
floor`` (vent ends released and their delay, false releases per call-minute). About a minute on 2 cores.
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from clients.tools.evaluate.floor import (Score, fit_calls, hand_of, load_part, replay, rows, score,  # noqa: E402
                                          timer_releases, writer_folds)
from models.floor import FloorConfig, FloorTracker  # noqa: E402
from models.floor_model import load  # noqa: E402


def _line(label: str, r: dict) -> str:
    return (f"  {label:<30} vent ends {r['vent_hits']}/{r['vents']}, p50 {r['vent_p50']:.2f} s p95 {r['vent_p95']:.2f} s; "
            f"every turn p50 {r['p50']:.2f} s; false {r['false_per_min']:.2f}/call-min ({r['false']} in {r['minutes']:.1f} min)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--settings", help="threshold,handover threshold,ask threshold,settle (settle 0: none); "
                                       "default: the committed model's")
    args = ap.parse_args()
    committed = load()
    if args.settings:
        th, hth, ask, settle = (float(v) for v in args.settings.split(","))
    else:
        th = committed.threshold
        hth = committed.handover_threshold or th
        ask, settle = committed.ask_threshold or hth, committed.settle or 0
    cfg = FloorConfig(threshold=th, handover_threshold=hth, ask_threshold=ask, settle=settle or None)
    calls = load_part("dev")
    data = {c.name: rows(c) for c in calls}
    folds = writer_folds(list(data), lambda fitting: fit_calls(data, fitting))
    hands: dict[str, list] = {}
    for c in calls:
        hands.setdefault(hand_of(c.name), []).append(c)
    print(f"settings: p >= {th} ({hth} for words that hand over, {ask} for a question that asks the agent), "
          f"settle {settle or '-'}", flush=True)
    total = Score()
    for hand, trying in sorted(hands.items()):
        s = Score()
        for c in trying:
            releases = replay(c, FloorTracker(cfg, folds[c.name]))
            s.add(c, releases)
            total.add(c, releases)
        print(f"{hand}: {len(trying)} calls, the model fitted on the other hands' {len(calls) - len(trying)}", flush=True)
        print(_line("model", s.row()))
        for silence in (1.2, 1.5):
            print(_line(f"{silence} s silence timer", score(trying, functools.partial(timer_releases, silence=silence))))
    print(f"every hand, each on the model that never saw it ({len(calls)} calls)")
    print(_line("model", total.row()))
    for silence in (1.2, 1.5):
        print(_line(f"{silence} s silence timer", score(calls, functools.partial(timer_releases, silence=silence))))


if __name__ == "__main__":
    main()
