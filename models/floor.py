"""Who holds the floor, and when a caller has finished venting and handed it over.

Driven chunk by chunk (32 ms) by both speakers' voice activity, and by the caller's
transcripts as they arrive. A caller's turn is released (``finished_venting``) only
after a pause long enough for this caller's own pause habits, at the end of a
complete thought: a question handed to the agent releases soonest; a sentence that
stops on "and" or a comma waits much longer; breath pauses never release.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from models.prosody import semitones
from models.utterances import VoiceChunk

CALLER, AGENT = "caller", "agent"
CONTINUERS = {"and", "but", "so", "because", "or", "then", "um", "uh", "like", "which", "that", "the", "a", "an",
              "to", "of", "with", "if", "when", "my", "your", "i", "was", "is", "were", "for", "in", "on", "just"}


@dataclass(frozen=True)
class FloorConfig:
    speak_on: float = 0.5
    speak_off: float = 0.35
    hangover: float = 0.25  # silence before a speaker counts as stopped
    min_talk: dict = field(default_factory=lambda: {CALLER: 0.15, AGENT: 0.3})  # backchannels are not a turn
    question_pause: float = 0.45
    habit_default: float = 0.9
    habit_min: float = 0.8
    habit_max: float = 1.6
    incomplete_pause: float = 2.5  # a thought left hanging ("and...") is released only after this
    vent_heat: float = 0.45
    vent_text: float = -0.35


@dataclass(frozen=True)
class FloorState:
    t: float
    state: str  # caller_speaking, caller_pausing, agent_speaking, overlap, open
    venting: bool
    finished_venting: bool
    confidence: float


@dataclass
class _Voice:
    active: bool = False
    run_start: float = 0.0
    last_voice: float = -10.0
    t: float = 0.0

    def update(self, chunk: VoiceChunk, cfg: FloorConfig) -> None:
        self.t = chunk.t
        if chunk.prob >= cfg.speak_on or (self.active and chunk.prob >= cfg.speak_off):
            if not self.active:
                self.active, self.run_start = True, chunk.t - 0.032
            self.last_voice = chunk.t
        elif self.active and chunk.t - self.last_voice >= cfg.hangover:
            self.active = False

    def talking(self, min_talk: float) -> bool:
        return self.active and self.last_voice - self.run_start >= min_talk


def completeness(text: str) -> str:
    """question, complete or incomplete: how a caller's last words end."""
    text = text.strip()
    words = re.findall(r"[a-z']+", text.lower())
    if text.endswith("?"):
        return "question"
    if not words or text.endswith(("...", "…", ",", "-", ";", ":")) or words[-1] in CONTINUERS:
        return "incomplete"
    return "complete" if text.endswith((".", "!")) else "incomplete"


class FloorTracker:
    def __init__(self, config: FloorConfig | None = None):
        self.cfg = config or FloorConfig()
        self.voices = {CALLER: _Voice(), AGENT: _Voice()}
        self.turn_open = False
        self.finished = False
        self.release_confidence = 0.0
        self._pauses: list[float] = []
        self.habit = self.cfg.habit_default  # how long a pause this caller makes inside a turn, plus a margin
        self._paused_since: float | None = None
        self._agent_spoke_in_pause = False
        self._pitch: list[tuple[float, float]] = []  # caller (t, semitones), recent voiced chunks
        self._last_final: tuple[str, float] | None = None  # how the caller's last words end, and when
        self._turn_scores: list[float] = []
        self.heat = 0.0
        self.heat_rising = False
        self._emitted: tuple | None = None

    # -- inputs ------------------------------------------------------------------

    def voice(self, role: str, chunk: VoiceChunk) -> list[FloorState]:
        self.voices[role].update(chunk, self.cfg)
        if role == CALLER and chunk.pitch and chunk.prob >= self.cfg.speak_on:
            self._pitch.append((chunk.t, semitones(chunk.pitch)))
            del self._pitch[:-60]
        return self._step(chunk.t)

    def final(self, role: str, text: str, end: float, score: float, heat: float, rising: bool, now: float) -> list[FloorState]:
        if role != CALLER:
            return []
        self._last_final = (completeness(text), end)
        self.heat, self.heat_rising = heat, rising
        if self.turn_open:
            self._turn_scores.append(score)
        return self._step(now)

    # -- the state machine -------------------------------------------------------

    @property
    def venting(self) -> bool:
        if not self.turn_open or self.finished:
            return False
        if any(s <= self.cfg.vent_text for s in self._turn_scores):
            return True
        # Heat lingers from earlier turns: a turn of plainly positive words ("yes, that's right, please") is not venting.
        return self.heat >= self.cfg.vent_heat and not any(s >= 0.2 for s in self._turn_scores)

    def state_at(self) -> str:
        caller = self.voices[CALLER].talking(self.cfg.min_talk[CALLER])
        agent = self.voices[AGENT].talking(self.cfg.min_talk[AGENT])
        if caller and agent:
            return "overlap"
        if caller:
            return "caller_speaking"
        if agent:
            return "agent_speaking"
        return "caller_pausing" if self.turn_open else "open"

    def _step(self, t: float) -> list[FloorState]:
        caller = self.voices[CALLER]
        caller_talking = caller.talking(self.cfg.min_talk[CALLER])
        agent_talking = self.voices[AGENT].talking(self.cfg.min_talk[AGENT])
        if caller_talking:
            # Pauses the caller makes without the agent speaking teach us their habit, including
            # the ones we took for the end of a turn: a release they talked straight through.
            if self._paused_since is not None and not self._agent_spoke_in_pause:
                pause = caller.run_start - self._paused_since
                if 0.2 <= pause <= 3.0:
                    self._pauses.append(pause)
                    del self._pauses[:-20]
                    # Kept up to date here, not worked out again on every chunk of a pause.
                    if len(self._pauses) >= 2:
                        self.habit = float(np.clip(np.percentile(self._pauses, 90) + 0.25,
                                                   self.cfg.habit_min, self.cfg.habit_max))
            if not self.turn_open:
                self.turn_open, self.finished, self._turn_scores = True, False, []
            self._paused_since = None
            self._agent_spoke_in_pause = False
        else:
            if self._paused_since is None and caller.last_voice > 0:
                self._paused_since = caller.last_voice
            self._agent_spoke_in_pause |= agent_talking
            if self.turn_open:
                confidence = self._release(t - caller.last_voice, agent_talking)
                if confidence:
                    self.turn_open, self.finished, self.release_confidence = False, True, confidence
        return self._emit(t)

    def _release(self, pause: float, agent_talking: bool) -> float:
        """Confidence that the caller has finished now, or 0 to keep holding."""
        cfg = self.cfg
        if agent_talking and pause >= 0.3:
            return 0.6  # the agent took the floor in a pause: the turn is over either way
        covered = self._last_final is not None and self._last_final[1] >= self.voices[CALLER].last_voice - 0.35
        kind = self._last_final[0] if covered else None
        habit = self.habit
        if kind == "question" and pause >= cfg.question_pause and not self.venting:
            return 0.9
        # A venting caller's question is mostly rhetorical ("are you kidding me?"): it waits like a statement.
        if kind in ("complete", "question"):
            if pause >= habit and (not self.heat_rising or self._pitch_falling()):
                return 0.8
            if pause >= habit + 0.5:
                return 0.7
        if pause >= max(cfg.incomplete_pause, 2 * habit):
            return 0.6 if covered else 0.5
        return 0.0

    def _pitch_falling(self) -> bool:
        last = self.voices[CALLER].last_voice
        recent = [(t, st) for t, st in self._pitch if last - t <= 0.5]
        if len(recent) < 4:
            return False
        ts, sts = np.array(recent).T
        return float(np.polyfit(ts, sts, 1)[0]) < -3.0  # semitones per second

    def _emit(self, t: float) -> list[FloorState]:
        state, venting = self.state_at(), self.venting
        key = (state, venting, self.finished)
        if key == self._emitted:
            return []
        self._emitted = key
        confidence = self.release_confidence if self.finished and state in ("open", "agent_speaking") else 0.9
        return [FloorState(round(t, 3), state, venting, self.finished, round(confidence, 2))]
