"""G.711 tables and the pcm16 path, checked against the standard's known values."""

import numpy as np
import pytest

from models import codecs


def test_mulaw_known_codes():
    # ITU-T G.711: 0xFF and 0x7F are the two zeros, 0x80 is the positive maximum, 0x00 the negative.
    assert codecs.decode("mulaw", bytes([0xFF, 0x7F, 0x80, 0x00])).tolist() == [0, 0, 32124, -32124]


def test_alaw_known_codes():
    assert codecs.decode("alaw", bytes([0xD5, 0x55, 0xAA, 0x2A])).tolist() == [8, -8, 32256, -32256]


@pytest.mark.parametrize("encoding", ["mulaw", "alaw"])
def test_companded_round_trip_is_within_one_step(encoding):
    x = np.linspace(-32000, 32000, 4001).astype(np.int16)
    y = codecs.decode(encoding, codecs.encode(encoding, x)).astype(int)
    step = np.maximum(16, np.abs(x.astype(int)) // 16)  # G.711 segments: step grows with level
    assert np.all(np.abs(y - x) <= step)


def test_every_code_survives_decode_then_encode():
    codes = bytes(range(256))
    assert codecs.encode("alaw", codecs.decode("alaw", codes)) == codes
    # mu-law has two codes for zero (0x7F and 0xFF); every other code comes back as itself.
    back = codecs.encode("mulaw", codecs.decode("mulaw", codes))
    assert [b for a, b in zip(back, codes) if a != b] in ([0x7F], [0xFF])


def test_pcm16_is_little_endian_and_float_scaling():
    data = np.array([1, -2, 32767], dtype="<i2").tobytes()
    assert codecs.decode("pcm16", data).tolist() == [1, -2, 32767]
    f = codecs.to_float(codecs.decode("pcm16", data))
    assert codecs.to_int16(f).tolist() == [1, -2, 32767]


def test_unknown_encoding():
    with pytest.raises(ValueError):
        codecs.decode("opus", b"\x00")
