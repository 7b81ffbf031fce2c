"""Who holds the floor, and when a caller has finished venting and handed it over.

Driven chunk by chunk (32 ms) by both speakers' voice activity, and by the caller's
transcripts as they arrive. At every moment of a caller's pause a small learned model
(models/floor_model.py over models/floor_features.py) gives the probability that the caller
is done; the turn is released (``finished_venting``) at the first moment it reaches the
model's threshold (a lower one where the words hand the floor over, lower again where they ask the agent
outright). The decision is a function of audio time and words alone: each pause
keeps what the audio said about it (its context at the start, when the agent spoke in it,
where the caller went on), waits for the words of the utterance that ended at it, and is
judged from its start once they are in, whenever that is: during the pause or after the
caller went on. So a loaded machine releases at the same audio times as an idle one, only
later on the wall clock, and never more often. The agent taking the floor in a pause ends
the turn, and so does a pause past the model's ``settle`` seconds after complete words; a
thought left hanging ("and...") waits for ``give_up``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from models.floor_features import Context, Words, asks, completeness, hands_over, read_words, vector  # noqa: F401 (completeness)
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
    words_wait: float = 20.0  # audio seconds past give_up to wait for words that never came (a lost final): a
    # loaded machine's words come late but come, and guessing before them would release where an idle one does not
    agent_floor: float = 1.5  # an agent run this long (the caller silent) starts a new stretch of caller talk
    takeover: float = 0.9  # the agent talking this long in a pause has taken the floor; "mm-hm", "I see" have not
    vent_heat: float = 0.45
    vent_text: float = -0.35
    threshold: float | None = None  # the model's own when None
    handover_threshold: float | None = None  # where the last words hand the floor over; the model's own when None
    ask_threshold: float | None = None  # where they ask the agent outright (floor_features.asks); the model's own when None
    # Silence after complete words that ends the turn whatever the model says (a backstop: past the longest pause
    # callers make inside a turn); the model's own when None, give_up when neither has one.
    settle: float | None = None


@dataclass(frozen=True)
class FloorState:
    t: float
    state: str  # caller_speaking, caller_pausing, agent_speaking, overlap, open
    venting: bool
    finished_venting: bool
    confidence: float
    # A release judged only after the caller went on (late words): true on the timeline at ``t``, but the
    # caller has the floor again, so nothing may act on it now (the coach must not say "go ahead").
    talked_past: bool = False


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
    since: float = 0.0  # where it began: the caller's utterances ending after this are this turn's


@dataclass
class _Pause:
    """One caller pause: what the audio said about it, kept until its words are in and it is judged."""

    start: float  # the caller's last voice
    talks: int  # how many times the caller had started talking: pauses with the same count are one turn's
    habit: float
    habit_n: int
    talk: float
    bursts: int
    backchannels: int
    pitch_slope: float
    utt_start: float  # where the burst before it began
    since: float  # where the caller's stretch of talk began
    end: float | None = None  # chunk time the caller was talking again; None while it lasts
    agent_voice_at: float | None = None  # first agent voice in it
    takeover_at: float | None = None  # where the agent took the floor in it
    scanned: float = 0.0  # audio time up to which it has been judged
    read: tuple | None = None  # (start, Words or None, Context) once its words are in
    done: bool = False


class FloorTracker:
    def __init__(self, config: FloorConfig | None = None, model: FloorModel | None = None):
        self.cfg = config or FloorConfig()
        self.model = model or load()
        self.threshold = self.cfg.threshold if self.cfg.threshold is not None else self.model.threshold
        # Two stages: words that hand the floor over ("I want my money back.", "Where is my bag?") release on less.
        self.handover_threshold = next(t for t in (self.cfg.handover_threshold, self.model.handover_threshold,
                                                   self.threshold) if t is not None)
        # Three: a question that asks the agent outright releases on less again.
        self.ask_threshold = next(t for t in (self.cfg.ask_threshold, self.model.ask_threshold,
                                              self.handover_threshold) if t is not None)
        # Complete words end the turn at the backstop, never later than give_up.
        self.settle = min(self.cfg.give_up, next((t for t in (self.cfg.settle, self.model.settle) if t is not None),
                                                 self.cfg.give_up))
        self.voices = {CALLER: _Voice(), AGENT: _Voice()}
        self.turn_open = False
        self.finished = False
        self.release_confidence = 0.0
        self._pauses: list[float] = []
        self.habit = self.cfg.habit_default  # how long a pause this caller makes inside a turn, plus a margin
        self._pause: _Pause | None = None  # the pause in progress
        self._pending: list[_Pause] = []  # pauses not judged to the end yet, oldest first (the one in progress last)
        self._heard: list[tuple[float, Words | None]] = []  # (end, words) of the caller's utterances
        self._agent_spoke_in_pause = False
        self._quiet_since: float | None = None  # where the caller last stopped talking (short sounds aside)
        self._talking = False
        self._talks = 0  # times the caller started talking
        self._released_talks = -1  # the talks count of the last pause released
        self._pitch: list[tuple[float, float]] = []  # caller (t, semitones), recent voiced chunks
        self._utt_start = 0.0  # where the caller's current utterance began (after a pause of 0.5 s or more)
        self._stretch = _Stretch()
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
                self._stretch = _Stretch(since=voice.last_voice)
            elif length >= 0.1:
                self._stretch.backchannels += 1
        return self._step(chunk.t)

    def words(self, role: str, text: str, end: float, now: float, score: float | None = None,
              heat: float | None = None, rising: bool | None = None) -> list[FloorState]:
        """The caller's words of the utterance that ended at ``end`` (audio time), from its early final or its
        final, whichever comes first: the first words of an utterance are kept.

        Give them the reading the final will give (models/call_analysis.py reads a copy of the heat tracker after the
        speaker's previous final), and give them in the order spoken, so that whichever comes first and
        whenever it comes the decision is the same.
        """
        if role != CALLER or any(abs(e - end) < 1e-6 for e, _ in self._heard):
            return []
        if not text.strip():
            # Nothing will be heard (a cough, a click, an empty transcript): give_up decides, with no wait.
            self._heard.append((end, None))
        else:
            words = read_words(text, text_score(text) if score is None else score,
                               self.heat if heat is None else heat, self.heat_rising if rising is None else rising)
            self._heard.append((end, words))
        self._heard.sort(key=lambda h: h[0])  # in the order spoken, whatever order they came in
        del self._heard[:-20]
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
        agent = self.voices[AGENT]
        pause = self._pause
        if caller.active and pause is not None:
            # The caller's voice again: the pause is over at its first chunk (judged before it, whenever the words
            # come). A short sound that is not talk starts a new pause of the same turn.
            pause.end = caller.run_start + GRID
            pause = self._pause = None
        if caller.talking(self.cfg.min_talk[CALLER]):
            if not self._talking:
                self._talking, self._talks = True, self._talks + 1
                if self._quiet_since is not None:
                    length = caller.run_start - self._quiet_since
                    # Pauses the caller makes without the agent speaking teach us their habit, including
                    # the ones we took for the end of a turn: a release they talked straight through.
                    if not self._agent_spoke_in_pause and 0.2 <= length <= 3.0:
                        self._pauses.append(length)
                        del self._pauses[:-20]
                        if len(self._pauses) >= 2:
                            self.habit = float(np.clip(np.percentile(self._pauses, 90) + 0.25,
                                                       self.cfg.habit_min, self.cfg.habit_max))
                    if length >= 0.5:
                        self._stretch.bursts += 1
                        self._utt_start = caller.run_start
                self._quiet_since = None
                self._agent_spoke_in_pause = False
            out = self._settle(t)
            if not self.turn_open:
                self.turn_open, self.finished, self._turn_scores = True, False, []
            return out + self._emit(t)
        self._talking = False
        if pause is None and caller.last_voice > 0 and not caller.active:
            pause = self._pause = _Pause(caller.last_voice, self._talks, self.habit, len(self._pauses),
                                         self._stretch.talk, self._stretch.bursts, self._stretch.backchannels,
                                         self._pitch_slope(caller.last_voice), self._utt_start,
                                         self._stretch.since, scanned=caller.last_voice)
            self._pending.append(pause)
            if self._quiet_since is None:
                self._quiet_since = pause.start
        if pause is not None:
            if agent.last_voice > pause.start and pause.agent_voice_at is None:
                pause.agent_voice_at = agent.last_voice
            # Taking the floor starts in the caller's pause; talking over the caller's last words and on is not it.
            if (pause.takeover_at is None and t - pause.start >= 0.3 and agent.talking(self.cfg.takeover)
                    and agent.run_start >= pause.start - 0.1):
                pause.takeover_at = t
        if self._quiet_since is not None:
            self._agent_spoke_in_pause |= agent.talking(self.cfg.min_talk[AGENT])
        return self._settle(t) + self._emit(t)

    def _settle(self, now: float) -> list[FloorState]:
        """Judge the pending pauses, oldest first, as far as their words and the audio allow."""
        out = []
        while self._pending:
            p = self._pending[0]
            if p.talks == self._released_talks:
                p.done = True  # a pause after a short sound in a turn already released
            released = None if p.done else self._judge(p, now)
            if released is not None:
                at, confidence = released
                p.done, self._released_talks = True, p.talks
                if self._talks == p.talks:  # the caller has not talked since: the turn is over
                    self.turn_open, self.finished, self.release_confidence = False, True, confidence
                    out += self._emit(at)
                else:  # the caller already went on: released there, late; then the floor as it is now
                    out.append(FloorState(round(at, 3), "open", False, True, round(confidence, 2), talked_past=True))
                    self._emitted = None
                    self._turn_scores = []
            if not p.done:
                return out
            self._pending.pop(0)
        return out

    def _judge(self, p: _Pause, now: float) -> tuple[float, float] | None:
        """(audio time of the release, the model's probability) once the caller is done, else None; marks the
        pause done once nothing more can release it.

        Every release time is a function of the audio and the words alone: the first chunk where the
        model's probability reaches the threshold, where the agent has taken the floor, or where the pause
        reaches give_up, whichever is first. Late words release at that time, late.
        """
        cfg = self.cfg
        # The caller's voice again: judged only before it, as if it were speech, until it turns out a short sound.
        caller = self.voices[CALLER]
        speech = p.end if p.end is not None else (caller.run_start + GRID if caller.active else None)
        upto = now if speech is None else min(now, speech - GRID / 2)
        read = self._read_pause(p)
        if read is None:
            if p.end is not None and self._heard and self._heard[-1][0] >= p.end:
                p.done = True  # the utterance went on through this pause: no words will end at it
                return None
            # Hold for the words; only when they never come does give_up (or the agent's taking over) decide alone.
            if now - p.start >= cfg.give_up + cfg.words_wait:
                p.done = True
                at = min(p.takeover_at or now, p.start + cfg.give_up)
                return (round(at, 3), 0.5) if p.end is None or at < p.end else None
            return None
        # Judge every chunk time not judged yet, from the pause's start: late words release where
        # they would have on an idle machine.
        j = max(int(round((p.scanned - p.start) / GRID)) + 1, int(np.ceil(cfg.min_release / GRID - 1e-6)))
        last = int(np.floor((upto - p.start) / GRID + 1e-6))
        # "...and": a thought left hanging waits for give_up, and so does a pause after nothing heard.
        hanging = read[1] is None or read[1].incomplete > 0
        threshold = (self.threshold if hanging else self.ask_threshold if asks(read[1])
                     else self.handover_threshold if hands_over(read[1]) else self.threshold)
        limit = (cfg.give_up if hanging else self.settle) - 1e-9
        for k in range(j, last + 1):
            at = p.start + k * GRID
            end_of_pause = k * GRID >= limit or (p.takeover_at is not None and at > p.takeover_at + 1e-6)
            if hanging and not end_of_pause:
                continue
            prob = self._prob(p, read, k * GRID, at) if read[1] is not None else 0.5
            if prob >= threshold or end_of_pause:
                return round(at, 3), prob
        p.scanned = max(p.scanned, p.start + last * GRID)
        if p.end is not None and p.scanned >= p.end - GRID * 1.5:
            p.done = True
        return None

    def _read_pause(self, p: _Pause):
        """The pause's fixed features once the words that end at it are in; None while they are not."""
        if p.read is not None:
            return p.read
        heard = next((h for h in self._heard if h[0] >= p.start - self.cfg.covers
                      and (p.end is None or h[0] < p.end)), None)
        if heard is None:
            return None  # hold rather than guess
        end, words = heard
        rate = words.n_words / max(0.5, end - p.utt_start) if words is not None and end >= p.utt_start else 2.5
        # The whole of this stretch of talk, as heard: a calm turn has nothing negative and nothing exclaimed.
        turn = [w for e, w in self._heard if w is not None and p.since <= e <= end]
        ctx = Context(habit=p.habit, habit_n=p.habit_n, talk=p.talk, bursts=p.bursts, backchannels=p.backchannels,
                      pitch_slope=p.pitch_slope, rate=rate, last_burst=p.start - p.utt_start,
                      turn_negativity=max([0.0] + [-w.text_score for w in turn]),
                      turn_exclaim=float(any(w.exclaim for w in turn)),
                      turn_questions=sum(w.question > 0 for w in turn[:-1]))
        p.read = (p.start, words, ctx)
        return p.read

    def _prob(self, p: _Pause, read, silence: float, at: float) -> float:
        _, words, ctx = read
        # Strictly before: judged live, a chunk time is decided on the caller's chunk, before the agent's.
        agent = p.agent_voice_at is not None and p.agent_voice_at < at - 1e-6
        x = vector(silence, words, ctx, agent)
        prob = self.model.prob(x)
        if self.trace is not None:
            self.trace.append((round(at, 3), read[0], x, prob))
        return prob

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
