"""One live call: audio in, utterances out to the shared transcriber, events out to the bus.

The session owns the call's clock (seconds of audio received), its recording, one
utterance segmenter per role, and the order of its transcript events.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from models.resample import MODEL_RATE
from models.scheduler import FINAL, PARTIAL, Job, TranscriptionScheduler
from models.coach.coach import Alert, Coach, Cue, StepDone, Warning
from models.coach.playbook import Playbook
from models.floor import FloorState, FloorTracker
from models.heat import HeatTracker
from models.redaction import Redactor, mask_words, masked_times
from models.utterances import (PartialDue, PauseHeard, SegmenterConfig, SpeechResumed, UtteranceEnded,
                               UtteranceSegmenter, VoiceChunk)
from service.admission import Admission
from service.audio_files import CallAudio, RecordingFailed
from service.events import CallEvents
from service.ingest.calls import Start
from service.metrics import FINAL_DELAY, FINALS_STARTED_EARLY
from service.recorder import Recorder

log = logging.getLogger("calmline.session")

FINAL_WAIT = 60.0  # at stop, how long pending finals may still take
HOLD_SECONDS = 5.0  # a final that may be the first half of a card waits this much of its speaker's audio at most
GAP_SLACK = 2.0  # seconds a speaker's clock may run ahead of wall-clock time through gaps (jitter, buffering)
# How often the recording's buffers go to the file: a kill -9 loses at most this much audio.
AUDIO_FLUSH_INTERVAL = 0.5


@dataclass
class SessionDeps:
    """What every session shares with the rest of the process."""

    scheduler: TranscriptionScheduler
    recorder: Recorder
    segmenter: SegmenterConfig
    playbook: Playbook
    redact: tuple[str, ...] = ("card",)  # kinds of personal data masked in every text (models.redaction)
    admission: Admission | None = None  # thins partials under load (service.admission); None: every one runs


class RoleTrack:
    """One speaker: segmenter, finals kept in utterance order, and the last final per utterance."""

    def __init__(self, role: str, config: SegmenterConfig):
        self.role = role
        self.segmenter = UtteranceSegmenter(config)
        self.last_final: asyncio.Task | None = None
        self.finalized = 0  # highest utterance whose final is submitted: its partials are stale
        self.partial_end = 0.0  # end of the newest partial shown: an older snapshot is never shown after it
        self.partial_asked = 0.0  # end of the newest partial sent to the transcriber (thinning counts from it)
        self.early: tuple[PauseHeard, asyncio.Future] | None = None  # a final started at the pause
        self.samples = 0  # 16 kHz samples received: this speaker's clock
        self.arrivals: deque[tuple[float, float]] = deque(maxlen=500)  # (audio time, monotonic arrival), last 10 s
        self.hold_until = 0  # while redaction holds a final of this speaker: the sample count that releases it
        self.transcribing: dict[int, float] = {}  # utterance -> start, for finals not yet out
        self.ended_early: asyncio.Future | None = None  # the early final of the last utterance that ended at its pause

    def heard(self, t: float) -> float:
        """Audio time up to which this speaker's words are transcribed: not past an utterance still open or
        whose final is still being transcribed, nor past the audio received."""
        open_start = self.segmenter.speech_start
        return min(t, self.segmenter.now, *self.transcribing.values(),
                   *(() if open_start is None else (open_start,)))


class CallSession:
    def __init__(self, start: Start, deps: SessionDeps, audio: CallAudio, events: CallEvents):
        self.start = start
        self.call_id = start.call_id
        self.agent_id = start.agent_id
        self.deps = deps
        self.audio = audio
        self.events = events
        self.tracks = {role: RoleTrack(role, deps.segmenter) for role in start.roles}
        self.floor = FloorTracker()
        self.heat = {role: HeatTracker(role) for role in start.roles}
        self.coach = Coach(deps.playbook, time.time())
        self.redactor = Redactor(deps.redact)
        self.paused = False
        self.connected = True
        self.detached_at = 0.0  # monotonic time the stream went away, while not connected
        self.ended = False
        self.end_status: str | None = None  # set as the call ends: ended, dropped, error, interrupted
        self.end_reason: str | None = None
        self.started_at = time.time()
        self.opened = time.monotonic()  # gaps cannot take the call's clock past real time since this
        self._tasks: set[asyncio.Task] = set()
        self._last_flush = time.monotonic()

    @property
    def audio_seconds(self) -> float:
        return max(t.samples for t in self.tracks.values()) / MODEL_RATE

    # -- session calls made by the ingest adapters --------------------------------

    def feed(self, frames: dict[str, np.ndarray]) -> None:
        """Raises ``RecordingFailed`` when the recording cannot be written (the call must end)."""
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
            for item in track.segmenter.feed(samples):
                self._on_segment(track, item)
            track.arrivals.append((track.samples / MODEL_RATE, now))
            if track.hold_until and track.samples >= track.hold_until and track.last_final.done():
                self._release_held(track)  # no next final came in time: the held one goes out alone
        if now - self._last_flush > AUDIO_FLUSH_INTERVAL:
            self.audio.flush()
            self._last_flush = now

    def flush_audio(self) -> None:
        """What the recording's buffers hold, to its files (a reader wants it, or the stream went away)."""
        try:
            self.audio.flush()
        except RecordingFailed:
            pass  # the driver ends the call at its next frame; readers get what reached the disk

    def gap(self, seconds: float, roles: tuple[str, ...] | None = None) -> float:
        """Skip ahead over audio the platform never sent; returns the seconds actually skipped.

        Nothing is allocated or analysed: the recording gets a sparse hole and the segmenter's clock
        moves on (an utterance open on both sides stays one). A client cannot claim more skipped audio
        than real time has passed since the call opened, plus a little slack.
        """
        budget = time.monotonic() - self.opened + GAP_SLACK
        skipped = 0.0
        for role in roles or tuple(self.tracks):
            track = self.tracks.get(role)
            if track is None:
                continue
            n = int(max(0.0, min(seconds, budget - track.samples / MODEL_RATE)) * MODEL_RATE)
            if n <= 0:
                continue
            track.samples += n
            self.audio.skip(role, n)
            track.segmenter.gap(n)
            skipped = max(skipped, n / MODEL_RATE)
        if skipped < seconds:
            log.info("gap capped by wall-clock time", extra={"call_id": self.call_id, "claimed_s": round(seconds, 3),
                                                              "skipped_s": round(skipped, 3)})
        return skipped

    def dtmf(self, digit: str) -> None:
        # Digits are often card numbers: acknowledged, never recorded.
        log.debug("dtmf received", extra={"call_id": self.call_id})

    def pause(self) -> None:
        if not self.paused:
            self.split()
            self.paused = True

    def split(self) -> None:
        """Close every open utterance here (a pause, a language change): speech after it starts a new one."""
        for track in self.tracks.values():
            for item in track.segmenter.flush():
                self._on_segment(track, item)

    def resume(self) -> None:
        self.paused = False

    async def finish(self) -> float:
        """Close open utterances and wait for their finals; returns the call's audio seconds."""
        for track in self.tracks.values():
            for item in track.segmenter.flush():
                self._on_segment(track, item)
        pending = [t for t in self._tasks if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=FINAL_WAIT)
        for track in self.tracks.values():
            self._release_held(track)
        self.flush_audio()
        return self.audio_seconds

    def close_audio(self) -> None:
        self.audio.close()
        for task in self._tasks:
            task.cancel()

    # -- from utterances to transcript events -------------------------------------

    def _on_segment(self, track: RoleTrack, item) -> None:
        if isinstance(item, VoiceChunk):
            self.heat[track.role].voice(item)
            self._emit_floor(self.floor.voice(track.role, item))
            # Where the agent's words are transcribed up to matters only while a stall is watched; this
            # runs for every 32 ms chunk of both speakers, so it is not worked out otherwise.
            heard = self._agent_heard(item.t) if self.coach.watching_stall else item.t
            self._emit_coach(self.coach.tick(item.t, heard))
        elif isinstance(item, PartialDue):
            admission = self.deps.admission
            since = item.end - max(track.partial_asked, item.start)
            if admission is None or admission.partial_due(since, self.deps.segmenter.partial_interval):
                track.partial_asked = item.end
                self._spawn(self._partial(track, item))
        elif isinstance(item, PauseHeard):
            track.early = (item, self._job(track, item, FINAL))
            if track.role == "caller":
                # The floor decides on the words as soon as they are in, before the 0.5 s that end the utterance.
                track.early[1].add_done_callback(
                    lambda f, item=item, previous=track.last_final: self._early_words(track, item, f, previous))
        elif isinstance(item, SpeechResumed):
            self._drop_early(track)
        elif isinstance(item, UtteranceEnded):
            future = None
            if track.early is not None:
                heard, early = track.early
                if heard.utterance == item.utterance and len(heard.audio) == len(item.audio):
                    future, track.early = early, None
                    FINALS_STARTED_EARLY.inc()
                    track.ended_early = future
                    if track.role == "caller" and future.done():
                        self._early_words(track, heard, future, track.last_final)
                else:
                    self._drop_early(track)
            if item.too_short:
                # Nothing to transcribe: the floor must not wait for words; told after the words spoken before it,
                # or, on a loaded machine, it would hear this before them.
                previous = track.last_final

                def tell(*_, end=item.end):
                    self._emit_floor(self.floor.words(track.role, "", end, track.segmenter.now))

                if previous is None or previous.done():
                    tell()
                else:
                    previous.add_done_callback(tell)
                return
            track.finalized = item.utterance
            previous = track.last_final
            track.transcribing[item.utterance] = item.start
            track.last_final = self._spawn(self._final(track, item, previous, future))
            track.last_final.add_done_callback(lambda _, u=item.utterance: track.transcribing.pop(u, None))

    def _early_words(self, track: RoleTrack, item: PauseHeard, future: asyncio.Future,
                     previous: asyncio.Task | None = None) -> None:
        if future.cancelled() or future.exception() is not None or self.ended:
            return
        if track.ended_early is not future:
            # The utterance has not ended at this pause (yet): if the caller goes on, these words are a partial's,
            # and a pause the floor was never told about on an idle machine must not be one under load either.
            # Once it ends here, UtteranceEnded brings them back.
            return
        if previous is not None and not previous.done():
            # In the order spoken, after the previous final's reading: however late the words land, the floor
            # gets the same words with the same heat, so it makes the same decision.
            previous.add_done_callback(lambda _: self._early_words(track, item, future))
            return
        result = future.result()
        if result is not None and result.text:
            # The reading the final will make, from a copy: the tracker itself reads each utterance once.
            reading = copy.deepcopy(self.heat[track.role]).utterance(result.text, item.start, item.end)
            self._emit_floor(self.floor.words(track.role, result.text, item.end, track.segmenter.now,
                                              reading.text_score, reading.heat, reading.trend == "rising"))

    def _agent_heard(self, t: float) -> float:
        """Up to where the coach knows what the agent said: a final redaction holds back is not known yet."""
        agent = self.tracks.get("agent")
        if agent is None:
            return t
        held = self.redactor.holding("agent")  # (UtteranceEnded, result) of a final that may be a card's first half
        return min(agent.heard(t), held[0].start if held else t)

    def _drop_early(self, track: RoleTrack) -> None:
        """The speaker went on after the pause: the early final, if it already ran, is a fine partial."""
        if track.early is None:
            return
        heard, future = track.early
        track.early = None
        if not self.deps.scheduler.withdraw(future):
            self._spawn(self._show_partial(track, heard, future))

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _job(self, track: RoleTrack, item, kind: int) -> asyncio.Future:
        return self.deps.scheduler.submit(Job(self.call_id, track.role, item.utterance, kind, item.audio))

    def _emit_floor(self, states: list[FloorState]) -> None:
        for st in states:
            self.events.emit("floor", st.t, state=st.state, venting=st.venting,
                             finished_venting=st.finished_venting, confidence=st.confidence)
            if not st.talked_past:  # a cue released now would push the agent to talk over the caller
                self._emit_coach(self.coach.floor(st))

    def _emit_coach(self, outputs: list) -> None:
        for out in outputs:
            if isinstance(out, Cue):
                self.events.emit("cue", out.t, move=out.move, say=out.say, why=out.why, hold=out.hold)
            elif isinstance(out, StepDone):
                self.events.emit("step.done", out.t, move=out.move, evidence=out.evidence)
            elif isinstance(out, Warning):
                self.events.emit("warning", out.t, kind=out.kind, quote=out.quote, advice=out.advice)
            elif isinstance(out, Alert):
                self.events.emit("alert", out.t, kind=out.kind, detail=out.detail)

    def summary(self) -> dict:
        caller = self.heat.get("caller")
        final_heat = caller.heat if caller is not None and caller.heat is not None else 0.0
        return self.coach.summary(final_heat)

    async def _partial(self, track: RoleTrack, item: PartialDue) -> None:
        await self._show_partial(track, item, self._job(track, item, PARTIAL))

    async def _show_partial(self, track: RoleTrack, item: PartialDue | PauseHeard, future: asyncio.Future) -> None:
        try:
            result = await future
        except Exception:  # a failing model is logged by the finals; a partial just does not show
            return
        end = item.end if isinstance(item, PartialDue) else item.audio_end
        if (result is None or not result.text or track.finalized >= item.utterance or self.ended
                or end <= track.partial_end):
            return
        track.partial_end = end
        text = self.redactor.partial(track.role, result.text)
        self.events.emit("transcript.partial", end, speaker=track.role, text=text,
                         start=round(item.start, 3), end=round(end, 3))
        if track.role == "agent":
            self.coach.agent_words(text)

    async def _final(self, track: RoleTrack, item: UtteranceEnded, previous: asyncio.Task | None,
                     future: asyncio.Future | None = None) -> None:
        future = future or self._job(track, item, FINAL)
        try:
            result = await future
        except Exception:
            log.exception("transcription failed", extra={"call_id": self.call_id, "speaker": track.role})
            result = None
        if previous is not None:
            await asyncio.wait([previous])  # finals of one speaker go out in the order spoken
        if result is None or not result.text:
            self._emit_floor(self.floor.words(track.role, "", item.end, self.tracks[track.role].segmenter.now))
            return
        # Redaction may hold this final (it could be a card's first half) or let a held one out with it.
        for ready, text, masked in self.redactor.final(track.role, (item, result), result.text):
            self._publish_final(track, ready, text, masked)
        track.hold_until = track.samples + int(HOLD_SECONDS * MODEL_RATE) if self.redactor.holding(track.role) else 0

    def _silence(self, role: str, item: UtteranceEnded, result, masked: list) -> None:
        """Silence the recording where masked words were said; over the whole utterance without word times."""
        spans = masked_times(result.text, getattr(result, "words", ()), masked)
        if spans is None:
            spans = [(0.0, len(item.audio) / MODEL_RATE)]
        for start, end in spans:
            self.audio.silence(role, item.start + start, item.start + end)

    def _release_held(self, track: RoleTrack) -> None:
        track.hold_until = 0
        for ready, text, masked in self.redactor.release(track.role):
            self._publish_final(track, ready, text, masked)

    @staticmethod
    def _public_words(item: UtteranceEnded, result, masked: list) -> list[dict]:
        """The final's aligned words in call time, each masked word saying its mask."""
        if masked and masked_times(result.text, result.words, masked) is None:
            return []  # the words do not spell the text, so which to mask is unknown: none go out
        pairs = mask_words(result.words, masked) if masked else [(w, w.text) for w in result.words]
        return [{"word": text.strip(), "start": round(item.start + w.start, 3), "end": round(item.start + w.end, 3),
                 "confidence": round(w.probability, 3)} for w, text in pairs]

    def _publish_final(self, track: RoleTrack, ready: tuple, text: str, masked: list) -> None:
        """A final's text (already redacted) goes out, and everything that reads it follows."""
        item, result = ready
        if masked:
            self._silence(track.role, item, result, masked)
        end = item.end
        self.events.emit("transcript.final", end, speaker=track.role, text=text,
                         start=round(item.start, 3), end=round(end, 3),
                         confidence=round(result.confidence, 3), words=self._public_words(item, result, masked))
        reading = self.heat[track.role].utterance(text, item.start, item.end)
        self.events.emit("sentiment", end, speaker=track.role, text_score=reading.text_score,
                         arousal=reading.arousal, heat=reading.heat, trend=reading.trend)
        now = self.tracks[track.role].segmenter.now
        if track.role == "caller":
            self.coach.caller_said(text)
        # Then the floor: a release or a venting turn decides what the coach shows.
        self._emit_floor(self.floor.final(track.role, text, item.end, reading.text_score, reading.heat,
                                          reading.trend == "rising", now))
        if track.role == "caller":
            self._emit_coach(self.coach.caller_heat(reading.heat, now) + self.coach.refresh(now))
        else:
            self._emit_coach(self.coach.agent_final(text, now))
        arrived = next((wall for t, wall in track.arrivals if t >= end), None)
        if arrived is not None:
            FINAL_DELAY.observe(time.monotonic() - arrived)
