"""Several utterances in one Whisper window: where each goes, and which words came from which.

Whisper pays for its whole encoder window whatever the audio length, and tiny
models hallucinate on windows much shorter than the 30 s they were trained on, so
the scheduler packs utterances (from any calls) into one 15 s window (20 s or 30 s
for an utterance too long for it), separated by silence, decodes once, and gives each
utterance the aligned words that fall inside it. A word that covers speech of two
utterances is never guessed at: those utterances are decoded again. The encoder's
cost grows faster than its window (one thread: 15 s 97 ms, 20 s 162 ms, 30 s 399 ms):
the same utterances packed in 15 s cost 199 ms a window against 281 ms in 20 s, at the
same WER (tests/perf/window_size.py, 231 real-speech utterances: 3.8 % both). Filled to
their capacities (13 s of 15, 18 s of 20), a queue of finals costs about 10 % less CPU at
about the same WER (tests/perf/window_fill.py, 32 corpus calls: 9.5 against 10.0 % dev,
10.0 against 9.8 % validation): what 15 s buys is mostly time, a final that
finds the workers busy waits for a 0.2 s run, not a 0.28 s one (at 32 calls the finals' p95
0.4 s lower, README). Below 15 s tiny.en loses words (the scripted calls' parts packed into
12 s and 10 s windows: WER 6.9 and 10.6 % against 2.7 % in 15 s). One utterance alone on an idle machine takes
20 s (``full``): it is ready before the silence that ends it is over, so the smaller
window would only cost accuracy (alone 4.3 % in 20 s, 4.5 % in 15 s).
"""

from __future__ import annotations

from dataclasses import dataclass

WINDOW = 15.0  # the encoder window packed utterances share, and a lone one on a busy machine
FULL_WINDOW = 20.0  # a lone utterance on an idle machine, and one too long for WINDOW
LONG_WINDOW = 30.0  # Whisper's own window, for an utterance too long for FULL_WINDOW
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


def window_for(seconds: float, full: bool = False, window: float = WINDOW, capacity: float = CAPACITY) -> float:
    """The encoder window for this much packed audio, with MARGIN to spare (``full``: at least FULL_WINDOW).
    ``window`` and ``capacity``: the packed window and what it holds, where a measurement tries others."""
    if seconds <= capacity and not full:
        return window
    return FULL_WINDOW if seconds <= FULL_WINDOW - MARGIN else LONG_WINDOW


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
    speech on both sides is: those items are decoded again. So is the item that a word
    wholly in silence (touching no item's audio) would go to: Whisper sometimes says an
    utterance again in the silence after it ("Great. Thanks so much Great. Thanks so much.
    I?", the repeat aligned after the utterance's end). Punctuation has no sound
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
        if all(word.start >= e or word.end <= s for s, e in item_spans):
            unsure.add(item)
        out[item].append(_shift(word, item_spans[item][0]))
        last = item
    return out, unsure


def _shift(word: Segment, origin: float) -> Segment:
    return Segment(word.start - origin, word.end - origin, word.text, word.probability)
