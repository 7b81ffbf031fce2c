"""How heated a speaker is: words (complaint-aware VADER) and voice (against their own start), smoothed.

Arousal compares each utterance's loudness, pitch, pitch range and speaking rate
with the same speaker's first seconds of speech, so a naturally loud or high voice
is not taken for anger. Heat fuses the two and moves further for longer utterances.
"""

from __future__ import annotations

from collections import deque

import math
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from models.prosody import semitones
from models.text_sentiment import text_score
from models.utterances import VoiceChunk

BASELINE_SECONDS = 4.0  # voiced speech that makes the speaker's own reference
TREND_STEP = 0.07
CONTEXT_SECONDS = 12.0  # a sentence is read with the speaker's words just before it
# instant heat = BIAS + TEXT_WEIGHT * negativity + VOICE_WEIGHT * (arousal - 0.5), fitted on the dev set
BIAS, TEXT_WEIGHT, VOICE_WEIGHT = 0.2, 1.0, 0.9


@dataclass(frozen=True)
class SentimentReading:
    """One sentence's reading, as its ``sentiment`` event: ``t`` is where the sentence ends."""

    EVENT: ClassVar[str] = "sentiment"
    t: float
    speaker: str
    text_score: float
    arousal: float
    heat: float
    trend: str  # rising, steady, falling


@dataclass
class UtteranceVoice:
    loudness: float
    pitch: float | None  # median, semitones re 100 Hz
    pitch_range: float | None
    rate: float  # words per second of voiced time
    voiced: float  # seconds


@dataclass
class _Baseline:
    samples: list[UtteranceVoice] = field(default_factory=list)
    voiced: float = 0.0

    @property
    def ready(self) -> bool:
        return self.voiced >= BASELINE_SECONDS and len(self.samples) >= 1

    def mean(self, attr: str) -> float | None:
        values = [getattr(s, attr) for s in self.samples if getattr(s, attr) is not None]
        return float(np.mean(values)) if values else None


class HeatTracker:
    def __init__(self, speaker: str):
        self.speaker = speaker
        self._chunks: deque[VoiceChunk] = deque(maxlen=1500)  # about 50 s of voiced speech is plenty
        self._baseline = _Baseline()
        self.heat: float | None = None
        self._history: list[tuple[float, float]] = []  # (t, heat)
        self._recent: list[tuple[float, str]] = []  # (end, text) of this speaker's last utterances

    def voice(self, chunk: VoiceChunk) -> None:
        if chunk.prob >= 0.5:
            self._chunks.append(chunk)

    def utterance(self, text: str, start: float, end: float, score: float | None = None) -> SentimentReading:
        """Reads one sentence; ``score`` is its own text score when the caller already has it."""
        voice = self._voice_of(text, start, end)
        arousal = self._arousal(voice)
        score = text_score(text) if score is None else score
        self._recent = [(e, t) for e, t in self._recent if end - e <= CONTEXT_SECONDS] + [(end, text)]
        # "and you sent me 12 of them" is neutral alone, not after "I am so fed up with you".
        context = text_score(" ".join(t for _, t in self._recent)) if abs(score) < 0.3 else score
        instant = min(1.0, max(0.0, BIAS + TEXT_WEIGHT * max(0.0, -context) + VOICE_WEIGHT * (arousal - 0.5)))
        duration = max(0.3, end - start)
        if self.heat is None:
            self.heat = instant
        else:
            alpha = 1.0 - math.exp(-duration / 3.0)
            self.heat += alpha * (instant - self.heat)
        self._history.append((end, self.heat))
        return SentimentReading(end, self.speaker, round(score, 3), round(arousal, 3), round(self.heat, 3), self.trend)

    @property
    def trend(self) -> str:
        if len(self._history) < 2:
            return "steady"
        t_now, h_now = self._history[-1]
        # Compare with the reading about five seconds back (or the oldest one).
        ref = next((h for t, h in reversed(self._history[:-1]) if t_now - t >= 5.0), self._history[0][1])
        if h_now - ref > TREND_STEP:
            return "rising"
        if h_now - ref < -TREND_STEP:
            return "falling"
        return "steady"

    def _voice_of(self, text: str, start: float, end: float) -> UtteranceVoice:
        chunks = [c for c in self._chunks if start <= c.t <= end + 0.05]
        voiced = len(chunks) * 0.032
        loud = float(np.median([c.loudness for c in chunks])) if chunks else -60.0
        pitches = [semitones(c.pitch) for c in chunks if c.pitch]
        words = len(text.split())
        return UtteranceVoice(
            loudness=loud,
            pitch=float(np.median(pitches)) if len(pitches) >= 5 else None,
            pitch_range=float(np.percentile(pitches, 90) - np.percentile(pitches, 10)) if len(pitches) >= 5 else None,
            rate=words / max(0.5, voiced),
            voiced=voiced,
        )

    def _arousal(self, voice: UtteranceVoice) -> float:
        """0.5 is this speaker's own start of call; higher is more aroused."""
        base = self._baseline
        if not base.ready:
            base.samples.append(voice)
            base.voiced += voice.voiced
            return 0.5
        z = 0.0
        weights = 0.0
        for attr, scale, weight in (("loudness", 4.0, 1.0), ("pitch", 2.0, 1.0), ("pitch_range", 3.0, 0.5), ("rate", 0.8, 0.7)):
            ref, value = base.mean(attr), getattr(voice, attr)
            if ref is None or value is None:
                continue
            z += weight * (value - ref) / scale
            weights += weight
        if weights == 0:
            return 0.5
        return 1.0 / (1.0 + math.exp(-2.0 * z / weights))
