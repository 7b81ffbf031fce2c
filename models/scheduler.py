"""The one transcription queue every call submits to.

Policies: finals go before partials (a final is what the coach and the record
need), in the order their utterances ended, whatever call they come from; a newer
partial for the same speaker replaces a pending older one (only the latest snapshot
is worth showing), so partials thin out by themselves under load; partials run when
no final waits, oldest first, so none starves, in small windows so a final arriving
meanwhile is not held up long. Each run packs as many utterances as fit one Whisper
window (models.packing): the window costs the same whether it holds one or six. Work runs on worker threads so the event
loop keeps taking audio.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from models.packing import CAPACITY, plan
from models.resample import MODEL_RATE

FINAL, PARTIAL = 0, 1


@dataclass
class Job:
    call_id: str
    speaker: str
    utterance: int
    kind: int  # FINAL or PARTIAL
    audio: np.ndarray
    submitted: float = field(default_factory=time.monotonic)
    future: asyncio.Future | None = None


@dataclass
class SchedulerStats:
    jobs_done: int = 0
    partials_superseded: int = 0
    withdrawn: int = 0
    redecoded: int = 0
    audio_seconds: float = 0.0
    busy_seconds: float = 0.0
    windows: int = 0


class TranscriptionScheduler:
    def __init__(self, transcriber, workers: int = 1, capacity: float = CAPACITY, partial_capacity: float = 5.0):
        self._transcriber = transcriber
        self.capacity = capacity
        self.partial_capacity = partial_capacity
        self._finals: list[Job] = []  # in the order their utterances ended
        self._partials: dict[tuple[str, str], Job] = {}
        self._cv = threading.Condition()
        self._closed = False
        self._running = 0  # jobs taken by a worker whose futures are not yet resolved
        self.stats = SchedulerStats()
        self._threads = [threading.Thread(target=self._work, name=f"transcribe-{i}", daemon=True) for i in range(workers)]
        for t in self._threads:
            t.start()

    @property
    def depth(self) -> int:
        with self._cv:
            return len(self._finals) + len(self._partials)

    @property
    def final_lag(self) -> float:
        """Seconds the oldest queued final has waited for a worker (0 when none waits): how far behind we are."""
        with self._cv:
            return time.monotonic() - self._finals[0].submitted if self._finals else 0.0

    @property
    def idle(self) -> bool:
        """Nothing queued and nothing being transcribed: every job submitted so far has its result."""
        with self._cv:
            return not self._finals and not self._partials and not self._running

    def submit(self, job: Job) -> asyncio.Future:
        """Queue a job; the future resolves to a Transcript, or None when superseded or dropped."""
        loop = asyncio.get_running_loop()
        job.future = loop.create_future()
        key = (job.call_id, job.speaker)
        with self._cv:
            if job.kind == FINAL:
                self._finals.append(job)
                stale = self._partials.pop(key, None)
            else:
                stale = self._partials.get(key)
                self._partials[key] = job
            self._cv.notify()
        if stale is not None:
            self.stats.partials_superseded += 1
            _resolve(stale, None)
        return job.future

    def withdraw(self, future: asyncio.Future) -> bool:
        """Take back a queued job (an early final whose speaker went on); False once it has started."""
        with self._cv:
            for i, job in enumerate(self._finals):
                if job.future is future:
                    del self._finals[i]
                    break
            else:
                return False
        self.stats.withdrawn += 1
        _resolve(job, None)
        return True

    def close(self) -> None:
        with self._cv:
            self._closed = True
            pending = self._finals + list(self._partials.values())
            self._finals.clear()
            self._partials.clear()
            self._cv.notify_all()
        for job in pending:
            _resolve(job, None)

    def _next(self) -> list[Job] | None:
        """The jobs of the next window: pending finals, as many as fit; else a few partials, oldest first."""
        with self._cv:
            while not self._closed and not self._finals and not self._partials:
                self._cv.wait()
            if self._closed:
                return None
            if self._finals:
                # Finals only: every token a window decodes adds to the delay of every final in it.
                taken = self._finals[: plan([len(j.audio) / MODEL_RATE for j in self._finals], self.capacity)]
                del self._finals[: len(taken)]
                self._running += len(taken)
                return taken
            # A partial window stays small, so a final that arrives meanwhile waits little.
            partials = sorted(self._partials.values(), key=lambda j: j.submitted)
            taken = partials[: plan([len(j.audio) / MODEL_RATE for j in partials], self.partial_capacity)]
            for job in taken:
                del self._partials[(job.call_id, job.speaker)]
            self._running += len(taken)
            return taken

    def _work(self) -> None:
        while (jobs := self._next()) is not None:
            started = time.monotonic()
            try:
                # A window holds finals only or partials only; a partial shows text, its words would go unused.
                results: list = self._transcriber.transcribe_many([j.audio for j in jobs], words=jobs[0].kind == FINAL)
            except BaseException as exc:  # reported to the submitters, the worker lives on
                results = [exc] * len(jobs)
            with self._cv:  # workers finish side by side
                self.stats.busy_seconds += time.monotonic() - started
                self.stats.audio_seconds += sum(len(j.audio) for j in jobs) / MODEL_RATE
                self.stats.jobs_done += len(jobs)
                self.stats.windows += 1
                self.stats.redecoded += sum(1 for r in results if getattr(r, "redecoded", False))
            for job, result in zip(jobs, results):
                _resolve(job, result)
            with self._cv:
                self._running -= len(jobs)


def _resolve(job: Job, result) -> None:
    fut = job.future
    if fut is None:
        return

    def settle() -> None:
        if fut.done():
            return
        if isinstance(result, BaseException):
            fut.set_exception(result)
        else:
            fut.set_result(result)

    try:
        fut.get_loop().call_soon_threadsafe(settle)
    except RuntimeError:  # loop already closed at shutdown
        pass
