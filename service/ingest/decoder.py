"""Wire audio of one stream to 16 kHz float32 per role: decode, split channels, resample."""

from __future__ import annotations

import numpy as np

from models.codecs import SAMPLE_WIDTH, decode, to_float
from models.resample import StreamResampler
from service.call_actions import Audio


class StreamDecoder:
    def __init__(self, encoding: str, sample_rate: int, roles: tuple[str, ...]):
        self.encoding = encoding
        self.roles = roles
        self.frame_bytes = SAMPLE_WIDTH[encoding] * len(roles)  # one sample of every channel
        # One resampler for all channels: per channel the same samples as a mono one, in half the time
        # (this runs for every 20 ms frame of every call).
        self._resampler = StreamResampler(sample_rate, channels=len(roles))

    def __call__(self, data: bytes) -> dict[str, np.ndarray]:
        samples = to_float(decode(self.encoding, data)).reshape(-1, len(self.roles))
        return self._split(self._resampler(samples))

    def flush(self) -> list[Audio]:
        """The audio still inside the resampler filter, at the end of the stream."""
        if self._resampler.rate_in == self._resampler.rate_out:
            return []
        tail = self._split(self._resampler(np.zeros((0, len(self.roles)), dtype=np.float32), last=True))
        return [Audio(tail)] if any(len(x) for x in tail.values()) else []

    def _split(self, samples: np.ndarray) -> dict[str, np.ndarray]:
        # Contiguous per role: the segmenter, the recording and the VAD read each channel on its own.
        return {role: np.ascontiguousarray(samples[:, i]) for i, role in enumerate(self.roles)}


def flush_resamplers(resamplers: dict[str, StreamResampler]) -> list[Audio]:
    tail = {role: r(np.zeros(0, dtype=np.float32), last=True) for role, r in resamplers.items()}
    return [Audio(tail)] if any(len(x) for x in tail.values()) else []
