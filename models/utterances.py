"""Cuts one speaker's 16 kHz stream into utterances, with partial snapshots while they speak.

Input: float32 samples in arbitrary frame sizes. Output: plain dataclasses, in order:
``SpeechStarted``, ``PartialDue`` (about every ``partial_interval`` seconds of speech),
``PauseHeard`` (once ``post_roll`` seconds of silence make the utterance's audio
complete, should it end there; followed by ``SpeechResumed`` if it does not),
``UtteranceEnded`` (after ``end_silence`` seconds without speech). Times are seconds of
this speaker's audio since the call started.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.prosody import loudness_db, pitch_hz
from models.resample import MODEL_RATE
from models.vad import CHUNK, SileroStream


@dataclass(frozen=True)
class SegmenterConfig:
    start_threshold: float = 0.5
    end_threshold: float = 0.35
    end_silence: float = 0.5  # seconds of non-speech that end an utterance
    min_speech: float = 0.2  # shorter bursts (clicks, coughs) are dropped
    pre_roll: float = 0.5  # audio kept before the detected start: Silero is often late on a fast first word
    post_roll: float = 0.2
    partial_interval: float = 1.0
    long_utterance: float = 12.0  # past this, an utterance ends at the next breath (post_roll of silence)
    max_utterance: float = 18.0  # and is cut here at the latest: it still fits one packed 20 s window


@dataclass(frozen=True)
class VoiceChunk:
    """One VAD decision with the chunk's voice features: for consumers that follow the floor and the voice."""

    t: float  # end of the chunk, seconds of this speaker's audio
    prob: float
    loudness: float  # dB full scale
    pitch: float | None  # Hz, on chunks that sound voiced


@dataclass(frozen=True)
class SpeechStarted:
    utterance: int
    start: float


@dataclass(frozen=True)
class PartialDue:
    utterance: int
    start: float
    end: float
    audio: np.ndarray


@dataclass(frozen=True)
class PauseHeard:
    """The audio an ``UtteranceEnded`` will carry if no speech comes back: transcribe it early."""

    utterance: int
    start: float
    end: float
    audio: np.ndarray
    audio_end: float  # where the audio stops: post_roll after the speech
    confirmed_in: float  # seconds of silence still to come before the utterance has ended here


@dataclass(frozen=True)
class SpeechResumed:
    """The pause after a ``PauseHeard`` was only a pause."""

    utterance: int


@dataclass(frozen=True)
class UtteranceEnded:
    utterance: int
    start: float
    end: float
    audio: np.ndarray
    too_short: bool = False  # a click or cough: nothing to transcribe


class UtteranceSegmenter:
    def __init__(self, config: SegmenterConfig | None = None, vad: SileroStream | None = None):
        self.config = config or SegmenterConfig()
        self.vad = vad or SileroStream()  # this speaker's VAD state: its own calls, or a batch's (service.vad_batch)
        self._pending = np.zeros(0, dtype=np.float32)
        self._samples = 0  # samples consumed by the VAD so far
        self._history: list[np.ndarray] = []  # recent chunks, for pre-roll
        self._speech: list[np.ndarray] | None = None
        self._start = 0.0
        self._speech_end = 0.0
        self._silence = 0.0
        self._voiced = 0.0
        self._last_partial = 0.0
        self._pause_heard = False
        self._utterance = 0
        self._held = 0.0  # seconds of gap inside the open utterance: time that has no audio

    @property
    def now(self) -> float:
        return self._samples / MODEL_RATE

    @property
    def in_speech(self) -> bool:
        return self._speech is not None

    @property
    def speech_start(self) -> float | None:
        """Where the utterance still open began (its pre-roll included); None between utterances."""
        return self._start if self._speech is not None else None

    def feed(self, samples: np.ndarray) -> list:
        """Consume samples, each chunk through this stream's own VAD call; returns the VoiceChunks and utterance
        events they caused."""
        self.push(samples)
        return self._catch_up()

    def push(self, samples: np.ndarray) -> None:
        """Take samples without analysing them yet: ``waiting`` and ``advance`` do, a chunk at a time, so one
        model call can decide a chunk of many streams (service.vad_batch)."""
        self._pending = np.concatenate([self._pending, samples.astype(np.float32, copy=False)])

    def waiting(self) -> np.ndarray | None:
        """The next whole chunk not yet analysed, or None."""
        return self._pending[:CHUNK] if len(self._pending) >= CHUNK else None

    def advance(self, prob: float, voice: tuple[float, float | None] | None = None) -> list:
        """That chunk, with its speech probability (from this stream's ``vad``) and, when worked out with other
        chunks', its (loudness, pitch), the pitch only where ``prob`` is at ``start_threshold``: what it caused."""
        if len(self._pending) < CHUNK:
            raise ValueError("no whole chunk is waiting")
        out: list = []
        chunk = self._pending[:CHUNK]
        self._pending = self._pending[CHUNK:]
        self._step(chunk, prob, out, voice)
        return out

    def _catch_up(self) -> list:
        """Every whole chunk pushed, through this stream's own VAD calls."""
        out: list = []
        while (chunk := self.waiting()) is not None:
            out += self.advance(self.vad(chunk))
        return out

    def flush(self) -> list:
        """End of stream (or pause): what was pushed analysed, then any open utterance closed now."""
        out = self._catch_up()
        if self._speech is not None:
            self._close(out, min(self.now, self._speech_end + self.config.post_roll))
        self._samples += len(self._pending)  # unheard, but time all the same: the clock stays with the recording
        self._pending = np.zeros(0, dtype=np.float32)
        return out

    def skip(self, seconds: float) -> list:
        """Time passes with no audio to analyse (the call is paused)."""
        out = self.flush()
        self._samples += int(seconds * MODEL_RATE)
        self._history.clear()
        return out

    def gap(self, samples: int) -> list:
        """Audio that never came (a network or platform gap): the clock moves on without analysing anything.

        An utterance in progress stays open across it, so speech on both sides is one utterance; no
        silence is counted and nothing is allocated for the skipped time. Returns what the audio before it,
        not yet analysed, caused.
        """
        out = self._catch_up()
        self._samples += samples
        if self._speech is None:
            self._history.clear()  # pre-roll does not reach back over a gap
        else:
            self._held += samples / MODEL_RATE
        return out

    def _step(self, chunk: np.ndarray, prob: float, out: list, voice: tuple[float, float | None] | None = None) -> None:
        cfg = self.config
        t0 = self.now
        self._samples += CHUNK
        dt = CHUNK / MODEL_RATE
        if voice is None:
            voice = loudness_db(chunk), (pitch_hz(chunk) if prob >= cfg.start_threshold else None)
        out.append(VoiceChunk(self.now, prob, *voice))
        if self._speech is None:
            self._history.append(chunk)
            keep = int(cfg.pre_roll * MODEL_RATE / CHUNK) + 1
            del self._history[:-keep]
            if prob >= cfg.start_threshold:
                self._speech = list(self._history)
                self._history = []
                self._start = max(0.0, t0 - (len(self._speech) - 1) * dt)
                self._voiced = dt
                self._silence = 0.0
                self._speech_end = self.now
                self._last_partial = self.now
                self._utterance += 1
                self._held = 0.0
                out.append(SpeechStarted(self._utterance, round(self._start, 3)))
            return
        self._speech.append(chunk)
        if prob >= cfg.end_threshold:
            self._silence = 0.0
            self._voiced += dt
            self._speech_end = self.now
            if self._pause_heard:
                self._pause_heard = False
                out.append(SpeechResumed(self._utterance))
        else:
            self._silence += dt
        if (not self._pause_heard and cfg.post_roll <= self._silence < cfg.end_silence
                and self._voiced >= cfg.min_speech):
            if self.now - self._start - self._held >= cfg.long_utterance:
                # A monologue's final comes at its next breath, not only when it is over.
                self._close(out, self._speech_end + cfg.post_roll)
                return
            # The final's audio stops post_roll after the speech: it is all here, so the transcriber
            # can start now and the final is ready about when the silence confirms the end.
            self._pause_heard = True
            end = self._speech_end + cfg.post_roll
            out.append(PauseHeard(self._utterance, round(self._start, 3), round(self._speech_end, 3),
                                  self._audio_until(end), round(end, 3), round(cfg.end_silence - self._silence, 3)))
        if self._silence >= cfg.end_silence:
            self._close(out, min(self.now, self._speech_end + cfg.post_roll))
        elif self.now - self._start - self._held >= cfg.max_utterance:
            self._close(out, self.now)
        elif self._silence == 0.0 and self.now - self._last_partial >= cfg.partial_interval and self._voiced >= cfg.min_speech:
            self._last_partial = self.now
            out.append(PartialDue(self._utterance, round(self._start, 3), round(self.now, 3), np.concatenate(self._speech)))

    def _audio_until(self, end: float) -> np.ndarray:
        return np.concatenate(self._speech)[: max(0, int((end - self._start - self._held) * MODEL_RATE))]

    def _close(self, out: list, end: float) -> None:
        audio = self._audio_until(end)
        too_short = self._voiced < self.config.min_speech
        self._speech = None
        self._pause_heard = False
        self._history = []
        out.append(UtteranceEnded(self._utterance, round(self._start, 3), round(self._speech_end, 3), audio, too_short))
