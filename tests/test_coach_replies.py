"""The coach's reply reader: a warning heard by meaning in a sentence is decided by the agent's whole reply.

The sentences here are written for these tests: none is in the exchanges it was fitted on (checked below).
"""

from __future__ import annotations

import numpy as np
import pytest

from models.coach import replies
from models.coach.coach import AgentWarning, Coach
from models.coach.playbook import DEFAULT_PATH, PlaybookError, load, with_meaning
from models.coach.recognizer import recognize
from models.floor import FloorState

PLAYBOOK = load()
UPSET = "This is ridiculous, I am furious with you people."

# Said to a caller who complained, each reply one final a sentence: what the whole reply is warned of.
REPLIES = [
    # A reason alone is an excuse; the same reason owned and followed by a remedy is not.
    (["Half the team is off with flu this week."], ["excuse"]),
    (["Half the team is off with flu this week, but that's our problem, not yours.", "I'll get someone to you today."], []),
    # "Our notes say..." reads as arguing alone; followed by "that's no excuse for us" and a remedy it is not.
    (["That isn't what happened according to our notes."], ["arguing"]),
    (["Our notes say you were sent a reminder, but that's no excuse for us.", "I'm sorry, I'll waive the fee."], []),
    (["Best you contact the shop where you bought it."], ["passing_the_buck"]),
]


def _said(coach: Coach, finals: list[str], t: float = 5.0) -> tuple[list[str], list[str]]:
    """The warning kinds the reply draws as it is said, and when it is over: the caller speaks again, and the
    agent's words up to then are in."""
    during = [o.kind for i, text in enumerate(finals) for o in coach.agent_final(text, t + i)
              if isinstance(o, AgentWarning)]
    end = t + len(finals) + 1
    out = coach.floor(FloorState(end, "caller_speaking", False, False, 0.9)) + coach.tick(end + 0.1, heard=end + 0.1)
    return during, [o.kind for o in out if isinstance(o, AgentWarning)]


def test_the_sentences_here_are_not_in_the_exchanges_fitted_on():
    from clients.tools import coach_replies

    fitted = " ".join(x["agent"].lower() for x in coach_replies.exchanges())
    for finals, _ in REPLIES:
        for text in finals:
            assert text.lower() not in fitted, text


@pytest.mark.parametrize("finals, warned", REPLIES, ids=[" ".join(f)[:40] for f, _ in REPLIES])
def test_a_warning_heard_by_meaning_is_decided_by_the_whole_reply(finals, warned):
    coach = Coach(PLAYBOOK, 0)
    coach.caller_said(UPSET)
    during, after = _said(coach, finals)
    assert during == [] and after == warned


def test_a_trigger_phrase_warns_at_once_whatever_the_reply():
    coach = Coach(PLAYBOOK, 0)
    coach.caller_said(UPSET)
    during, after = _said(coach, ["That's not my fault.", "I'll waive the fee and book you in today."])
    assert during == ["blame"] and after == []


def test_a_reply_is_over_when_the_agent_says_no_more():
    """No caller words after the reply (the call goes quiet, or ends on it): once the agent's words are all in and
    nothing more came for REPLY_PAUSE, the reply is read whole. Not before their utterance is transcribed."""
    from models.coach.reply import PAUSE as REPLY_PAUSE

    coach = Coach(PLAYBOOK, 0)
    coach.caller_said(UPSET)
    assert coach.agent_final("Best you contact the shop where you bought it.", 10.0) == []
    assert coach.watching_stall  # so the session works out how far the agent's words are heard
    assert coach.tick(10.0 + REPLY_PAUSE + 1, heard=10.5) == []  # another utterance of theirs still transcribing
    out = coach.tick(10.0 + REPLY_PAUSE + 1, heard=10.0 + REPLY_PAUSE + 1)
    assert [o.kind for o in out if isinstance(o, AgentWarning)] == ["passing_the_buck"]
    assert coach.tick(20.0, heard=20.0) == []  # read once
    assert not coach.watching_stall


def test_toward_a_calm_caller_a_reply_by_meaning_warns_of_nothing():
    coach = Coach(PLAYBOOK, 0)
    coach.caller_said("Hi, I'd like to check when my order arrives.")
    assert _said(coach, ["Best you contact the shop where you bought it."]) == ([], [])


def test_a_short_question_is_read_with_the_final_before_it():
    """A check-back question alone reads as making light of it; after the restatement it closes, it is part of one.
    The warning it would draw quotes the final it was heard in. A short remark that is no question is read alone: an
    apology before it does not dilute a hand-off away."""
    from models.coach.reply import SHORT

    question = "Is that it, in a nutshell?"
    assert len(question.split()) < SHORT and "glib" in recognize(PLAYBOOK, question).pending
    coach = Coach(PLAYBOOK, 0)
    coach.caller_said(UPSET)
    assert _said(coach, ["So the parcel went to the wrong address twice and you've had no refund since March.",
                         question]) == ([], [])
    coach = Coach(PLAYBOOK, 0)
    coach.caller_said(UPSET)
    coach.agent_final(question, 5.0)
    out = coach.floor(FloorState(7.0, "caller_speaking", False, False, 0.9)) + coach.tick(7.1, heard=7.1)
    assert [(o.kind, o.quote) for o in out if isinstance(o, AgentWarning)] == [("glib", question)]
    coach = Coach(PLAYBOOK, 0)
    coach.caller_said(UPSET)
    quip = "Worse things happen at sea, right?"  # read with the final before it, and glib still
    assert _said(coach, ["Honestly, it happens all the time.", quip]) == ([], ["glib"])
    assert [w.quote for w in coach.warnings if w.kind == "glib"] == [quip]
    coach = Coach(PLAYBOOK, 0)
    coach.caller_said(UPSET)
    assert _said(coach, ["I'm so sorry about this, I'll refund the difference today.",
                         "You'd have to ask the courier."]) == ([], ["passing_the_buck"])


def test_a_goodbye_to_a_caller_who_closes_warmly_warns_of_nothing():
    """The same breezy words brush off a furious caller; once they thank the agent for sorting it, they are a goodbye."""
    reply = ["Lovely stuff. Have a good one, yeah?"]
    coach = Coach(PLAYBOOK, 0)
    coach.caller_said(UPSET)
    assert _said(coach, reply)[1] == ["glib"]
    coach = Coach(PLAYBOOK, 0)
    coach.caller_said(UPSET)
    coach.caller_said("Right, thanks for sorting it.")
    assert _said(coach, reply) == ([], [])
    coach.caller_said("Mm, cheers.")  # a backchannel in a new turn (_said's floor) keeps the thanks
    assert _said(coach, reply, t=20.0) == ([], [])
    coach.caller_said("Right, well, I'll wait and see then.")  # more than that in a new turn takes them back
    assert _said(coach, reply, t=30.0)[1]
    for after in ["Actually no, this is still a shambles, I'm furious.", "So when will the refund come through?"]:
        coach = Coach(PLAYBOOK, 0)
        coach.caller_said(UPSET)
        coach.caller_said("Right, thanks for sorting it.")
        coach.caller_said(after)  # in the same turn: a complaint, or a question, takes the thanks back
        assert _said(coach, reply)[1], after


def test_without_the_reader_a_warning_by_meaning_is_shown_at_once():
    """replies = false: the sentence readers decide, per final, as before the reader."""
    book = with_meaning(PLAYBOOK, replies=False)
    assert book.recognizer.replies is None and PLAYBOOK.recognizer.replies is not None
    coach = Coach(book, 0)
    coach.caller_said(UPSET)
    during, after = _said(coach, ["Our notes say you were sent a reminder, but that's no excuse for us."])
    assert during == ["arguing"] and after == []


def test_a_reply_shows_a_warning_no_sentence_did_where_the_playbook_asks():
    """reply_confirm below 1: a reply that reads plainly as a warning warns of it once, however many finals it
    runs to; the team lead's exceptions hold against it ("you're right" is no arguing)."""
    book = with_meaning(PLAYBOOK, reply_confirm=0.8)
    finals = ["Our system shows he arrived at 11:40.", "He was there until 12:25."]
    assert not any(recognize(book, text).pending for text in finals)  # no sentence reader hears it
    coach = Coach(book, 0)
    coach.caller_said("Your engineer never turned up, I waited in all day!")
    coach.caller_said(UPSET)
    assert _said(coach, finals) == ([], ["arguing"])
    assert _said(coach, ["You're quite right, our system shows he arrived at 11:40."]) == ([], [])
    off = Coach(with_meaning(PLAYBOOK, reply_confirm=1.0), 0)  # 1: never
    off.caller_said("Your engineer never turned up, I waited in all day!")
    off.caller_said(UPSET)
    assert _said(off, finals) == ([], [])


def test_the_committed_reader_is_current_and_says_what_it_was_fitted_on():
    """Fitted by calmline train replies on the fitting exchanges as committed, through the committed adapter."""
    from clients.tools import coach_replies

    assert coach_replies.current(), "the reply reader is stale: run calmline train replies"
    meta, w, b = replies.read(replies.REPLIES)
    assert meta["replies"] == len(coach_replies.exchanges()) >= 800
    assert meta["kinds"] == [k for k in PLAYBOOK.warnings if k != "interrupting"] and w.shape == (384, len(meta["kinds"]))
    assert all(meta["warned"][k] >= 50 for k in meta["kinds"])


def test_fitting_gives_the_same_weights_every_time_and_learns_its_labels():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 16)).astype(np.float32)
    y = np.stack([x[:, 0] > 0.5, x[:, 1] + x[:, 2] < 0], axis=1).astype(np.float32)
    w1, b1 = replies.fit(x, y, 10.0)
    w2, b2 = replies.fit(x, y, 10.0)
    assert np.array_equal(w1, w2) and np.array_equal(b1, b2)
    p = 1 / (1 + np.exp(-(x @ w1 + b1)))
    assert ((p > 0.5) == (y > 0)).mean() > 0.9


@pytest.mark.parametrize("damage, message", [
    ("missing", "is missing"),
    ("not an archive", "not a reply reader"),
    ("kinds", "do not fit its kinds"),
    ("adapter", "another adapter's vectors"),
])
def test_a_reader_that_is_not_the_one_training_wrote_is_refused(tmp_path, monkeypatch, damage, message):
    meta, w, b = replies.read(replies.REPLIES)
    path = tmp_path / "replies.npz"
    if damage == "not an archive":
        path.write_bytes(b"not an npz")
    elif damage == "kinds":
        replies.write(path, {**meta, "kinds": meta["kinds"][:-1]}, w, b)
    elif damage == "adapter":
        replies.write(path, {**meta, "adapter_sha256": "0" * 64}, w, b)
    monkeypatch.setattr(replies, "REPLIES", path)
    with pytest.raises(PlaybookError, match=message):
        load()


def test_on_the_published_encoder_the_reader_is_off(tmp_path):
    """It was fitted on the tuned encoder's vectors: a team lead trying the published one changes one line."""
    path = tmp_path / "playbook.toml"
    path.write_text(DEFAULT_PATH.read_text().replace('encoder = "tuned"', 'encoder = "base"'))
    book = load(path)
    assert book.meaning["replies"] is False and book.recognizer.replies is None


def test_a_final_that_comes_after_the_caller_started_is_read_with_its_reply():
    """The agent's last final is often transcribed after the caller has started to speak: the reply waits for the
    agent's words up to then, and is read once, whole."""
    coach = Coach(PLAYBOOK, 0)
    coach.caller_said(UPSET)
    assert coach.agent_final("Half the team is off with flu this week, but that's our problem, not yours.", 5.0) == []
    assert coach.floor(FloorState(7.0, "caller_speaking", False, False, 0.9)) == []
    assert coach.tick(7.2, heard=6.5) == []  # the agent's next words, spoken before 7.0, still being transcribed
    coach.agent_final("I'll get someone to you today.", 7.4)
    assert [o for o in coach.tick(7.5, heard=7.5) if isinstance(o, AgentWarning)] == []  # the excuse, owned
    coach = Coach(PLAYBOOK, 0)
    coach.caller_said(UPSET)
    coach.agent_final("Best you contact the shop where you bought it.", 5.0)
    coach.floor(FloorState(7.0, "caller_speaking", False, False, 0.9))
    assert coach.tick(7.2, heard=6.5) == []
    coach.agent_final("The number's on your receipt.", 7.4)
    assert [o.kind for o in coach.tick(7.5, heard=7.5) if isinstance(o, AgentWarning)] == ["passing_the_buck"]
    assert coach.tick(9.0, heard=9.0) == []  # once


@pytest.mark.parametrize("confirm", [1.0, 0.97, 0.8])
def test_a_reply_to_a_calm_caller_stays_calm_when_they_complain_after_it(confirm):
    """Whether the caller had complained is read when the words were said, not when the reply is read; with
    confirmation on too (the whole reply reads as passing the buck at 0.8 or more)."""
    coach = Coach(with_meaning(PLAYBOOK, reply_confirm=confirm), 0)
    coach.caller_said("Hi, I'd like to check when my order arrives.")
    coach.agent_final("Best you contact the shop where you bought it.", 5.0)
    coach.caller_intent("That's ridiculous, I'm furious, you're useless!")
    assert coach.reply_ended(7.0) == []


def test_a_warning_at_the_replys_end_brings_the_cue_that_repairs_it():
    coach = Coach(PLAYBOOK, 0)
    coach.caller_said(UPSET)
    coach.agent_final("Best you contact the shop where you bought it.", 5.0)
    out = coach.tick(8.0, heard=8.0)  # nothing more from the agent, no caller: the pause ends the reply
    assert [o.kind for o in out if isinstance(o, AgentWarning)] == ["passing_the_buck"]
    assert coach.cue is not None and coach.cue.move == "apologize"


def test_the_calls_end_decides_what_waits_on_the_last_reply():
    """A call that ends on the agent's reply: the session's end reads it whole before the summary is made."""
    from models.call_analysis import CallAnalysis

    analysis = CallAnalysis(PLAYBOOK, 0.0, ["caller", "agent"])
    analysis.final("caller", UPSET, 0.0, 2.0, 2.5)
    out = analysis.final("agent", "Best you contact the shop where you bought it.", 3.0, 5.0, 5.5)
    assert not [o for o in out if isinstance(o, AgentWarning)]
    assert [o.kind for o in analysis.call_over(6.0) if isinstance(o, AgentWarning)] == ["passing_the_buck"]
    assert [w["kind"] for w in analysis.summary()["warnings"]] == ["passing_the_buck"]
    assert analysis.call_over(7.0) == []


def test_each_reply_is_decided_on_its_own():
    """A reply read, the agent's next final starts the next one: a warning of the same kind can come again, and the
    earlier reply's words are not read with it."""
    coach = Coach(PLAYBOOK, 0)
    coach.caller_said(UPSET)
    assert _said(coach, ["Best you contact the shop where you bought it."]) == ([], ["passing_the_buck"])
    assert _said(coach, ["I'll chase the shop for you myself and ring you back by four."], t=20.0) == ([], [])
    assert _said(coach, ["Best you contact the shop where you bought it."], t=40.0) == ([], ["passing_the_buck"])


def test_training_writes_the_committed_reader_again(tmp_path):
    """calmline train replies is the committed file's recipe: run again, it gives the same card and weights."""
    from clients.tools import coach_replies

    meta = coach_replies.train(out=tmp_path / "replies.npz")
    again, w, b = replies.read(tmp_path / "replies.npz")
    committed, w0, b0 = replies.read(replies.REPLIES)
    assert again == committed == meta
    assert np.allclose(w, w0, atol=1e-5) and np.allclose(b, b0, atol=1e-5)
