"""One call's analysis as a line: both speakers' voice and words in, typed outputs out, in order.

Inside it the order is fixed, heat -> floor -> coach: a sentence is read once (its text score and
the speaker's heat), the floor hears it with that reading, and the coach hears the floor's states
and the words. Every output is a frozen dataclass that names its event (``EVENT``) and carries the
fields DESIGN.md's event table gives that event, plus ``t`` (seconds of call audio), so one function
(service.events.event_of) makes any of them an event. Nothing here knows of sockets, storage or the
transcriber.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import ClassVar

from models.coach.coach import AgentWarning, Alert, Coach, Cue, StepDone
from models.coach.playbook import Playbook
from models.floor import AGENT, CALLER, FloorState, FloorTracker
from models.heat import HeatTracker, SentimentReading
from models.text_sentiment import text_score
from models.utterances import VoiceChunk


@dataclass(frozen=True)
class Floor:
    """Who holds the floor now, as the ``floor`` event shows it (the tracker's own state keeps more)."""

    EVENT: ClassVar[str] = "floor"
    t: float
    state: str
    venting: bool
    finished_venting: bool
    confidence: float


Output = SentimentReading | Floor | Cue | StepDone | AgentWarning | Alert


class CallAnalysis:
    """Heat per speaker, the floor and the coach of one call, fed in the order things are heard.

    ``agent_heard(t)`` says up to which audio time the agent's words are known (finals still being
    transcribed or held back are not): the coach decides a stall on it, never on ``t`` alone.
    """

    def __init__(self, playbook: Playbook, started_at: float, roles: Iterable[str],
                 agent_heard: Callable[[float], float] = lambda t: t):
        self.heat = {role: HeatTracker(role) for role in roles}
        self.floor = FloorTracker()
        self.coach = Coach(playbook, started_at)
        self._agent_heard = agent_heard
        self._scored: tuple[str, float] | None = None  # (text, text score) of the last sentence read

    def voice(self, role: str, chunk: VoiceChunk) -> list[Output]:
        """One 32 ms chunk of a speaker's voice activity."""
        self.heat[role].voice(chunk)
        out = self._after_floor(self.floor.voice(role, chunk))
        # Where the agent's words are transcribed up to matters only while a stall is watched; this
        # runs for every chunk of both speakers, so it is not worked out otherwise.
        heard = self._agent_heard(chunk.t) if self.coach.watching_stall else chunk.t
        return out + self.coach.tick(chunk.t, heard)

    def early_words(self, role: str, text: str, start: float, end: float, now: float) -> list[Output]:
        """The words of an utterance that ended at its pause, before its final goes out: the floor decides on
        them now, with the reading the final will make. Give them in the order spoken, after the speaker's
        previous final: however late they come, the floor then makes the same decision."""
        # From a copy: the tracker itself reads each sentence once, at its final.
        reading = copy.deepcopy(self.heat[role]).utterance(text, start, end, self._score(text))
        if role == CALLER:
            # What the words do to the next move, before the floor may release on them; their facts wait for
            # the final, whose text is redacted (a cue says facts back on the agent's screen).
            self.coach.caller_intent(text, reading.text_score)
        return self._after_floor(self.floor.words(role, text, end, now, reading.text_score, reading.heat,
                                                  reading.trend == "rising"))

    def nothing_said(self, role: str, end: float, now: float) -> list[Output]:
        """An utterance that ended at ``end`` has no words (too short, or an empty transcript): the floor
        must not wait for them."""
        return self._after_floor(self.floor.words(role, "", end, now))

    def partial(self, role: str, text: str) -> None:
        """A speaker's latest partial (already redacted): the coach quotes the agent talking over the caller."""
        if role == AGENT:
            self.coach.agent_words(text)

    def final(self, role: str, text: str, start: float, end: float, now: float) -> list[Output]:
        """A final (already redacted): its sentiment reading, then what the floor and the coach make of it."""
        score = self._score(text)
        reading = self.heat[role].utterance(text, start, end, score)
        if role == CALLER:
            self.coach.caller_said(text, score)  # facts and complaint, before the floor decides what the coach shows
        # Then the floor: a release or a venting turn decides what the coach shows.
        out: list = [reading] + self._after_floor(self.floor.final(
            role, text, end, score=reading.text_score, heat=reading.heat, rising=reading.trend == "rising", now=now))
        if role == CALLER:
            return out + self.coach.caller_heat(reading.heat, now) + self.coach.refresh(now)
        return out + self.coach.agent_final(text, now)

    def call_over(self, t: float) -> list[Output]:
        """The call is ending, its last finals in: what waits on the agent's last reply is decided now."""
        return self.coach.reply_ended(t)

    def summary(self) -> dict:
        """The call's summary for ``call.ended`` (steps, warnings, heat, follow-up)."""
        caller = self.heat.get(CALLER)
        return self.coach.summary(caller.heat if caller is not None and caller.heat is not None else 0.0)

    def _after_floor(self, states: list[FloorState]) -> list[Output]:
        out: list = []
        for st in states:
            out.append(Floor(st.t, st.state, st.venting, st.finished_venting, st.confidence))
            if not st.talked_past:  # a cue released now would push the agent to talk over the caller
                out += self.coach.floor(st)
        return out

    def _score(self, text: str) -> float:
        """The sentence's own text score, read once (its early words and its final are the same sentence)."""
        if self._scored is None or self._scored[0] != text:
            self._scored = (text, text_score(text))
        return self._scored[1]
