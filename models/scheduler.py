"""The one transcription queue every call submits to.

Policies: finals go before partials (a final is what the coach and the record
need), in the order their utterances are known to have ended (a final started at a pause, from when the
silence would confirm it), whatever call they come from, except that a caller's
final passes the agents' finals queued less than ``caller_lead`` seconds before it (the caller's
words are what the floor waits on to hand the agent the turn: in a burst of finals they come first;
an agent's final is passed only by callers' finals queued within that lead after it); a newer
partial for the same speaker replaces a pending older one (only the latest snapshot
is worth showing), so partials thin out by themselves under load; partials run when
no final waits or runs, oldest first, so none starves while there is time for them, in small
windows so a final arriving meanwhile is not held up long, and on one worker less than there
are (with two, one), so a final always finds a worker free of them. A partial running beside a
final would take half the cores from it: past the CPU's capacity the partials wait for the finals
instead, and thin out first. Each run packs as many utterances as fit one Whisper
window (models.packing): the window costs the same whether it holds one or six. With ``batch`` > 1 (a GPU)
a run takes up to that many windows, encoded and decoded together: a GPU does several windows in about the
time of one. Work runs on worker threads so the event loop keeps taking audio.
"""

from __future__ import annotations

import asyncio
import bisect
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from models.packing import CAPACITY, plan
from models.transcriber import lower_priority
from models.resample import MODEL_RATE

FINAL, PARTIAL = 0, 1
CALLER = "caller"
CALLER_LEAD = 2.0  # seconds: how far a caller's final may pass agents' finals queued before it


@dataclass
class Job:
    call_id: str
    speaker: str
    utterance: int
    kind: int  # FINAL or PARTIAL
    audio: np.ndarray
    submitted: float = field(default_factory=time.monotonic)
    # A final started at a pause that may not end its utterance: seconds until the silence would confirm it.
    speculative: float = 0.0
    future: asyncio.Future | None = None

    @property
    def due(self) -> float:
        """When its utterance is known to have ended: queued, or for a final started at a pause, confirmed."""
        return self.submitted + self.speculative


@dataclass
class SchedulerStats:
    jobs_done: int = 0
    partials_superseded: int = 0
    withdrawn: int = 0
    redecoded: int = 0
    audio_seconds: float = 0.0
    busy_seconds: float = 0.0
    windows: int = 0
    runs: int = 0  # model calls: a batch of windows is one


class TranscriptionScheduler:
    def __init__(self, transcriber, workers: int = 1, capacity: float = CAPACITY, partial_capacity: float = 5.0,
                 batch: int = 1, nice: int = 0, caller_lead: float = CALLER_LEAD):
        self._transcriber = transcriber
        self.caller_lead = caller_lead
        self.nice = nice
        self.batch = max(1, batch)  # windows per run
        self.capacity = capacity
        self.partial_capacity = partial_capacity
        self._finals: list[Job] = []  # by rank: in the order their utterances ended, callers' a little ahead
        self._partials: dict[tuple[str, str], Job] = {}
        self._cv = threading.Condition()
        self._closed = False
        self._running = 0  # jobs taken by a worker whose futures are not yet resolved
        # Partials never take every worker: one stays free for the next final, which then starts at once
        # instead of behind partial windows, and past the CPU's capacity the cores partials would have
        # taken go to the audio path (profile, 32 calls on 2 cores: partials took 40 % of the workers' time).
        self.partial_workers = max(1, workers - 1)
        self._partials_running = 0
        self._finals_running = 0  # runs of finals in progress: no partial starts beside one
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
        """Seconds the oldest queued final has waited for a worker since its utterance was known to have ended (0
        when none waits): how far behind we are. A final started at a pause counts from its confirmation: its
        wait until then is the speaker's silence, not the machine's."""
        with self._cv:
            return max(0.0, time.monotonic() - min(j.due for j in self._finals)) if self._finals else 0.0

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
                # After every job of the same rank or lower: equal ranks keep the order they came in.
                bisect.insort_right(self._finals, job, key=self._rank)
                stale = self._partials.pop(key, None)
            else:
                stale = self._partials.get(key)
                self._partials[key] = job
            self._cv.notify()
        if stale is not None:
            self.stats.partials_superseded += 1
            _resolve(stale, None)
        return job.future

    def _rank(self, job: Job) -> float:
        """The finals' order: when each utterance is known to have ended, a caller's less the lead. A final
        started at a pause ranks from when the silence would confirm its end, not from the pause: it takes a
        free worker at once, but on a busy machine finals already confirmed go first (at 32 calls on 2 cores,
        18 % of final windows were pauses the speaker talked through), and the longer it waits the likelier
        it is withdrawn before it runs."""
        return job.due - (self.caller_lead if job.speaker == CALLER else 0.0)

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

    def _next(self) -> tuple[list[list[Job]], bool] | None:
        """The windows of the next run: pending finals, as many as fit ``batch`` windows; else a few partials,
        oldest first. And whether the run is lean: a lone utterance in the smaller window packed ones take
        (models.packing), for partials, and for finals while other finals run or wait (alone on the machine a
        final is ready before the silence that ends its utterance is over, so a cheaper window would only cost
        accuracy). Always with ``batch`` > 1 (a GPU): windows of two sizes in one run would take two passes of
        the model instead of one."""
        with self._cv:
            while not self._closed and not self._finals and (
                    not self._partials or self._partials_running >= self.partial_workers or self._finals_running):
                self._cv.wait()
            if self._closed:
                return None
            windows: list[list[Job]] = []
            if self._finals:
                # Finals only: every token a window decodes adds to the delay of every final in it.
                while self._finals and len(windows) < self.batch:
                    taken = self._finals[: plan([len(j.audio) / MODEL_RATE for j in self._finals], self.capacity)]
                    del self._finals[: len(taken)]
                    windows.append(taken)
                self._finals_running += 1
            else:
                # A partial window stays small, so a final that arrives meanwhile waits little.
                partials = sorted(self._partials.values(), key=lambda j: j.submitted)
                while partials and len(windows) < self.batch:
                    taken = partials[: plan([len(j.audio) / MODEL_RATE for j in partials], self.partial_capacity)]
                    del partials[: len(taken)]
                    for job in taken:
                        del self._partials[(job.call_id, job.speaker)]
                    windows.append(taken)
                self._partials_running += 1
            # Finals on a busy machine (finals beside this run or behind it); partials always, their words are
            # replaced by their finals'.
            partial = windows[0][0].kind == PARTIAL
            lean = self.batch > 1 or partial or self._finals_running > 1 or bool(self._finals)
            self._running += sum(len(w) for w in windows)
            return windows, lean

    def _work(self) -> None:
        if self.nice:
            # Below the event loop: past the CPU's capacity a window waits, the audio of every call does not
            # (a starved loop falls behind on every call at once and misses its sockets' pings).
            lower_priority([threading.get_native_id()], self.nice)
            lower_priority(getattr(self._transcriber, "model_threads", ()), self.nice)
        while (taken := self._next()) is not None:
            windows, lean = taken
            jobs = [j for w in windows for j in w]
            started = time.monotonic()
            try:
                results = (self._final_window(windows, lean) if jobs[0].kind == FINAL
                           else self._partial_window(windows, lean))
            except BaseException as exc:  # reported to the submitters, the worker lives on
                results = [exc] * len(jobs)
            try:
                with self._cv:  # workers finish side by side
                    self.stats.busy_seconds += time.monotonic() - started
                    self.stats.audio_seconds += sum(len(j.audio) for j in jobs) / MODEL_RATE
                    self.stats.jobs_done += len(jobs)
                    self.stats.windows += len(windows)
                    self.stats.runs += 1
                    self.stats.redecoded += sum(1 for r in results if getattr(r, "redecoded", False))
                for job, result in zip(jobs, results):
                    _resolve(job, result)
            finally:
                # Whatever happened above: a run counted as running for good would hold every partial back.
                with self._cv:
                    self._running -= len(jobs)
                    if jobs[0].kind == PARTIAL:
                        self._partials_running -= 1
                    else:
                        self._finals_running -= 1
                    self._cv.notify_all()  # partials may wait for this worker, or for the finals to be done

    # Two frames of their own, so a profile tells the cost of finals from that of partials.
    def _final_window(self, windows: list[list[Job]], lean: bool) -> list:
        return self._transcribe(windows, words=True, lean=lean)

    def _partial_window(self, windows: list[list[Job]], lean: bool) -> list:
        # A window holds finals only or partials only; a partial shows text, its words would go unused.
        return self._transcribe(windows, words=False, lean=lean)

    def _transcribe(self, windows: list[list[Job]], words: bool, lean: bool) -> list:
        if len(windows) == 1:
            return self._transcriber.transcribe_many([j.audio for j in windows[0]], words=words, lean=lean)
        found = self._transcriber.transcribe_windows([[j.audio for j in w] for w in windows], words=words, lean=lean)
        return [r for rs in found for r in rs]


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
