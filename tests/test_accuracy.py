"""Packed windows keep faster-whisper's accuracy on real speech (Debian's Asterisk prompts and LibriVox clips)."""

import pytest

from clients.tools import realspeech
from models.wer import corpus_wer

pytestmark = pytest.mark.skipif(not realspeech.available(),
                                reason="needs asterisk-core-sounds-en-wav, asterisk-core-sounds-en, pocketsphinx-testdata")


def test_packed_windows_stay_within_one_point_of_faster_whisper(transcriber):
    pool = realspeech.clips()[::6][:30]  # a spread of prompts and the LibriVox clips' neighbours
    pool += [c for c in realspeech.clips() if c.rate == 16000][:3]
    own = [transcriber.transcribe(c.audio).text for c in pool]
    packed = [r.text for r in transcriber.transcribe_in_windows([c.audio for c in pool])]
    refs = [c.text for c in pool]
    own_wer, packed_wer = corpus_wer(list(zip(refs, own))), corpus_wer(list(zip(refs, packed)))
    assert packed_wer <= own_wer + 0.01, (own_wer, packed_wer)
    assert packed_wer < 0.1
