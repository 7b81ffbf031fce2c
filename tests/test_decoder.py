"""The stereo decoder (one 2-channel resampler per call) gives each role the samples of a mono resampler of its own."""

import numpy as np
import pytest

from clients.simulate import frames_of
from models.wavfile import read_wav
from models.codecs import decode, to_float
from models.resample import StreamResampler
from service.ingest.decoder import StreamDecoder

ROLES = ("caller", "agent")


@pytest.mark.parametrize("encoding,rate", [("mulaw", 8000), ("pcm16", 8000), ("pcm16", 16000)])
def test_stereo_decoder_matches_one_mono_resampler_per_channel(encoding, rate):
    audio, sr = read_wav("tests/data/calls/c01_double_charge.wav")
    frames = frames_of(audio[: 8 * sr], sr, rate, encoding)
    decoder = StreamDecoder(encoding, rate, ROLES)
    mono = [StreamResampler(rate) for _ in ROLES]
    got = {role: [] for role in ROLES}
    want = {role: [] for role in ROLES}
    for frame in frames:
        for role, samples in decoder(frame).items():
            assert samples.flags.c_contiguous and samples.dtype == np.float32
            got[role].append(samples)
        channels = to_float(decode(encoding, frame)).reshape(-1, len(ROLES))
        for i, role in enumerate(ROLES):
            want[role].append(mono[i](channels[:, i]))
    for tail in decoder.flush():
        for role, samples in tail.frames.items():
            got[role].append(samples)
    for i, role in enumerate(ROLES):
        want[role].append(mono[i](np.zeros(0, dtype=np.float32), last=True))
    for role in ROLES:
        g, w = np.concatenate(got[role]), np.concatenate(want[role])
        assert len(w) >= 8 * 16000 - 2 * 160  # the whole 8 s came out, resampled to 16 kHz
        assert np.array_equal(g, w)
    # The two channels carry different speakers, so a mix-up of channels would show.
    assert not np.array_equal(np.concatenate(got["caller"]), np.concatenate(got["agent"]))
