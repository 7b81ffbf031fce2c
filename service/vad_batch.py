"""The VAD of every live call in one model call a tick: speakers with audio waiting are decided together.

A session pushes a speaker's audio into its segmenter and marks the speaker due; ``wait`` seconds later one
Silero call (models.vad.speech_probs) decides the next chunk of every due speaker, and one set of numpy calls
works out their loudness and pitch (models.prosody), again while any has a whole chunk left; each speaker takes
its chunks on in order (service.speaker.SpeakerTrack.segments).
Frames arrive every 20 ms per call, so a 20 ms wait gathers most live speakers into each call: at 32 calls
about 40 chunks a call, at half the cost per chunk of one call each (tests/perf/vad_batch.py). A speaker's
decisions come up to ``wait`` later than their audio; nothing else about them changes.
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
        self.stats = VadStats()

    def due(self, track) -> None:
        """``track``'s segmenter has audio pushed and not yet analysed."""
        self._due[track] = None
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.wait, self.run)

    def run(self) -> None:
        self._timer = None
        tracks = [t for t in self._due if t.segmenter.waiting() is not None]
        self._due.clear()
        while tracks:
            chunks = np.stack([t.segmenter.waiting() for t in tracks])
            clocks = [t.segmenter.now for t in tracks]
            probs = speech_probs([t.segmenter.vad for t in tracks], chunks)
            loudness = loudnesses_db(chunks)
            # Pitch where the segmenter would work it out: on chunks that sound like speech.
            voiced = [i for i, (t, p) in enumerate(zip(tracks, probs)) if p >= t.segmenter.config.start_threshold]
            pitch: list = [None] * len(tracks)
            for i, hz in zip(voiced, pitches_hz(chunks[voiced]) if voiced else ()):
                pitch[i] = hz
            self.stats.calls += 1
            self.stats.chunks += len(tracks)
            for i, (track, clock) in enumerate(zip(tracks, clocks)):
                # Analysed meanwhile (a pause or the call's end flushed it): that chunk is done already.
                if track.segmenter.now != clock or track.segmenter.waiting() is None:
                    continue
                try:
                    track.segments(track.segmenter.advance(float(probs[i]), (float(loudness[i]), pitch[i])))
                except Exception:  # one call's fault stays with that call; the others' audio goes on
                    log.exception("analysing a chunk failed", extra={"call_id": track.call_id, "speaker": track.role})
            tracks = [t for t in tracks if t.segmenter.waiting() is not None]
