"""The reply reader's two settings tried on the held sets: what `reply_veto` and `reply_confirm` are chosen on.

    python tests/perf/coach_settings.py 0.6:0.95 0.7:0.97 0.8:0.97 [--validation]

Each argument is a veto:confirmation pair read through the bundled playbook (its adapter, its reply reader, its
examples; nothing refitted). For each it prints the warnings found / gold + false on every set the settings are
chosen on (the two held exchange sets, the four held batches of voices, and the dev sentences read alone, which were
written for tuning), pooled, and the mean over the sets of their F0.5 (precision counts double, the choice the
README describes) and F1. The validation calls are left out
unless ``--validation`` asks for them: settings are chosen without them, and seen, they are no longer a blind test.
About a minute a pair on 2 cores (two with ``--validation``).
"""

from __future__ import annotations

import argparse
import json


def _f(beta: float, right: int, found: int, gold: int) -> float:
    p, r = right / found if found else 0.0, right / gold if gold else 0.0
    return (1 + beta * beta) * p * r / (beta * beta * p + r) if p + r else 0.0


def _pair(text: str) -> tuple[float, float]:
    try:
        veto, confirm = (float(v) for v in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: want veto:confirmation, e.g. 0.7:0.97") from None
    if not 0 <= veto <= confirm <= 1:
        raise argparse.ArgumentTypeError(f"{text!r}: want 0 <= veto <= confirmation <= 1")
    return veto, confirm


def held_counts(book) -> list[tuple[str, int, int, int]]:
    """(set, gold, found, right) for the warnings of every set the settings are chosen on."""
    from clients.tools.evaluate import coach_text

    out = []
    for name, (paths, _) in coach_text.EXCHANGES.items():
        if "held" not in name:
            continue
        scores = [coach_text.replay(book, call, turns) for call, turns, _ in coach_text.exchange_calls(paths)]
        out.append((name, sum(x.warnings_gold for x in scores), sum(x.warnings_got for x in scores),
                    sum(x.warnings_ok for x in scores)))
    for name, path in coach_text.DEV_SENTENCES.items():
        labelled = [(text, labels) for text, labels in json.loads(path.read_text())["sentences"]]
        gold, got, ok = coach_text.sentence_scores(book, labelled)["warnings"]
        out.append((name, gold, got, ok))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pairs", nargs="+", type=_pair, help="veto:confirmation, e.g. 0.7:0.97")
    parser.add_argument("--validation", action="store_true", help="also the validation calls (not for choosing)")
    args = parser.parse_args()
    from clients.tools.evaluate import coach_text
    from models.coach.playbook import load, with_meaning

    base = load()
    calls = coach_text.calls("validation") if args.validation else []
    for veto, confirm in args.pairs:
        book = with_meaning(base, reply_veto=veto, reply_confirm=confirm)
        cells = held_counts(book)
        f05 = [_f(0.5, ok, got, gold) for _, gold, got, ok in cells]
        f1 = [_f(1.0, ok, got, gold) for _, gold, got, ok in cells]
        gold, got, ok = (sum(c[i] for c in cells) for i in (1, 2, 3))
        line = (f"veto {veto} confirmation {confirm}: pooled {ok}/{gold} +{got - ok} "
                f"(P {ok / got if got else float('nan'):.2f} R {ok / gold if gold else float('nan'):.2f}), "
                f"mean F0.5 {sum(f05) / len(f05):.3f} F1 {sum(f1) / len(f1):.3f}")
        if calls:
            tot = coach_text.totals([coach_text.replay(book, name, turns) for name, turns in calls])
            line += (f"; validation P {tot['warnings_precision']:.2f} R {tot['warnings_recall']:.2f}, "
                     f"calm calls warned {tot['warnings_on_calm_calls']}")
        print(line, flush=True)
        for name, gold, got, ok in cells:
            print(f"    {name:<34} {ok:>3}/{gold:<3} +{got - ok}")


if __name__ == "__main__":
    main()
