"""The coach on text: each call's turns replayed through the Coach, by meaning and by rules alone.

Two parts: dev (the scripted calls in tests/data/calls, the text they were rendered
from) and validation (tests/data/coach_text, calls in other businesses and other
voices; nothing in the playbook is fitted on them). A caller turn is heard sentence by
sentence (facts, heat from the words), then the floor is released and the cue shown
then is checked against the turn's acceptable next moves; an agent turn is one final
per sentence. Talking over the caller is timing, not text, so `interrupting` is left out.
Also sentences labelled one by one, read alone by each head (both, the logistic head, the nearest
examples), on the other encoder and by rules: the dev sentences (tests/data/coach_text/dev/sentences.json, what to tune on) and the held halves
of the voices (dev/voices-held.json, 291 sentences, and dev/voices2-held.json, 400, in many voices by
other hands, most of them indirect; the other halves fine-tune the encoder, these are never fitted on), and
dev/voices3-held.json (350, held whole: calm-call talk that sounds like a warning, and warnings), and
dev/voices4-held.json (300, held whole: the kinds the held voices find weakest, said indirectly, and their sound-alikes).
And exchanges (dev/exchanges*.json): a caller's words and the agent's whole reply, labelled in that context, eight
hands' 2,340 written to fit on and two more hands' 200 each held; a caller the writer marked upset is heard complaining
first.
``python -m clients.tools.evaluate.coach_text --dev`` leaves the validation part out (for tuning).
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field

from models.coach.coach import AgentWarning, Coach, Cue
from models.coach.embedder import ADAPTER
from models.coach.playbook import HEAD_SETTINGS, Playbook, load, with_meaning
from clients.tools.data import data_dir
from models.floor import FloorState
from models.heat import HeatTracker

ROOT = data_dir()
PARTS = {"dev": ROOT / "calls", "validation": ROOT / "coach_text"}
# Other annotators' warnings of the validation calls, made without the gold or the coach's output (the third from
# the bare transcripts).
ANNOTATORS = {"second": ROOT / "coach_text" / "second" / "labels.json",
              "third": ROOT / "coach_text" / "third" / "labels.json"}
# Sentences labelled one by one: written for tuning, and in many voices by other hands (a measuring set).
DEV_SENTENCES = {"dev sentences": ROOT / "coach_text" / "dev" / "sentences.json",
                 "voices held out": ROOT / "coach_text" / "dev" / "voices-held.json",
                 "second voices held out": ROOT / "coach_text" / "dev" / "voices2-held.json",
                 "third voices held out": ROOT / "coach_text" / "dev" / "voices3-held.json",
                 "fourth voices held out": ROOT / "coach_text" / "dev" / "voices4-held.json"}
# Exchanges: a caller's words and the agent's whole reply, labelled in their context (the same words can be a
# warning after one caller line and not after another): eight hands' sets the reply reader is fitted on
# (clients/tools/coach_replies.py), and two more hands' sets, each in businesses no other set has, held to
# measure it. Each set with the readers it is read by (None: every one; the ones fitted on by
# the playbook, its sentence readers and the rules).
EXCHANGES = {"exchanges for fitting": (sorted((ROOT / "coach_text" / "dev").glob("exchanges*-fit.json")), ("meaning", "sentences", "rules")),
             "exchanges held out": ([ROOT / "coach_text" / "dev" / "exchanges-held.json"], None),
             "second exchanges held out": ([ROOT / "coach_text" / "dev" / "exchanges2-held.json"], None)}
COMPLAINED = "I want to make a complaint, I am really not happy about this."
SECONDS_PER_WORD = 0.35
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


@dataclass
class Turn:
    speaker: str
    sentences: list[str]
    steps: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    venting: bool = False
    next_moves: list[str] = field(default_factory=list)


@dataclass
class Score:
    name: str
    warnings_gold: int = 0
    warnings_got: int = 0
    warnings_ok: int = 0
    steps_gold: int = 0
    steps_got: int = 0
    steps_ok: int = 0
    handovers: int = 0
    handovers_ok: int = 0
    first_vent: bool | None = None  # the cue at the first hand-over after a vent was acceptable
    calm: bool = False  # no warning in the gold labels
    warned: int = 0
    per_kind: dict = field(default_factory=dict)  # kind -> [gold, got, ok]
    misses: list[str] = field(default_factory=list)
    facts_gold: int = 0  # the call's key facts (gold), and how many a restate or make_it_right cue said back
    facts_said: int = 0
    facts_cued: bool = False  # a restate or make_it_right cue was shown at all (with no such cue nothing is said back)
    turn_warnings: dict = field(default_factory=dict)  # agent turn's index in the call -> (gold, found) warning kinds

    def count_kinds(self, gold: set, got: set) -> None:
        """Per kind (move or warning): how often it was gold, found, and found where gold."""
        for kind in gold | got:
            row = self.per_kind.setdefault(kind, [0, 0, 0])
            row[0] += kind in gold
            row[1] += kind in got
            row[2] += kind in gold and kind in got


def calls(part: str) -> list[tuple[str, list[Turn]]]:
    """The part's calls as (name, turns): dev from the render scripts, validation from coach_text."""
    return [(name, turns) for name, turns, _ in _calls(part)]


def _calls(part: str) -> list[tuple[str, list[Turn], list[str]]]:
    out = []
    for path in sorted(PARTS[part].glob("*.script.json" if part == "dev" else "*.json")):
        data = json.loads(path.read_text())
        turns = []
        for t in data["turns"]:
            text = " ".join(t["parts"]) if "parts" in t else t["text"]
            turns.append(Turn(t["speaker"], [s for s in _SENTENCE.split(text.strip()) if s],
                              [s for s in t.get("steps") or []], [w for w in t.get("warnings") or [] if w != "interrupting"],
                              bool(t.get("venting")), list(t.get("next_moves") or [])))
        out.append((path.name.split(".")[0], turns, [f.lower() for f in data.get("facts", [])]))
    return out


def exchange_calls(paths) -> list[tuple[str, list[Turn], list[str]]]:
    """Each exchange as a call of two turns: the caller's words, the agent's reply. A caller the writer marked upset
    complained earlier in the call, which the exchange does not hold: they say so first and the turn is venting
    (whether a calm caller's own words complain is the coach's to hear, as in a call)."""
    out = []
    for path in paths:
        for i, x in enumerate(json.loads(path.read_text())["exchanges"]):
            upset = bool(x.get("caller_upset"))
            said = [COMPLAINED] * upset + [s for s in _SENTENCE.split(x["caller"].strip()) if s]
            reply = [s for s in _SENTENCE.split(x["agent"].strip()) if s]
            out.append((f"{path.stem}/{i}", [Turn("caller", said, venting=upset),
                                              Turn("agent", reply, list(x.get("steps") or []), list(x.get("warnings") or []))], []))
    return out


def replay(playbook: Playbook, name: str, turns: list[Turn], facts: list[str] = ()) -> Score:
    coach, heat, t = Coach(playbook, 0.0), HeatTracker("caller"), 0.0
    score = Score(name, calm=not any(turn.warnings for turn in turns))
    said_back = []  # what restate and make_it_right cues said during the call

    def saw(outputs: list) -> None:
        said_back.extend(o.say.lower() for o in outputs if isinstance(o, Cue) and o.move in ("restate", "make_it_right"))

    gold_steps: set[str] = set()
    vented = False
    for index, turn in enumerate(turns):
        if turn.speaker == "caller":
            saw(coach.floor(FloorState(t, "caller_speaking", turn.venting, False, 0.9)))
            for sentence in turn.sentences:
                end = t + SECONDS_PER_WORD * len(sentence.split())
                coach.caller_said(sentence)
                reading = heat.utterance(sentence, t, end)
                saw(coach.caller_heat(reading.heat, end) + coach.refresh(end))
                t = end + 0.3
            t += 0.8
            saw(coach.floor(FloorState(t, "open", False, True, 0.9)))
            cue = coach.cue.move if coach.cue is not None and not coach.cue.hold else None
            if turn.next_moves:
                ok = cue in turn.next_moves
                score.handovers += 1
                score.handovers_ok += ok
                if not ok:
                    score.misses.append(f"cue {cue} not in {turn.next_moves} after {' '.join(turn.sentences)[:50]!r}")
                if turn.venting and not vented:
                    score.first_vent = ok
            vented = vented or turn.venting
            continue
        got_warnings: set[str] = set()
        for sentence in turn.sentences:
            t += SECONDS_PER_WORD * len(sentence.split())
            outputs = coach.agent_final(sentence, t)
            saw(outputs)
            for out in outputs:
                if isinstance(out, AgentWarning):
                    got_warnings.add(out.kind)
            t += 0.3
        # The caller speaks next (or the call ends): the reply is read whole, as the floor's turn to the caller does.
        got_warnings |= {o.kind for o in coach.reply_ended(t) if isinstance(o, AgentWarning)}
        gold = set(turn.warnings)
        score.turn_warnings[index] = (gold, got_warnings)
        score.warnings_gold += len(gold)
        score.warnings_got += len(got_warnings)
        score.warnings_ok += len(gold & got_warnings)
        score.warned += len(got_warnings)
        score.count_kinds(gold, got_warnings)
        if gold != got_warnings:
            score.misses.append(f"warnings {sorted(got_warnings)} gold {sorted(gold)}: {' '.join(turn.sentences)[:60]!r}")
        gold_steps |= set(turn.steps)
    if facts:
        score.facts_gold = len(facts)
        score.facts_said = sum(1 for f in facts if any(f in said for said in said_back))
        score.facts_cued = bool(said_back)
    got_steps = {s.move for s in coach.done}
    score.steps_gold, score.steps_got, score.steps_ok = len(gold_steps), len(got_steps), len(gold_steps & got_steps)
    score.count_kinds(gold_steps, got_steps)
    if gold_steps != got_steps:
        score.misses.append(f"steps missed {sorted(gold_steps - got_steps)}, extra {sorted(got_steps - gold_steps)}")
    return score


def totals(scores: list[Score]) -> dict:
    def ratio(a, b):
        return a / b if b else float("nan")

    s = lambda attr: sum(getattr(x, attr) for x in scores)  # noqa: E731
    firsts = [x.first_vent for x in scores if x.first_vent is not None]
    return {
        "calls": len(scores),
        "first_cue_after_vent": ratio(sum(firsts), len(firsts)),
        "first_cue_after_vent_n": len(firsts),
        "every_handover": ratio(s("handovers_ok"), s("handovers")),
        "every_handover_n": s("handovers"),
        "warnings_precision": ratio(s("warnings_ok"), s("warnings_got")),
        "warnings_recall": ratio(s("warnings_ok"), s("warnings_gold")),
        "steps_precision": ratio(s("steps_ok"), s("steps_got")),
        "steps_recall": ratio(s("steps_ok"), s("steps_gold")),
        "facts_carried": ratio(s("facts_said"), s("facts_gold")),
        # the restatement's own quality: facts said back in the calls where such a cue was shown
        "facts_carried_when_cued": ratio(sum(x.facts_said for x in scores if x.facts_cued),
                                         sum(x.facts_gold for x in scores if x.facts_cued)),
        "warnings_on_calm_calls": sum(x.warned for x in scores if x.calm),
        "calm_calls": sum(1 for x in scores if x.calm),
    }


def heads(playbook: Playbook) -> dict[str, Playbook]:
    """The playbook read every way: by its own head without the reply reader where it has one ("sentences"), by
    each other head (the nearest examples, the logistic head, both) alone, its own head on the other encoder (the
    published one, or the fine-tuned one where it exists), and the rules alone."""
    out = {}
    if playbook.meaning.get("replies"):
        out["sentences"] = with_meaning(playbook, replies=False)  # the playbook's own head, without the reply reader
    for head in ("both", "logistic", "nearest"):
        if playbook.meaning.get("head") == head and not playbook.meaning.get("replies"):
            out[head] = playbook
        elif head != "nearest" and not set(HEAD_SETTINGS) <= set(playbook.meaning):
            continue  # a playbook without the head's settings
        elif head != playbook.meaning.get("head"):
            out[head] = with_meaning(playbook, head=head, replies=False)  # each sentence reader alone
    # The other encoder: the published one, or the fine-tuned one where its adapter is there.
    other = "tuned" if playbook.meaning.get("encoder", "base") == "base" else "base"
    if playbook.recognition == "meaning" and (other == "base" or ADAPTER.is_file()):
        out[f"{other} encoder"] = with_meaning(playbook, encoder=other, replies=False)
    out["rules"] = dataclasses.replace(playbook, recognition="rules", recognizer=None)
    return out


def sentence_scores(book: Playbook, labelled: list[tuple[str, list[str]]]) -> dict:
    """Warnings and steps found in sentences read alone against their labels: [gold, got, ok] each, and the misses."""
    from models.coach.recognizer import read_alone

    out = {"warnings": [0, 0, 0], "steps": [0, 0, 0], "misses": []}
    for text, labels in labelled:
        gold, got = set(labels), read_alone(book, text)  # a sentence alone is a whole reply
        for key, names in (("warnings", book.warnings), ("steps", book.moves)):
            g, f = gold & set(names), got & set(names)
            out[key][0] += len(g)
            out[key][1] += len(f)
            out[key][2] += len(g & f)
        if gold != got:
            out["misses"].append(f"{sorted(got)} gold {sorted(gold)}: {text!r}")
    return out


def agreement(scores: list[Score]) -> dict:
    """Warnings per agent turn on the validation calls (their replays), pairwise: the gold, a second and a third
    annotator (labels made without the gold or the coach's output), the coach. [reference, other, agreed] each."""
    theirs = {who: {name: {row["turn"]: set(row["warnings"]) - {"interrupting"} for row in rows}
                    for name, rows in json.loads(path.read_text())["calls"].items()}
              for who, path in ANNOTATORS.items()}
    pairs = [(f"{who} against gold", "gold", who) for who in theirs] + [("third against second", "second", "third")]
    pairs += [(f"coach against {who}", who, "coach") for who in ("gold", *theirs)]
    out = {key: [0, 0, 0] for key, _, _ in pairs}
    for score in scores:
        for index, (gold, found) in score.turn_warnings.items():
            read = {"gold": gold, "coach": found, **{who: t.get(score.name, {}).get(index, set()) for who, t in theirs.items()}}
            for key, ref, got in pairs:
                out[key][0] += len(read[ref])
                out[key][1] += len(read[got])
                out[key][2] += len(read[ref] & read[got])
    return out


def _num(x: float) -> str:
    return "-" if x != x else f"{x:.2f}"


def run(parts: tuple[str, ...] = ("dev", "validation"), verbose: bool = False, playbook: Playbook | None = None) -> dict:
    meaning = playbook or load()
    # meaning: the playbook as configured; each head, the other encoder, the rules alone: the same examples.
    others = heads(meaning)
    books = {"meaning": meaning, **{k: v for k, v in others.items() if k != "rules" and v is not meaning},
             "rules": others["rules"]}
    results: dict = {}
    print("calmline eval coach: text replayed through the coach (interrupting is timing, not text: left out)")
    print("first cue: the cue released at the first hand-over after a vent is acceptable; every cue: at every caller\n"
          "hand-over; warnings per agent turn, steps per call; facts: the call's key facts said back in a restate or\n"
          "make_it_right cue (if cued: in the calls where such a cue was shown); calm warned: warnings on calls whose\n"
          "gold has none")
    print(f"meaning: the playbook's own head ({meaning.meaning.get('head')}, {meaning.meaning.get('encoder')} encoder); each "
          "head alone, the playbook's head on the other encoder and the rules on the same examples")
    if ADAPTER.is_file():
        from clients.tools import coach_encoder

        print(f"tuned encoder {ADAPTER}: trained on the current examples and voices: "
              f"{'yes' if coach_encoder.current() else 'no (calmline train coach)'}")
    if meaning.meaning.get("replies"):
        from clients.tools import coach_replies

        print(f"reply reader: fitted on the current exchanges through that adapter: "
              f"{'yes' if coach_replies.current() else 'no (calmline train replies)'}")
    print(f"\n{'part':<11} {'recognition':<11} {'calls':>5} {'first cue':>9} {'every cue':>9} {'warn P':>6} {'warn R':>6} "
          f"{'step P':>6} {'step R':>6} {'facts':>5} {'if cued':>7} {'calm warned':>11}")
    kinds: dict = {}
    replayed: dict = {}
    for part in parts:
        data = _calls(part)
        for how, book in books.items():
            scores = [replay(book, name, turns, facts) for name, turns, facts in data]
            replayed[(part, how)] = scores
            tot = totals(scores)
            results[f"{part}/{how}"] = tot
            print(f"{part:<11} {how:<11} {tot['calls']:>5} {tot['first_cue_after_vent']:>9.2f} {tot['every_handover']:>9.2f} "
                  f"{tot['warnings_precision']:>6.2f} {tot['warnings_recall']:>6.2f} {tot['steps_precision']:>6.2f} "
                  f"{tot['steps_recall']:>6.2f} {_num(tot['facts_carried']):>5} {_num(tot['facts_carried_when_cued']):>7} "
                  f"{tot['warnings_on_calm_calls']:>5} in {tot['calm_calls']}")
            merged: dict = {}
            for x in scores:
                for k, row in x.per_kind.items():
                    m = merged.setdefault(k, [0, 0, 0])
                    for i in range(3):
                        m[i] += row[i]
            kinds[(part, how)] = merged
            if verbose and how == "meaning":
                for x in scores:
                    for miss in x.misses:
                        print(f"    {part} {x.name}: {miss}")
    if "dev" in parts:
        for set_name, path in DEV_SENTENCES.items():
            labelled = [(text, labels) for text, labels in json.loads(path.read_text())["sentences"]]
            print(f"\n{set_name} read alone ({len(labelled)}), found/gold (+ extra)")
            for how, book in {"meaning": meaning, **others}.items():
                r = sentence_scores(book, labelled)
                results[f"{set_name}/{how}"] = r
                cell = lambda g, f, ok: f"P {ok / f if f else float('nan'):.2f} R {ok / g:.2f} ({ok}/{g} +{f - ok})"  # noqa: E731
                print(f"  {how:<12} warnings {cell(*r['warnings'])}   steps {cell(*r['steps'])}")
                if verbose and how == "meaning" and set_name == "dev sentences":
                    for miss in r["misses"]:
                        print(f"    {miss}")
        for set_name, (paths, readers) in EXCHANGES.items():
            data = exchange_calls(paths)
            print(f"\n{set_name} ({len(data)}), a caller's words then the agent's reply, warnings and steps per reply")
            for how, book in books.items():
                if readers is not None and how not in readers:
                    continue
                tot = totals([replay(book, name, turns) for name, turns, _ in data])
                results[f"{set_name}/{how}"] = tot
                print(f"  {how:<12} warnings P {tot['warnings_precision']:.2f} R {tot['warnings_recall']:.2f}   "
                      f"steps P {tot['steps_precision']:.2f} R {tot['steps_recall']:.2f}")
    if "validation" in parts:
        print("\nwarnings per agent turn on validation, three annotators and the coach (P / R of the second against the first)")
        for how in ("meaning", "rules"):
            for key, (ref, got, ok) in agreement(replayed[("validation", how)]).items():
                if how == "rules" and not key.startswith("coach"):
                    continue
                label = key if how == "meaning" else f"{key} (rules)"
                results[f"agreement/{label}"] = (ref, got, ok)
                print(f"  {label:<30} P {ok / got if got else float('nan'):.2f} R {ok / ref if ref else float('nan'):.2f}  "
                      f"({ok} agreed; {ref} and {got} marked)")
    print("\nper kind, found/gold (extra = found that the gold does not have)")
    names = sorted({k for v in kinds.values() for k in v})
    header = "".join(f" {p[:3]}/{h:<8}" for p, h in kinds)
    print(f"{'kind':<18}{header}")
    for k in names:
        cells = ""
        for key in kinds:
            gold, got, ok = kinds[key].get(k, [0, 0, 0])
            cells += f" {ok:>2}/{gold:<2} +{got - ok:<5}"
        print(f"{k:<18}{cells}")
    return results


if __name__ == "__main__":
    import sys

    run(("dev",) if "--dev" in sys.argv else ("dev", "validation"), verbose="-v" in sys.argv)
