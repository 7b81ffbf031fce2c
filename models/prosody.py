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


def semitones(hz: float, ref: float = 100.0) -> float:
    return 12.0 * np.log2(hz / ref)
