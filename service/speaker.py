"""One speaker of a call, from their utterances to their transcript events, in the order spoken.

The session gives a speaker the segmenter's utterance events (``PartialDue``, ``PauseHeard``,
``SpeechResumed``, ``UtteranceEnded``); the speaker sends their audio to the shared transcriber
and publishes what comes back, each final followed by what the call's analysis makes of it:

- partials are thinned under load (service.admission) and never shown after a newer partial or
  after their utterance's final;
- a final starts early, at the pause that may end the utterance; if it does end there, the
  caller's words go to the floor as soon as they are in, before the final goes out;
- finals go out in the order spoken, each after the speaker's previous one, however the
  transcriber orders them; the floor hears of an utterance with nothing to transcribe only after
  the words spoken before it;
- redaction may hold a final that could be a card's first half until the speaker's next final,
  until they have said nothing for ``HOLD_QUIET`` seconds after it, or ``HOLD_SECONDS`` of their
  audio, and silences masked words in the recording.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from models.call_analysis import CallAnalysis
from models.redaction import Redactor, mask_words, masked_times
from models.resample import MODEL_RATE
from models.scheduler import FINAL, PARTIAL, Job
from models.utterances import PartialDue, PauseHeard, SpeechResumed, UtteranceEnded, UtteranceSegmenter, VoiceChunk
from service.audio_files import CallAudio
from service.metrics import FINAL_DELAY, FINALS_STARTED_EARLY
from service.session_deps import SessionDeps

log = logging.getLogger("calmline.session")

HOLD_SECONDS = 5.0  # a final that may be the first half of a card waits this much of its speaker's audio at most
# ...and goes out sooner once its speaker has been silent this long after it, no final of theirs in flight: a card
# read aloud goes on within a breath (its groups come 0.3-1 s apart), and the agent should not wait 5 s to read
# "my order is 4471 2209" because it might have been half a card.
HOLD_QUIET = 2.0


@dataclass(frozen=True)
class TranscriptPartial:
    EVENT: ClassVar[str] = "transcript.partial"
    t: float
    speaker: str
    text: str
    start: float
    end: float


@dataclass(frozen=True)
class TranscriptFinal:
    EVENT: ClassVar[str] = "transcript.final"
    t: float
    speaker: str
    text: str
    start: float
    end: float
    confidence: float
    words: list  # the aligned words in call time: word, start, end, confidence


async def finish(tracks: list[SpeakerTrack], timeout: float) -> None:
    """The call is ending: each speaker's utterance in progress closed, the finals still in the transcriber
    waited for (up to ``timeout`` in all), a held one let out; no partial or early words go out any more,
    and what the transcriber has not given back by then is given up."""
    for track in tracks:
        track.closing = True
        track.flush()
    pending = [task for track in tracks for task in track.tasks if not task.done()]
    if pending:
        await asyncio.wait(pending, timeout=timeout)
    for track in tracks:
        track.release_held()
        for task in track.tasks:
            task.cancel()


class SpeakerTrack:
    """One speaker: clock, segmenter, and their words out in order. ``publish`` takes a list of outputs
    (service.events.event_of turns each into an event)."""

    def __init__(self, role: str, deps: SessionDeps, call_id: str, audio: CallAudio | None,
                 analysis: CallAnalysis | None, publish: Callable[[list], None]):
        self.role = role
        self.deps = deps
        self.call_id = call_id
        self.audio = audio
        self.analysis = analysis
        self.publish = publish
        self.segmenter = UtteranceSegmenter(deps.segmenter)
        self.redactor = Redactor(deps.redact)
        self.closing = False  # the call is ending: only finals go out now
        self.tasks: set[asyncio.Task] = set()
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
        self.fault: Exception | None = None  # analysing this speaker's audio failed (service.vad_batch): none is any more

    def heard(self, t: float) -> float:
        """Audio time up to which this speaker's words are known: not past an utterance still open, or whose
        final is still being transcribed or held back by redaction, nor past the audio received."""
        open_start = self.segmenter.speech_start
        held = self.redactor.holding(self.role)  # (UtteranceEnded, result) of a final that may be a card's first half
        return min(t, self.segmenter.now, *self.transcribing.values(),
                   *(() if open_start is None else (open_start,)), *(() if held is None else (held[0].start,)))

    def arrived(self, now: float) -> None:
        """Audio up to the speaker's clock reached the server at ``now`` (monotonic); a held final whose
        next one did not come in time goes out alone."""
        self.arrivals.append((self.samples / MODEL_RATE, now))
        if self.hold_until and self.last_final.done() and (self.samples >= self.hold_until or self._quiet_after_held()):
            self.release_held()

    def _quiet_after_held(self) -> bool:
        """The speaker of the held final is not talking and has analysed audio ``HOLD_QUIET`` s past its end: no
        more of a card is coming in it (more speech would be an open utterance, or a final in flight)."""
        held = self.redactor.holding(self.role)
        return (held is not None and not self.segmenter.in_speech
                and self.segmenter.now - held[0].end >= HOLD_QUIET)

    def gap(self, seconds: float, budget: float) -> float:
        """Skips up to ``seconds`` of audio the platform never sent, not past ``budget`` on this speaker's
        clock: a sparse hole in the recording, the segmenter's clock moved on. Returns the seconds skipped."""
        n = int(max(0.0, min(seconds, budget - self.samples / MODEL_RATE)) * MODEL_RATE)
        if n <= 0:
            return 0.0
        self.samples += n
        self.audio.skip(self.role, n)
        self.segments(self.segmenter.gap(n))
        return n / MODEL_RATE

    def flush(self) -> None:
        """Closes the utterance in progress here (a pause, a language change, the end of the call)."""
        if self.fault is None:  # after a fault nothing more is analysed; the recording has the audio
            self.segments(self.segmenter.flush())

    def segments(self, items: list) -> None:
        """What the segmenter made of this speaker's audio: voice to the call's analysis, utterances on to
        the transcriber."""
        for item in items:
            if isinstance(item, VoiceChunk):
                if self.analysis is not None:
                    self.publish(self.analysis.voice(self.role, item))
            else:
                self.utterance(item)

    def release_held(self) -> None:
        self.hold_until = 0
        for ready, text, masked in self.redactor.release(self.role):
            self._publish_final(ready, text, masked)

    # -- utterance events, as the segmenter gives them ------------------------------

    def utterance(self, item) -> None:
        match item:
            case PartialDue():
                admission = self.deps.admission
                since = item.end - max(self.partial_asked, item.start)
                if admission is None or admission.partial_due(since, self.deps.segmenter.partial_interval):
                    self.partial_asked = item.end
                    self._spawn(self._partial(item))
            case PauseHeard():
                self.early = (item, self._job(item, FINAL, speculative=item.confirmed_in))
                if self.role == "caller":
                    # The floor decides on the words as soon as they are in, before the 0.5 s that end the utterance.
                    self.early[1].add_done_callback(
                        lambda f, item=item, previous=self.last_final: self._early_words(item, f, previous))
            case SpeechResumed():
                self._drop_early()
            case UtteranceEnded():
                self._ended(item)

    def _ended(self, item: UtteranceEnded) -> None:
        future = None
        if self.early is not None:
            heard, early = self.early
            if heard.utterance == item.utterance and len(heard.audio) == len(item.audio):
                future, self.early = early, None
                FINALS_STARTED_EARLY.inc()
                self.ended_early = future
                if self.role == "caller" and future.done():
                    self._early_words(heard, future, self.last_final)
            else:
                self._drop_early()
        if item.too_short:
            # Nothing to transcribe: the floor must not wait for words; told after the words spoken before it,
            # or, on a loaded machine, it would hear this before them.
            previous = self.last_final

            def tell(*_, end=item.end):
                self.publish(self.analysis.nothing_said(self.role, end, self.segmenter.now))

            if previous is None or previous.done():
                tell()
            else:
                previous.add_done_callback(tell)
            return
        self.finalized = item.utterance
        previous = self.last_final
        self.transcribing[item.utterance] = item.start
        self.last_final = self._spawn(self._final(item, previous, future))
        self.last_final.add_done_callback(lambda _, u=item.utterance: self.transcribing.pop(u, None))

    def _early_words(self, item: PauseHeard, future: asyncio.Future, previous: asyncio.Task | None = None) -> None:
        if future.cancelled() or future.exception() is not None or self.closing:
            return
        if self.ended_early is not future:
            # The utterance has not ended at this pause (yet): if the caller goes on, these words are a partial's,
            # and a pause the floor was never told about on an idle machine must not be one under load either.
            # Once it ends here, UtteranceEnded brings them back.
            return
        if previous is not None and not previous.done():
            # In the order spoken, after the previous final's reading: however late the words land, the floor
            # gets the same words with the same heat, so it makes the same decision.
            previous.add_done_callback(lambda _: self._early_words(item, future))
            return
        result = future.result()
        if result is not None and result.text:
            self.publish(self.analysis.early_words(self.role, result.text, item.start, item.end, self.segmenter.now))

    def _drop_early(self) -> None:
        """The speaker went on after the pause: the early final, if it already ran, is a fine partial."""
        if self.early is None:
            return
        heard, future = self.early
        self.early = None
        if not self.deps.scheduler.withdraw(future):
            self._spawn(self._show_partial(heard, future))

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def _job(self, item, kind: int, speculative: float = 0.0) -> asyncio.Future:
        return self.deps.scheduler.submit(Job(self.call_id, self.role, item.utterance, kind, item.audio,
                                              speculative=speculative))

    # -- transcripts out -------------------------------------------------------------

    async def _partial(self, item: PartialDue) -> None:
        await self._show_partial(item, self._job(item, PARTIAL))

    async def _show_partial(self, item: PartialDue | PauseHeard, future: asyncio.Future) -> None:
        try:
            result = await future
        except Exception:  # a failing model is logged by the finals; a partial just does not show
            return
        end = item.end if isinstance(item, PartialDue) else item.audio_end
        if (result is None or not result.text or self.finalized >= item.utterance or self.closing
                or end <= self.partial_end):
            return
        self.partial_end = end
        text = self.redactor.partial(self.role, result.text)
        self.publish([TranscriptPartial(end, self.role, text, round(item.start, 3), round(end, 3))])
        self.analysis.partial(self.role, text)

    async def _final(self, item: UtteranceEnded, previous: asyncio.Task | None,
                     future: asyncio.Future | None = None) -> None:
        future = future or self._job(item, FINAL)
        try:
            result = await future
        except Exception:
            log.exception("transcription failed", extra={"call_id": self.call_id, "speaker": self.role})
            result = None
        if previous is not None:
            await asyncio.wait([previous])  # finals of one speaker go out in the order spoken
        if result is None or not result.text:
            self.publish(self.analysis.nothing_said(self.role, item.end, self.segmenter.now))
            return
        # Redaction may hold this final (it could be a card's first half) or let a held one out with it.
        for ready, text, masked in self.redactor.final(self.role, (item, result), result.text):
            self._publish_final(ready, text, masked)
        self.hold_until = self.samples + int(HOLD_SECONDS * MODEL_RATE) if self.redactor.holding(self.role) else 0

    def _publish_final(self, ready: tuple, text: str, masked: list) -> None:
        """A final's text (already redacted) goes out, and what the analysis makes of it follows."""
        item, result = ready
        if masked:
            self._silence(item, result, masked)
        final = TranscriptFinal(item.end, self.role, text, round(item.start, 3), round(item.end, 3),
                                round(result.confidence, 3), self._public_words(item, result, masked))
        self.publish([final] + self.analysis.final(self.role, text, item.start, item.end, self.segmenter.now))
        arrived = next((wall for t, wall in self.arrivals if t >= item.end), None)
        if arrived is not None:
            FINAL_DELAY.observe(time.monotonic() - arrived)

    def _silence(self, item: UtteranceEnded, result, masked: list) -> None:
        """Silence the recording where masked words were said; over the whole utterance without word times."""
        spans = masked_times(result.text, getattr(result, "words", ()), masked)
        if spans is None:
            spans = [(0.0, len(item.audio) / MODEL_RATE)]
        for start, end in spans:
            self.audio.silence(self.role, item.start + start, item.start + end)

    @staticmethod
    def _public_words(item: UtteranceEnded, result, masked: list) -> list[dict]:
        """The final's aligned words in call time, each masked word saying its mask."""
        if masked and masked_times(result.text, result.words, masked) is None:
            return []  # the words do not spell the text, so which to mask is unknown: none go out
        pairs = mask_words(result.words, masked) if masked else [(w, w.text) for w in result.words]
        return [{"word": text.strip(), "start": round(item.start + w.start, 3), "end": round(item.start + w.end, 3),
                 "confidence": round(w.probability, 3)} for w, text in pairs]
