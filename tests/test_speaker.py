"""One speaker's words in the order spoken (service.speaker), with the real segmenter events, analysis and recording."""

import asyncio
from types import SimpleNamespace

import numpy as np

from models.coach import playbook
from models.scheduler import FINAL
from models.transcriber import Transcript
from models.utterances import PauseHeard, SegmenterConfig, UtteranceEnded
from service.audio_files import CallAudio
from service.call_actions import Start
from service.events import CallEvents
from service.session import CallSession
from service.session_deps import SessionDeps


class Transcriber:
    """Stands in for the scheduler: every job waits until the test answers it, in any order."""

    def __init__(self):
        self.jobs = []

    def submit(self, job):
        job.future = asyncio.get_running_loop().create_future()
        self.jobs.append(job)
        return job.future

    def withdraw(self, future):
        return False

    def answer(self, utterance, text):
        job = next(j for j in self.jobs if j.utterance == utterance and j.kind == FINAL and not j.future.done())
        job.future.set_result(Transcript(text, -0.1, 0.0))


def _session(tmp_path):
    events = []
    bus = SimpleNamespace(publish=lambda event, agent_id: events.append(event))
    transcriber = Transcriber()
    start = Start("c-1", "a-1", "native", "pcm16", 16000, 1, ("caller",))
    deps = SessionDeps(transcriber, None, SegmenterConfig(), playbook.load(None))
    session = CallSession(start, deps, CallAudio(tmp_path, ["caller"]), CallEvents("c-1", "a-1", bus))
    return session, transcriber, events


def _audio(start, end):
    return np.full(int((end - start) * 16000), 0.25, dtype=np.float32)


async def _run_callbacks():
    for _ in range(20):  # no wall-clock time: every ready callback and task step runs
        await asyncio.sleep(0)


async def test_finals_go_out_in_the_order_spoken_whatever_order_the_transcriber_answers(tmp_path):
    session, transcriber, events = _session(tmp_path)
    track = session.tracks["caller"]
    track.utterance(UtteranceEnded(1, 0.0, 1.2, _audio(0.0, 1.2)))
    track.utterance(UtteranceEnded(2, 1.8, 3.0, _audio(1.8, 3.0)))
    await _run_callbacks()  # both sent to the transcriber
    transcriber.answer(2, "and nobody called me back.")
    await _run_callbacks()
    assert not [e for e in events if e["type"] == "transcript.final"]  # the second waits for the first
    assert track.transcribing == {1: 0.0, 2: 1.8}  # neither is known yet: the coach's stall clock waits for them
    transcriber.answer(1, "My parcel never arrived")
    await _run_callbacks()
    said = [(e["type"], e.get("text")) for e in events if e["type"] in ("transcript.final", "sentiment")]
    assert said == [("transcript.final", "My parcel never arrived"), ("sentiment", None),
                    ("transcript.final", "and nobody called me back."), ("sentiment", None)]
    assert track.transcribing == {}
    session.audio.close()


async def test_words_heard_at_the_pause_reach_the_floor_before_the_final_goes_out(tmp_path):
    session, transcriber, events = _session(tmp_path)
    track = session.tracks["caller"]
    audio = _audio(0.5, 2.7)
    early = []
    analysis_early_words = session.analysis.early_words
    session.analysis.early_words = lambda *args: early.append(args) or analysis_early_words(*args)
    track.utterance(PauseHeard(1, 0.5, 2.5, audio, 2.7, confirmed_in=0.3))
    # Speculation until the silence confirms the end: it ranks among the finals from then (models.scheduler).
    assert [j.speculative for j in transcriber.jobs] == [0.3]
    transcriber.answer(1, "This is the third time I have called!")
    track.utterance(UtteranceEnded(1, 0.5, 2.5, audio))  # the pause did end it: the early final is its final
    assert len(transcriber.jobs) == 1  # transcribed once, at the pause
    assert [a[:4] for a in early] == [("caller", "This is the third time I have called!", 0.5, 2.5)]  # already
    assert not [e for e in events if e["type"] == "transcript.final"]
    await _run_callbacks()
    assert [e["text"] for e in events if e["type"] == "transcript.final"] == ["This is the third time I have called!"]
    session.audio.close()
