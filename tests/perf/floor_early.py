"""Tried, not kept: an early stage that releases at a fixed short silence when the words say the caller is done.

    python tests/perf/floor_early.py [--at 0.8] [--words]

The issue asks for release delay p50 <= 0.8 s at <= 0.3 false releases per call-minute. The committed
model releases most turns near its 1.5 s backstop; this tries the most direct way under it: a second
logistic model over the same features, fitted on one moment of every caller pause (``--at`` seconds
into it, the classes weighted alike), and a release at that moment wherever it reaches a threshold,
ahead of the committed decision (which still decides everything else). ``--words``: the early model sees
only how the words end and where they fall in the turn (as tests/perf/floor_words.py does from the scripts),
none of the audio's features. On the dev part each call is
judged by an early model and a main model fitted on the other writers alone (as ``calmline train
floor`` folds them); on validation by both fitted on the whole dev part. Prints false releases per
call-minute and the release delays of vent ends for a row of thresholds (1.01: no early stage).
A few minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import multiprocessing
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from clients.tools.evaluate import floor as F  # noqa: E402
from models.floor import GRID, FloorTracker  # noqa: E402
from models.floor_features import NAMES, vector  # noqa: E402
from models.floor_model import FloorModel, load  # noqa: E402

THRESHOLDS = (0.5, 0.6, 0.65, 0.7, 0.75, 0.8, 0.9, 1.01)
WORDS = ("bias", "question", "handover", "demand", "incomplete", "rhetorical", "exclaim", "closer", "log_words",
         "bursts", "first_burst", "open_question", "flat", "thanks_end", "ack", "short_flat", "earlier_questions",
         "question_after_questions", "question_in_vent")


class EarlyTracker(FloorTracker):
    """The committed decision, and before it one look at ``at`` seconds into each pause."""

    def __init__(self, model: FloorModel, early: FloorModel, at: float, threshold: float, columns: np.ndarray):
        # The fold's weights with the committed model's thresholds and settle.
        super().__init__(model=dataclasses.replace(load(), weights=model.weights, mean=model.mean, scale=model.scale))
        self.early, self.at, self.early_threshold, self.columns = early, at, threshold, columns

    def _prob(self, p, read, silence, at):
        prob = super()._prob(p, read, silence, at)
        if abs(silence - self.at) < GRID / 3:
            _, words, ctx = read
            agent = p.agent_voice_at is not None and p.agent_voice_at < at - 1e-6
            if self.early.prob(np.asarray(vector(silence, words, ctx, agent))[self.columns]) >= self.early_threshold:
                return 1.0
        return prob


_JOB: dict = {}


def _score(job: tuple[str, float]) -> tuple[tuple[str, float], dict]:
    part, th = job
    calls, mains, earlies, at, columns = _JOB[part]
    s = F.Score()
    for c in calls:
        s.add(c, F.replay(c, EarlyTracker(mains[c.name], earlies[c.name], at, th, columns)))
    return job, s.row()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--at", type=float, default=0.8, help="seconds into the pause of the early look")
    ap.add_argument("--words", action="store_true", help="the early model reads the words and their place alone")
    args = ap.parse_args()
    columns = np.array([NAMES.index(n) for n in WORDS] if args.words else range(len(NAMES)))
    at = math.ceil(args.at / GRID - 1e-6) * GRID  # a chunk time
    dev, val = F.load_part("dev"), F.load_part("validation")
    full = {c.name: F.rows(c) for c in dev}
    # One row per pause: the moment `at` into it (the features' silence column is log(silence)).
    early_rows = {}
    for n, (x, y, _) in full.items():
        moment = np.abs(np.exp(x[:, 1]) - at) < GRID / 3
        early_rows[n] = (x[moment][:, columns], y[moment])
    names = list(full)
    mains = F.writer_folds(names, lambda fitting: F.fit_calls(full, fitting))
    earlies = F.writer_folds(names, lambda fitting: F.fit_calls(early_rows, fitting, balanced=True))
    main_all = F.fit_calls(full, names)
    early_all = F.fit_calls(early_rows, names, balanced=True)
    _JOB["dev"] = (dev, mains, earlies, at, columns)
    _JOB["validation"] = (val, {c.name: main_all for c in val}, {c.name: early_all for c in val}, at, columns)
    print(f"early look at {at:.3f} s of silence ({'the words alone' if args.words else 'every feature'}); dev: each hand on models fitted on the other hands; "
          f"validation: models fitted on the whole dev part", flush=True)
    jobs = [(part, th) for part in ("dev", "validation") for th in THRESHOLDS]
    with multiprocessing.get_context("fork").Pool() as pool:
        for (part, th), r in pool.imap(_score, jobs):
            label = "no early stage" if th > 1 else f"early p >= {th:.2f}"
            print(f"  {part:<10} {label:<16} false {r['false_per_min']:.2f}/call-min ({r['false']}); vent ends "
                  f"{r['vent_hits']}/{r['vents']} p50 {r['vent_p50']:.2f} s p95 {r['vent_p95']:.2f} s; "
                  f"every turn p50 {r['p50']:.2f} s", flush=True)


if __name__ == "__main__":
    main()
