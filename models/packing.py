"""Several utterances in one Whisper window: where each goes, and which words came from which.

Whisper pays for a full 30 s window whatever the audio length, and tiny models
hallucinate on shorter windows, so the scheduler packs utterances (from any calls)
into one window, separated by silence, decodes once with timestamps, and gives each
utterance the segments that fall inside it. A segment that straddles two utterances
is never guessed at: those utterances are decoded again on their own.
"""

from __future__ import annotations

from dataclasses import dataclass

WINDOW = 30.0
CAPACITY = 28.0  # seconds of audio and gaps per window: keeps clear of the window's end
GAP = 1.2  # silence between packed utterances: Whisper ends its segments there


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    text: str


def plan(lengths: list[float], capacity: float = CAPACITY, gap: float = GAP) -> int:
    """How many of the leading items fit one window (always at least one)."""
    used, count = 0.0, 0
    for length in lengths:
        if count and used + length + gap > capacity:
            break
        used += length + gap
        count += 1
    return max(1, count)


def spans(lengths: list[float], gap: float = GAP) -> list[tuple[float, float]]:
    out, pos = [], 0.0
    for length in lengths:
        out.append((pos, pos + length))
        pos += length + gap
    return out


def assign(words: list[Segment], item_spans: list[tuple[float, float]], straddle: float = 0.3) -> tuple[list[str], set[int]]:
    """Text for each item from its aligned words, and the items whose words cannot be told apart.

    The border between two items is the middle of the gap between them. Punctuation
    has no sound of its own (the aligner stretches it over the following silence), so
    it stays with the word before it.
    """
    texts: list[list[str]] = [[] for _ in item_spans]
    unsure: set[int] = set()
    borders = [(e + s2) / 2 for (_, e), (s2, _) in zip(item_spans, item_spans[1:])]
    last = 0
    for word in words:
        if not any(ch.isalnum() for ch in word.text):
            texts[last].append(word.text)
            continue
        middle = (word.start + word.end) / 2
        item = sum(1 for b in borders if middle >= b)
        for i, b in enumerate(borders):
            if word.start < b - straddle and word.end > b + straddle:
                unsure.update((i, i + 1))
        texts[item].append(word.text)
        last = item
    # Whisper's words carry their own leading spaces.
    return ["".join(ts).strip() for ts in texts], unsure
