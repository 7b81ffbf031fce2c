"""Loads and checks the playbook data file: moves, phrasings, trigger phrases, warnings, thresholds."""

from __future__ import annotations

import re
import string
import tomllib
from dataclasses import dataclass
from pathlib import Path

DEFAULT_PATH = Path(__file__).with_name("playbook.toml")
MOVES = ("listen", "thank", "clarify", "restate", "empathize", "apologize", "speed_of_need", "make_it_right",
         "extra_mile", "follow_up")
WARNINGS = ("interrupting", "insincere_apology", "blame", "excuse", "policy_wall", "arguing", "glib", "passing_the_buck")
FIELDS = {"facts", "item", "item_the", "amount", "times", "when", "about", "follow_day"}
THRESHOLDS = {"apologize_first_heat": float, "empathize_heat": float, "escalation_heat": float,
              "escalation_seconds": float, "stalled_seconds": float, "repeated_warning_count": int,
              "interrupting_seconds": float, "follow_up_days": int}


class PlaybookError(ValueError):
    pass


@dataclass(frozen=True)
class Move:
    name: str
    why: str
    say: tuple[str, ...]
    done: tuple[re.Pattern, ...]


@dataclass(frozen=True)
class WarningRule:
    kind: str
    advice: str
    patterns: tuple[re.Pattern, ...]


@dataclass(frozen=True)
class Playbook:
    moves: dict[str, Move]
    warnings: dict[str, WarningRule]
    thresholds: dict[str, float]
    source: str

    def threshold(self, name: str) -> float:
        return self.thresholds[name]


def load(path: str | Path | None = None) -> Playbook:
    path = Path(path) if path else DEFAULT_PATH
    where = str(path)
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise PlaybookError(f"{where}: {exc}") from None
    moves_data, warnings_data = data.get("moves", {}), data.get("warnings", {})
    for name in moves_data:
        if name not in MOVES:
            raise PlaybookError(f"{where}: [moves.{name}] is not a move; moves are {', '.join(MOVES)}")
    for name in warnings_data:
        if name not in WARNINGS:
            raise PlaybookError(f"{where}: [warnings.{name}] is not a warning kind; kinds are {', '.join(WARNINGS)}")
    moves = {}
    for name in MOVES:
        spec = moves_data.get(name)
        if spec is None:
            raise PlaybookError(f"{where}: [moves.{name}] is missing")
        say = spec.get("say")
        if not isinstance(say, list) or not say or not all(isinstance(s, str) and s for s in say):
            raise PlaybookError(f"{where}: [moves.{name}] say must be a non-empty list of phrasings")
        for phrasing in say:
            for _, fname, _, _ in string.Formatter().parse(phrasing):
                if fname is not None and fname not in FIELDS:
                    raise PlaybookError(f"{where}: [moves.{name}] phrasing {phrasing!r} uses {{{fname}}}; "
                                        f"known fields are {', '.join(sorted(FIELDS))}")
        if not spec.get("why"):
            raise PlaybookError(f"{where}: [moves.{name}] needs a why")
        moves[name] = Move(name, spec["why"], tuple(say), _patterns(spec.get("done", []), f"{where}: [moves.{name}] done"))
    warnings = {}
    for kind in WARNINGS:
        spec = warnings_data.get(kind)
        if spec is None or not spec.get("advice"):
            raise PlaybookError(f"{where}: [warnings.{kind}] needs advice")
        patterns = _patterns(spec.get("patterns", []), f"{where}: [warnings.{kind}] patterns")
        if kind != "interrupting" and not patterns:
            raise PlaybookError(f"{where}: [warnings.{kind}] needs at least one pattern")
        warnings[kind] = WarningRule(kind, spec["advice"], patterns)
    thresholds = {}
    given = data.get("thresholds", {})
    for name, kind in THRESHOLDS.items():
        if name not in given:
            raise PlaybookError(f"{where}: [thresholds] {name} is missing")
        value = given[name]
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
            raise PlaybookError(f"{where}: [thresholds] {name} must be a non-negative number")
        thresholds[name] = kind(value)
    unknown = set(given) - set(THRESHOLDS)
    if unknown:
        raise PlaybookError(f"{where}: [thresholds] unknown {', '.join(sorted(unknown))}")
    return Playbook(moves, warnings, thresholds, where)


def _patterns(raw, where: str) -> tuple[re.Pattern, ...]:
    if not isinstance(raw, list):
        raise PlaybookError(f"{where} must be a list of regular expressions")
    out = []
    for p in raw:
        try:
            out.append(re.compile(p, re.IGNORECASE))
        except (re.error, TypeError) as exc:
            raise PlaybookError(f"{where}: {p!r} is not a valid regular expression ({exc})") from None
    return tuple(out)
