"""What every call's session shares with the rest of the process: one plain dataclass."""

from __future__ import annotations

from dataclasses import dataclass

from models.coach.playbook import Playbook
from models.scheduler import TranscriptionScheduler
from models.utterances import SegmenterConfig
from service.admission import Admission
from service.recorder import Recorder
from service.vad_batch import VadBatch


@dataclass
class SessionDeps:
    """What every session shares with the rest of the process."""

    scheduler: TranscriptionScheduler
    recorder: Recorder
    segmenter: SegmenterConfig
    playbook: Playbook
    redact: tuple[str, ...] = ("card",)  # kinds of personal data masked in every text (models.redaction)
    admission: Admission | None = None  # thins partials under load (service.admission); None: every one runs
    vad: VadBatch | None = None  # every call's VAD in one model call a tick (service.vad_batch); None: per frame
