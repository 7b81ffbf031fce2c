"""One agent reply as the reply reader decides it: its finals, what waits on it, and when it is over.

A reply is the agent's finals from the first after their last reply was read. A warning the sentence readers heard
by meaning waits on it (``pending``) with the finals from the one it was heard in on: what came before does not
excuse it, what follows may ("..., but that's on us, I'll waive it"). A check-back question of a few words is read
with the final before it. The coach (coach.Coach) feeds it finals and audio time and reads it once, when it is over
(recognizer.decide_reply).
"""

from __future__ import annotations

from dataclasses import dataclass, field

# The reader reads at most this many finals of a reply (a pending warning's final, or a short question's with the one
# before it, and those after it): the replies
# it was fitted on run one to four sentences, and a long turn read whole would blur what one sentence does.
FINALS = 3
PAUSE = 2.0  # seconds after the agent's last final with no more of the reply and no caller: it is over
# A question of fewer words is read with the final before it: a check-back alone ("Is that the gist of it?") carries
# too little of the reply for a reader fitted on whole replies. Only a question: a short hand-off or remark after an
# apology ("I'm so sorry. You'd have to ask the courier.") is read alone, or the apology would dilute it away.
SHORT = 7


@dataclass
class Reply:
    finals: list = field(default_factory=list)  # its last FINALS finals: the text a confirmation reads
    pending: dict = field(default_factory=dict)  # kind -> the finals from the one it was heard in on (or the one before)
    heard: dict = field(default_factory=dict)  # kind -> the final it was heard in (the warning quotes it)
    cleared: set = field(default_factory=set)  # kinds its words rule out for a confirmation (an exception, a near-miss)
    warned: set = field(default_factory=set)  # kinds already shown for it, at once or when it was read
    upset: bool = False  # said to a caller the anti-patterns are about (coach.Coach._upset), when a final of it was
    at: float = 0.0  # when its last final came
    until: float | None = None  # the caller started to speak then: it is over once the agent's words to here are in
    read: bool = False

    def add(self, text: str, t: float, pending=(), cleared=(), upset: bool = False) -> None:
        """A final of the reply, with the warnings heard in it by meaning alone, the kinds it rules out, and whether
        the caller was upset when it was said: only then do its warnings wait on the reply."""
        self.upset = self.upset or upset
        pending = pending if upset else ()
        before = self.finals[-1:] if len(text.split()) < SHORT and text.rstrip().endswith("?") else []
        self.finals, self.at = [*self.finals, text][-FINALS:], t
        self.pending = {k: [*finals, text][:FINALS] for k, finals in self.pending.items()}
        for kind in pending:
            self.pending.setdefault(kind, [*before, text])
            self.heard.setdefault(kind, text)
        self.cleared |= set(cleared)

    def over(self, t: float, heard: float) -> bool:
        """Over once the agent's words are in (``heard``: no utterance of theirs still open or being transcribed) up
        to where the caller started to speak, or nothing more came from them for ``PAUSE``."""
        done = min(t, heard)
        return not self.read and (done - self.at >= PAUSE or self.until is not None and done >= self.until)

    @property
    def text(self) -> str:
        return " ".join(self.finals)

    def pending_texts(self) -> dict[str, str]:
        """Each waiting kind and the text that decides it."""
        return {kind: " ".join(finals) for kind, finals in self.pending.items()}
