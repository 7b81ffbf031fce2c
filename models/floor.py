"""Who holds the floor, and when a caller has finished venting and handed it over.

Driven chunk by chunk (32 ms) by both speakers' voice activity, and by the caller's
transcripts as they arrive. At every moment of a caller's pause a small learned model
(models/floor_model.py over models/floor_features.py) gives the probability that the caller
is done; the turn is released (``finished_venting``) at the first moment it reaches the
model's threshold. The decision is a function of audio time: it needs the words of the
utterance that ended at the pause, holds until they are in, and when they arrive late it
reads the pause again from its start and releases at the audio time an idle machine would
have, so the same call gives the same releases whatever the transcription delay. The agent
taking the floor in a pause ends the turn, and so does a pause past ``give_up`` seconds; a
thought left hanging ("and...") waits for that.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from models.floor_features import Context, Words, completeness, read_words, vector  # noqa: F401 (completeness)
from models.floor_model import FloorModel, load
from models.prosody import semitones
from models.text_sentiment import text_score
from models.utterances import VoiceChunk

CALLER, AGENT = "caller", "agent"
GRID = 0.032  # the chunk: releases fall on chunk times


@dataclass(frozen=True)
class FloorConfig:
    speak_on: float = 0.5
    speak_off: float = 0.35
    hangover: float = 0.25  # silence before a speaker counts as stopped
    min_talk: dict = field(default_factory=lambda: {CALLER: 0.15, AGENT: 0.3})  # backchannels are not a turn
    habit_default: float = 0.9
    habit_min: float = 0.8
    habit_max: float = 1.6
    min_release: float = 0.35  # no release inside a breath, whatever the words
    give_up: float = 2.25  # a pause this long ends the turn, words or not: within 2.5 s of the end, Silero's tail included
    covers: float = 0.35  # a final ending this close before the pause holds its last words
    words_wait: float = 3.0  # audio seconds past give_up to wait for words that may never come
    agent_floor: float = 1.5  # an agent run this long (the caller silent) starts a new stretch of caller talk
    takeover: float = 0.9  # the agent talking this long in a pause has taken the floor; "mm-hm", "I see" have not
    vent_heat: float = 0.45
    vent_text: float = -0.35
    threshold: float | None = None  # the model's own when None


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

    def update(self, chunk: VoiceChunk, cfg: FloorConfig) -> bool:
        """Returns True when a run of speech has just ended."""
        self.t = chunk.t
        if chunk.prob >= cfg.speak_on or (self.active and chunk.prob >= cfg.speak_off):
            if not self.active:
                self.active, self.run_start = True, chunk.t - GRID
            self.last_voice = chunk.t
        elif self.active and chunk.t - self.last_voice >= cfg.hangover:
            self.active = False
            return True
        return False

    def talking(self, min_talk: float) -> bool:
        return self.active and self.last_voice - self.run_start >= min_talk


@dataclass
class _Stretch:
    """The caller's talk since the agent last held the floor: how long this vent has run."""

    talk: float = 0.0
    bursts: int = 0
    backchannels: int = 0


class FloorTracker:
    def __init__(self, config: FloorConfig | None = None, model: FloorModel | None = None):
        self.cfg = config or FloorConfig()
        self.model = model or load()
        self.threshold = self.cfg.threshold if self.cfg.threshold is not None else self.model.threshold
        self.voices = {CALLER: _Voice(), AGENT: _Voice()}
        self.turn_open = False
        self.finished = False
        self.release_confidence = 0.0
        self._pauses: list[float] = []
        self.habit = self.cfg.habit_default  # how long a pause this caller makes inside a turn, plus a margin
        self._paused_since: float | None = None
        self._agent_spoke_in_pause = False
        self._agent_voice_at: float | None = None  # first agent voice in this pause
        self._takeover_at: float | None = None  # where the agent took the floor in this pause
        self._pitch: list[tuple[float, float]] = []  # caller (t, semitones), recent voiced chunks
        self._utt_start = 0.0  # where the caller's current utterance began (after a pause of 0.5 s or more)
        self._stretch = _Stretch()
        self._words: tuple[Words, float, float] | None = None  # the caller's last words, where they end, their rate
        self._pause_ctx: tuple | None = None  # (pause start, words, context) once read for this pause
        self._scanned = 0.0  # audio time up to which this pause has been judged
        self._turn_scores: list[float] = []
        self.heat = 0.0
        self.heat_rising = False
        self._emitted: tuple | None = None
        self.trace: list[tuple[float, float, list[float], float]] | None = None  # (t, pause start, x, p) when set

    # -- inputs ------------------------------------------------------------------

    def voice(self, role: str, chunk: VoiceChunk) -> list[FloorState]:
        voice = self.voices[role]
        was_active, run_start = voice.active, voice.run_start
        ended = voice.update(chunk, self.cfg)
        if role == CALLER:
            if chunk.prob >= self.cfg.speak_on:
                self._stretch.talk += GRID
                if chunk.pitch:
                    self._pitch.append((chunk.t, semitones(chunk.pitch)))
                    del self._pitch[:-60]
        elif ended and was_active:
            length = voice.last_voice - run_start
            if length >= self.cfg.agent_floor and not self.voices[CALLER].active:
                self._stretch = _Stretch()
            elif length >= 0.1:
                self._stretch.backchannels += 1
        return self._step(chunk.t)

    def words(self, role: str, text: str, end: float, now: float, score: float | None = None,
              heat: float | None = None, rising: bool | None = None) -> list[FloorState]:
        """The caller's words up to ``end``, from an early final started at the pause, before their final.

        Give them the reading the final will give (session.py reads a copy of the heat tracker), so
        whichever comes first the decision is the same. The first words to cover an utterance are kept.
        """
        if role != CALLER or (self._words is not None and self._words[1] >= end):
            return []
        if not text.strip():
            # Nothing will be heard (a cough, a click, an empty transcript): give_up decides, with no wait.
            self._words = (None, end, 0.0)
            return self._step(now)
        words = read_words(text, text_score(text) if score is None else score, self.heat if heat is None else heat,
                           self.heat_rising if rising is None else rising)
        rate = words.n_words / max(0.5, end - self._utt_start) if end >= self._utt_start else 2.5
        self._words = (words, end, rate)
        return self._step(now)

    def final(self, role: str, text: str, end: float, score: float, heat: float, rising: bool, now: float) -> list[FloorState]:
        if role != CALLER:
            return []
        out = self.words(role, text, end, now, score, heat, rising)
        self.heat, self.heat_rising = heat, rising
        if self.turn_open:
            self._turn_scores.append(score)
        return out + self._step(now)

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
        agent = self.voices[AGENT]
        # Taking the floor starts in the caller's pause; talking over the caller's last words and on is not it.
        agent_took_over = (agent.talking(self.cfg.takeover) and self._paused_since is not None
                           and agent.run_start >= self._paused_since - 0.1)
        if caller_talking:
            if self._paused_since is not None:
                pause = caller.run_start - self._paused_since
                # Pauses the caller makes without the agent speaking teach us their habit, including
                # the ones we took for the end of a turn: a release they talked straight through.
                if not self._agent_spoke_in_pause and 0.2 <= pause <= 3.0:
                    self._pauses.append(pause)
                    del self._pauses[:-20]
                    if len(self._pauses) >= 2:
                        self.habit = float(np.clip(np.percentile(self._pauses, 90) + 0.25,
                                                   self.cfg.habit_min, self.cfg.habit_max))
                if pause >= 0.5:
                    self._stretch.bursts += 1
                    self._utt_start = caller.run_start
            out = []
            if self.turn_open and self._paused_since is not None:
                # Words so late that the caller spoke again first: if the agent had taken the floor, or the
                # pause outlasted give_up, the turn ended there, and is released there, late.
                ended = [x for x in (self._takeover_at, self._paused_since + self.cfg.give_up) if x is not None
                         and x <= caller.run_start]
                if ended:
                    self.turn_open, self.finished, self.release_confidence = False, True, 0.5
                    out = self._emit(round(min(ended), 3))
            if not self.turn_open:
                self.turn_open, self.finished, self._turn_scores = True, False, []
            self._paused_since = None
            self._agent_spoke_in_pause = False
            self._agent_voice_at = None
            self._takeover_at = None
            self._pause_ctx = None
            return out + self._emit(t)
        if self._paused_since is None and caller.last_voice > 0:
            self._paused_since = caller.last_voice
            self._scanned = caller.last_voice
        if self._paused_since is not None and self.voices[AGENT].last_voice > self._paused_since \
                and self._agent_voice_at is None:
            self._agent_voice_at = self.voices[AGENT].last_voice
        self._agent_spoke_in_pause |= agent_talking
        if self.turn_open:
            released = self._judge(t, agent_took_over)
            if released is not None:
                at, confidence = released
                self.turn_open, self.finished, self.release_confidence = False, True, confidence
                return self._emit(at)
        return self._emit(t)

    def _judge(self, t: float, agent_took_over: bool) -> tuple[float, float] | None:
        """(audio time of the release, the model's probability) once the caller is done, else None.

        Every release time is a function of the audio and the words alone: the first chunk where the
        model's probability reaches the threshold, where the agent has taken the floor, or where the pause
        reaches give_up, whichever is first. Late words release at that time, late.
        """
        cfg = self.cfg
        start = self.voices[CALLER].last_voice
        pause = t - start
        if agent_took_over and pause >= 0.3 and self._takeover_at is None:
            self._takeover_at = t
        read = self._read_pause(start)
        if read is None:
            # Hold for the words; only when they never come (an empty transcript) does give_up decide alone.
            if pause >= cfg.give_up + cfg.words_wait:
                return round(min(self._takeover_at or t, start + cfg.give_up), 3), 0.5
            return None
        # Judge every chunk time not judged yet, from the pause's start: late words release where
        # they would have on an idle machine.
        j = max(int(round((self._scanned - start) / GRID)) + 1, int(np.ceil(cfg.min_release / GRID - 1e-6)))
        last = int(round(pause / GRID))
        # "...and": a thought left hanging waits for give_up, and so does a pause after nothing heard.
        hanging = read[1] is None or read[1].incomplete > 0
        for k in range(j, last + 1):
            at = start + k * GRID
            end_of_pause = k * GRID >= cfg.give_up - 1e-9 or (self._takeover_at is not None
                                                              and at > self._takeover_at + 1e-6)
            if hanging and not end_of_pause:
                continue
            p = self._prob(read, k * GRID, at) if read[1] is not None else 0.5
            if p >= self.threshold or end_of_pause:
                return round(at, 3), p
        self._scanned = max(self._scanned, t)
        return None

    def _read_pause(self, start: float):
        """The pause's fixed features once the words that end before it are in; None while they are not."""
        if self._pause_ctx is not None and self._pause_ctx[0] == start:
            return self._pause_ctx
        if self._words is None or self._words[1] < start - self.cfg.covers:
            return None  # hold rather than guess
        words, _, rate = self._words
        ctx = Context(habit=self.habit, habit_n=len(self._pauses), talk=self._stretch.talk,
                      bursts=self._stretch.bursts, backchannels=self._stretch.backchannels,
                      pitch_slope=self._pitch_slope(start), rate=rate, last_burst=start - self._utt_start)
        self._pause_ctx = (start, words, ctx)
        return self._pause_ctx

    def _prob(self, read, silence: float, at: float) -> float:
        _, words, ctx = read
        # Strictly before: judged live, a chunk time is decided on the caller's chunk, before the agent's.
        agent = self._agent_voice_at is not None and self._agent_voice_at < at - 1e-6
        x = vector(silence, words, ctx, agent)
        p = self.model.prob(x)
        if self.trace is not None:
            self.trace.append((round(at, 3), read[0], x, p))
        return p

    def _pitch_slope(self, last: float) -> float:
        recent = [(t, st) for t, st in self._pitch if 0 <= last - t <= 0.5]
        if len(recent) < 4:
            return 0.0
        ts, sts = np.array(recent).T
        return float(np.polyfit(ts, sts, 1)[0])  # semitones per second

    def _emit(self, t: float) -> list[FloorState]:
        state, venting = self.state_at(), self.venting
        key = (state, venting, self.finished)
        if key == self._emitted:
            return []
        self._emitted = key
        confidence = self.release_confidence if self.finished and state in ("open", "agent_speaking") else 0.9
        return [FloorState(round(t, 3), state, venting, self.finished, round(confidence, 2))]
