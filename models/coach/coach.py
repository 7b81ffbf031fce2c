"""The coach's state machine: from the caller's state and both speakers' words to cues, steps, warnings, alerts.

The next move is chosen from what the agent has already done, what facts are known
and how heated the caller is (PLAYBOOK.md: the order is not fixed). While the caller
holds the floor the cue is held back (``hold``); ``listen`` while they vent.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import ClassVar

from models.coach.facts import Facts
from models.coach.playbook import Playbook
from models.coach.recognizer import decide_reply, recognize
from models.coach.reply import Reply
from models.floor import FloorState
from models.text_sentiment import complaint_cues, text_score

CLOSING = re.compile(r"\b(?:that'?s all|have a (?:nice|good|great) (?:day|one|evening)|thank(?:s| you)|appreciate|"
                     r"that (?:would be|sounds) (?:great|wonderful|good|perfect)|perfect|bye)\b", re.I)
BACKCHANNEL_WORDS = 2  # "Mm.", "Okay, cheers.": a caller turn of no more words does not take thanks back
# The caller turning down what was offered: the remedy is not agreed after all.
REFUSAL = re.compile(r"\b(?:not good enough|not (?:acceptable|enough)|that'?s it\?|no thanks?\b|"
                     r"(?:i|we) (?:don'?t|do not) want (?:a|an|your|the|another|that)|"
                     r"that (?:won'?t|doesn'?t|does not|will not) (?:help|work|do|fix))", re.I)
# The caller taking what was offered, or relieved: the remedy is agreed even if its words were not recognised.
ACCEPTED = re.compile(r"\b(?:that(?:'?s| is| would be| sounds| works)|sounds|works) (?:\w+ )?(?:great|perfect|brilliant|lovely|fine|"
                      r"good|wonderful|better|a relief)\b|\b(?:perfect|brilliant|lovely|great),? thanks?\b|"
                      r"\bthank (?:god|goodness|heavens)\b|\bthat'?s all\b|\bbye\b", re.I)
WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


@dataclass(frozen=True)
class Cue:
    EVENT: ClassVar[str] = "cue"
    t: float
    move: str
    say: str
    why: str
    hold: bool


@dataclass(frozen=True)
class StepDone:
    EVENT: ClassVar[str] = "step.done"
    t: float
    move: str
    evidence: str


@dataclass(frozen=True)
class AgentWarning:
    """Something the agent said that the playbook warns against (not Python's ``Warning``)."""

    EVENT: ClassVar[str] = "warning"
    t: float
    kind: str
    quote: str
    advice: str


@dataclass(frozen=True)
class Alert:
    EVENT: ClassVar[str] = "alert"
    t: float
    kind: str
    detail: str


@dataclass
class _Overlap:
    start: float
    warned: bool = False


@dataclass
class Coach:
    playbook: Playbook
    started_at: float  # unix time the call started: for follow-up dates
    facts: Facts = field(default_factory=Facts)
    done: list[StepDone] = field(default_factory=list)
    warnings: list[AgentWarning] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    heat: float = 0.0
    peak_heat: float = 0.0
    cue: Cue | None = None
    _holding: bool = False
    _venting_turn: bool = False
    _complaint: bool = False
    _repair: bool = False  # a warning since the last apology: the next move is to repair it
    _closing: bool = False
    _thanked: bool = False  # the caller's last words thanked the agent warmly, and nothing since complained or asked
    _fresh_turn: bool = False  # a caller turn began and no words of it past a backchannel have been read
    _accepted: bool = False  # the caller took the remedy on offer (or is relieved): closing moves are next
    _again: list = field(default_factory=list)  # moves the caller's last words made due again, first first
    _caller_spoke: bool = False
    _overlap: _Overlap | None = None
    _agent_words: str = ""
    _reply: Reply = field(default_factory=lambda: Reply(read=True))  # the agent's reply the reply reader decides
    _released_at: float | None = None
    _hot_since: float | None = None
    _phrasing: dict = field(default_factory=dict)
    _cue_thanks: bool = False  # the cue on screen thanks the caller before saying their facts back
    _flare: bool = False  # the floor called this turn venting after the agent had started on the complaint

    # -- inputs ------------------------------------------------------------------

    def floor(self, st: FloorState) -> list:
        out = []
        if st.state == "caller_speaking" and not self._reply.read and self._reply.until is None:
            # The caller's turn ends the agent's reply; its last final may still be on its way (tick reads it).
            self._reply.until = st.t
        if st.state == "overlap" and st.venting:
            self._overlap = self._overlap or _Overlap(st.t)
        elif st.state != "overlap":
            self._overlap = None
        if st.state in ("caller_speaking", "caller_pausing", "overlap") and not st.finished_venting:
            if not self._holding:
                self._holding, self._venting_turn, self._closing, self._flare = True, False, False, False
                self._fresh_turn = True  # its words decide whether the thanks still stand ("mm" does not)
            if st.venting:
                # Maybe a new flare-up of a complaint the agent had started on; the floor calls a turn venting as
                # it starts, on the heat so far, so the caller's words decide (caller_intent): "Yes, exactly."
                # after an apology is no flare-up.
                self._flare = self._flare or (not self._venting_turn and self._complaint and bool(self.done)
                                              and not self._repair)
                self._venting_turn = self._complaint = True
                out += self._show("listen", st.t, hold=True)
            elif self.cue is not None and not self.cue.hold:
                out += self._show(self.cue.move, st.t, hold=True)  # the caller took the floor back: hold
        elif st.finished_venting and self._holding:
            self._holding = False
            self._released_at = st.t if self._venting_turn else None
            out += self._plan(st.t, hold=False)
        return out

    def caller_said(self, text: str, score: float | None = None) -> None:
        """A caller final: facts, and whether they complain or are closing. Call before the floor hears of it.

        ``score``: the sentence's own text score (models.text_sentiment), when it is already read."""
        self.facts.add(text)
        self.caller_intent(text, score)

    def caller_intent(self, text: str, score: float | None = None) -> None:
        """What the caller's words do to the next move (a complaint, a remedy taken or turned down, closing),
        without keeping them: the floor may release on a sentence's early words, before its final (and its
        redaction), and the move it releases should already know "that sounds great, thanks". Reading the
        same sentence again at its final changes nothing."""
        self._caller_spoke = True
        if score is None:
            score = text_score(text)  # this sentence alone, not the heat tracker's reading in context
        if score <= -0.3 or complaint_cues(text):
            self._complaint, self._thanked = True, False
            if self._flare and "empathize" not in self._again:
                self._again.insert(0, "empathize")  # a flare-up, in their words: acknowledge the feeling again
            self._flare = False
        self._closing = bool(CLOSING.search(text)) and score > 0.2
        if self._fresh_turn and len(text.split()) > BACKCHANNEL_WORDS:
            self._thanked, self._fresh_turn = False, False
        # Thanks stand until the caller complains, asks something ("thanks, so when will the refund come?") or
        # says more in a new turn than a backchannel.
        asked = text.rstrip().endswith("?")
        self._thanked = (self._thanked or self._closing) and not asked
        # Only once the agent has done something for them: "fine" before that is not a remedy agreed.
        if self.done and ACCEPTED.search(text) and not REFUSAL.search(text) and score > 0.0:
            self._accepted = True
        if REFUSAL.search(text):
            self._accepted = False
        if "make_it_right" in {s.move for s in self.done} and REFUSAL.search(text) and not self._closing:
            if "make_it_right" not in self._again:
                self._again.append("make_it_right")  # refused: ask what would make it right, or offer more

    def refresh(self, t: float) -> list:
        """After a caller final: while they still hold the floor, what they said may change the held cue."""
        if self._holding and not (self.cue is not None and self.cue.move == "listen"):
            return self._plan(t, hold=True)
        return []

    def caller_heat(self, heat: float, t: float) -> list:
        self.heat = heat
        self.peak_heat = max(self.peak_heat, heat)
        limit = self.playbook.threshold("escalation_heat")
        if heat < limit:
            self._hot_since = None
            return []
        if self._hot_since is None:
            self._hot_since = t
        if t - self._hot_since >= self.playbook.threshold("escalation_seconds"):
            self._hot_since = float("inf")  # once per hot spell
            return self._alert(t, "escalation", f"caller heat above {limit:.2f} for "
                               f"{self.playbook.threshold('escalation_seconds'):.0f} s (now {heat:.2f})")
        return []

    def agent_words(self, text: str) -> None:
        """Latest agent partial: quoted if they are talking over the caller."""
        self._agent_words = text

    def agent_final(self, text: str, t: float) -> list:
        self._agent_words = text
        out = []
        done_moves = {s.move for s in self.done}
        if self._reply.read:  # the last reply was read whole: this final starts the next one
            self._reply = Reply()
        seen = recognize(self.playbook, text)
        # By meaning alone, a warning only toward a caller who had complained when it was said and has not since
        # thanked the agent (as below): "No worries, enjoy the show." to "Thank you, really." is a goodbye.
        self._reply.add(text, t, seen.pending, seen.cleared, upset=self._upset)
        # Said again, it is done again; an apology acknowledges a flare-up as well as empathy does.
        self._again = [m for m in self._again if m not in seen.steps
                       and not (m == "empathize" and "apologize" in seen.steps)]
        for move in seen.steps:
            # Before the caller has said anything it is the greeting ("Thanks for calling, how can I
            # help?"): no move of the playbook can be done yet.
            if move in done_moves or not self._caller_spoke:
                continue
            step = StepDone(t, move, text)
            self.done.append(step)
            self._released_at = None
            if move == "apologize":
                self._repair = False
            out.append(step)
        for kind in seen.warnings:
            # Some kinds are warnings only toward a caller who complained (the playbook's upset_only): a light
            # remark to a calm caller is not glib, asking them for a reference is routine. The others too when
            # only their examples heard them: the playbook is about upset callers, its examples are said to
            # them, and routine talk with a calm caller sounds like them (a transfer to a named colleague, a
            # reason given when asked); a trigger phrase ("that's not my fault") counts with any caller.
            if not self._upset and (self.playbook.warnings[kind].upset_only or kind in seen.by_meaning):
                continue
            self._reply.warned.add(kind)
            out += self._warn(t, kind, text)
        if out and not self._holding:
            out += self._plan(t, hold=False)
        return out

    @property
    def _upset(self) -> bool:
        """The caller has complained and has not since thanked the agent warmly ("thanks, that's great", with
        nothing after it that complains or asks; a backchannel keeps it): the playbook's anti-patterns are about what
        is said to them. Kinds heard by meaning and the upset-only kinds' trigger phrases wait on it."""
        return self._complaint and not self._thanked

    def reply_ended(self, t: float) -> list:
        """The agent's reply is over (``tick``: the caller started to speak and the agent's words up to then are in,
        or nothing more came from them for ``reply.PAUSE``; or the call ends): read whole, it decides the warnings
        the sentence readers heard by meaning toward a caller who had complained (each stands where the reply from
        its final on shows it at ``reply_veto``), and may show one no sentence did (at ``reply_confirm``: "He
        logged in at 11:40 and left at 12:25." to "your engineer never came" is arguing). Read at its end, not as
        it goes: the reply reader was fitted on whole replies, and a reply's first sentence alone reads otherwise."""
        reply = self._reply
        if reply.read:
            return []
        reply.read = True
        pending = reply.pending_texts()
        # Confirmation too only of what was said to an upset caller, judged when it was said.
        cleared = reply.cleared if reply.upset else set(self.playbook.warnings)
        out = []
        for kind in decide_reply(self.playbook, reply.text, pending, cleared):
            if kind not in reply.warned:
                reply.warned.add(kind)
                out += self._warn(t, kind, reply.heard[kind] if kind in pending else reply.text)
        if out and not self._holding:
            out += self._plan(t, hold=False)  # the cue that repairs it, as after a warning said in so many words
        return out

    @property
    def watching_stall(self) -> bool:
        """A release is waiting for the agent's next step, or a reply to be read whole once it is over: only then
        does ``tick`` read ``heard`` (both wait on the agent's words being transcribed)."""
        return self._released_at is not None or not self._reply.read

    def tick(self, t: float, heard: float) -> list:
        """Called as audio time passes: interrupting, stalled, a reply over.

        ``t`` is the audio time now; ``heard`` the audio time up to which the agent's speech is transcribed
        (no agent utterance still open or with its final still being transcribed before it). Whether a step
        followed the release is known only from the agent's finals: under load they come seconds after the
        words were spoken, so ``stalled`` is decided on ``heard``, never on ``t`` alone."""
        out = self.reply_ended(t) if self._reply.over(t, heard) else []
        ov = self._overlap
        if ov and not ov.warned and t - ov.start >= self.playbook.threshold("interrupting_seconds"):
            ov.warned = True
            out += self._warn(t, "interrupting", self._agent_words or "(talking over the caller)")
        if (self._released_at is not None
                and min(t, heard) - self._released_at >= self.playbook.threshold("stalled_seconds")):
            self._released_at = None
            out += self._alert(t, "stalled", "the caller finished venting and no step followed for "
                               f"{self.playbook.threshold('stalled_seconds'):.0f} s")
        return out

    # -- choosing and phrasing ---------------------------------------------------

    def next_move(self) -> str | None:
        th = self.playbook.threshold
        done = {s.move for s in self.done}
        if self._repair:
            return "apologize"
        if self._again:  # a flare-up or a refused remedy: that move again, whatever was done before
            return self._again[0]
        resolved = "make_it_right" in done or self._accepted
        # Once a remedy is agreed, or a calm caller is wrapping up, only the closing moves are left.
        if resolved or self._closing and not self._complaint:
            for move in ("extra_mile", "follow_up"):
                if move not in done:
                    return move
            return None
        known = bool(self.facts.known or (self._complaint and self.facts.clauses))
        if self._thanks_due:
            # With their facts in hand, thanking and saying them back are one breath (the phrasing thanks first).
            return "restate" if self.facts.known else "thank"
        # Very hot and nothing to say back yet: apologize early.
        if self.heat >= th("apologize_first_heat") and "apologize" not in done and not (known and "restate" not in done):
            return "apologize"
        if not known and not done & {"clarify", "restate"}:
            return "clarify"
        if known and "restate" not in done:
            return "restate"
        if self._complaint:
            if self.heat >= th("empathize_heat") and "empathize" not in done:
                return "empathize"
            for move in ("apologize", "speed_of_need"):
                if move not in done:
                    return move
        for move in ("make_it_right", "extra_mile", "follow_up"):
            if move not in done:
                return move
        return None

    def _plan(self, t: float, hold: bool) -> list:
        move = self.next_move()
        return self._show(move, t, hold) if move else []

    @property
    def _thanks_due(self) -> bool:
        """The caller complained and the agent has done nothing yet: thanks come first."""
        return self._complaint and not self.done

    def _show(self, move: str, t: float, hold: bool) -> list:
        thanks = move == "restate" and self._thanks_due
        # The same cue stands, unless it still thanks for the agent who has since thanked.
        if self.cue and self.cue.move == move and self.cue.hold == hold and self._cue_thanks == thanks:
            return []
        spec = self.playbook.moves[move]
        say = self._phrase(move, spec.say)
        if thanks:
            say = f"{self._phrase('thank', self.playbook.moves['thank'].say)} {say}"
        self._cue_thanks = thanks
        self.cue = Cue(t, move, say, spec.why, hold)
        return [self.cue]

    def _phrase(self, move: str, phrasings: tuple[str, ...]) -> str:
        """The next phrasing whose fields are all known, rotating so a repeated move sounds fresh."""
        values = {**self.facts.fields(), "follow_day": self._follow_day().strftime("%A")}
        start = self._phrasing.get(move, -1) + 1
        for i in range(len(phrasings)):
            k = (start + i) % len(phrasings)
            try:
                text = phrasings[k].format(**values)
            except KeyError:
                continue
            self._phrasing[move] = k
            return text
        return phrasings[0].split("{")[0].strip() or self.playbook.moves[move].why

    def _warn(self, t: float, kind: str, quote: str) -> list:
        warning = AgentWarning(t, kind, quote, self.playbook.warnings[kind].advice)
        self.warnings.append(warning)
        self._repair = True
        out: list = [warning]
        same = sum(1 for w in self.warnings if w.kind == kind)
        if same == int(self.playbook.threshold("repeated_warning_count")):
            out += self._alert(t, "repeated_warning", f"{kind} {same} times in this call")
        return out

    def _alert(self, t: float, kind: str, detail: str) -> list:
        alert = Alert(t, kind, detail)
        self.alerts.append(alert)
        return [alert]

    # -- the end of the call -----------------------------------------------------

    def _follow_day(self, words: str = "") -> dt.date:
        start = dt.datetime.fromtimestamp(self.started_at).date()
        low = words.lower()
        if "tomorrow" in low:
            return start + dt.timedelta(days=1)
        for i, day in enumerate(WEEKDAYS):
            if day in low:
                return start + dt.timedelta(days=(i - start.weekday() - 1) % 7 + 1)
        if "today" in low or "this afternoon" in low or "at five" in low or "tonight" in low:
            return start
        return start + dt.timedelta(days=int(self.playbook.threshold("follow_up_days")))

    def summary(self, final_heat: float) -> dict:
        promised = next((s for s in self.done if s.move == "follow_up"), None)
        if promised:
            follow_up = {"promised": True, "item": promised.evidence, "due": self._follow_day(promised.evidence).isoformat()}
        else:
            follow_up = {"promised": False, "item": "Suggested: call the customer back to make sure the problem is solved.",
                         "due": self._follow_day().isoformat()}
        return {
            "steps_done": [{"move": s.move, "t": s.t, "evidence": s.evidence} for s in self.done],
            "warnings": [{"kind": w.kind, "t": w.t, "quote": w.quote} for w in self.warnings],
            "peak_heat": round(self.peak_heat, 3),
            "final_heat": round(final_heat, 3),
            "follow_up": follow_up,
        }
