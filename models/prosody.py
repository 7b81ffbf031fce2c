"""Voice features of one 32 ms chunk: loudness and pitch (autocorrelation), cheap enough for every chunk."""

from __future__ import annotations

import numpy as np

from models.resample import MODEL_RATE

F0_MIN, F0_MAX = 70.0, 400.0
_LAG_MIN, _LAG_MAX = int(MODEL_RATE / F0_MAX), int(MODEL_RATE / F0_MIN)


def loudness_db(chunk: np.ndarray) -> float:
    # One dot product: np.mean of the squares costs several times more on a 512-sample chunk (every chunk
    # of every call runs this on the event loop).
    return float(20 * np.log10(np.sqrt(float(np.dot(chunk, chunk)) / len(chunk)) + 1e-6))


def loudnesses_db(chunks: np.ndarray) -> np.ndarray:
    """``loudness_db`` of each row of a [chunks, samples] array."""
    return 20 * np.log10(np.sqrt(np.einsum("ij,ij->i", chunks, chunks, dtype=np.float64) / chunks.shape[1]) + 1e-6)


def _overlap(n: int) -> np.ndarray:
    """Per lag, the share of the chunk that overlaps itself: normalises the autocorrelation (cached per size)."""
    found = _OVERLAP.get(n)
    if found is None:
        found = _OVERLAP[n] = (n - np.arange(_LAG_MAX + 2)) / n
    return found


_OVERLAP: dict[int, np.ndarray] = {}


def pitch_hz(chunk: np.ndarray) -> float | None:
    """Fundamental frequency of a voiced chunk, or None when no clear periodicity is there."""
    x = chunk - chunk.mean()
    energy = float(np.dot(x, x))
    if energy < 1e-4:
        return None
    n = len(x)
    spec = np.fft.rfft(x, 2 * n)
    ac = np.fft.irfft(spec.real ** 2 + spec.imag ** 2)[: _LAG_MAX + 2]
    # Normalise by the overlap length so long lags are not penalised.
    ac = ac / (energy * _overlap(n))
    window = ac[_LAG_MIN:_LAG_MAX + 1]
    best = float(window.max())
    if best < 0.45:
        return None
    # Multiples of the period correlate almost as well: take the first peak near the best one.
    peaks = np.flatnonzero((window[1:-1] >= window[:-2]) & (window[1:-1] >= window[2:]) & (window[1:-1] >= 0.85 * best))
    lag = _LAG_MIN + 1 + int(peaks[0]) if len(peaks) else _LAG_MIN + int(np.argmax(window))
    # Parabolic interpolation around the peak for a sub-sample lag.
    a, b, c = ac[lag - 1], ac[lag], ac[lag + 1]
    shift = 0.5 * (a - c) / (a - 2 * b + c) if (a - 2 * b + c) != 0 else 0.0
    return MODEL_RATE / (lag + shift)


def pitches_hz(chunks: np.ndarray) -> list[float | None]:
    """``pitch_hz`` of each row of a [chunks, samples] array, in a few numpy calls for all of them: the
    per-call overhead is most of the cost of one 32 ms chunk."""
    x = chunks - chunks.mean(axis=1, keepdims=True)
    energy = np.einsum("ij,ij->i", x, x)
    n = x.shape[1]
    spec = np.fft.rfft(x, 2 * n, axis=1)
    ac = np.fft.irfft(spec.real ** 2 + spec.imag ** 2, axis=1)[:, : _LAG_MAX + 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        ac = ac / (energy[:, None] * _overlap(n))
    window = ac[:, _LAG_MIN:_LAG_MAX + 1]
    best = window.max(axis=1)
    mid = window[:, 1:-1]
    peaks = (mid >= window[:, :-2]) & (mid >= window[:, 2:]) & (mid >= 0.85 * best[:, None])
    lag = np.where(peaks.any(axis=1), _LAG_MIN + 1 + peaks.argmax(axis=1), _LAG_MIN + window.argmax(axis=1))
    rows = np.arange(len(x))
    a, b, c = ac[rows, lag - 1], ac[rows, lag], ac[rows, lag + 1]
    curve = a - 2 * b + c
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = np.where(curve != 0, 0.5 * (a - c) / curve, 0.0)
    hz = MODEL_RATE / (lag + shift)
    return [None if e < 1e-4 or not bst >= 0.45 else float(f) for e, bst, f in zip(energy, best, hz)]


def semitones(hz: float, ref: float = 100.0) -> float:
    return 12.0 * np.log2(hz / ref)
