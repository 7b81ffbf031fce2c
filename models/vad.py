"""Streaming voice activity: Silero VAD (the ONNX model faster-whisper ships) over 32 ms chunks, one model
call for a chunk of each of many streams.

Silero v6 as shipped takes one stream: the rows of its input are successive chunks of it, its recurrent
state is ``[1, 1, 128]``. The graph is rewritten once at load so the rows are streams instead (the LSTM's
time axis becomes its batch axis; state ``[1, streams, 128]``): a stream's probabilities are the same as
through the shipped graph (tests/test_vad.py), and a model call costs about half as much per chunk with 8 or
more streams in it (tests/perf/vad_batch.py). Only each stream's state and context live outside the model.
"""

from __future__ import annotations

import os
from functools import lru_cache

import numpy as np

CHUNK = 512  # samples at 16 kHz: the window Silero v6 is trained on
_CONTEXT = 64  # the previous chunk's last samples, which the model sees before each chunk
_STATE = 128


def shipped_model_path() -> str:
    import faster_whisper

    return os.path.join(os.path.dirname(faster_whisper.__file__), "assets", "silero_vad_v6.onnx")


def streams_graph(path: str) -> bytes:
    """The shipped graph with one row per stream: the transpose before the LSTM puts the rows on its batch
    axis instead of its time axis (the decoder after it is a kernel-1 convolution, the same either way)."""
    import onnx

    model = onnx.load(path)
    nodes = [n for n in model.graph.node if n.output[0] == "/Transpose_output_0"]
    if len(nodes) != 1 or list(nodes[0].attribute[0].ints) != [0, 2, 1]:
        raise RuntimeError(f"{path} is not the Silero v6 graph this rewrite knows")
    # Encoder output [rows, 128, 1] -> [1 time step, rows, 128] (was [rows time steps, 1, 128]).
    nodes[0].attribute[0].ints[:] = [2, 0, 1]
    for value in list(model.graph.input) + list(model.graph.output):
        if value.name in ("h", "c", "hn", "cn"):
            dim = value.type.tensor_type.shape.dim[1]
            dim.ClearField("dim_value")
            dim.dim_param = "streams"
    onnx.checker.check_model(model)
    return model.SerializeToString()


def load() -> None:
    """Build the rewritten graph now (about a second): at the server's start, not on the event loop at the
    first call's first chunk, and a graph this rewrite does not know stops the start."""
    _session()


@lru_cache(maxsize=1)
def _session():
    import onnxruntime

    opts = onnxruntime.SessionOptions()
    opts.inter_op_num_threads = 1
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 4
    # One session serves every stream of the process.
    return onnxruntime.InferenceSession(streams_graph(shipped_model_path()), providers=["CPUExecutionProvider"],
                                        sess_options=opts)


class SileroStream:
    """One speaker's VAD state. Called with a chunk: its speech probability (a model call of its own);
    ``speech_probs`` takes a chunk of each of several streams in one call."""

    def __init__(self) -> None:
        self.h = np.zeros(_STATE, dtype=np.float32)
        self.c = np.zeros(_STATE, dtype=np.float32)
        self.context = np.zeros(_CONTEXT, dtype=np.float32)

    def __call__(self, chunk: np.ndarray) -> float:
        return float(speech_probs([self], [chunk])[0])


def speech_probs(streams: list[SileroStream], chunks) -> np.ndarray:
    """The speech probability of each stream's next chunk (``chunks``: one row per stream), in one model call;
    each stream's state moves on."""
    window = np.empty((len(streams), _CONTEXT + CHUNK), dtype=np.float32)
    window[:, :_CONTEXT] = [s.context for s in streams]
    window[:, _CONTEXT:] = chunks
    h = np.stack([s.h for s in streams])[None]
    c = np.stack([s.c for s in streams])[None]
    prob, hn, cn = _session().run(None, {"input": window, "h": h, "c": c})
    for i, stream in enumerate(streams):
        stream.h, stream.c, stream.context = hn[0, i], cn[0, i], window[i, -_CONTEXT:]
    return np.asarray(prob, dtype=np.float32).reshape(-1)
