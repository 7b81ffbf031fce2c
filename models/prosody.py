"""Voice features of 32 ms chunks: loudness and pitch (autocorrelation), for many chunks in one set of numpy
calls, or for one."""

from __future__ import annotations

import numpy as np

from models.resample import MODEL_RATE

F0_MIN, F0_MAX = 70.0, 400.0
_LAG_MIN, _LAG_MAX = int(MODEL_RATE / F0_MAX), int(MODEL_RATE / F0_MIN)


def loudnesses_db(chunks: np.ndarray) -> np.ndarray:
    """The loudness (dB full scale) of each row of a [chunks, samples] array."""
    return 20 * np.log10(np.sqrt(np.einsum("ij,ij->i", chunks, chunks, dtype=np.float64) / chunks.shape[1]) + 1e-6)


def loudness_db(chunk: np.ndarray) -> float:
    return float(loudnesses_db(chunk[None])[0])


def _overlap(n: int) -> np.ndarray:
    """Per lag, the share of the chunk that overlaps itself: normalises the autocorrelation (cached per size)."""
    found = _OVERLAP.get(n)
    if found is None:
        found = _OVERLAP[n] = (n - np.arange(_LAG_MAX + 2)) / n
    return found


_OVERLAP: dict[int, np.ndarray] = {}


def pitches_hz(chunks: np.ndarray) -> list[float | None]:
    """The fundamental frequency of each row of a [chunks, samples] array, or None for a row with no clear
    periodicity; in a few numpy calls for all rows, since the per-call overhead is most of the cost of one
    32 ms chunk (the live path decides every speaker's chunks of a tick together, service.vad_batch)."""
    x = chunks - chunks.mean(axis=1, keepdims=True)
    energy = np.einsum("ij,ij->i", x, x)
    n = x.shape[1]
    spec = np.fft.rfft(x, 2 * n, axis=1)
    ac = np.fft.irfft(spec.real ** 2 + spec.imag ** 2, axis=1)[:, : _LAG_MAX + 2]
    with np.errstate(divide="ignore", invalid="ignore"):  # a silent row divides by 0: it is None below
        # Normalised by the overlap length so long lags are not penalised.
        ac = ac / (energy[:, None] * _overlap(n))
    window = ac[:, _LAG_MIN:_LAG_MAX + 1]
    best = window.max(axis=1)
    # Multiples of the period correlate almost as well: the first peak near the best one is the period.
    mid = window[:, 1:-1]
    peaks = (mid >= window[:, :-2]) & (mid >= window[:, 2:]) & (mid >= 0.85 * best[:, None])
    lag = np.where(peaks.any(axis=1), _LAG_MIN + 1 + peaks.argmax(axis=1), _LAG_MIN + window.argmax(axis=1))
    # Parabolic interpolation around the peak for a sub-sample lag.
    rows = np.arange(len(x))
    a, b, c = ac[rows, lag - 1], ac[rows, lag], ac[rows, lag + 1]
    curve = a - 2 * b + c
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = np.where(curve != 0, 0.5 * (a - c) / curve, 0.0)
    # A vertex more than half a sample away means the lag is no peak (the window's edge): keep the whole lag, or
    # a flat curve sends the vertex anywhere, to a negative frequency once.
    shift = np.where(np.abs(shift) <= 0.5, shift, 0.0)
    hz = MODEL_RATE / (lag + shift)
    return [None if e < 1e-4 or not bst >= 0.45 else float(f) for e, bst, f in zip(energy, best, hz)]


def pitch_hz(chunk: np.ndarray) -> float | None:
    return pitches_hz(chunk[None])[0]


def semitones(hz: float, ref: float = 100.0) -> float:
    return 12.0 * np.log2(hz / ref)
