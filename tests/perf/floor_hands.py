"""The end-of-vent model fitted on one writer's dev calls and tried on the other's, beside silence timers.

    python tests/perf/floor_hands.py

The floor corpus's dev part has two hands: the first wrote the features and 50 calls, the second
30 calls (named ``*_b_*``). A decision learned from one hand that holds on the other is what a new
customer's calls would need; the same figures as ``calmline eval floor`` (vent ends released and
their delay, false releases per call-minute), the thresholds and the settle chosen on the fitting
hand's own folds as ``calmline train floor`` does, and 1.2, 1.4 and 1.5 s timers on the same calls.
A few minutes on 2 cores.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from clients.tools.evaluate.floor import (FOLDS, Score, load_part, pick_threshold, replay, rows,  # noqa: E402
                                          score, timer_releases)
from models.floor import FloorConfig, FloorTracker  # noqa: E402
from models.floor_model import fit  # noqa: E402


def _fit(data: dict, names: list[str]):
    x, y, w = (np.concatenate([data[n][i] for n in names]) for i in range(3))
    return fit(x, y, weight=w)


def _line(label: str, r: dict) -> str:
    return (f"  {label:<34} vent ends {r['vent_hits']}/{r['vents']}, p50 {r['vent_p50']:.2f} s p95 {r['vent_p95']:.2f} s; "
            f"every turn p50 {r['p50']:.2f} s; false {r['false_per_min']:.2f}/call-min ({r['false']})")


def main() -> None:
    calls = {c.name: c for c in load_part("dev")}
    data = {name: rows(call) for name, call in calls.items()}
    hands = {"first hand": sorted(n for n in calls if "_b_" not in n),
             "second hand": sorted(n for n in calls if "_b_" in n)}
    pairs = list(hands.items())
    for (fit_on, fitting), (tried_on, trying) in (pairs, pairs[::-1]):
        folds = {}
        for f in range(FOLDS):
            model = _fit(data, [n for i, n in enumerate(fitting) if i % FOLDS != f])
            folds.update({n: model for i, n in enumerate(fitting) if i % FOLDS == f})
        (th, hth, settle), _ = pick_threshold([calls[n] for n in fitting], folds)
        model = _fit(data, fitting)
        s = Score()
        for n in trying:
            s.add(calls[n], replay(calls[n], FloorTracker(FloorConfig(threshold=th, handover_threshold=hth,
                                                                      settle=settle), model)))
        print(f"fitted on the {fit_on} ({len(fitting)} calls), tried on the {tried_on} ({len(trying)} calls)", flush=True)
        print(_line(f"model (p >= {th}, {hth}; settle {settle or '-'})", s.row()))
        for silence in (1.2, 1.4, 1.5):
            print(_line(f"{silence} s silence timer", score([calls[n] for n in trying],
                                                             functools.partial(timer_releases, silence=silence))))


if __name__ == "__main__":
    main()
