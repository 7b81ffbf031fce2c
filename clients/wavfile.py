"""Reads a WAV file into float32 samples (frames x channels) with the standard library alone."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

_DTYPES = {1: np.uint8, 2: np.dtype("<i2"), 4: np.dtype("<i4")}


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    try:
        with wave.open(str(path), "rb") as w:
            width, channels, rate = w.getsampwidth(), w.getnchannels(), w.getframerate()
            raw = w.readframes(w.getnframes())
    except wave.Error as exc:
        raise ValueError(f"{path}: not a PCM WAV file ({exc})") from None
    if width not in _DTYPES:
        raise ValueError(f"{path}: {8 * width}-bit samples are not supported (use 8, 16 or 32-bit PCM)")
    if channels not in (1, 2):
        raise ValueError(f"{path}: {channels} channels; a call is mono or stereo (caller left, agent right)")
    data = np.frombuffer(raw, dtype=_DTYPES[width]).astype(np.float32)
    data = (data - 128) / 128 if width == 1 else data / float(2 ** (8 * width - 1))
    return data.reshape(-1, channels), rate
