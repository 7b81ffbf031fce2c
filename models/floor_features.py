"""What the end-of-vent model sees at one moment of a caller's pause: a feature vector from audio time only.

Two halves: how the caller's last words end (read once, when their transcript is in) and
what the audio says so far (the silence, this caller's pause habit, how long this vent has
run, the agent's backchannels, the pitch at the end). Everything here is a pure function of
the call's audio and the words of utterances that ended before the pause, never of when a
transcript happened to arrive, so a replay gives the same vector at the same audio time.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

# Words a thought left hanging ends on. These never end a sentence ("and", "the", "my"); WEAK ones end many ("Who
# is going to pay for that?", "That's all I'm asking for.") and count only where no full stop, question or
# exclamation mark closes the words: transcripts of the same audio read "get it back?" and "get it that?".
CONTINUERS = {"and", "but", "because", "or", "um", "uh", "which", "the", "a", "an", "to", "of", "if", "when", "my",
              "your"}
WEAK_CONTINUERS = {"so", "then", "like", "that", "with", "i", "was", "is", "were", "for", "in", "on", "just"}
# Handing the floor over: the caller asks the agent to act or to answer.
HANDOVER = re.compile(r"\b(what (are|will|can) you (going to )?do|what am i supposed to|what do you (suggest|propose)|"
                      r"(can|could|will|would) (you|somebody|someone)|so (explain|tell)|explain (that|this)|"
                      r"tell me|who is going to|where is my|when (are|will|is|do) (you|i|it|my)|how long|"
                      r"why are you|what now|what happens now|is that possible|do i (need|get))\b", re.I)
DEMAND = re.compile(r"\b(i want|i need (you|it|that|this|a|my|the|someone)|i expect|i demand|put me through|give me|"
                    r"get (me|someone|somebody)|let me speak|refund (the|it|that|this|all|my|me)|cancel (it|this|that|the|my)|fix (it|this|that)|"
                    r"send (me|someone|somebody|an?|the)|take (that|the|this|it) .*off|unblock|pay (that|this|the|for)|"
                    r"i am not paying|i cannot wait|that is not acceptable|i am done|i am leaving|ombudsman)\b", re.I)
# An order in the imperative ("Unfreeze it.", "Put a note on my file.", "Just send me the form, please."): a demand
# however it is worded. Not "come on", "do"/"have" questions (they end on "?" and are read as questions), or "let me
# tell you" (more follows).
IMPERATIVE = re.compile(r"^\W*(?:(?:please|just|so|then|now|and|okay|ok|right|well)\W+)*(put|give|send|book|flag|cancel|fix|"
                        r"refund|call|ring|unfreeze|unblock|unlock|take|get|make|tell|transfer|sort|stop|escalate|check|"
                        r"waive|credit|remove|change|reverse|connect|email|text|write|pay|replace|bring|move|find|switch|"
                        r"reset|update|have|keep|note|mark|schedule|arrange|confirm|show|explain|hurry)\b(?! you\b)", re.I)
# A rhetorical question inside a vent: more is coming.
RHETORICAL = re.compile(r"\b(are you (kidding|serious|joking)|do you know how|can you (believe|imagine)|"
                        r"how hard can|who does that|seriously|really)\b", re.I)
# Thanks at the very end: a caller who is done ("Okay, thank you.", "Perfect, thanks very much.").
THANKS_END = re.compile(r"\b(thank you|thanks)( (very|so) much| for (that|this|listening|your help|everything))?\W*$", re.I)
# A bare acknowledgement ("Okay.", "Oh.", "Great."): as often the start of a turn as its end.
ACK = {"okay", "ok", "oh", "great", "good", "fine", "alright", "right", "well", "yes", "sure", "hmm", "so", "then"}
# A tag on a statement ("He's eleven, you know?", "...since March, right?"): it asks for nothing.
TAG = re.compile(r"\w\W*,?\s+(you know|you see|right|okay|ok|yeah|eh|no|huh)\?\s*$", re.I)
CLOSER = re.compile(r"^\W*(ok(ay)?|fine|great|perfect|lovely|alright|thanks?|thank you|good|yes|no|sure|right)\b.*"
                    r"|\b(thank you|thanks)\W*$", re.I)


@dataclass(frozen=True)
class Words:
    """How the caller's last words end, from their transcript."""

    question: float  # ends on a question mark
    handover: float  # asks the agent to answer or act
    demand: float
    incomplete: float  # left hanging: "and...", a comma, a continuer
    rhetorical: float  # "are you kidding me?", a one- or two-word echo ("Declined?")
    exclaim: float
    closer: float  # "okay, thank you": a calm caller done
    thanks_end: float  # ends on thanks
    ack: float  # nothing but an acknowledgement ("Okay.", "Oh, great.")
    n_words: int
    text_score: float
    heat: float
    rising: float
    rhetorical_phrase: float = 0.0  # a rhetorical phrase ("can you believe", "do you know how"): it asks nothing


def read_words(text: str, text_score: float = 0.0, heat: float = 0.0, rising: bool = False) -> Words:
    text = text.strip()
    words = re.findall(r"[a-z']+", text.lower())
    sentences = [x for x in re.split(r"(?<=[.!?])\s+", text) if x]
    last = sentences[-1] if sentences else ""
    question = text.endswith("?") and not TAG.search(last)
    # Told by the last word, not by a missing full stop: the transcriber often leaves one out when it
    # decodes an utterance packed in a window with others ("morning is best" is as done as "morning is best.").
    # A stop that is there does tell: "...pay for that?" is done, "...pay for that" may not be.
    incomplete = (not words or text.endswith(("...", "…", ",", "-", ";", ":")) or words[-1] in CONTINUERS
                  or (words[-1] in WEAK_CONTINUERS and not text.endswith((".", "?", "!"))))
    last_words = len(re.findall(r"[a-z']+", last.lower()))
    # "Flag it. Please.": a short tag sentence after the order does not hide it.
    tail = sentences[-2:] if len(sentences) >= 2 and last_words <= 2 else sentences[-1:]
    ordered = not text.endswith("?") and any(IMPERATIVE.search(x) and not re.match(r"^\W*let me\b", x, re.I) for x in tail)
    return Words(
        question=float(question),
        handover=float(bool(HANDOVER.search(last)) and not incomplete),
        demand=float((bool(DEMAND.search(last)) or ordered) and not incomplete),
        incomplete=float(incomplete),
        rhetorical=float(question and (bool(RHETORICAL.search(last)) or last_words <= 3)),
        exclaim=float(text.endswith("!")),
        closer=float(bool(CLOSER.search(last)) and len(words) <= 8),
        thanks_end=float(bool(THANKS_END.search(text))),
        ack=float(bool(words) and len(words) <= 2 and all(w in ACK for w in words)),
        n_words=len(words),
        text_score=text_score,
        heat=heat,
        rising=float(rising),
        rhetorical_phrase=float(question and bool(RHETORICAL.search(last))),
    )


def hands_over(words: Words) -> bool:
    """The last words hand the floor over: a real question, a request to act, a demand, thanks."""
    return bool((words.question and not words.rhetorical) or words.handover or words.demand or words.thanks_end)


def asks(words: Words) -> bool:
    """The last words ask the agent outright, as a question: "What are you going to do about it?", "Can you send
    someone today?". Writers put plain questions and demands inside vents too (in the dev calls 116 plain
    questions inside a turn against 178 at its end); these mostly end it (8 against 45). "Can you believe that?"
    matches a hand-over phrase but asks nothing."""
    return bool(words.handover and words.question and not words.rhetorical_phrase)


def completeness(text: str) -> str:
    """question, complete or incomplete: how a caller's last words end."""
    w = read_words(text)
    if w.question:
        return "question"
    return "incomplete" if w.incomplete else "complete"


@dataclass(frozen=True)
class Context:
    """What the audio says about this pause, apart from how long it has lasted."""

    habit: float  # this caller's typical pause inside a turn, seconds
    habit_n: int  # how many such pauses were seen
    talk: float  # caller speech since the agent last held the floor, seconds
    bursts: int  # caller pauses of 0.5 s or more in that stretch
    backchannels: int  # short agent sounds in that stretch
    pitch_slope: float  # semitones per second over the last half second of speech
    rate: float  # words per second of the last utterance
    last_burst: float  # seconds of speech before this pause
    turn_negativity: float = 0.0  # the most negative words of this stretch of talk, as a positive number
    turn_exclaim: float = 0.0  # an exclamation anywhere in it
    turn_questions: int = 0  # questions asked earlier in it: a caller asking a series may ask another


NAMES = ("bias", "log_silence", "silence_over_habit", "past_habit", "question", "handover", "demand", "incomplete",
         "rhetorical", "exclaim", "closer", "log_words", "heat", "rising", "negativity", "pitch_fall", "rate",
         "log_talk", "bursts", "backchannels", "agent_in_pause", "habit_known", "handover_x_silence",
         "incomplete_x_silence", "first_burst", "calm_x_silence", "negativity_x_silence", "first_x_silence",
         "bursts_x_silence", "open_question", "past_1_5", "flat", "flat_x_silence", "flat_past_1_3",
         "question_x_silence", "exclaim_x_silence", "calm_echo", "thanks_end", "thanks_x_silence", "ack",
         "ack_x_silence", "calm_past_0_9", "calm_flat_past_0_9", "short_flat", "short_flat_x_silence", "turn_negativity", "turn_calm", "turn_calm_x_silence",
         "turn_calm_past_0_9", "earlier_questions", "question_after_questions", "question_in_vent")


def vector(silence: float, words: Words, ctx: Context, agent_in_pause: bool) -> list[float]:
    """The feature vector, in NAMES order, at ``silence`` seconds into the pause."""
    habit = ctx.habit
    log_s = math.log(max(silence, 0.05))
    calm = float(words.heat < 0.45 and words.text_score > -0.3)
    # A complete statement that neither asks, demands nor closes: inside a vent as often as at its end.
    turn_calm = float(ctx.turn_negativity < 0.3 and not ctx.turn_exclaim)
    flat = float(not (words.question or words.handover or words.demand or words.closer or words.incomplete))
    return [
        1.0,
        log_s,
        silence / habit,
        max(0.0, silence - habit),
        words.question,
        words.handover,
        words.demand,
        words.incomplete,
        words.rhetorical,
        words.exclaim,
        words.closer,
        math.log1p(words.n_words),
        words.heat,
        words.rising,
        max(0.0, -words.text_score),
        max(-2.0, min(2.0, -ctx.pitch_slope / 10.0)),
        min(ctx.rate, 6.0) / 3.0,
        math.log1p(ctx.talk),
        min(ctx.bursts, 8) / 4.0,
        min(ctx.backchannels, 4) / 2.0,
        float(agent_in_pause),
        float(ctx.habit_n >= 2),
        (words.handover + words.demand) * log_s,
        words.incomplete * log_s,
        float(ctx.bursts == 0),
        calm * log_s,
        max(0.0, -words.text_score) * log_s,
        float(ctx.bursts == 0) * log_s,
        min(ctx.bursts, 8) / 4.0 * log_s,
        words.question * (1.0 - words.handover) * (1.0 - words.rhetorical),
        max(0.0, silence - 1.5),
        flat,
        flat * log_s,
        flat * max(0.0, silence - 1.3),
        words.question * log_s,
        words.exclaim * log_s,
        words.rhetorical * calm,  # "How long?" from a calm caller is a real question
        words.thanks_end,
        words.thanks_end * log_s,
        words.ack,
        words.ack * log_s,
        # A calm caller's pauses inside a turn are short (0.6-0.9 s): past them, a calm turn is over.
        calm * max(0.0, silence - 0.9),
        calm * flat * max(0.0, silence - 0.9),
        flat * float(words.n_words <= 4),  # a fragment ("Third floor.", "Every tap."): often more follows
        flat * float(words.n_words <= 4) * log_s,
        min(ctx.turn_negativity, 1.0),
        turn_calm,
        turn_calm * log_s,
        turn_calm * max(0.0, silence - 0.9),
        min(ctx.turn_questions, 3) / 3.0,
        words.question * float(ctx.turn_questions >= 1),
        # A question in a heated stretch with no request in it is as often rhetorical ("To check your own meter?").
        words.question * (1.0 - words.handover) * float(ctx.turn_exclaim > 0 or ctx.turn_negativity >= 0.3),
    ]
