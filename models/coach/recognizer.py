"""Which moves and anti-patterns an agent's words show: the playbook's rules, plus nearest examples by meaning.

Every sentence of an agent final, and each clause of a longer sentence, is embedded (by the
playbook's ``[meaning] encoder``: the published all-MiniLM-L6-v2 or the one fine-tuned on the
examples, ``embedder.py``) and compared with the playbook's examples of every move and warning kind
and with an "other" class (near-misses and everyday call talk). A class's score is the mean cosine
of its ``nearest`` closest examples, blended with the cosine to the class's centre (the mean of its
examples: steadier when a sentence is far from every example); the best class counts when it is not
"other", clears its own threshold and beats the runner-up by the margin. A clause is pooled from its
sentence's run of the model. With ``[meaning] head = "logistic"`` a softmax-regression head trained
on the same examples at load (``head.py``: the embedding and a few lexical cues) decides instead: the
likeliest class counts when it is not "other" and its probability reaches ``probability``. With
``head = "both"`` the two read the same vectors: a move counts when either hears it, a warning only when
both do (a missed move costs a cue shown again; a false warning scolds an agent who did nothing wrong).
By any head a sentence within ``same_as_example`` of one example takes that example's class.
The regular expressions still count where they match: they are precise, the examples widen them.
``[other] patterns`` make what they match everyday talk by meaning (a greeting formula), and a warning
kind's ``unless`` patterns except a clause from it by rule and a sentence by meaning (agreeing with
the caller is not arguing). With ``recognition = "rules"`` only the regular expressions are read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

OTHER = "other"
# A sentence cannot be both: when a rule has already said one, the examples may not say the other
# ("I'm sorry, but ..." is insincere by rule even if its meaning sits near a real apology).
CONFLICTS = {("apologize", "insincere_apology"), ("make_it_right", "passing_the_buck"),
             ("follow_up", "passing_the_buck"), ("make_it_right", "policy_wall"), ("empathize", "arguing")}
MIN_CLAUSE_WORDS = 3  # "and so", "okay then" carry no meaning of their own

_SENTENCES = re.compile(r"(?<=[.!?])\s+")
_CLAUSES = re.compile(r",\s*|;\s*|\s+(?:and then|but|so that|and)\s+", re.I)


@dataclass(frozen=True)
class Recognized:
    steps: tuple[str, ...]  # moves the words show, in playbook order
    warnings: tuple[str, ...]  # warning kinds the words show
    by_meaning: tuple[str, ...] = ()  # which of those only the examples found
    pending: tuple[str, ...] = ()  # warnings heard by meaning alone that the whole reply decides (not in warnings)
    cleared: tuple[str, ...] = ()  # warnings these words rule out for the reply read whole (an exception, a near-miss)


def sentences(text: str) -> list[tuple[str, list[tuple[int, int]]]]:
    """The sentences of an agent final, each with the character spans of its clauses when it has several."""
    out = []
    for sentence in _SENTENCES.split(text.strip()):
        sentence = sentence.strip()
        if not sentence:
            continue
        spans, at = [], 0
        for clause in _CLAUSES.split(sentence):
            start = sentence.find(clause, at)
            at = start + len(clause)
            piece = clause.strip(" ,.;")
            if len(piece.split()) >= MIN_CLAUSE_WORDS:
                spans.append((start, at))
        out.append((sentence, spans if len(spans) > 1 else []))
    return out


class Recognizer:
    """Built once per playbook: the examples are embedded at load, each agent sentence at run time."""

    def __init__(self, playbook, embedder=None):
        from models.coach import embedder as embedding

        self.embedder = embedder or embedding.shared(playbook.meaning.get("encoder", "base"))
        self.meaning = playbook.meaning
        labels, texts, self.thresholds = [], [], {}
        self.near_miss_of: dict[int, str] = {}  # an example's row -> the class it is a near-miss of
        for spec in [*playbook.moves.values(), *playbook.warnings.values()]:
            name = getattr(spec, "name", None) or spec.kind
            for example in spec.examples:
                labels.append(name)
                texts.append(example)
            for near in spec.near_misses:
                self.near_miss_of[len(texts)] = name
                labels.append(OTHER)
                texts.append(near)
            if spec.examples:
                self.thresholds[name] = spec.threshold if spec.threshold is not None else self.meaning["threshold"]
        for example in playbook.other:
            labels.append(OTHER)
            texts.append(example)
        self.classes = sorted(set(labels))
        self.vectors = self.embedder.embed_cached(texts)
        self.labels = np.array([self.classes.index(x) for x in labels])
        self._members = [np.flatnonzero(self.labels == i) for i in range(len(self.classes))]
        centres = np.stack([self.vectors[m].mean(axis=0) for m in self._members])
        self.centres = centres / np.linalg.norm(centres, axis=1, keepdims=True)
        # Who reads: the nearest examples, the head, or both (moves from either, warnings from both).
        self.readers = {"logistic": ("logistic",), "both": ("nearest", "logistic")}.get(self.meaning.get("head"), ("nearest",))
        self.replies = _reply_reader(playbook) if self.meaning.get("replies") else None
        self.head = None
        if "logistic" in self.readers:
            from models.coach.head import Head

            self.head = Head(self.vectors, texts, self.labels, len(self.classes), self.meaning["cues"],
                             self.meaning["regularization"])

    def scores(self, sentences: list[str]) -> np.ndarray:
        """Per sentence, per class: the mean cosine of the class's nearest examples, blended with its centre."""
        return self._scores(self.embedder.embed(sentences))

    def _scores(self, vectors: np.ndarray, sims: np.ndarray | None = None) -> np.ndarray:
        sims = _cosines(vectors, self.vectors) if sims is None else sims
        k, w = self.meaning["nearest"], self.meaning["centroid"]
        out = np.empty((len(vectors), len(self.classes)), np.float32)
        for i, members in enumerate(self._members):
            part = sims[:, members]
            take = min(k, part.shape[1])
            out[:, i] = np.sort(part, axis=1)[:, -take:].mean(axis=1)
        return (1 - w) * out + w * _cosines(vectors, self.centres)

    def read_text(self, text: str) -> tuple[dict[str, list[tuple[str, int, str, float]]], set[str]]:
        """An agent final's sentences and their clauses, by each of the playbook's readers: (text, index of its
        sentence's row or -1 for a sentence, class, score); and the classes one of them is a near-miss of (the
        same as it, at ``same_as_example``). One run of the model: a clause is read from its sentence's own run
        (its tokens pooled), which costs nothing more than the sentence."""
        split = sentences(text)
        if not split:
            return {}, set()
        whole, parts = self.embedder.embed_spans([s for s, _ in split], [spans for _, spans in split])
        rows, where = [], []
        for i, (sentence, spans) in enumerate(split):
            at = len(where)
            rows.append(whole[i])
            where.append((sentence, -1))
            for (a, b), vector in zip(spans, parts[i]):
                rows.append(vector)
                where.append((sentence[a:b].strip(" ,.;"), at))
        vectors, texts = np.array(rows), [u for u, _ in where]
        sims = _cosines(vectors, self.vectors)  # once, for every reader
        # A sentence this close to one of the examples (a near-miss included) takes that example's class:
        # either reader generalises from the examples but does not fit every one ("That was our mistake." is
        # a blame near-miss that the blame examples' centre outscores), and the team lead's example is their
        # word on it. Once, for every reader.
        same = self.meaning.get("same_as_example")  # unset (a playbook read by the nearest examples): off
        closest = [int(np.argmax(near)) if same is not None and len(near) and near.max() >= same else -1
                   for near in sims]
        near = {self.near_miss_of[c] for c in closest if c in self.near_miss_of}
        return {reader: [(u, at, label, score) for (u, at), (label, score, _)
                         in zip(where, self._read(vectors, texts, reader, sims, closest))]
                for reader in self.readers}, near

    def _read(self, vectors: np.ndarray, texts: list[str], reader: str, sims: np.ndarray,
              closest: list[int]) -> list[tuple[str, float, float]]:
        """Each row's class by one reader; ``closest``: the example each row is the same as (-1: none)."""
        if reader == "nearest":
            decided = self._decide(self._scores(vectors, sims))
            return [d if c < 0 else (self.classes[self.labels[c]], float(near[c]), 1.0)
                    for d, c, near in zip(decided, closest, sims)]
        out, other = [], self.classes.index(OTHER)
        for row, c in zip(self.head.probabilities(vectors, texts), closest):
            if c >= 0:
                row = np.eye(len(self.classes), dtype=np.float32)[self.labels[c]]
            order = np.argsort(row)[::-1]
            best, p = self.classes[order[0]], float(row[order[0]])
            margin = p - float(row[order[1]])
            if best == OTHER or p < self.meaning["probability"]:
                # "Other" is as sure as its own probability: a clause counts only over a surer sentence.
                out.append((OTHER, float(row[other]), margin))
            else:
                out.append((best, p, margin))
        return out

    def _decide(self, table: np.ndarray) -> list[tuple[str, float, float]]:
        out = []
        for row in table:
            order = np.argsort(row)[::-1]
            best, second = self.classes[order[0]], row[order[1]] if len(order) > 1 else 0.0
            score, margin = float(row[order[0]]), float(row[order[0]] - second)
            if best == OTHER or score < self.thresholds[best] or margin < self.meaning["margin"]:
                out.append((OTHER, score, margin))
            else:
                out.append((best, score, margin))
        return out


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b.T one row at a time: a few rows against a few hundred is a matrix-vector product each,
    where a matrix product would wake the BLAS thread pool and cost 100 times more on a busy machine."""
    return np.stack([b @ row for row in a]) if len(a) else np.zeros((0, len(b)), np.float32)


_CONTRAST = re.compile(r"\b(?:but|though|although|however|yet)\b", re.I)


def _excepted(rule, text: str) -> bool:
    """A warning's trigger phrase is excepted where every clause it matches in also matches its ``unless``:
    "You're right, but calm down." still says "calm down"."""
    if not rule.unless:
        return False
    pieces = [p for s, _ in sentences(text) for p in _CLAUSES.split(s)]
    hit = [p for p in pieces if any(t.search(p) for t in rule.patterns)]
    return bool(hit) and all(any(u.search(p) for u in rule.unless) for p in hit)


def _by_meaning(playbook, read: list[tuple[str, int, str, float]], by_rule: set[str], reader: str) -> set[str]:
    """The moves and warning kinds one reader heard in a final's sentences and clauses, past the playbook's
    exceptions and the rules' findings."""
    best: dict[str, float] = {}
    for text_read, sentence, label, score in read:
        if label == OTHER or label in by_rule:
            continue
        # A greeting or a sign-off ("Thank you for calling Bright Books.") is everyday talk by the playbook's
        # word, however much it sounds like a move: the examples cannot be relied on to hold every formula.
        # Only where it is said: the clause after it ("..., I'm so sorry we lost it") is read as usual.
        if any(p.search(text_read) for p in playbook.other_patterns):
            continue
        whole = text_read if sentence < 0 else read[sentence][0]
        if label in playbook.warnings and _excepted_by_meaning(playbook.warnings[label], whole):
            continue
        # A clause read alone can sound like more than its sentence means ("I am sorry" in
        # "I am sorry, please go on"): it counts only where its sentence is not more surely other.
        if sentence >= 0 and read[sentence][2] == OTHER and read[sentence][3] >= score:
            continue
        # By the head, a clause alone needs a surer reading than a sentence: a piece of a sentence
        # ("they cancelled on you" in a restatement) often sounds like more than it means.
        if sentence >= 0 and reader == "logistic" and score < playbook.meaning["clause_probability"]:
            continue
        if any(_conflict(label, r) for r in by_rule):
            continue
        best[label] = max(score, best.get(label, 0.0))
    # Two sides of a conflict both by meaning: the surer one; on a tie (two sentences each the same as an
    # example), the move: a warning needs to be sure.
    return {x for x in best if not any(_conflict(x, y) and (best[y] > best[x] or best[y] == best[x] and y in playbook.moves)
                                       for y in best)}


def _conflict(a: str, b: str) -> bool:
    """A move and a warning kind one sentence cannot both be (``CONFLICTS``, either way round)."""
    return (a, b) in CONFLICTS or (b, a) in CONFLICTS


def _excepted_by_meaning(rule, sentence: str) -> bool:
    """By meaning a sentence is read whole, so its ``unless`` excepts all of it, clauses included, unless a
    contrast follows ("I agree it was late, but ..."): what comes after the "but" is read on its own terms."""
    for u in rule.unless:
        m = u.search(sentence)
        if m and not _CONTRAST.search(sentence, m.end()):
            return True
    return False


def _reply_reader(playbook):
    """The playbook's reply reader, refused where it was fitted on vectors of another adapter or knows kinds the
    playbook does not."""
    from models.coach.embedder import ADAPTER
    from models.coach.replies import ReplyReader, RepliesUnavailable, adapter_digest

    reader = ReplyReader()
    if not ADAPTER.is_file() or reader.meta.get("adapter_sha256") != adapter_digest(ADAPTER):
        raise RepliesUnavailable("the reply reader was fitted on another adapter's vectors (calmline train replies refits it)")
    unknown = set(reader.kinds) - set(playbook.warnings)
    if unknown:
        raise RepliesUnavailable(f"the reply reader knows warning kinds the playbook does not: {', '.join(sorted(unknown))}")
    return reader


def recognize(playbook, text: str) -> Recognized:
    """The moves and warning kinds in one agent final: rules first, then meaning where the playbook says so.

    With a reply reader (the playbook's ``replies``), a warning heard by meaning alone is pending: the agent's
    whole reply decides it (``decide_reply``). "The tracking says two o'clock." reads as arguing alone and is a
    plain answer in "Let me check. The tracking says two o'clock, so it should be with you soon." The trigger
    phrases stand at once."""
    steps = {m.name for m in playbook.moves.values() if any(p.search(text) for p in m.done)}
    warnings = {w.kind for w in playbook.warnings.values() if any(p.search(text) for p in w.patterns)
                and not _excepted(w, text)}
    by_rule = steps | warnings
    found: set[str] = set()
    pending: set[str] = set()
    cleared: set[str] = set()
    if playbook.recognition == "meaning" and playbook.recognizer is not None:
        readings, near = playbook.recognizer.read_text(text)
        heard = [_by_meaning(playbook, read, by_rule, reader) for reader, read in readings.items()]
        if heard:
            # One reader: what it heard. Two: a move either heard, a warning both heard. Each reader has settled its
            # own conflicts (a tie to the move), so a warning both heard meets no move either heard against it.
            found = (set().union(*heard) & set(playbook.moves)) | (set.intersection(*heard) & set(playbook.warnings))
        done = steps | (found & set(playbook.moves))  # the moves this final makes, by rule or by meaning
        # The playbook's insincere apology is a bare "I'm sorry" with no ownership; one said with the remedy ("I'm
        # sorry, I'll waive the fee.") is none, however its words sit near the examples or the whole reply reads.
        beside_remedy = {"insincere_apology"} if "make_it_right" in done else set()
        found -= beside_remedy
        if playbook.recognizer.replies is not None and playbook.meaning["reply_confirm"] < 1:
            # What this final's words rule out for a reply read whole, which only confirmation asks: a warning whose
            # exception it says ("you're quite right" is no arguing) or whose near-miss it is, one a move made in it
            # contradicts, as the sentence readers settle it ("I'm so sorry", "I'll have it re-sent today"), and a
            # bare apology beside a remedy.
            cleared = {k for k, w in playbook.warnings.items()
                       if w.unless and any(_excepted_by_meaning(w, s) for s, _ in sentences(text))}
            cleared |= {k for k in playbook.warnings for m in done if _conflict(m, k)}
            cleared |= (near & set(playbook.warnings)) | beside_remedy
        if playbook.recognizer.replies is not None:
            pending = {x for x in found if x in playbook.recognizer.replies.kinds} - warnings
            found -= pending
    steps |= {x for x in found if x in playbook.moves}
    warnings |= {x for x in found if x in playbook.warnings}
    return Recognized(tuple(m for m in playbook.moves if m in steps), tuple(k for k in playbook.warnings if k in warnings),
                      tuple(sorted(found)), tuple(sorted(pending)), tuple(sorted(cleared - pending - warnings)))


def decide_reply(playbook, reply: str, pending: dict[str, str], cleared=()) -> tuple[str, ...]:
    """The warnings of an agent's reply, by the playbook's reply reader: each a sentence reader heard (``pending``:
    kind -> the reply from the final it was heard in on, a short question's from the final before it) where that
    text shows it at ``reply_veto``, and any the whole ``reply`` shows plainly, at ``reply_confirm``, whether a
    sentence reader heard it or not (1: never),
    unless the reply's words rule it out (``cleared``: the team lead's exceptions and near-misses are their word
    on it)."""
    confirm = playbook.meaning.get("reply_confirm", 1.0)
    read: dict[str, dict[str, float]] = {}  # one model run per distinct text

    def shows(text: str) -> dict[str, float]:
        if text not in read:
            read[text] = reply_probabilities(playbook, text)
        return read[text]

    out = {k for k, text in pending.items() if shows(text).get(k, 1.0) >= playbook.meaning["reply_veto"]}
    if confirm < 1:
        out |= {k for k, x in shows(reply).items() if x >= confirm and k not in cleared}
    return tuple(k for k in playbook.warnings if k in out)


def read_alone(playbook, text: str) -> set[str]:
    """The moves and warnings in a text said as a whole reply (a labelled sentence read alone): what ``recognize``
    finds at once and what the reply reader keeps of what is pending."""
    seen = recognize(playbook, text)
    return set(seen.steps) | set(seen.warnings) | set(decide_reply(playbook, text, dict.fromkeys(seen.pending, text),
                                                                   seen.cleared))


def reply_probabilities(playbook, reply: str) -> dict[str, float]:
    """Each warning kind's probability in the agent's reply read whole by the playbook's reply reader; none without
    one (models/coach/replies.py)."""
    recognizer = playbook.recognizer if playbook.recognition == "meaning" else None
    if recognizer is None or recognizer.replies is None or not reply.strip():
        return {}
    return recognizer.replies.probabilities(recognizer.embedder.embed([reply])[0])
