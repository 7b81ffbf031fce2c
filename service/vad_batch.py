"""The VAD of every live call in one model call a tick: speakers with audio waiting are decided together.

A session pushes a speaker's audio into its segmenter and marks the speaker due; ``wait`` seconds later one
Silero call (models.vad.speech_probs) decides the next chunk of every due speaker, and one set of numpy calls
works out their loudness and pitch (models.prosody), again while any has a whole chunk left; each speaker takes
its chunks on in order (service.speaker.SpeakerTrack.segments).
Frames arrive every 20 ms per call, so a 20 ms wait gathers most live speakers into each call: at 32 calls
about 36 chunks a call, at about half the cost per chunk of one call each (tests/perf/vad_batch.py). A speaker's
decisions come up to ``wait`` later than their audio; nothing else about them changes.

A fault is kept on the speaker (``SpeakerTrack.fault``) and raised by the call's next frame
(service.session.AnalysisFailed), as a fault in analysing a frame was before the batch: that call's stream
ends, the other calls' audio goes on.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import numpy as np

from models.prosody import loudnesses_db, pitches_hz
from models.vad import speech_probs

log = logging.getLogger("calmline.vad")

BATCH_WAIT = 0.02  # seconds: one 20 ms frame of every call


@dataclass
class VadStats:
    calls: int = 0  # model calls
    chunks: int = 0  # chunks decided: chunks / calls is the mean batch


class VadBatch:
    def __init__(self, wait: float = BATCH_WAIT):
        self.wait = wait
        self._due: dict = {}  # SpeakerTrack -> None: an ordered set
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.stats = VadStats()

    def due(self, track) -> None:
        """``track``'s segmenter has audio pushed and not yet analysed."""
        self._due[track] = None
        loop = asyncio.get_running_loop()
        if self._timer is None or self._loop is not loop:  # a timer of a loop that has closed never runs
            self._loop = loop
            self._timer = loop.call_later(self.wait, self.run)

    def run(self) -> None:
        self._timer = None
        tracks = self._ready(list(self._due))
        self._due.clear()
        while tracks:
            chunks = np.stack([t.segmenter.waiting() for t in tracks])
            try:
                probs = speech_probs([t.segmenter.vad for t in tracks], chunks)
                loudness = loudnesses_db(chunks)
                # Pitch where the segmenter would work it out: on chunks that sound like speech.
                voiced = [i for i, (t, p) in enumerate(zip(tracks, probs)) if p >= t.segmenter.config.start_threshold]
                pitch: list = [None] * len(tracks)
                for i, hz in zip(voiced, pitches_hz(chunks[voiced]) if voiced else ()):
                    pitch[i] = hz
            except Exception as exc:  # the model itself: every call in the batch is told at its next frame
                log.exception("the VAD failed", extra={"speakers": len(tracks)})
                for track in tracks:
                    track.fault = exc
                return
            self.stats.calls += 1
            self.stats.chunks += len(tracks)
            # Every speaker's chunk taken first, then what each caused handed on: whatever a speaker's outputs
            # do to another speaker (a flush), that one's chunk is already behind it, in order.
            outputs = [_guarded(track, track.segmenter.advance, float(probs[i]), (float(loudness[i]), pitch[i]))
                       for i, track in enumerate(tracks)]
            for track, items in zip(tracks, outputs):
                if track.fault is None:
                    _guarded(track, track.segments, items)
            tracks = self._ready(tracks)

    @staticmethod
    def _ready(tracks: list) -> list:
        return [t for t in tracks if t.fault is None and t.segmenter.waiting() is not None]


def _guarded(track, step, *args):
    """``step(*args)``; a fault is kept on the speaker (left out of every batch from then on) and logged."""
    try:
        return step(*args)
    except Exception as exc:
        track.fault = exc
        log.exception("analysing a speaker's audio failed", extra={"call_id": track.call_id, "speaker": track.role})
        return None
