"""A softmax-regression head on sentence embeddings plus a few lexical cues, trained on the playbook's examples.

Nearest-example matching on MiniLM mostly hears the topic (a refund, a courier), not what the
agent does with it; a linear head learns which directions of the embedding separate the
classes, and a handful of cheap cues (a question mark, "you" with a negation, "policy",
"because") carry the intent that the embedding blurs. It is trained when the playbook loads
(half a second, deterministic: full-batch gradient descent from zeros), so a new example in the
playbook changes behaviour without code or a weights file.
"""

from __future__ import annotations

import re

import numpy as np

# Binary cues, each a regular expression on the sentence; their weight against the unit-length
# embedding is [meaning] cues. Chosen as intent markers the embedding blurs, not as rules for a class.
CUES = tuple(re.compile(c, re.I) for c in (
    r"\?\s*$",  # a question: clarify and speed_of_need ask, restate and arguing assert
    r"\b(?:you|your)\b",
    r"\b(?:not|never|no|didn'?t|don'?t|isn'?t|wasn'?t|can'?t|won'?t|nothing)\b",
    r"\b(?:sorry|apolog\w*|regret)\b",
    r"\bbut\b",
    r"\b(?:only|just)\b",
    r"\b(?:policy|rules?|allowed|terms|procedure)\b",
    r"\b(?:department|team|office|people|company|shop|store|bank|courier|warehouse|manufacturer|supplier)\b",
    r"\b(?:thanks?|appreciate|grateful)\b",
    r"\b(?:i'?ll|i will|i'?ve|i have|i'?m going to|let me)\b",
    r"\b(?:monday|tuesday|wednesday|thursday|friday|tomorrow|weekend|next week)\b",
    r"\b(?:because|due to|since|owing)\b",
    r"\b(?:you should|you'?d have|if you'?d|you must|you need(?:ed)? to|your fault|you didn'?t)\b",
    r"!",
    r"\b(?:so|right|okay)\b,?",
))
ITERATIONS = 500
STEP = 8.0


def cues(texts: list[str]) -> np.ndarray:
    return np.array([[1.0 if c.search(t) else 0.0 for c in CUES] for t in texts], np.float32).reshape(-1, len(CUES))


class Head:
    """Class probabilities for embedded sentences: ``probabilities(vectors, texts)``."""

    def __init__(self, vectors: np.ndarray, texts: list[str], labels: np.ndarray, n_classes: int,
                 cue_weight: float, regularization: float):
        self.cue_weight = cue_weight
        x = self._features(vectors, texts)
        n, dim = x.shape
        y = np.eye(n_classes, dtype=np.float32)[labels]
        # Classes weighted to count alike: "other" has several times the examples of a move.
        counts = np.maximum(np.bincount(labels, minlength=n_classes), 1)
        weight = (n / (n_classes * counts))[labels].astype(np.float32)[:, None] / n
        w = np.zeros((dim, n_classes), np.float32)
        b = np.zeros(n_classes, np.float32)
        decay = 1.0 / (regularization * n)
        for _ in range(ITERATIONS):
            g = (_softmax(x @ w + b) - y) * weight
            w -= STEP * (x.T @ g + decay * w)
            b -= STEP * g.sum(axis=0)
        self.w, self.b = w, b

    def _features(self, vectors: np.ndarray, texts: list[str]) -> np.ndarray:
        return np.hstack([vectors.astype(np.float32), self.cue_weight * cues(texts)])

    def probabilities(self, vectors: np.ndarray, texts: list[str]) -> np.ndarray:
        # One row at a time: a matrix-vector product each (see recognizer._cosines on the BLAS pool).
        x = self._features(vectors, texts)
        if not len(x):
            return np.zeros((0, len(self.b)), np.float32)
        return _softmax(np.stack([row @ self.w for row in x]) + self.b)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)
