"""The reply reader: which warnings an agent's reply shows when it is read whole.

The sentence readers (recognizer.py) read one sentence at a time against the playbook's examples, and
much of what makes a reply an anti-pattern is in how its sentences go together: "He logged in at 11:40 and
left at 12:25." is arguing as the whole answer to "your engineer never turned up", and "I'm sorry." after a
daft remark owns the slip. The reply reader is one logistic regression per warning kind on the tuned
encoder's vector of a reply's text, fitted on exchanges (a caller's words and the agent's whole reply, labelled
in that context by other hands: ``tests/data/coach_text/dev/exchanges*-fit.json``) by ``calmline train
replies`` (clients/tools/coach_replies.py) and committed as data, ``models/coach/replies.npz`` (a few kB, with
its card: what it was fitted on, and the adapter whose vectors it reads).

When the agent's reply is over (coach.Coach.reply_ended), a warning a sentence reader heard by meaning stands
only where the reply from its final on reads as that warning at ``reply_veto`` or more; with ``reply_confirm``
below 1, a whole reply that reads as a warning at that probability warns of it though no sentence did (the
playbook's ``[meaning]`` settings; recognizer.decide_reply).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from models.coach.embedder import EmbedderUnavailable

REPLIES = Path(__file__).with_name("replies.npz")
ITERATIONS = 800
STEP = 4.0


class RepliesUnavailable(EmbedderUnavailable):
    """The playbook asks for the reply reader and its file is missing, malformed or fitted on another adapter:
    the playbook is refused at load, as it is without its encoder."""


def fit(vectors: np.ndarray, labels: np.ndarray, regularization: float) -> tuple[np.ndarray, np.ndarray]:
    """One logistic regression per column of ``labels`` (0/1), yes and no weighted to count alike, an L2 penalty
    of 1 / ``regularization``; full-batch gradient descent from zeros, so the same data gives the same weights."""
    x = vectors.astype(np.float64)
    n, dim = x.shape
    y = labels.astype(np.float64)
    positives = np.maximum(y.sum(axis=0), 1.0)
    negatives = np.maximum(n - y.sum(axis=0), 1.0)
    weight = np.where(y > 0, 0.5 / positives, 0.5 / negatives)  # each kind's yes and no count half each
    w = np.zeros((dim, y.shape[1]))
    b = np.zeros(y.shape[1])
    decay = 1.0 / (regularization * n)
    for _ in range(ITERATIONS):
        g = (_sigmoid(x @ w + b) - y) * weight
        w -= STEP * (x.T @ g + decay * w)
        b -= STEP * g.sum(axis=0)
    return w.astype(np.float32), b.astype(np.float32)


class ReplyReader:
    """Each warning kind's probability in a reply's vector: ``probabilities(vector)``."""

    def __init__(self, path: Path | None = None):
        meta, w, b = read(path or REPLIES)
        self.meta = meta
        self.kinds: tuple[str, ...] = tuple(meta["kinds"])
        self.w, self.b = w, b

    def probabilities(self, vector: np.ndarray) -> dict[str, float]:
        p = _sigmoid(vector.astype(np.float32) @ self.w + self.b)
        return {k: float(x) for k, x in zip(self.kinds, p)}


def read(path: Path) -> tuple[dict, np.ndarray, np.ndarray]:
    """The reader's card and weights, refused with what is wrong when the file is not one training wrote."""
    if not path.is_file():
        raise RepliesUnavailable(f"the reply reader {path} is missing (calmline train replies writes it)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            meta = json.loads(str(npz["meta"]))
            w, b = npz["w"].astype(np.float32), npz["b"].astype(np.float32)
    except (OSError, ValueError, KeyError) as e:
        raise RepliesUnavailable(f"{path} is not a reply reader calmline train replies wrote: {e}") from None
    kinds = meta.get("kinds") if isinstance(meta, dict) else None
    if not isinstance(kinds, list) or w.ndim != 2 or w.shape[1] != len(kinds) or b.shape != (len(kinds),):
        raise RepliesUnavailable(f"{path} is not a reply reader calmline train replies wrote: its weights do not fit its kinds")
    return meta, w, b


def write(path: Path, meta: dict, w: np.ndarray, b: np.ndarray) -> None:
    """The reader as calmline train replies writes it: the card as JSON beside the weights, put in place whole."""
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, meta=np.array(json.dumps(meta, sort_keys=True)), w=w.astype(np.float32), b=b.astype(np.float32))
    tmp.replace(path)


def adapter_digest(path: Path) -> str:
    """The sha256 of an adapter file: the card names the one whose vectors the reader was fitted on."""
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))
