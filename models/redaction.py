"""Personal data in transcripts: find it and replace it with typed masks before any text leaves the server.

Kinds: ``card`` (13-19 digits that pass the Luhn check and start like a card number, spoken as
digits, digit words or "forty one eleven", possibly across two utterances of one speaker; the
expiry and security code said after it become ``[expiry]`` and ``[cvv]``), ``ssn`` (nine digits of
a possible US social security number), ``phone`` (ten digits, or eleven after a 1) and ``email``
(written or spoken: "jo dot smith at example dot com"). ``Redactor`` follows one call: per speaker
it keeps the context a card opens and the final it holds while a digit run at its end could still
grow into a card in the speaker's next final. Pure text, no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

KINDS = ("card", "ssn", "phone", "email")
UNITS = {"zero": 0, "oh": 0, "o": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
         "eight": 8, "nine": 9}
TEENS = {"ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
         "seventeen": 17, "eighteen": 18, "nineteen": 19}
TENS = {"twenty": 2, "thirty": 3, "forty": 4, "fourty": 4, "fifty": 5, "sixty": 6, "seventy": 7, "eighty": 8,
        "ninety": 9}
REPEAT = {"double": 2, "triple": 3}
# What a recognizer writes for a digit word it misheard; read as digits only next to other digits.
HOMOPHONES = {"for": "4", "to": "2", "too": "2", "won": "1", "ate": "8"}
# A long digit run after these is taken as a card even when recognition garbled a digit (no Luhn match).
CARD_WORDS = {"card", "visa", "mastercard", "amex", "discover", "credit", "debit"}
JOINERS = {"-", ",", ".", "/", "and"}  # may sit between the groups of one spoken number
CODE_WORDS = {"cvv", "cvc", "cv2", "security", "code", "pin", "verification"}
CARD_CONTEXT_FINALS = 3  # expiry and code are looked for in this many finals after a card
TOKEN = re.compile(r"[A-Za-z]+|\d+|[^\sA-Za-z\d]")
EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
SPOKEN_EMAIL = re.compile(r"\b[A-Za-z0-9]+(?:\s+(?:dot|underscore|dash)\s+[A-Za-z0-9]+)*\s+at\s+[A-Za-z0-9]+"
                          r"(?:\s+dot\s+[A-Za-z]{2,})+\b", re.IGNORECASE)
LOG_CARD = re.compile(r"(?<![\d])(?:\d[ -]?){12,18}\d(?![\d])")


def parse_kinds(value: str) -> list[str]:
    """``CALMLINE_REDACT``: a comma list of kinds; empty or ``none`` turns redaction off."""
    kinds = [k.strip().lower() for k in value.split(",") if k.strip() and k.strip().lower() != "none"]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ValueError(f"unknown kind {unknown[0][:20]!r}; kinds are {', '.join(KINDS)}")
    return kinds


def luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def looks_like_card(digits: str) -> bool:
    """Luhn-valid, 13-19 digits, and an issuer prefix (Amex 34/37, Visa 4, Mastercard 2/5, Discover and others 6)."""
    return 13 <= len(digits) <= 19 and digits[0] in "23456" and luhn(digits)


def valid_ssn(digits: str) -> bool:
    return (len(digits) == 9 and digits[:3] not in ("000", "666") and digits[0] != "9" and digits[3:5] != "00"
            and digits[5:] != "0000")


@dataclass
class Run:
    """Digits spoken in a row: their text, and for each digit the character span of the token it came from."""

    digits: str = ""
    spans: list[tuple[int, int]] = field(default_factory=list)
    before: tuple[str, ...] = ()  # the words just before the run, lowercase (context: "code", "expires")

    def span(self, i: int, j: int) -> tuple[int, int]:
        return self.spans[i][0], self.spans[j - 1][1]


def digit_runs(text: str) -> list[Run]:
    tokens = [(m.group(0), m.start(), m.end()) for m in TOKEN.finditer(text)]
    runs: list[Run] = []
    current: Run | None = None
    previous: list[str] = []
    i = 0
    while i < len(tokens):
        word, start, end = tokens[i]
        low = word.lower()
        digits, used = _number(tokens, i)
        if digits:
            if current is None:
                current = Run(before=tuple(previous[-3:]))
                runs.append(current)
            span = (start, tokens[i + used - 1][2])
            current.digits += digits
            current.spans += [span] * len(digits)
            i += used
            continue
        if current is not None and low in JOINERS and i + 1 < len(tokens) and _number(tokens, i + 1)[0]:
            i += 1
            continue  # a joiner inside a number: the run goes on
        current = None
        if low.isalpha():
            previous.append(low)
        i += 1
    return runs


def _number(tokens: list, i: int) -> tuple[str, int]:
    """Digits the token at ``i`` says (with the tokens it takes), or ("", 0)."""
    word = tokens[i][0].lower()
    if word.isdigit():
        return word, 1
    if word in UNITS:
        return str(UNITS[word]), 1
    if word in TEENS:
        return str(TEENS[word]), 1
    if word in TENS:
        nxt = tokens[i + 1][0].lower() if i + 1 < len(tokens) else ""
        if nxt in UNITS and UNITS[nxt] > 0:
            return f"{TENS[word]}{UNITS[nxt]}", 2
        if nxt == "-" and i + 2 < len(tokens) and tokens[i + 2][0].lower() in UNITS:
            return f"{TENS[word]}{UNITS[tokens[i + 2][0].lower()]}", 3
        return f"{TENS[word]}0", 1
    if word in HOMOPHONES and i + 1 < len(tokens) and _number(tokens, i + 1)[0]:
        return HOMOPHONES[word], 1
    if word in REPEAT and i + 1 < len(tokens):
        digits, used = _number(tokens, i + 1)
        if len(digits) == 1:
            return digits * REPEAT[word], 1 + used
    return "", 0


@dataclass
class Found:
    kind: str
    start: int
    end: int


def find(text: str, kinds, card_context: bool = False) -> tuple[list[Found], bool]:
    """What to mask in one text; returns the spans and whether a card was found (it opens the card context)."""
    found: list[Found] = []
    card_seen = False
    after_card = card_context
    expiry_done = False
    for run in digit_runs(text):
        d = run.digits
        if "card" in kinds:
            if len(d) >= 12 and CARD_WORDS & set(run.before):
                hit = (0, len(d))  # "my card number is ..." and a long run: a card, misheard or not
            else:
                hit = _card_in(d)
            if hit is not None:
                i, j = hit
                found.append(Found("card", *run.span(i, j)))
                card_seen = after_card = True
                expiry_done = False
                rest = [(k, k + 1) for k in range(j, len(d))]
                if rest:  # digits said after the card in the same breath: expiry, then code
                    tail = Run(d[j:], run.spans[j:])
                    found += _after_card(tail, expiry_done)
                continue
            if after_card and 3 <= len(d) <= 6:
                parts = _after_card(run, expiry_done)
                expiry_done = expiry_done or any(p.kind == "expiry" for p in parts)
                found += parts
                continue
        if "ssn" in kinds and valid_ssn(d):
            found.append(Found("ssn", *run.span(0, len(d))))
            continue
        if "phone" in kinds and (len(d) == 10 or (len(d) == 11 and d[0] == "1")):
            found.append(Found("phone", *run.span(0, len(d))))
    if "email" in kinds:
        for pattern in (EMAIL, SPOKEN_EMAIL):
            found += [Found("email", m.start(), m.end()) for m in pattern.finditer(text)]
    return found, card_seen


def _card_in(d: str) -> tuple[int, int] | None:
    if looks_like_card(d):
        return 0, len(d)
    for length in (16, 15, 19, 18, 17, 14, 13):
        for i in range(0, len(d) - length + 1):
            if looks_like_card(d[i:i + length]):
                return i, i + length
    return None


def _after_card(run: Run, expiry_done: bool) -> list[Found]:
    """Digits after a card: month and year first (MMYY, MYY), then a 3 or 4 digit security code."""
    d = run.digits
    out = []
    pos = 0
    is_code = any(w in CODE_WORDS for w in run.before)
    is_expiry = any(w.startswith("exp") or w == "valid" for w in run.before)
    if not expiry_done and not is_code:
        # Three digits are a code unless the caller said it was the expiry ("expires five twenty eight").
        for size in (4, 6, 3) if is_expiry else (4, 6):
            chunk = d[pos:pos + size]
            if len(chunk) == size and _month(chunk, size):
                out.append(Found("expiry", *run.span(pos, pos + size)))
                pos += size
                break
    rest = len(d) - pos
    if 3 <= rest <= 4:
        out.append(Found("cvv", *run.span(pos, len(d))))
    elif rest and out:
        out.append(Found("cvv", *run.span(pos, len(d))))  # odd leftovers after an expiry: masked all the same
    return out


def _month(chunk: str, size: int) -> bool:
    month = int(chunk[:2] if size in (4, 6) else chunk[:1])
    return 1 <= month <= 12


def apply(text: str, found: list[Found]) -> str:
    """Replace the spans with their masks; overlapping spans merge into the first one's mask."""
    out, pos = [], 0
    for f in sorted(found, key=lambda f: (f.start, -f.end)):
        if f.start < pos:
            continue
        out += [text[pos:f.start], f"[{f.kind}]"]
        pos = f.end
    out.append(text[pos:])
    return "".join(out)


def ends_in_digits(text: str) -> bool:
    """The text ends with a digit run that could still grow into a card: a group of four or more (cards
    are read in groups) or any digits after card words, not money, and not a card already."""
    runs = digit_runs(text)
    if not runs:
        return False
    last = runs[-1]
    first = last.spans[0][0]
    tail = text[last.spans[-1][1]:].strip(" .,?!-")
    money = text[:first].rstrip().endswith(("$", "\u00a3", "\u20ac"))
    grouped = len(last.digits) >= 4 or bool(CARD_WORDS & set(last.before))
    return (not tail and not money and grouped and len(last.digits) < 19 and last.digits[0] in "23456"
            and not _card_in(last.digits))


def mask_partial(text: str, kinds) -> str:
    """A partial: as a final, and any run of 4 or more digits too (it may be the start of a card)."""
    found = find(text, kinds)[0]  # first: an expiry after a card keeps its own mask
    if "card" in kinds:
        found += [Found("card", *r.span(0, len(r.digits))) for r in digit_runs(text) if len(r.digits) >= 4]
    return apply(text, found)


def masked_times(text: str, words, found: list[Found], margin: float = 0.08) -> list[tuple[float, float]] | None:
    """Where the masked text was spoken, from the aligned words (``start``, ``end``, ``text``, whose
    texts joined make the transcript): (start, end) seconds in the utterance's time; None when the
    words do not spell the text (the caller then silences the whole utterance)."""
    joined = "".join(w.text for w in words)
    lead = len(joined) - len(joined.lstrip())
    if not words or joined.strip() != text:
        return None
    out, pos = [], -lead
    for w in words:
        a, b = pos, pos + len(w.text)
        pos = b
        if any(f.start < b and a < f.end for f in found):
            start, end = max(0.0, w.start - margin), w.end + margin
            if out and start <= out[-1][1]:
                out[-1] = (out[-1][0], max(out[-1][1], end))
            else:
                out.append((start, end))
    return out


def mask_words(words, found: list[Found]) -> list[tuple[object, str]]:
    """Each aligned word with the text a reader may see: a word inside a masked span says its mask."""
    out, pos = [], -(len("".join(w.text for w in words)) - len("".join(w.text for w in words).lstrip()))
    for w in words:
        a, b = pos, pos + len(w.text)
        pos = b
        hit = next((f for f in found if f.start < b and a < f.end), None)
        out.append((w, f"[{hit.kind}]" if hit else w.text))
    return out


# The ids platforms put in a start (Twilio's SIDs, the UUIDs of AudioHook and jambonz): a hex id can hold a run of
# digits that passes the card check, and no one says them aloud.
PLATFORM_ID = re.compile(r"[A-Z]{2}[0-9a-f]{32}|[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")


def mask_data(value, kinds):
    """Every string of a JSON value (a call's start metadata) with the ``kinds`` masked, keys kept; a platform's
    ids (``PLATFORM_ID``) stay whole. A whole number is masked where it is a card (it becomes the string
    ``[card]``); as a number it is a count or a time, not a phone or a social security number."""
    if isinstance(value, dict):
        return {k: mask_data(v, kinds) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_data(v, kinds) for v in value]
    if isinstance(value, str) and kinds and not PLATFORM_ID.fullmatch(value):
        return apply(value, find(value, kinds)[0])
    if isinstance(value, int) and not isinstance(value, bool) and "card" in kinds:
        digits = str(abs(value))
        return "[card]" if find(digits, ("card",))[0] else value
    return value


def mask_log(line: str) -> str:
    """Card numbers in a log line, whatever the setting: logs are copied far and kept long."""
    return LOG_CARD.sub(lambda m: "[card]" if looks_like_card(re.sub(r"\D", "", m.group(0))) else m.group(0), line)


@dataclass
class _Speaker:
    held: object = None  # the caller's final held back, with its text
    held_text: str = ""
    context: int = 0  # finals left in which an expiry or code may follow a card


class Redactor:
    """One call's redaction: per speaker, the held final and the card context."""

    def __init__(self, kinds):
        self.kinds = tuple(kinds)
        self._speakers: dict[str, _Speaker] = {}

    @property
    def enabled(self) -> bool:
        return bool(self.kinds)

    def final(self, speaker: str, item, text: str) -> list[tuple[object, str, list[Found]]]:
        """A final's text in; out: (item, masked text, what was masked in the text) for every final now ready,
        in order.

        A final ending in digits that could still be a card's beginning is held (empty list) until this
        speaker's next final or ``release``; then both are read together, across the boundary.
        """
        if not self.kinds:
            return [(item, text, [])]
        sp = self._speakers.setdefault(speaker, _Speaker())
        out = []
        if sp.held is not None:
            held, held_text = sp.held, sp.held_text
            sp.held, sp.held_text = None, ""
            joined = held_text + " " + text
            found, card = find(joined, self.kinds, sp.context > 0)
            cut = len(held_text) + 1
            first = [Found(f.kind, f.start, min(f.end, len(held_text))) for f in found if f.start < len(held_text)]
            second = [Found(f.kind, max(f.start, cut) - cut, f.end - cut) for f in found if f.end > cut]
            self._context(sp, card)
            out.append((held, apply(held_text, first), first))
            masked, found = apply(text, second), second
        else:
            found, card = find(text, self.kinds, sp.context > 0)
            self._context(sp, card)
            masked = apply(text, found)
        if "card" in self.kinds and ends_in_digits(text) and not found:
            sp.held, sp.held_text = item, text
            return out
        return out + [(item, masked, found)]

    def release(self, speaker: str) -> list[tuple[object, str, list[Found]]]:
        """The held final goes out alone (no next final came in time, or the call ends)."""
        sp = self._speakers.get(speaker)
        if sp is None or sp.held is None:
            return []
        held, text = sp.held, sp.held_text
        sp.held, sp.held_text = None, ""
        found, card = find(text, self.kinds, sp.context > 0)
        self._context(sp, card)
        return [(held, apply(text, found), found)]

    def holding(self, speaker: str):
        sp = self._speakers.get(speaker)
        return sp.held if sp is not None else None

    def partial(self, speaker: str, text: str) -> str:
        if not self.kinds:
            return text
        return mask_partial(text, self.kinds)

    @staticmethod
    def _context(sp: _Speaker, card: bool) -> None:
        sp.context = CARD_CONTEXT_FINALS if card else max(0, sp.context - 1)
