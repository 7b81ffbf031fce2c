"""Redaction of personal data in transcript text (models/redaction.py), case by case."""

from __future__ import annotations

import asyncio
import json
import logging

import numpy as np
import pytest

from models.packing import Segment
from models.redaction import (KINDS, Redactor, apply, find, luhn, mask_data, mask_log, mask_partial, mask_words, masked_times,
                              parse_kinds)

CARD = ("card",)


def flat(ready):
    """(item, masked text, whether anything was masked) for each final let out."""
    return [(item, text, bool(found)) for item, text, found in ready]


def masked(text, kinds=CARD):
    return apply(text, find(text, kinds)[0])


@pytest.mark.parametrize("text, expected", [
    ("my card number is 4111 1111 1111 1111", "my card number is [card]"),
    ("4111111111111111", "[card]"),
    ("4111-1111-1111-1111.", "[card]."),
    ("It's 5555 5555 5555 4444, thanks.", "It's [card], thanks."),
    ("amex 3782 822463 10005", "amex [card]"),
    ("discover 6011 1111 1111 1117 please", "discover [card] please"),
    ("four one one one one one one one one one one one one one one one", "[card]"),
    ("Four, one, one, one. One, one, one, one. One, one, one, one. One, one, one, one.", "[card]."),
    ("five five five five, five five five five, five five five five, four four four four", "[card]"),
    ("forty one eleven, eleven eleven, eleven eleven, eleven eleven", "[card]"),
    ("four one one one double one one one one one one one one triple one", "[card]"),
    ("the card is 4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 and that's it", "the card is [card] and that's it"),
    ("oh and it's 4111 1111 1111 1111", "oh and it's [card]"),
    # What tiny.en made of the fixture: "four" heard as "for", the ones grouped wrong (no Luhn match).
    ("My card number is for 111 111 111 111 111 111. It expires 0 5 28 and the code is 731.",
     "My card number is [card]. It expires [expiry] and the code is [cvv]."),
    ("my visa is 4111 1111 1111 111", "my visa is [card]"),
])
def test_card_numbers_are_masked(text, expected):
    assert masked(text) == expected


@pytest.mark.parametrize("text", [
    "4111 1111 1111 1112",  # fails the Luhn check
    "I paid 35 dollars on the 12th of March 2024",
    "order number 1234567890123",  # 13 digits, not Luhn and no card prefix
    "my order is 1111 1111 1111 1117",  # Luhn-valid but no card starts with 1
    "I waited for 20 minutes to 2 people",  # "for" and "to" are words here
    "the tracking is 4111 1111 1111 1112",  # a long run without card words must pass Luhn
    "I called three times about twelve books",
    "call me at 555 123 4567",  # a phone number is not masked unless asked
    "my social is 123-45-6789",  # nor a social security number
    "jo at example dot com",
])
def test_other_numbers_are_left_alone_by_default(text):
    assert masked(text) == text


@pytest.mark.parametrize("text, expected", [
    ("4111111111111111 expires 05/28 and the code is 123", "[card] expires [expiry] and the code is [cvv]"),
    ("card 5555 5555 5555 4444 expiry oh five twenty eight security code seven three one",
     "card [card] expiry [expiry] security code [cvv]"),
    ("4111 1111 1111 1111 0528 123", "[card] [expiry] [cvv]"),
    ("4111 1111 1111 1111, 12 26, 4321", "[card], [expiry], [cvv]"),
    ("4111 1111 1111 1111 expires five twenty eight", "[card] expires [expiry]"),
    ("4111 1111 1111 1111 and the CVV is 987", "[card] and the CVV is [cvv]"),
])
def test_expiry_and_code_after_a_card(text, expected):
    assert masked(text) == expected


def test_three_digits_without_a_card_are_not_a_code():
    assert masked("the code is 123") == "the code is 123"


@pytest.mark.parametrize("text, kinds, expected", [
    ("my social is 123-45-6789", ("ssn",), "my social is [ssn]"),
    ("one two three four five six seven eight nine", ("ssn",), "[ssn]"),
    ("000-12-3456 is not one", ("ssn",), "000-12-3456 is not one"),
    ("666 12 3456", ("ssn",), "666 12 3456"),
    ("call me at 555 123 4567", ("phone",), "call me at [phone]"),
    ("1 800 555 0199 anytime", ("phone",), "[phone] anytime"),
    ("five five five, one two three, four five six seven", ("phone",), "[phone]"),
    ("mail jo.smith@example.com today", ("email",), "mail [email] today"),
    ("it's jo dot smith at example dot com", ("email",), "it's [email]"),
    ("jo underscore b at mail dot example dot org", ("email",), "[email]"),
    ("we met at noon", ("email",), "we met at noon"),
    ("card 4111 1111 1111 1111 phone 555 123 4567", KINDS, "card [card] phone [phone]"),
])
def test_other_kinds_on_request(text, kinds, expected):
    assert masked(text, kinds) == expected


def test_luhn():
    assert luhn("4111111111111111") and luhn("79927398713") and not luhn("79927398710")


def test_kinds_setting():
    assert parse_kinds("card") == ["card"]
    assert parse_kinds(" Card, SSN ,email") == ["card", "ssn", "email"]
    assert parse_kinds("") == [] and parse_kinds("none") == []
    with pytest.raises(ValueError, match="unknown kind"):
        parse_kinds("card,passport")


def test_setting_from_env_and_flag():
    import argparse

    from service import config

    assert config.load(environ={}).redact == ["card"]
    assert config.load(environ={"CALMLINE_REDACT": "card,phone"}).redact == ["card", "phone"]
    parser = argparse.ArgumentParser()
    config.add_arguments(parser)
    assert config.load(parser.parse_args(["--redact", "none"]), environ={}).redact == []
    with pytest.raises(SystemExit):
        config.load(environ={"CALMLINE_REDACT": "cards"})


# -- across finals: the Redactor of one call -----------------------------------------

def test_a_card_split_across_two_finals_is_held_then_masked_in_both():
    r = Redactor(CARD)
    assert flat(r.final("caller", 1, "My card number is 4111 1111")) == []  # held: it could be a card's first half
    assert r.holding("caller") == 1
    out = flat(r.final("caller", 2, "1111 1111. It expires 0528."))
    assert out == [(1, "My card number is [card]", True), (2, "[card]. It expires [expiry].", True)]
    assert flat(r.final("caller", 3, "And the code is 123.")) == [(3, "And the code is [cvv].", True)]
    assert flat(r.final("caller", 4, "Thanks, 3 books.")) == [(4, "Thanks, 3 books.", False)]


def test_a_card_in_words_split_across_finals():
    r = Redactor(CARD)
    assert flat(r.final("caller", 1, "It's four one one one, one one one one,")) == []
    assert flat(r.final("caller", 2, "one one one one, one one one one.")) == [
        (1, "It's [card]", True), (2, "[card].", True)]


def test_the_other_speaker_does_not_complete_a_card():
    r = Redactor(CARD)
    assert flat(r.final("caller", 1, "it's 4111 1111")) == []
    assert flat(r.final("agent", 1, "1111 1111 okay")) == [(1, "1111 1111 okay", False)]
    assert flat(r.release("caller")) == [(1, "it's 4111 1111", False)]


def test_a_held_final_that_is_not_a_card_goes_out_unchanged_with_the_next():
    r = Redactor(CARD)
    assert flat(r.final("caller", 1, "My order was 2024")) == []
    assert flat(r.final("caller", 2, "books and got 12.")) == [(1, "My order was 2024", False), (2, "books and got 12.", False)]


def test_finals_that_cannot_be_a_card_are_not_held():
    r = Redactor(CARD)
    assert flat(r.final("caller", 1, "I ordered one book")) == [(1, "I ordered one book", False)]
    assert flat(r.final("caller", 1, "It costs 19 dollars.")) == [(1, "It costs 19 dollars.", False)]
    assert flat(r.final("caller", 2, "Call 1 800 now")) == [(2, "Call 1 800 now", False)]  # no card starts with 1 or 8
    assert flat(r.final("caller", 3, "You charged me $35.")) == [(3, "You charged me $35.", False)]  # money
    assert flat(r.final("caller", 4, "I ordered 3")) == [(4, "I ordered 3", False)]  # not a group of four
    assert flat(r.final("caller", 5, "my card is 4")) == []  # after card words any digits may go on


def test_redaction_off():
    r = Redactor(())
    assert flat(r.final("caller", 1, "4111 1111 1111 1111")) == [(1, "4111 1111 1111 1111", False)]
    assert r.partial("caller", "4111 1111") == "4111 1111"


@pytest.mark.parametrize("text, expected", [
    ("my card is 4111 1111", "my card is [card]"),  # a partial may be a card's beginning
    ("four one one one one", "[card]"),
    ("I paid 35 dollars", "I paid 35 dollars"),
    ("4111 1111 1111 1111 expires 0528", "[card] expires [expiry]"),
])
def test_partials_mask_runs_of_four_digits_or_more(text, expected):
    assert mask_partial(text, CARD) == expected
    assert Redactor(CARD).partial("caller", text) == expected


def test_log_lines_never_carry_a_card_number():
    assert mask_log('{"msg": "x 4111-1111-1111-1111 y"}') == '{"msg": "x [card] y"}'
    assert mask_log('{"call_id": "1234567890123"}') == '{"call_id": "1234567890123"}'
    from service.logs import JsonFormatter

    record = logging.makeLogRecord({"name": "calmline.x", "levelname": "WARNING", "msg": "said %s",
                                    "args": ("4111 1111 1111 1111",), "detail": "5555555555554444"})
    line = json.loads(JsonFormatter().format(record))
    assert line["msg"] == "said [card]" and line["detail"] == "[card]"


def words_of(*timed):
    return [Segment(start, end, text) for start, end, text in timed]


def test_masked_times_come_from_the_aligned_words():
    words = words_of((0.0, 0.3, " My"), (0.3, 0.6, " card"), (0.6, 0.9, " is"), (1.0, 1.4, " 4111"),
                     (1.5, 1.9, " 1111"), (2.0, 2.4, " 1111"), (2.5, 2.9, " 1111."), (3.2, 3.5, " Thanks."))
    text = "My card is 4111 1111 1111 1111. Thanks."
    found, _ = find(text, CARD)
    assert apply(text, found) == "My card is [card]. Thanks."
    assert masked_times(text, words, found) == [(pytest.approx(0.92), pytest.approx(2.98))]
    shown = [t for _, t in mask_words(words, found)]
    assert shown == [" My", " card", " is", "[card]", "[card]", "[card]", "[card]", " Thanks."]
    assert masked_times("something else", words, found) is None  # words that do not spell the text
    assert masked_times(text, [], found) is None


# -- in a call session: the held final, the release, the recording --------------------

class _Scheduler:
    """Stands in for the transcriber: each utterance's text, in order."""

    def __init__(self, texts):
        self.texts = iter(texts)

    def submit(self, job):
        from models.transcriber import Transcript

        text = next(self.texts)
        future = asyncio.get_running_loop().create_future()
        future.set_result(text if isinstance(text, Transcript) else Transcript(text, -0.1, 0.0))
        return future

    def withdraw(self, future):
        return False


class _Bus:
    def __init__(self):
        self.events = []

    def publish(self, event, agent_id):
        self.events.append(event)


def _session(tmp_path, texts):
    from models.coach import playbook
    from models.utterances import SegmenterConfig
    from service.audio_files import CallAudio
    from service.events import CallEvents
    from service.call_actions import Start
    from service.session import CallSession
    from service.session_deps import SessionDeps

    bus = _Bus()
    start = Start("c-1", "a-1", "native", "pcm16", 16000, 1, ("caller",))
    deps = SessionDeps(_Scheduler(texts), None, SegmenterConfig(), playbook.load(None), ("card",))
    session = CallSession(start, deps, CallAudio(tmp_path, ["caller"]), CallEvents("c-1", "a-1", bus))
    session.audio.append("caller", np.full(4 * 16000, 0.25, dtype=np.float32))  # 4 s of "speech" on record
    session.tracks["caller"].samples = 4 * 16000
    return session, bus


def _utterance(n, start, end):
    from models.utterances import UtteranceEnded

    return UtteranceEnded(n, start, end, np.full(int((end - start) * 16000), 0.25, dtype=np.float32))


async def _settle(session):
    while any(not t.done() for track in session.tracks.values() for t in track.tasks):
        await asyncio.sleep(0.01)


async def test_the_session_holds_half_a_card_until_the_next_final_and_silences_both(tmp_path):
    session, bus = _session(tmp_path, ["My card number is 4111 1111", "1111 1111, thanks."])
    track = session.tracks["caller"]
    track.utterance(_utterance(1, 0.0, 1.2))
    await _settle(session)
    assert not [e for e in bus.events if e["type"] == "transcript.final"]  # held
    track.utterance(_utterance(2, 1.8, 3.0))
    await _settle(session)
    finals = [e["text"] for e in bus.events if e["type"] == "transcript.final"]
    assert finals == ["My card number is [card]", "[card], thanks."]
    session.audio.flush()
    recorded = np.fromfile(tmp_path / "caller.pcm", dtype="<i2")
    second = lambda a, b: recorded[int(a * 16000):int(b * 16000)]  # noqa: E731
    assert not second(0.0, 1.2).any() and not second(1.8, 3.0).any()  # both utterances (no word times here: all)
    assert second(1.25, 1.75).all() and second(3.05, 4.0).all()  # the rest of the recording untouched


async def test_aligned_words_of_a_card_say_their_mask_in_the_event_and_the_recording_is_silenced_over_them(tmp_path):
    from models.packing import Segment
    from models.transcriber import Transcript

    spoken = [(" My", 0.0, 0.2), (" card", 0.2, 0.4), (" is", 0.4, 0.5), (" 4111", 0.5, 0.8), (" 1111", 0.8, 1.1),
              (" 1111", 1.1, 1.4), (" 1111.", 1.4, 1.7), (" Thanks.", 2.2, 2.6)]
    words = tuple(Segment(a, b, w, 0.9) for w, a, b in spoken)
    text = "".join(w for w, _, _ in spoken).strip()
    session, bus = _session(tmp_path, [Transcript(text, -0.1, 0.0, words=words)])
    session.tracks["caller"].utterance(_utterance(1, 0.5, 3.2))
    await _settle(session)
    final = next(e for e in bus.events if e["type"] == "transcript.final")
    assert final["text"] == "My card is [card]. Thanks."
    assert [w["word"] for w in final["words"]] == ["My", "card", "is", "[card]", "[card]", "[card]", "[card]", "Thanks."]
    assert not any(ch.isdigit() for w in final["words"] for ch in w["word"])
    session.audio.flush()
    recorded = np.fromfile(tmp_path / "caller.pcm", dtype="<i2")
    second = lambda a, b: recorded[int(a * 16000):int(b * 16000)]  # noqa: E731
    assert not second(1.0, 2.2).any()  # the digits, in call time (the utterance starts at 0.5 s)
    assert second(0.5, 0.85).all() and second(2.35, 3.2).all()  # "My card" and "Thanks." kept
    session.audio.close()


async def test_a_held_final_goes_out_once_its_speaker_has_said_nothing_for_two_seconds_after_it(tmp_path):
    from service.speaker import HOLD_QUIET

    session, bus = _session(tmp_path, ["It is 4471 2209"])
    track = session.tracks["caller"]
    track.segmenter.skip(1.2)  # the segmenter's clock at the utterance's end, as in a call
    track.utterance(_utterance(1, 0.0, 1.2))
    await _settle(session)
    assert not [e for e in bus.events if e["type"] == "transcript.final"]  # held: it could be a card's first half
    session.feed({"caller": np.zeros(int((HOLD_QUIET - 0.3) * 16000), dtype=np.float32)})
    assert not [e for e in bus.events if e["type"] == "transcript.final"]  # 1.7 s of silence: more may follow
    session.feed({"caller": np.zeros(int(0.4 * 16000), dtype=np.float32)})
    assert [e["text"] for e in bus.events if e["type"] == "transcript.final"] == ["It is 4471 2209"]
    session.audio.close()


async def test_a_held_final_goes_out_alone_after_five_seconds_of_the_speakers_audio(tmp_path, monkeypatch):
    """While its speaker is still talking (an utterance open, no final) the held final waits the 5 s at most."""
    from models.utterances import UtteranceSegmenter

    monkeypatch.setattr(UtteranceSegmenter, "in_speech", property(lambda self: True))
    session, bus = _session(tmp_path, ["It is 4111 1111"])
    session.tracks["caller"].utterance(_utterance(1, 0.0, 1.2))
    await _settle(session)
    assert not [e for e in bus.events if e["type"] == "transcript.final"]
    session.feed({"caller": np.zeros(4 * 16000, dtype=np.float32)})
    assert not [e for e in bus.events if e["type"] == "transcript.final"]  # 4 s: still held
    session.feed({"caller": np.zeros(int(1.2 * 16000), dtype=np.float32)})
    assert [e["text"] for e in bus.events if e["type"] == "transcript.final"] == ["It is 4111 1111"]
    session.audio.close()


def test_start_metadata_is_masked_value_by_value_and_platform_ids_are_kept():
    metadata = {"note": "card 4111 1111 1111 1111 exp 12/29", "cc": "4111111111111111", "account": 4111111111111111,
                "contact": ["jo@example.com", 7, True, None, 1.5], "from": "+15551234567", "at": 1700000000,
                # Ids of the shape a platform gives (a Twilio SID, a UUID) stay whole, whatever digits they hold;
                # other strings of letters and digits do not.
                "twilio": {"callSid": "CA4111111111111111aabbccddeeff0011", "uuid": "3fa85f64-5717-4562-b3fc-2c963f66afa6"},
                "ref": "card_4111111111111111", "ext": "555-123-4567x89"}
    masked = mask_data(metadata, ("card", "email", "phone"))
    assert masked["note"].startswith("card [card]") and "4111" not in masked["note"]
    assert masked["cc"] == "[card]" and masked["account"] == "[card]"
    assert masked["contact"] == ["[email]", 7, True, None, 1.5]
    assert masked["from"] == "+[phone]" and "4567" not in masked["ext"]
    assert masked["at"] == 1700000000  # a number is a card or nothing: not a phone
    assert masked["twilio"] == metadata["twilio"]
    assert "4111111111111111" not in masked["ref"]
    assert mask_data(metadata, ("card",))["from"] == "+15551234567"  # phone not asked for
    assert mask_data(metadata, ()) == metadata
