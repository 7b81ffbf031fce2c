"""What the caller said happened, in the agent's words: "I ordered one book" becomes "you ordered one book".

Facts are the caller's clauses that carry a thing (a noun phrase: "my washing machine"),
a quantity, an amount, a date, a count of calls, a complaint verb or what they need.
Clauses, noun phrases and entities come from spaCy's small English pipeline (parse.py);
without it, from the regular expressions below. Person is turned so the agent can say
them back, with the company ("you sent me") speaking as "we" ("we sent you") and the
caller's household ("we've had no heating") as "you".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from models.coach import parse

NUMBER_WORDS = ("one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
                "seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred").split()
_NUMBER = r"(?:\d[\d,.]*|" + "|".join(NUMBER_WORDS) + r")(?:[ -](?:" + "|".join(NUMBER_WORDS) + r"))*"
AMOUNT = re.compile(rf"(?:\$\s?\d[\d,]*(?:\.\d\d)?|\b{_NUMBER} (?:dollars|bucks|pounds|euros)\b)", re.I)
TIMES = re.compile(rf"\b(?:{_NUMBER}|several|many|multiple) times\b|\b(?:second|third|fourth|fifth|\d+(?:st|nd|rd|th)) time\b", re.I)
WHEN = re.compile(r"\b(?:(?:last|next|this) (?:monday|tuesday|wednesday|thursday|friday|saturday|sunday|week|month|year)|"
                  r"(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)|yesterday|today|tomorrow|"
                  rf"{_NUMBER} (?:days?|weeks?|months?|hours?|minutes) ago|(?:for|over) {_NUMBER} (?:days?|weeks?|months?|hours?|minutes))\b", re.I)
QUANTITY = re.compile(rf"\b({_NUMBER}) (?:(?:extra|more|new|of (?:them|those))\b ?)?([a-z]+)?", re.I)
COMPLAINT_VERBS = re.compile(r"\b(?:ordered|sent|shipped|received|got|charged?|billed|paid|called|waited|arrived?|promised|"
                             r"supposed to|came|come|showed up|"
                             r"cancell?ed|broke|broken|cracked|lost|missed|delivered|refunded|told|said|"
                             # what went wrong, without a verb of ordering or paying: "a scratch that wasn't there"
                             r"never|still|wrong|damaged|missing|scratch(?:ed)?|leak(?:ing|ed)?|stopped|blocked|declined|"
                             r"late|stuck)\b", re.I)
# What the caller needs, said in the first person: "I want it fixed today", "I just need my refund".
# "I would like some help" and "I need help" are asking, not telling: no fact in them.
NEED = re.compile(r"\bi (?:just |really |only |still |do )?(?:want|need|expect)\b(?! (?:some |a little |your )?help\b)", re.I)
_NOT_ITEMS = {"times", "time", "of", "and", "dollars", "bucks", "days", "weeks", "months", "hours", "minutes", "ago", "in",
              "more", "extra", "percent", "the", "a", "to", "for", "at", "on", "i", "you", "we", "it", "them",
              # amounts and sizes said in words, and words that join numbers: not things
              "hundred", "thousand", "quid", "pounds", "euros", "little", "big", "small", "whole", "till", "until", "or",
              "o'clock", "pm", "am", "p", "m", "today", "tomorrow", "yesterday", "tonight"}

# Words after which "you" is still the subject ("and you sent", "did you send").
_BEFORE_SUBJECT = {"and", "but", "so", "then", "that", "because", "if", "when", "are", "do", "did", "have", "will",
                   "can", "could", "would", "should", "were", "why", "what", "how", "where", "said", "think", "know"}
_FILLER = {"just", "only", "even", "really", "the", "a", "an", "of", "them", "it", "that", "this"}
CROWD = ("people", "lot", "guys", "folks")  # "you lot": the company as a crowd
BREATH_WORDS = 32  # a restatement longer than this is a list read out, not a sentence said back

# Caller's words -> agent's words. "you" of the caller is the company: "we".
_PERSON = {
    "i": "you", "i'm": "you're", "i've": "you've", "i'd": "you'd", "i'll": "you'll", "me": "you", "my": "your",
    "mine": "yours", "myself": "yourself", "am": "are",
    "you": "we", "you're": "we're", "you've": "we've", "you'd": "we'd", "you'll": "we'll", "your": "our",
    "yours": "ours", "yourself": "ourselves", "yourselves": "ourselves", "us": "you", "our": "your",
}


def to_agent_voice(clause: str) -> str:
    """Turn a caller's clause around: first person to second, the company's "you" to "we"."""
    # "you people" ("you lot", "you guys") is the company as a crowd: "we" (held as one word through the turn-around).
    clause = re.sub(rf"\byou (?:{'|'.join(CROWD)})\b", "Wepeople", clause, flags=re.I)
    tokens = re.findall(r"[A-Za-z']+|[^A-Za-z'\s]+|\s+", clause)
    out = []
    prev_word = ""
    for tok in tokens:
        low = tok.lower()
        if low in _PERSON:
            new = _PERSON[low]
            # "you" after a verb is the object ("sent you"), and "me" after a verb stays "you".
            if low == "you" and prev_word and prev_word not in _BEFORE_SUBJECT:
                new = "us"
            if low == "am":
                new = "are"
            out.append(new)
        elif low == "was" and prev_word == "i":
            out.append("were")
        elif low == "were" and prev_word == "you":
            out.append("were")
        else:
            out.append(tok)
        if tok.strip() and re.match(r"[A-Za-z']+$", tok):
            prev_word = low
    text = "".join(out).replace("Wepeople", "we")
    return text[:1].lower() + text[1:] if not text.startswith("I ") else text


# Caller's words -> agent's words, token by token on a parse: spaCy splits "I've" into "I" + "'ve".
_TOKEN_PERSON = {"i": "you", "me": "you", "my": "your", "mine": "yours", "myself": "yourself",
                 "we": "you", "us": "you", "our": "your", "ours": "yours", "ourselves": "yourselves",
                 "your": "our", "yours": "ours", "yourself": "ourselves", "yourselves": "ourselves"}


def voice_tokens(tokens) -> str:
    """A parsed clause turned to the agent's person. "you" as a subject is the company ("we"), as an object
    "us"; "we" and "our" of the caller are the caller's household ("you", "your")."""
    out, prev = [], None
    for tok in tokens:
        low, word = tok.lower_, tok.text
        if low in CROWD and prev is not None and prev.lower_ == "you":
            prev = tok
            continue  # "you people", "you lot" is the company: "we" or "us", as "you" stands
        if low == "you":
            word = "we" if tok.dep_ in ("nsubj", "nsubjpass", "expl") else "us"
        elif low in _TOKEN_PERSON:
            word = _TOKEN_PERSON[low]
        elif low in ("'m", "am") and prev is not None and prev.lower_ == "i":
            word = "'re" if low == "'m" else "are"
        elif low == "was" and prev is not None and prev.lower_ in ("i", "we"):
            word = "were"
        elif low == "'re" and prev is not None and prev.lower_ == "you":
            word = "'re"
        out.append(word + tok.whitespace_)
        prev = tok
    text = "".join(out).strip()
    return text[:1].lower() + text[1:] if not text.startswith("I ") else text


@dataclass
class Facts:
    clauses: list[str] = field(default_factory=list)  # in the agent's voice, in the order said
    items: list[str] = field(default_factory=list)  # things counted: "one book" -> "book"
    amounts: list[str] = field(default_factory=list)
    times: list[str] = field(default_factory=list)
    whens: list[str] = field(default_factory=list)
    needs: list[str] = field(default_factory=list)  # clauses (agent's voice) saying what the caller needs
    things: list[str] = field(default_factory=list)  # what it is about, as noun phrases in the agent's voice
    weight: dict = field(default_factory=dict)  # clause -> how much it says (parsed: entities, things, need)
    trouble: bool = False  # a thing that went wrong was named ("my boiler broke"), not only a request

    def key_clauses(self, limit: int = 3) -> list[str]:
        """The clauses worth saying back: what they need (the latest), then those that say most (numbers,
        dates, things; the parse weighs them), said in the order the caller said them."""
        need = [c for c in self.clauses if c in self.needs][-1:]
        rest = [c for c in self.clauses if c not in self.needs]

        def says(c: str) -> float:
            numbered = bool(AMOUNT.search(c) or TIMES.search(c) or QUANTITY.search(c))
            return self.weight.get(c, 2.0 if numbered else 1.0)

        ranked = sorted(rest, key=lambda c: -says(c))  # stable: equal weight keeps the caller's order
        chosen = set(need + ranked[:limit - len(need)])
        return [c for c in self.clauses if c in chosen]

    @property
    def known(self) -> bool:
        """Enough to restate: a number, an amount, a count of calls, or a complaint about a thing."""
        return bool(self.clauses) and bool(self.items or self.amounts or self.times or self.trouble)

    def fields(self) -> dict:
        out = {"about": f" with your {self.items[0]}" if self.items else ""}
        if self.clauses:
            # One sentence a person would say: three clauses when they are short, the two that say most when
            # three would run past a breath.
            said = self.key_clauses()
            if len(said) > 2 and len(_join(said).split()) > BREATH_WORDS:
                said = self.key_clauses(limit=2)
            out["facts"] = _join(said)
        if self.items:
            out["item"] = self.items[0]
            out["item_the"] = f"the {self.items[0]}"
        if self.things:
            out["thing"] = self.things[0]
        if self.needs:
            out["need"] = self.needs[-1]
        if self.amounts:
            out["amount"] = self.amounts[-1]
        if self.times:
            out["times"] = self.times[-1]
        if self.whens:
            out["when"] = self.whens[-1]
        return out

    def add(self, text: str) -> None:
        with parse.parsed(text) as doc:
            if doc is None:
                self._add_by_rules(text)
            else:
                self._add_parsed(text, doc)

    def _add_parsed(self, text: str, doc) -> None:
        # Runs inside the parse's memory zone: only plain strings taken from the doc are kept.
        told_story = False
        for clause in parse.clauses(doc):
            raw = clause.text
            need = bool(NEED.search(raw))
            amount, calls = bool(AMOUNT.search(raw)), bool(TIMES.search(raw))
            counted = amount or calls
            complaint = bool(COMPLAINT_VERBS.search(raw)) or clause.negated
            labels = {label for label, _ in clause.entities}
            if not (need or counted or complaint or labels & {"MONEY", "CARDINAL", "QUANTITY"}
                    or (clause.nouns and labels & {"DATE", "TIME"})):
                continue
            voiced = voice_tokens(clause.tokens).strip(" ,.!?")
            if len(voiced.split()) < 3:
                continue
            if need:
                self.needs.append(voiced)
            words = set(re.findall(r"[a-z0-9$']+", voiced.lower())) - _FILLER
            said = set(re.findall(r"[a-z0-9$']+", " ".join(self.clauses).lower()))
            if not words <= said:
                self.clauses.append(voiced)
                self.trouble = self.trouble or bool(complaint and clause.nouns)
                # What a clause gives back: an amount most, then how many (of what was sent, of calls made),
                # dates and things, and what went wrong; a clause of filler and feelings least.
                self.weight[voiced] = (3 * amount + 2 * calls + 2 * bool(labels & {"CARDINAL", "QUANTITY"})
                                       + bool(labels & {"DATE", "TIME"}) + min(2, len(clause.nouns)) + complaint)
            self.amounts += [a.strip() for a in AMOUNT.findall(raw) if a.strip() not in self.amounts]
            self.amounts += [t for label, t in clause.entities if label == "MONEY" and t not in self.amounts
                             and not any(t in a or a in t for a in self.amounts)]
            self.times += [m.group(0) for m in TIMES.finditer(raw) if m.group(0) not in self.times]
            for m in QUANTITY.finditer(raw):
                noun = (m.group(2) or "").lower()
                proper = (m.group(2) or "")[:1].isupper()
                if noun and noun not in _NOT_ITEMS and not proper and not AMOUNT.match(m.group(0)) and noun not in self.items:
                    self.items.append(noun)
            for phrase, head in zip(clause.phrases, clause.nouns):
                # What it is about: the caller's own things first ("my boiler" before "your engineer").
                thing = _voice_phrase(phrase)
                if head not in {t.split()[-1] for t in self.things}:
                    company = re.match(r"your\b", phrase, re.I)  # the caller's "your engineer" is ours
                    at = next((i for i, t in enumerate(self.things) if t.startswith("our ")), len(self.things))
                    self.things.insert(len(self.things) if company else at, thing)
            del self.clauses[:-8]
            told_story = True
        if told_story:
            self.whens += [m.group(0) for m in WHEN.finditer(text) if m.group(0) not in self.whens]

    def _add_by_rules(self, text: str) -> None:
        """Without the parser: clauses split at punctuation and joiners, things counted by the regexes."""
        told_story = False
        for clause in split_clauses(text):
            # A date alone ("today") is small talk; with a complaint verb it is part of the story.
            need = bool(NEED.search(clause))
            if not (need or AMOUNT.search(clause) or TIMES.search(clause) or QUANTITY.search(clause)
                    or COMPLAINT_VERBS.search(clause)):
                continue
            voiced = to_agent_voice(re.sub(r"^(?:then|and|so|but|also|plus)\s+", "", clause, flags=re.I))
            if need and len(voiced.split()) >= 3:
                self.needs.append(voiced)
            words = set(re.findall(r"[a-z0-9$']+", voiced.lower())) - _FILLER
            said = set(re.findall(r"[a-z0-9$']+", " ".join(self.clauses).lower()))
            # "just one book" after "you ordered one book" adds nothing to say back.
            if len(voiced.split()) >= 3 and not words <= said:
                self.clauses.append(voiced)
            self.amounts += [a.strip() for a in AMOUNT.findall(clause) if a.strip() not in self.amounts]
            self.times += [m.group(0) for m in TIMES.finditer(clause) if m.group(0) not in self.times]
            for m in QUANTITY.finditer(clause):
                noun = (m.group(2) or "").lower()
                proper = (m.group(2) or "")[:1].isupper()  # "twelve Oak Street": a name, not a thing
                if noun and noun not in _NOT_ITEMS and not proper and not AMOUNT.match(m.group(0)) and noun not in self.items:
                    self.items.append(noun)
            del self.clauses[:-8]
            told_story = True
        if told_story:  # dates anywhere in a sentence that tells what happened
            self.whens += [m.group(0) for m in WHEN.finditer(text) if m.group(0) not in self.whens]


def _voice_phrase(phrase: str) -> str:
    """A noun phrase in the agent's words: "my card" -> "your card", "one book" -> "the book"."""
    return to_agent_voice(re.sub(rf"^(?:{_NUMBER}|a|an)\s+", "the ", phrase, flags=re.I))


def split_clauses(text: str) -> list[str]:
    parts = re.split(r"[.!?;]+(?=\s|$)\s*|,\s*(?:and |but |then |so )?|\s+(?:and then|but|and)\s+", text)
    return [p.strip(" ,") for p in parts if p and p.strip(" ,")]


def _join(clauses: list[str]) -> str:
    if len(clauses) == 1:
        return clauses[0]
    return ", ".join(clauses[:-1]) + " and " + clauses[-1]
