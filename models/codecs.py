"""Telephone audio codecs: pcm16, G.711 mu-law and A-law to and from float32 samples."""

from __future__ import annotations

import numpy as np

# Bytes per sample of each wire encoding.
SAMPLE_WIDTH = {"pcm16": 2, "mulaw": 1, "alaw": 1}
ENCODINGS = tuple(SAMPLE_WIDTH)


def _mulaw_table() -> np.ndarray:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    sign = u & 0x80
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return np.where(sign, -magnitude, magnitude).astype(np.int16)


def _alaw_table() -> np.ndarray:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    sign = a & 0x80
    exponent = (a >> 4) & 0x07
    mantissa = a & 0x0F
    magnitude = np.where(
        exponent == 0,
        (mantissa << 4) + 8,
        ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0),
    )
    return np.where(sign, magnitude, -magnitude).astype(np.int16)


_MULAW_DECODE = _mulaw_table()
_ALAW_DECODE = _alaw_table()
# Encoding by nearest decoded value: exact inverse of the tables above, and simple.
_MULAW_ORDER = np.argsort(_MULAW_DECODE, kind="stable")
_ALAW_ORDER = np.argsort(_ALAW_DECODE, kind="stable")


def decode(encoding: str, data: bytes) -> np.ndarray:
    """Wire bytes to int16 samples (still interleaved when the stream has channels)."""
    if encoding == "pcm16":
        return np.frombuffer(data, dtype="<i2")
    codes = np.frombuffer(data, dtype=np.uint8)
    if encoding == "mulaw":
        return _MULAW_DECODE[codes]
    if encoding == "alaw":
        return _ALAW_DECODE[codes]
    raise ValueError(f"unknown encoding {encoding!r}")


def encode(encoding: str, samples: np.ndarray) -> bytes:
    """int16 samples to wire bytes."""
    samples = np.asarray(samples, dtype=np.int16)
    if encoding == "pcm16":
        return samples.astype("<i2").tobytes()
    table, order = {
        "mulaw": (_MULAW_DECODE, _MULAW_ORDER),
        "alaw": (_ALAW_DECODE, _ALAW_ORDER),
    }[encoding]
    sorted_values = table[order]
    idx = np.clip(np.searchsorted(sorted_values, samples), 1, 255)
    lower, upper = sorted_values[idx - 1], sorted_values[idx]
    nearest = np.where(samples - lower <= upper - samples, idx - 1, idx)
    return order[nearest].astype(np.uint8).tobytes()


def to_float(samples: np.ndarray) -> np.ndarray:
    return samples.astype(np.float32) / 32768.0


def to_int16(samples: np.ndarray) -> np.ndarray:
    return (np.clip(samples, -1.0, 32767 / 32768) * 32768.0).astype(np.int16)
