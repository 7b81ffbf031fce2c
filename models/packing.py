"""Several utterances in one Whisper window: where each goes, and which words came from which.

Whisper pays for its whole encoder window whatever the audio length, and tiny
models hallucinate on windows much shorter than the 30 s they were trained on, so
the scheduler packs utterances (from any calls) into one 20 s window (30 s for an
utterance too long for it), separated by silence, decodes once, and gives each
utterance the aligned words that fall inside it. A word that covers speech of two
utterances is never guessed at: those utterances are decoded again. One utterance
alone takes a 15 s window when it fits and the transcriber is asked for a lean run
(models.scheduler: while the machine is busy, and for partials): nearly as accurate
alone as in 20 s and about 30 % cheaper, where several packed into 15 s lose more
(tests/perf/window_size.py, 231 real-speech utterances: WER alone 4.3 % in 20 s,
4.5 % in 15 s; packed 3.9 % and 4.8 %; on the 80 parts of the scripted calls, which the
choice never saw, alone 3.7 % and 4.8 %: the price of keeping up, paid only under load).
"""

from __future__ import annotations

from dataclasses import dataclass

WINDOW = 20.0  # the encoder window packed utterances share: 0.14 s to encode on 2 cores against 0.28 s for 30 s
LONE_WINDOW = 15.0  # the window of one utterance alone that fits it
LONG_WINDOW = 30.0  # Whisper's own window, for an utterance longer than CAPACITY
MARGIN = 2.0  # keeps the last words clear of the window's end
CAPACITY = WINDOW - MARGIN  # seconds of audio and gaps per packed window
GAP = 1.2  # silence between packed utterances: Whisper ends its segments there


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    text: str
    probability: float = 1.0  # the decoder's mean probability of the word's tokens


def plan(lengths: list[float], capacity: float = CAPACITY, gap: float = GAP) -> int:
    """How many of the leading items fit one window (always at least one)."""
    used, count = 0.0, 0
    for length in lengths:
        if count and used + length + gap > capacity:
            break
        used += length + gap
        count += 1
    return max(1, count)


def window_for(seconds: float, alone: bool = False) -> float:
    """The encoder window for this much packed audio (``alone``: one utterance)."""
    if alone and seconds <= LONE_WINDOW - MARGIN:
        return LONE_WINDOW
    return WINDOW if seconds <= CAPACITY else LONG_WINDOW


def spans(lengths: list[float], gap: float = GAP) -> list[tuple[float, float]]:
    out, pos = [], 0.0
    for length in lengths:
        out.append((pos, pos + length))
        pos += length + gap
    return out


def assign(words: list[Segment], item_spans: list[tuple[float, float]], straddle: float = 0.3) -> tuple[list[str], set[int]]:
    """Text for each item from its aligned words, and the items whose words cannot be told apart."""
    item_words, unsure = assign_words(words, item_spans, straddle)
    # Whisper's words carry their own leading spaces.
    return ["".join(w.text for w in ws).strip() for ws in item_words], unsure


def assign_words(words: list[Segment], item_spans: list[tuple[float, float]],
                 straddle: float = 0.3) -> tuple[list[list[Segment]], set[int]]:
    """Each item's aligned words, in its own time (from its start), and the items whose words cannot be told apart.

    The border between two items is the middle of the gap between them. The aligner
    often stretches a word over the silence of a gap (a last word ending late, a first
    word starting early): that is no doubt. A word that covers ``straddle`` seconds of
    speech on both sides is: those items are decoded again. Punctuation has no sound
    of its own, so it joins the word before it (its text, not its time).
    """
    out: list[list[Segment]] = [[] for _ in item_spans]
    unsure: set[int] = set()
    borders = [(e + s2) / 2 for (_, e), (s2, _) in zip(item_spans, item_spans[1:])]
    last = 0
    for word in words:
        if not any(ch.isalnum() for ch in word.text):
            if out[last]:
                prev = out[last][-1]
                out[last][-1] = Segment(prev.start, prev.end, prev.text + word.text, prev.probability)
            elif word.text.strip():
                out[last].append(_shift(word, item_spans[last][0]))
            continue
        middle = (word.start + word.end) / 2
        item = sum(1 for b in borders if middle >= b)
        covered = [i for i, (s, e) in enumerate(item_spans) if min(e, word.end) - max(s, word.start) >= straddle]
        if len(covered) > 1:
            unsure.update(range(covered[0], covered[-1] + 1))
        out[item].append(_shift(word, item_spans[item][0]))
        last = item
    return out, unsure


def _shift(word: Segment, origin: float) -> Segment:
    return Segment(word.start - origin, word.end - origin, word.text, word.probability)
