"""Loads and checks the playbook data file: moves, phrasings, trigger phrases, examples, warnings, thresholds."""

from __future__ import annotations

import re
import string
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from models.coach.embedder import ENCODERS

DEFAULT_PATH = Path(__file__).with_name("playbook.toml")
MOVES = ("listen", "thank", "clarify", "restate", "empathize", "apologize", "speed_of_need", "make_it_right",
         "extra_mile", "follow_up")
WARNINGS = ("interrupting", "insincere_apology", "blame", "excuse", "policy_wall", "arguing", "glib", "passing_the_buck")
FIELDS = {"facts", "item", "item_the", "thing", "need", "amount", "times", "when", "about", "follow_day"}
RECOGNITION = ("meaning", "rules")  # by meaning (examples and rules) or the regular expressions alone
# How examples are matched, [meaning] in the file: a default per-class threshold, the margin over the
# runner-up class, how many nearest examples of a class are averaged, and the weight of the class's
# centre (the mean of all its examples) against those nearest ones in its score.
# With head = "logistic" a softmax-regression head trained on the examples at load decides instead
# (models/coach/head.py): a class counts when its probability reaches `probability`; `cues` weighs the
# head's lexical cues against the embedding, `regularization` is its inverse weight decay; a clause of a
# longer sentence counts when its probability reaches `clause_probability`. With head = "both" the two read
# alike: a move counts when either hears it, a warning when both do. By any head, a sentence whose
# cosine to one example reaches `same_as_example` takes that example's class (required by the logistic head
# and by both; unset, the nearest examples decide alone). A playbook without a head line reads by "nearest".
# By any head, `[other] patterns` make what they match everyday talk, and a warning kind's `unless`
# patterns except a clause or sentence from that kind (models/coach/recognizer.py).
MEANING = {"threshold": float, "margin": float, "nearest": int, "centroid": float}
HEADS = ("nearest", "logistic", "both")
# The sentence encoder, [meaning] encoder, one of models.coach.embedder.ENCODERS: "base", all-MiniLM-L6-v2 as
# published; "tuned", the same with a low-rank adapter fitted on the examples, the voices' fitting halves and the
# fitting exchanges' replies (calmline train coach; models/coach/adapter.npz). A playbook without the setting reads "base".
# The reply reader (models/coach/replies.py), with ``replies = true``: a warning a sentence reader heard by meaning
# waits for the agent's reply to be over and stands where the reply from its final on reads as it at ``reply_veto``
# or more; a whole reply that reads as one at ``reply_confirm`` or more (below 1) warns of it though no sentence did.
REPLY_SETTINGS = ("reply_veto", "reply_confirm")
HEAD_SETTINGS = {"probability": float, "clause_probability": float, "cues": float, "regularization": float,
                 "same_as_example": float}
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
    examples: tuple[str, ...] = ()
    near_misses: tuple[str, ...] = ()
    threshold: float | None = None  # None: [meaning] threshold


@dataclass(frozen=True)
class WarningRule:
    kind: str
    advice: str
    patterns: tuple[re.Pattern, ...]
    examples: tuple[str, ...] = ()
    near_misses: tuple[str, ...] = ()
    threshold: float | None = None
    unless: tuple[re.Pattern, ...] = ()  # a sentence one of these matches is not this kind, by rule or by meaning
    upset_only: bool = False  # a warning only once the caller has complained


@dataclass(frozen=True)
class Playbook:
    moves: dict[str, Move]
    warnings: dict[str, WarningRule]
    thresholds: dict[str, float]
    source: str
    recognition: str = "rules"
    meaning: dict = field(default_factory=dict)
    other: tuple[str, ...] = ()  # sentences that are none of the moves or warnings
    other_patterns: tuple[re.Pattern, ...] = ()  # a sentence these match is everyday talk, whatever its meaning
    recognizer: object = field(default=None, compare=False, repr=False)  # built at load when by meaning

    def threshold(self, name: str) -> float:
        return self.thresholds[name]


def load(path: str | Path | None = None, embed: bool = True) -> Playbook:
    """Read and check the file; by meaning, also embed every example once (``embed=False`` skips that, for checks)."""
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
        moves[name] = Move(name, spec["why"], tuple(say), _patterns(spec.get("done", []), f"{where}: [moves.{name}] done"),
                           *_examples(spec, f"{where}: [moves.{name}]"))
    warnings = {}
    for kind in WARNINGS:
        spec = warnings_data.get(kind)
        if spec is None or not spec.get("advice"):
            raise PlaybookError(f"{where}: [warnings.{kind}] needs advice")
        patterns = _patterns(spec.get("patterns", []), f"{where}: [warnings.{kind}] patterns")
        if kind != "interrupting" and not patterns:
            raise PlaybookError(f"{where}: [warnings.{kind}] needs at least one pattern")
        warnings[kind] = WarningRule(kind, spec["advice"], patterns, *_examples(spec, f"{where}: [warnings.{kind}]"),
                                     _patterns(spec.get("unless", []), f"{where}: [warnings.{kind}] unless"),
                                     _flag(spec.get("upset_only", False), f"{where}: [warnings.{kind}] upset_only"))
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
    # A playbook from before recognition by meaning (no setting) keeps working on its rules.
    recognition = data.get("recognition", "rules")
    if recognition not in RECOGNITION:
        raise PlaybookError(f"{where}: recognition must be one of {', '.join(RECOGNITION)}, not {recognition!r}")
    meaning_data = data.get("meaning", {}) if recognition == "meaning" else {}
    meaning = {}
    head = meaning_data.get("head", "nearest")
    if recognition == "meaning" and head not in HEADS:
        raise PlaybookError(f"{where}: [meaning] head must be one of {', '.join(HEADS)}, not {head!r}")
    # The head's settings are needed by the head; read (and checked) whenever given, so either head can be tried.
    wanted = {**MEANING, **{k: v for k, v in HEAD_SETTINGS.items() if head != "nearest" or k in meaning_data}}
    for name, kind in (wanted.items() if recognition == "meaning" else ()):
        value = meaning_data.get(name)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
            raise PlaybookError(f"{where}: [meaning] {name} must be a non-negative number")
        meaning[name] = kind(value)
    if meaning and meaning["nearest"] < 1:
        raise PlaybookError(f"{where}: [meaning] nearest must be at least 1")
    if meaning and meaning["centroid"] > 1:
        raise PlaybookError(f"{where}: [meaning] centroid is a weight from 0 to 1")
    for name in ("probability", "clause_probability", "same_as_example"):
        if name in meaning and not 0 < meaning[name] <= 1:
            raise PlaybookError(f"{where}: [meaning] {name} must be above 0 and at most 1")
    if "regularization" in meaning and meaning["regularization"] <= 0:
        raise PlaybookError(f"{where}: [meaning] regularization must be above 0")
    encoder = meaning_data.get("encoder", "base")
    if recognition == "meaning" and encoder not in ENCODERS:
        raise PlaybookError(f"{where}: [meaning] encoder must be one of {', '.join(ENCODERS)}, not {encoder!r}")
    if meaning:
        meaning["head"] = head
        meaning["encoder"] = encoder
        meaning.update(_reply_settings(meaning_data, encoder, where))
    unknown = set(meaning_data) - set(MEANING) - set(HEAD_SETTINGS) - set(REPLY_SETTINGS) - {"head", "encoder", "replies"}
    if unknown:
        raise PlaybookError(f"{where}: [meaning] unknown {', '.join(sorted(unknown))}")
    other = _strings(data.get("other", {}).get("examples", []), f"{where}: [other] examples")
    other_patterns = _patterns(data.get("other", {}).get("patterns", []), f"{where}: [other] patterns")
    book = Playbook(moves, warnings, thresholds, where, recognition, meaning, other, other_patterns)
    if embed:
        from models.coach import parse

        parse.pipeline()  # the facts' parser, loaded with the playbook (a second) rather than on a call's first words
    if recognition == "meaning" and embed:
        from models.coach.embedder import EmbedderUnavailable
        from models.coach.recognizer import Recognizer

        # listen has no words to find, interrupting is timing: every other class needs examples.
        missing = [n for n, m in moves.items() if n != "listen" and not m.examples] + \
                  [k for k, w in warnings.items() if k != "interrupting" and not w.examples]
        if missing:
            raise PlaybookError(f"{where}: recognition by meaning needs examples for {', '.join(missing)}")
        try:
            object.__setattr__(book, "recognizer", Recognizer(book))
        except EmbedderUnavailable as exc:
            raise PlaybookError(f"{where}: recognition by meaning: {exc}; or set recognition = \"rules\"") from None
    return book


def with_meaning(book: Playbook, **changes) -> Playbook:
    """The same playbook read with some ``[meaning]`` settings changed (another head, encoder, the reply reader off),
    its recognizer built for them: the examples' vectors are reused, a head is trained again."""
    import dataclasses

    from models.coach.recognizer import Recognizer

    other = dataclasses.replace(book, meaning={**book.meaning, **changes})
    object.__setattr__(other, "recognizer", Recognizer(other))
    return other


def _reply_settings(meaning_data: dict, encoder: str, where: str) -> dict:
    """The reply reader's settings (models/coach/replies.py): off unless ``replies = true``, and then both
    thresholds, the veto at most the confirmation. The reader was fitted on the tuned encoder's vectors: on the
    published encoder it is off (a team lead trying that encoder need not change two lines)."""
    replies = meaning_data.get("replies", False)
    if not isinstance(replies, bool):
        raise PlaybookError(f"{where}: [meaning] replies must be true or false")
    if not replies:
        return {"replies": False}
    out = {"replies": encoder == "tuned"}
    for name in REPLY_SETTINGS:
        value = meaning_data.get(name)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= 1:
            raise PlaybookError(f"{where}: [meaning] {name} must be a probability from 0 to 1")
        out[name] = float(value)
    if out["reply_veto"] > out["reply_confirm"]:
        raise PlaybookError(f"{where}: [meaning] reply_veto must be at most reply_confirm")
    return out


def _strings(raw, where: str) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(s, str) and s.strip() for s in raw):
        raise PlaybookError(f"{where} must be a list of sentences")
    return tuple(s.strip() for s in raw)


def _examples(spec: dict, where: str) -> tuple:
    """A move's or warning's examples, near-misses (they join the "other" class) and its own threshold."""
    threshold = spec.get("threshold")
    if threshold is not None and (not isinstance(threshold, (int, float)) or isinstance(threshold, bool)
                                  or not 0 <= threshold <= 1):
        raise PlaybookError(f"{where} threshold must be a number from 0 to 1")
    return (_strings(spec.get("examples", []), f"{where} examples"),
            _strings(spec.get("near_misses", []), f"{where} near_misses"),
            None if threshold is None else float(threshold))


def _flag(raw, where: str) -> bool:
    if not isinstance(raw, bool):
        raise PlaybookError(f"{where} must be true or false")
    return raw


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
