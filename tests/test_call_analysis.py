"""The call's analysis as a line: typed outputs that are DESIGN.md's events, in order, one reading a sentence."""

import dataclasses

import numpy as np
import pytest

import models.call_analysis as call_analysis
import models.coach.coach as coach_module
import models.heat as heat_module
from models.call_analysis import CallAnalysis, Floor
from models.coach import playbook
from models.coach.coach import AgentWarning, Alert, Cue, StepDone
from models.heat import SentimentReading
from models.utterances import VoiceChunk
from service.events import event_of
from service.speaker import TranscriptFinal, TranscriptPartial

# DESIGN.md's event table: each type's fields besides the envelope (type, call_id, seq, t, ts).
# transcript.final adds the README's contract details (confidence, aligned words).
DESIGN = {
    "transcript.partial": ["speaker", "text", "start", "end"],
    "transcript.final": ["speaker", "text", "start", "end", "confidence", "words"],
    "sentiment": ["speaker", "text_score", "arousal", "heat", "trend"],
    "floor": ["state", "venting", "finished_venting", "confidence"],
    "cue": ["move", "say", "why", "hold"],
    "step.done": ["move", "evidence"],
    "warning": ["kind", "quote", "advice"],
    "alert": ["kind", "detail"],
}
VENT = "This is the third time I have called and I am furious, it is ridiculous!"


@pytest.mark.parametrize("cls", [TranscriptPartial, TranscriptFinal, SentimentReading, Floor, Cue, StepDone,
                                 AgentWarning, Alert])
def test_every_output_is_its_event_with_the_fields_design_names(cls):
    values = {f.name: f"<{f.name}>" for f in dataclasses.fields(cls)}
    kind, t, fields = event_of(cls(**values))
    assert kind in DESIGN and t == "<t>"
    assert list(fields) == DESIGN[kind] and all(v == f"<{k}>" for k, v in fields.items())


def test_the_coachs_warning_does_not_shadow_the_builtin():
    assert AgentWarning.__name__ == "AgentWarning" and not hasattr(coach_module, "Warning")


def _analysis():
    return CallAnalysis(playbook.load(None), 0.0, ("caller", "agent"))


def _talk(analysis, role, start, end, prob=0.9):
    """Voice chunks of one speaker from ``start`` to ``end`` (seconds), silence on the other side."""
    out = []
    for t in np.arange(start + 0.032, end + 1e-9, 0.032):
        out += analysis.voice(role, VoiceChunk(round(float(t), 3), prob, -20.0, 180.0))
        out += analysis.voice("agent" if role == "caller" else "caller", VoiceChunk(round(float(t), 3), 0.0, -60.0, None))
    return out


def test_a_caller_final_reads_once_then_the_floor_then_the_coach():
    analysis = _analysis()
    talking = _talk(analysis, "caller", 0.0, 3.0)
    assert "caller_speaking" in [o.state for o in talking if isinstance(o, Floor)]
    out = analysis.final("caller", VENT, 0.2, 3.0, 3.0)
    reading = out[0]
    assert isinstance(reading, SentimentReading) and reading.speaker == "caller" and reading.t == 3.0
    assert reading.text_score <= -0.3 and analysis.coach.heat == reading.heat
    floors = [o for o in out if isinstance(o, Floor)]
    assert floors and floors[0].venting  # the floor heard the words with their reading: a venting turn
    cues = [o for o in out if isinstance(o, Cue)]
    assert cues and cues[0].move == "listen" and cues[0].hold  # the coach heard the floor: it holds back
    assert out.index(floors[0]) < out.index(cues[0])


def test_a_sentence_is_scored_once_for_its_early_words_and_its_final(monkeypatch):
    scored = []

    def counting(real):
        def score(text):
            scored.append(text)
            return real(text)
        return score

    for module in (call_analysis, heat_module, coach_module):
        monkeypatch.setattr(module, "text_score", counting(module.text_score))
    analysis = _analysis()
    _talk(analysis, "caller", 0.0, 3.0)
    analysis.early_words("caller", VENT, 0.2, 3.0, 3.3)
    analysis.final("caller", VENT, 0.2, 3.0, 3.5)
    assert scored.count(VENT) == 1


def test_a_remedy_taken_in_early_words_moves_the_cue_on_before_the_final():
    analysis = _analysis()
    coach = analysis.coach
    coach.caller_said("You charged me twice for one order and I am furious.")
    coach.agent_final("I'll refund the second charge today.", 5.0)
    facts = list(coach.facts.clauses)
    analysis.early_words("caller", "Oh, that sounds great, thanks.", 6.0, 7.5, 7.6)
    # Known before any release on these words: the remedy is taken, so the closing moves are next...
    assert coach.next_move() in ("extra_mile", "follow_up")
    assert coach.facts.clauses == facts  # ...and nothing of the words is kept before their (redacted) final
    refused = _analysis()
    refused.coach.caller_said("You charged me twice for one order and I am furious.")
    refused.coach.agent_final("I'll refund the second charge today.", 5.0)
    refused.early_words("caller", "No, that's not good enough.", 6.0, 7.5, 7.6)
    assert refused.coach.next_move() == "make_it_right"


def test_agent_partials_are_quoted_when_they_talk_over_the_caller():
    analysis = _analysis()
    analysis.partial("caller", "I want my money")
    assert analysis.coach._agent_words == ""
    analysis.partial("agent", "let me just stop you there")
    assert analysis.coach._agent_words == "let me just stop you there"
