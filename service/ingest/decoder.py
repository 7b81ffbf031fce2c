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
        self._resamplers = {role: StreamResampler(sample_rate) for role in roles}

    def __call__(self, data: bytes) -> dict[str, np.ndarray]:
        samples = to_float(decode(self.encoding, data)).reshape(-1, len(self.roles))
        return {role: self._resamplers[role](samples[:, i]) for i, role in enumerate(self.roles)}

    def flush(self) -> list[Audio]:
        """The audio still inside the resampler filters, at the end of the stream."""
        return flush_resamplers(self._resamplers)


def flush_resamplers(resamplers: dict[str, StreamResampler]) -> list[Audio]:
    tail = {role: r(np.zeros(0, dtype=np.float32), last=True) for role, r in resamplers.items()}
    return [Audio(tail)] if any(len(x) for x in tail.values()) else []
