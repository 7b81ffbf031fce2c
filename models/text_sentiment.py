"""Text sentiment: VADER, extended for the complaint language VADER scores near neutral.

Callers rarely swear at an agent; they say "this is the third time I have called" or
"I want to cancel my account", which VADER's word lexicon reads as neutral. Each
complaint cue found pulls the score down; text without such cues keeps VADER's score
unchanged, so ordinary text is scored exactly as before.
"""

from __future__ import annotations

import re
from functools import lru_cache

_NUM = r"(?:two|three|four|five|six|several|many|multiple|\d+|a few|a dozen|so many)"
_NTH = r"(?:second|third|fourth|fifth|\d+(?:st|nd|rd|th)|hundredth|umpteenth|last)"

# (pattern, weight): weight is how far the cue pulls the compound score toward -1.
COMPLAINT_CUES: list[tuple[str, float]] = [
    (rf"\b(?:called|phoned|rung|contacted|emailed|written|tried|asked|complained)\b.{{0,25}}\b{_NUM} times\b", 0.45),
    (rf"\b(?:this is|it's|that's|for) the {_NTH} time\b", 0.4),
    (rf"\b{_NTH} time (?:i|this|that|you)\b", 0.3),
    (r"\bcancel+(?:ing|ed)? (?:my|the|our|this) (?:account|subscription|order|service|contract|card|membership|plan)\b", 0.45),
    (r"\b(?:nobody|no one|no-one|none of you)\b.{0,20}\b(?:helps?|helped|cares?|answers?|answered|listens?|call(?:s|ed)? (?:me |us )?back|does anything|did anything|fixe[sd]|knows)\b", 0.45),
    (r"\bnever (?:arrived|came|showed up|received|got|heard back|called back|fixed|answered)\b", 0.35),
    (r"\b(?:still|yet)\b.{0,20}\b(?:not|n't|no)\b.{0,20}\b(?:arrived|here|received|fixed|working|refunded|resolved|heard)\b", 0.35),
    (r"\b(?:has|have|hasn't|haven't) (?:still )?not (?:arrived|been fixed|been refunded|been resolved)\b", 0.35),
    (r"\b(?:been|was|were|i'?ve been) (?:waiting|on hold)\b.{0,25}\b(?:hours?|days?|weeks?|months?|minutes)\b", 0.35),
    (r"\bon hold for\b", 0.3),
    (r"\bhung up on me\b", 0.4),
    (r"\bwaste of (?:my )?(?:time|money)\b", 0.4),
    (r"\b(?:fed up|sick of|sick and tired|tired of|had enough|done with (?:this|you))\b", 0.45),
    (r"\b(?:unacceptable|ridiculous|outrageous|absurd|a joke|a disgrace|incompetent|useless)\b", 0.3),
    (r"\b(?:i want|give me|i need|i demand|i expect) (?:a|my) (?:refund|money back)\b", 0.3),
    (r"\b(?:charged?|billed?)(?: me)? (?:twice|double|two times|again|too much|for something)\b", 0.35),
    (r"\bovercharg(?:ed|ing)\b", 0.35),
    (r"\b(?:speak|talk) (?:to|with) (?:a|your|the) (?:manager|supervisor|someone in charge)\b", 0.4),
    (r"\bwhat are you (?:going to|gonna) do about (?:it|this|that)\b", 0.4),
    (r"\b(?:wrong|broken|damaged|cracked|defective|missing) (?:item|order|size|part|product|package|parts|box|jar)\b", 0.25),
    (r"\b(?:doesn't|does not|didn't|did not|won't|will not) (?:work|arrive|come|turn on|charge|fit)\b", 0.25),
    (r"\b(?:you people|your company|you guys) (?:always|never|keep)\b", 0.35),
    (r"\b(?:lost|cost me) (?:a|my|the) (?:day|client|job|money|pay|meeting)\b", 0.3),
    (r"\b(?:promised|told) (?:me|us)\b.{0,40}\b(?:never|not|didn't|wasn't|isn't)\b", 0.3),
    (r"\bnot (?:happy|satisfied|pleased|okay|ok|acceptable)\b", 0.3),
    (r"\b(?:furious|livid|outraged|disgusted|appalled)\b", 0.3),
    (r"\bare you (?:kidding|serious|joking)\b", 0.35),
    (r"\blet me finish\b", 0.35),
]
_COMPILED = [(re.compile(p, re.IGNORECASE), w) for p, w in COMPLAINT_CUES]


@lru_cache(maxsize=1)
def _vader():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def vader_score(text: str) -> float:
    """Plain VADER compound score, -1..1."""
    return _vader().polarity_scores(text)["compound"]


def complaint_cues(text: str) -> list[tuple[str, float]]:
    return [(m.group(0), w) for rx, w in _COMPILED for m in [rx.search(text)] if m]


def text_score(text: str) -> float:
    """VADER's compound score, pulled toward -1 by each complaint cue (with diminishing returns)."""
    score = vader_score(text)
    for _, weight in complaint_cues(text):
        # Move a share of the remaining distance to -1, so cues stack but never pass it.
        score = score - weight * (score + 1.0)
    return max(-1.0, min(1.0, score))
