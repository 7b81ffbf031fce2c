"""Sample-rate conversion to the 16 kHz the models expect, streaming or whole."""

from __future__ import annotations

import numpy as np
import soxr

MODEL_RATE = 16000


class StreamResampler:
    """Keeps filter state across frames so 20 ms chunks join without clicks.

    With ``channels`` > 1 it takes and returns (samples, channels) arrays: one soxr stream for all of a
    call's channels gives each channel the samples a mono stream of its own would, in about half the time.
    """

    def __init__(self, rate_in: int, rate_out: int = MODEL_RATE, channels: int = 1):
        self.rate_in = rate_in
        self.rate_out = rate_out
        self.channels = channels
        # MQ: 15 ms of filter delay at 8 kHz, against 78 ms for HQ, and clean for speech.
        self._stream = None if rate_in == rate_out else soxr.ResampleStream(rate_in, rate_out, channels,
                                                                             dtype="float32", quality="MQ")

    def __call__(self, samples: np.ndarray, last: bool = False) -> np.ndarray:
        samples = np.ascontiguousarray(samples, dtype=np.float32)
        if self._stream is None:
            return samples
        return self._stream.resample_chunk(samples, last=last)


def resample(samples: np.ndarray, rate_in: int, rate_out: int = MODEL_RATE) -> np.ndarray:
    if rate_in == rate_out:
        return np.asarray(samples, dtype=np.float32)
    return soxr.resample(np.asarray(samples, dtype=np.float32), rate_in, rate_out).astype(np.float32)
