"""Fits the coach's reply reader (models/coach/replies.py) on the exchanges and writes ``models/coach/replies.npz``.

``calmline train replies`` runs it (``calmline train coach`` too, after the adapter it reads through). The data:
every exchange of the fitting sets (``tests/data/coach_text/dev/exchanges*-fit.json``: eight hands' caller lines
and the agent's whole reply, labelled with warnings in that context); the held exchanges and the validation calls
are never read here. Each reply is embedded by the tuned encoder as the server embeds it, and one logistic
regression per warning kind is fitted on those vectors (models.coach.replies.fit: deterministic, seconds, no
torch). Its settings were chosen by leaving each fitting hand out in turn (README, The coach).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from clients.tools.data import data_dir
from models.coach.embedder import ADAPTER
from models.coach.playbook import load
from models.coach.replies import REPLIES, adapter_digest

REGULARIZATION = 3.0  # inverse weight decay of each kind's regression


def exchanges() -> list[dict]:
    """The fitting exchanges, every hand's."""
    return [x for path in sorted((data_dir() / "coach_text" / "dev").glob("exchanges*-fit.json"))
            for x in json.loads(path.read_text())["exchanges"]]


def kinds() -> list[str]:
    """The warning kinds a reply's words can show: the playbook's, less interrupting (timing, not words)."""
    return [k for k in load(embed=False).warnings if k != "interrupting"]


def digest(data: list[dict], adapter: Path) -> dict:
    """What the reader was fitted on: the replies and their warnings, and the adapter whose vectors it read."""
    text = "\n".join(f"{x['agent']}\t{','.join(sorted(x.get('warnings') or []))}" for x in data)
    return {"data_sha256": hashlib.sha256(text.encode()).hexdigest(), "adapter_sha256": adapter_digest(adapter)}


def current() -> bool:
    """The committed reader was fitted on the exchanges as they are now, through the adapter as it is now."""
    from models.coach import replies

    if not (REPLIES.is_file() and ADAPTER.is_file()):
        return False
    meta = replies.read(REPLIES)[0]
    return meta.get("kinds") == kinds() and all(meta.get(k) == v for k, v in digest(exchanges(), ADAPTER).items())


def train(adapter: Path = ADAPTER, out: Path = REPLIES) -> dict:
    """Fits the reader on the fitting exchanges read through ``adapter`` and writes it to ``out``; returns its card."""
    import numpy as np

    from models.coach import replies
    from models.coach.embedder import Embedder

    data = exchanges()
    names = kinds()
    print(f"reply reader: {len(data)} exchanges, embedding the replies", flush=True)
    vectors = Embedder(encoder="tuned", path=adapter).embed_many([x["agent"] for x in data])
    labels = np.array([[k in (x.get("warnings") or []) for k in names] for x in data], np.float32)
    w, b = replies.fit(vectors, labels, REGULARIZATION)
    meta = {"kinds": names, "regularization": REGULARIZATION, "iterations": replies.ITERATIONS, "replies": len(data),
            "warned": {k: int(labels[:, i].sum()) for i, k in enumerate(names)}, **digest(data, adapter)}
    replies.write(out, meta, w, b)
    print(f"wrote {out} ({out.stat().st_size / 1e3:.0f} kB)")
    return meta
