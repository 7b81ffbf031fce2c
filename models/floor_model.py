"""The end-of-vent model: logistic regression over floor_features, its weights kept as data.

``floor_model.json`` beside this file holds the feature names, the standardisation, the
weights, the release thresholds (for most words, for words that hand the floor over, for a question that asks
the agent outright) and the settle backstop; ``calmline train floor`` refits it (plain numpy, no
training library at run time).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from models.floor_features import NAMES

WEIGHTS = Path(__file__).with_name("floor_model.json")


@dataclass(frozen=True)
class FloorModel:
    weights: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    threshold: float
    handover_threshold: float | None = None  # where the last words hand the floor over (floor_features.hands_over)
    settle: float | None = None  # seconds of silence after complete words that end the turn whatever the probability
    ask_threshold: float | None = None  # where the last words ask the agent outright (floor_features.asks)

    def prob(self, x: list[float]) -> float:
        z = (np.asarray(x, dtype=np.float64) - self.mean) / self.scale
        return float(1.0 / (1.0 + np.exp(-float(z @ self.weights))))

    def to_json(self, **extra) -> dict:
        return {"features": list(NAMES), "mean": self.mean.round(6).tolist(), "scale": self.scale.round(6).tolist(),
                "weights": self.weights.round(6).tolist(), "threshold": round(self.threshold, 4),
                **({} if self.handover_threshold is None else {"handover_threshold": round(self.handover_threshold, 4)}),
                **({} if self.settle is None else {"settle": round(self.settle, 3)}),
                **({} if self.ask_threshold is None else {"ask_threshold": round(self.ask_threshold, 4)}),
                **extra}

    @classmethod
    def from_json(cls, doc: dict) -> "FloorModel":
        if doc.get("features") != list(NAMES):
            raise ValueError(f"{WEIGHTS.name}: its features differ from models.floor_features.NAMES; "
                             "run `calmline train floor`")
        return cls(np.array(doc["weights"]), np.array(doc["mean"]), np.array(doc["scale"]), float(doc["threshold"]),
                   doc.get("handover_threshold"), doc.get("settle"), doc.get("ask_threshold"))


@lru_cache(maxsize=4)
def load(path: str | None = None) -> FloorModel:
    return FloorModel.from_json(json.loads(Path(path or WEIGHTS).read_text()))


def fit(x: np.ndarray, y: np.ndarray, threshold: float = 0.5, l2: float = 1.0, weight: np.ndarray | None = None,
        iterations: int = 50, balanced: bool = False) -> FloorModel:
    """L2-regularised logistic regression by Newton's method on standardised features (the bias unpenalised);
    ``balanced`` weighs the two classes alike (on top of ``weight``)."""
    x = np.asarray(x, dtype=np.float64)
    mean, scale = x.mean(axis=0), x.std(axis=0)
    mean[0], scale[0] = 0.0, 1.0  # the bias column stays 1
    scale[scale < 1e-9] = 1.0
    z = (x - mean) / scale
    w = np.zeros(z.shape[1])
    sw = np.ones(len(y)) if weight is None else weight
    if balanced:
        share = min(max(float(np.mean(y)), 1e-3), 1 - 1e-3)
        sw = sw * np.where(np.asarray(y) > 0, 0.5 / share, 0.5 / (1 - share))
    penalty = np.full(z.shape[1], l2)
    penalty[0] = 0.0
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(z @ w)))
        grad = z.T @ (sw * (p - y)) + penalty * w
        hess = (z * (sw * p * (1 - p))[:, None]).T @ z + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-7:
            break
    return FloorModel(w, mean, scale, threshold)
