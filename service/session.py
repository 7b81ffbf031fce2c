"""One live call: audio in, through each speaker's segmenter and the shared transcriber (service.speaker),
into the call's analysis (models.call_analysis); events out to the bus. The session owns the call's clock,
its recording and its lifecycle: streaming, detached (waiting for a stream to take it up again), ended.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from models.call_analysis import CallAnalysis
from models.resample import MODEL_RATE
from service.audio_files import CallAudio, RecordingFailed
from service.call_actions import Start
from service.events import CallEvents
from service.session_deps import SessionDeps
from service.speaker import SpeakerTrack, finish

log = logging.getLogger("calmline.session")

FINAL_WAIT = 60.0  # at the end, how long pending finals may still take
GAP_SLACK = 2.0  # seconds a speaker's clock may run ahead of wall-clock time through gaps (jitter, buffering)
AUDIO_FLUSH_INTERVAL = 0.5  # how often the recording's buffers go to the file: a kill -9 loses at most this much


class AnalysisFailed(RuntimeError):
    """Analysing a speaker's audio failed in the VAD batch (service.vad_batch): the call's stream ends."""


class CallSession:
    def __init__(self, start: Start, deps: SessionDeps, audio: CallAudio, events: CallEvents):
        self.start, self.call_id, self.agent_id = start, start.call_id, start.agent_id
        self.deps, self.audio, self.events = deps, audio, events
        self.started_at = time.time()
        self.analysis = CallAnalysis(deps.playbook, self.started_at, start.roles, self._agent_heard)
        self.tracks = {role: SpeakerTrack(role, deps, self.call_id, audio, self.analysis, events.emit_all)
                       for role in start.roles}
        self.paused = False
        self.connected = True  # changed by detach and reattach only
        self.detached_at = 0.0  # monotonic time the stream went away, while not connected
        self.ended = False  # set once, by end
        self.end_status: str | None = None  # ended, dropped, error, interrupted
        self.end_reason: str | None = None
        self.opened = self._last_flush = time.monotonic()  # gaps cannot take the clock past real time since this

    @property
    def audio_seconds(self) -> float:
        return max(t.samples for t in self.tracks.values()) / MODEL_RATE

    def feed(self, frames: dict[str, np.ndarray]) -> None:
        """Raises ``RecordingFailed`` when the recording cannot be written (the call must end), ``AnalysisFailed``
        after the frame is recorded when analysing the call's audio failed in the VAD batch."""
        if self.ended:
            return  # ended by the server (a storage fault) while the stream still sends
        now = time.monotonic()
        for role, samples in frames.items():
            track = self.tracks[role]
            track.samples += len(samples)
            if self.paused:
                # The timeline keeps running so the recording stays in sync; nothing is heard.
                self.audio.append(role, np.zeros_like(samples))
                track.segmenter.skip(len(samples) / MODEL_RATE)
                continue
            self.audio.append(role, samples)
            if self.deps.vad is None:
                track.segments(track.segmenter.feed(samples))
            else:  # decided with every other call's next chunk (service.vad_batch)
                track.segmenter.push(samples)
                self.deps.vad.due(track)
            track.arrived(now)
        if now - self._last_flush > AUDIO_FLUSH_INTERVAL:
            self.audio.flush()
            self._last_flush = now
        self._check_analysis()  # after the frame is recorded: audio taken in is kept

    def gap(self, seconds: float, roles: tuple[str, ...] | None = None) -> float:
        """Skip ahead over audio the platform never sent; returns the seconds actually skipped. A client cannot
        claim more skipped audio than real time has passed since the call opened, plus a little slack."""
        self._check_analysis()
        budget = time.monotonic() - self.opened + GAP_SLACK
        skipped = max([0.0] + [self.tracks[r].gap(seconds, budget) for r in roles or self.tracks if r in self.tracks])
        if skipped < seconds:
            log.info("gap capped by wall-clock time", extra={"call_id": self.call_id, "claimed_s": round(seconds, 3),
                                                              "skipped_s": round(skipped, 3)})
        return skipped

    def dtmf(self, digit: str) -> None:
        log.debug("dtmf received", extra={"call_id": self.call_id})  # often card numbers: never recorded

    def pause(self) -> None:
        if not self.paused:
            self.split()
            self.paused = True

    def resume(self) -> None:
        self.paused = False

    def split(self) -> None:
        """Close every open utterance here (a pause, a language change): speech after it starts a new one."""
        for track in self.tracks.values():
            track.flush()

    def detach(self) -> bool:
        """The stream went away: the call waits for another. False when it was not streaming."""
        if self.ended or not self.connected:
            return False
        self.connected, self.detached_at = False, time.monotonic()
        self.flush_audio()
        return True

    def reattach(self, fill_gap: bool = False) -> None:
        """A new stream takes the call up; ``fill_gap``: the time it was away is silence in the recording."""
        self.connected = True
        if fill_gap:
            try:
                self.gap(time.monotonic() - self.detached_at)
            except RecordingFailed:
                pass  # kept in audio.failed: the call's next frame ends it as an error

    async def end(self, status: str, reason: str | None) -> dict | None:
        """Ends the call once: its last finals out, then ``call.ended`` with the summary (returned), the recording
        closed. None when it had already ended."""
        if self.ended:
            return None
        self.ended, self.end_status, self.end_reason = True, status, reason
        await finish(list(self.tracks.values()), FINAL_WAIT)
        try:  # before the summary, which counts what it finds
            self.events.emit_all(self.analysis.call_over(self.audio_seconds))
        except Exception:  # the call still ends, with what was already decided
            log.exception("reading the agent's last reply failed", extra={"call_id": self.call_id})
        self.flush_audio()
        summary = {"duration": round(self.audio_seconds, 3), "end_status": status, **self.analysis.summary()}
        # Delivered live even when it cannot be stored.
        self.events.emit("call.ended", self.audio_seconds, agent_id=self.agent_id, metadata=self.start.metadata,
                         summary=summary)
        self.audio.close()
        return summary

    def assign(self, agent_id: str) -> None:
        """The call is this agent's from now on, and so are its events."""
        self.agent_id = self.events.agent_id = agent_id

    def flush_audio(self) -> None:
        """What the recording's buffers hold, to its files (a reader wants it, or the stream went away)."""
        try:
            self.audio.flush()
        except RecordingFailed:
            pass  # the driver ends the call at its next frame; readers get what reached the disk

    def _check_analysis(self) -> None:
        """A fault in the batch's analysis of this call comes out here, at its next frame, as it did from
        analysing a frame in ``feed`` before the VAD was batched."""
        for track in self.tracks.values():
            if track.fault is not None:
                raise AnalysisFailed(f"analysing the {track.role}'s audio failed: {track.fault!r}") from track.fault

    def _agent_heard(self, t: float) -> float:
        agent = self.tracks.get("agent")
        return t if agent is None else agent.heard(t)
