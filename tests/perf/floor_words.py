"""How much the words alone say that a caller is done: a bound from the scripts, no audio.

    python tests/perf/floor_words.py

Every part a caller says in the floor corpus (tests/data/corpus, one breath between pauses) is a
candidate end of turn; it is the end when it is the turn's last part. A logistic model over how the
part ends (models/floor_features.read_words: question, hand-over, demand, left hanging, exclamation,
thanks, ...) and where it falls in the turn (parts before it, earlier questions and exclamations) is
fitted on every dev writer but one and ranked on that one (area under the ROC curve), fitted on one
writer alone and ranked on each other, and fitted on the whole dev part and ranked on validation. No heat (the gold style would leak the labels).

The words' best case for the issue's target: a two-point decision, release at 0.8 s of silence where
the model says p >= threshold, else at 1.5 s, scored on the scripts' own pauses (false: a pause inside
a turn longer than the release; minutes from the words at 2.6 a second and the pauses). A transcript
and a segmenter only lose from here. Seconds to run.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from clients.tools.render_corpus import corpus, hand_of  # noqa: E402
from models.floor_features import hands_over, read_words  # noqa: E402
from models.floor_model import fit  # noqa: E402

EARLY, LATE = 0.8, 1.5


def features(text: str, before: list[str]) -> list[float]:
    w = read_words(text)
    questions = float(any(t.strip().endswith("?") for t in before))
    return [1.0, w.question, w.handover, w.demand, w.incomplete, w.rhetorical, w.exclaim, w.closer, w.thanks_end,
            w.ack, math.log1p(w.n_words), float(hands_over(w)), min(len(before), 6) / 3, float(not before),
            questions, float(any(t.strip().endswith("!") for t in before)), w.question * questions,
            float(w.n_words <= 4)]


def parts(calls) -> list[dict]:
    out = []
    for c in calls:
        for t in c.turns:
            if t.speaker != "caller":
                continue
            for i, text in enumerate(t.parts):
                last = i == len(t.parts) - 1
                out.append({"hand": hand_of(c.name), "x": features(text, t.parts[:i]), "last": last,
                            "pause": None if last else t.pauses[i], "vent": t.style == "vent"})
    return out


def minutes(calls) -> float:
    return sum(sum(len(p.split()) for p in t.parts) / 2.6 + sum(t.pauses) + max(t.gap or 0.8, 0.0)
               for c in calls for t in c.turns) / 60


def auc(y: np.ndarray, p: np.ndarray) -> float:
    ranks = np.argsort(np.argsort(p)) + 1.0
    pos = y > 0
    return float((ranks[pos].sum() - pos.sum() * (pos.sum() + 1) / 2) / (pos.sum() * (~pos).sum()))


def model(rows: list[dict]):
    x = np.array([r["x"] for r in rows])
    return fit(x, np.array([r["last"] for r in rows], float), balanced=True)


def two_point(rows: list[dict], probs: np.ndarray, mins: float, threshold: float) -> tuple[float, float]:
    """(false releases per minute, share of vent ends released at EARLY)."""
    false, early = 0, []
    for r, p in zip(rows, probs):
        release = EARLY if p >= threshold else LATE
        if r["last"] and r["vent"]:
            early.append(release == EARLY)
        elif not r["last"] and r["pause"] > release:
            false += 1
    return false / mins, float(np.mean(early))


def report(label: str, rows: list[dict], m, mins: float) -> None:
    probs = np.array([m.prob(r["x"]) for r in rows])
    y = np.array([r["last"] for r in rows], float)
    curve = "  ".join(f"p>={th}: {f:.2f}/min, {e:.0%} early" for th in (0.5, 0.6, 0.7, 0.8)
                      for f, e in [two_point(rows, probs, mins, th)])
    print(f"  {label:<34} AUC {auc(y, probs):.3f}   {curve}")


def main() -> None:
    dev, val = corpus("dev"), corpus("validation")
    rows = parts(dev)
    hands = sorted({r["hand"] for r in rows})
    print(f"each dev writer ranked by a model fitted on the others ({len(dev)} calls, {len(hands)} hands); "
          f"release at {EARLY} s where p >= threshold, else {LATE} s:")
    for h in hands:
        mine = [r for r in rows if r["hand"] == h]
        report(f"{h} ({sum(r['last'] for r in mine)} turn ends, {len(mine)} parts)",
               mine, model([r for r in rows if r["hand"] != h]), minutes([c for c in dev if hand_of(c.name) == h]))
    print("AUC of each writer (column) ranked by a model fitted on one other writer alone (row):")
    print("        " + "".join(f"{h:>7}" for h in hands))
    for a in hands:
        m = model([r for r in rows if r["hand"] == a])
        cells = []
        for b in hands:
            mine = [r for r in rows if r["hand"] == b]
            y = np.array([r["last"] for r in mine], float)
            cells.append("      -" if a == b else f"{auc(y, np.array([m.prob(r['x']) for r in mine])):7.3f}")
        print(f"  {a:<6}" + "".join(cells))
    vrows = parts(val)
    print("validation, fitted on the whole dev part:")
    report(f"validation ({sum(r['last'] for r in vrows)} turn ends, {len(vrows)} parts)", vrows, model(rows), minutes(val))


if __name__ == "__main__":
    main()
