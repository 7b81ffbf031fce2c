"""Streaming voice activity: Silero VAD (the ONNX model faster-whisper ships) over 32 ms chunks."""

from __future__ import annotations

import os
from functools import lru_cache

import numpy as np

CHUNK = 512  # samples at 16 kHz: the window Silero v6 is trained on
_CONTEXT = 64


@lru_cache(maxsize=1)
def _session():
    import faster_whisper
    import onnxruntime

    path = os.path.join(os.path.dirname(faster_whisper.__file__), "assets", "silero_vad_v6.onnx")
    opts = onnxruntime.SessionOptions()
    opts.inter_op_num_threads = 1
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 4
    # One session serves every stream: only the recurrent state is per stream.
    return onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"], sess_options=opts)


class SileroStream:
    """Speech probability for each successive 512-sample chunk of one speaker's audio."""

    def __init__(self) -> None:
        self._session = _session()
        self._h = np.zeros((1, 1, 128), dtype=np.float32)
        self._c = np.zeros((1, 1, 128), dtype=np.float32)
        # The model's input: the previous chunk's last samples, then the chunk; filled in place, not rebuilt.
        self._window = np.zeros((1, _CONTEXT + CHUNK), dtype=np.float32)

    def __call__(self, chunk: np.ndarray) -> float:
        window = self._window
        window[0, _CONTEXT:] = chunk
        prob, self._h, self._c = self._session.run(None, {"input": window, "h": self._h, "c": self._c})
        window[0, :_CONTEXT] = window[0, -_CONTEXT:]
        return float(np.asarray(prob).reshape(-1)[0])
