"""The live calls of this process: open, resume within the grace period, end, and who owns each."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time

from models import redaction
from service.admission import Admission
from service.audio_files import AudioFiles, Recording
from service.bus import EventBus
from service.call_actions import ProtocolError, Start
from service.events import CallEvents
from service.health import Health
from service.session import CallSession
from service.session_deps import SessionDeps
from service.storage import LIVE, Store

log = logging.getLogger("calmline.calls")


class LiveCalls:
    def __init__(self, deps: SessionDeps, bus: EventBus, store: Store, audio_files: AudioFiles, resume_grace: float,
                 node_id: str = "", health: Health | None = None, admission: Admission | None = None):
        self.deps = deps
        self.admission = admission  # None: every new call is taken
        self.node_id = node_id
        self.health = health or Health()
        self.ended_by_fault = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ending: set[asyncio.Task] = set()
        deps.recorder.on_fault = self._recorder_fault
        self.bus = bus
        self.store = store
        self.audio_files = audio_files
        self.resume_grace = resume_grace
        self._sessions: dict[str, CallSession] = {}
        self._grace: dict[str, asyncio.Task] = {}
        self._opening: set[str] = set()  # new call_ids being checked against the store

    def get(self, call_id: str) -> CallSession | None:
        return self._sessions.get(call_id)

    def all(self) -> list[CallSession]:
        return list(self._sessions.values())

    async def open(self, start: Start) -> CallSession:
        self._loop = asyncio.get_running_loop()
        session = self._sessions.get(start.call_id)
        if session is not None and session.ended and (start.resume or start.continues):
            # Its end is being written (the resume grace ran out a moment ago): too late to take it up.
            raise ProtocolError("unknown_call", f"call {start.call_id} has ended; start a new call")
        if start.continues and session is not None and not session.connected and not session.ended:
            # The platform paused the stream and started a new one for the same call: the same call goes on.
            if not _same_call(session, start):
                raise ProtocolError("bad_start", "a continued call must keep its agent_id and roles")
            self._stop_grace(start.call_id)
            session.reattach(fill_gap=True)  # the pause is silence in the recording
            log.info("call continued by a new stream", extra={"call_id": start.call_id})
            return session
        if start.resume:
            if session is None:
                row = await asyncio.to_thread(self.store.get_call, start.call_id)
                if row is not None and row["status"] == LIVE and row["node_id"] not in (None, self.node_id):
                    # The load balancer sent the reconnect elsewhere; the call's state lives on its node.
                    raise ProtocolError("call_elsewhere", f"call {start.call_id} is held by node {row['node_id']}; "
                                                          f"resume it there")
                raise ProtocolError("unknown_call", f"no live call {start.call_id} to resume (ended, or never started)")
            if session.connected:
                raise ProtocolError("call_in_use", f"call {start.call_id} is still streaming on another connection")
            if not _same_call(session, start):
                raise ProtocolError("bad_start", "a resumed call must keep its agent_id and roles")
            self._stop_grace(start.call_id)
            session.reattach()
            log.info("call resumed", extra={"call_id": start.call_id})
            return session
        if session is not None or start.call_id in self._opening:
            raise ProtocolError("call_exists", f"call {start.call_id} is live; reconnect with resume: true")
        self._admit(start)
        # Held while the store is asked: a second start of the same new call_id meanwhile is call_exists.
        self._opening.add(start.call_id)
        try:
            stored = await asyncio.to_thread(self.store.get_call, start.call_id)
            if stored is None:
                # The platform's metadata goes out in call.started and into the stored row: masked like every
                # text. Off the loop: a long string in a 64 KB start takes the masking seconds.
                start = dataclasses.replace(start, metadata=await asyncio.to_thread(
                    redaction.mask_data, start.metadata, self.deps.redact))
        finally:
            self._opening.discard(start.call_id)
        if stored is not None and start.continues and stored["status"] != LIVE:
            # A stream of a call that has ended (a Twilio stop ends it unless CALMLINE_TWILIO_PAUSE is set).
            raise ProtocolError("call_exists", f"call {start.call_id} has ended ({stored['status']}); a new stream "
                                               f"cannot continue it")
        if stored is not None:
            raise ProtocolError("call_exists", f"call {start.call_id} already exists; use a new call_id")
        session = CallSession(start, self.deps, self.audio_files.open(start.call_id, list(start.roles)),
                              CallEvents(start.call_id, start.agent_id, self.bus))
        self._sessions[start.call_id] = session
        self.deps.recorder.create_call({
            "call_id": start.call_id, "agent_id": start.agent_id, "status": LIVE, "source": start.source,
            "started_at": session.started_at, "metadata": start.metadata, "audio_seconds": 0.0, "node_id": self.node_id,
            "media": {"encoding": start.encoding, "sample_rate": start.sample_rate, "roles": list(start.roles)},
        })
        session.events.emit("call.started", 0.0, agent_id=start.agent_id, metadata=start.metadata)
        log.info("call started", extra={"call_id": start.call_id, "source": start.source})
        return session

    def _stop_grace(self, call_id: str) -> None:
        grace = self._grace.pop(call_id, None)
        if grace is not None:
            grace.cancel()

    def _admit(self, start: Start) -> None:
        """A new call (never a resumed or continued one: nothing taken is dropped) is refused when this node
        is at its cap or behind; the stream is told why (``overloaded``, close 1013: try again later)."""
        if self.admission is None:
            return
        live = len(self._sessions) + len(self._opening)  # calls still being opened count: a burst cannot slip past
        refused = self.admission.refusal(live)
        if refused is None:
            return
        reason, message = refused
        log.warning("call refused", extra={"call_id": start.call_id, "source": start.source, "reason": reason,
                                           "live_calls": live, "transcription_lag_s": round(self.admission.final_lag, 3),
                                           "loop_lag_s": round(self.admission.loop_lag, 3)})
        raise ProtocolError("overloaded", message, 1013)

    def find(self, ref: str) -> CallSession | None:
        """A live call by its call id or, for AudioHook, its Genesys conversation id (any letter case)."""
        session = self._sessions.get(ref)
        if session is not None:
            return session
        ref = ref.lower()
        for session in self._sessions.values():
            genesys = session.start.metadata.get("audiohook")
            if session.call_id.lower() == ref or (isinstance(genesys, dict) and str(genesys.get("conversationId")).lower() == ref):
                return session
        return None

    async def assign(self, session: CallSession, agent_id: str) -> dict:
        """Give a live call to an agent: stored, announced with ``call.assigned``, and from then on on their panel.

        The event is published as the new agent's, so their socket sees it first among the call's
        events and catches up on the history before it (service.live)."""
        previous = session.agent_id
        session.assign(agent_id)
        self.deps.recorder.update_call(session.call_id, {"agent_id": agent_id})
        event = session.events.emit("call.assigned", session.audio_seconds, agent_id=agent_id, previous_agent_id=previous)
        await self.deps.recorder.flush()
        log.info("call assigned", extra={"call_id": session.call_id, "agent_id": agent_id})
        return event

    async def recording(self, call_id: str) -> Recording | None:
        """A call's recording to read; a live call's as far as it has been received (its buffers written first)."""
        session = self._sessions.get(call_id)
        if session is not None:
            session.flush_audio()
        return await asyncio.to_thread(self.audio_files.recording, call_id)

    def detach(self, session: CallSession, status: str = "dropped") -> None:
        """The stream is gone: wait for a resume, then end the call with ``status`` (a vanished stream: dropped)."""
        if not session.detach():
            return
        self._grace[session.call_id] = asyncio.get_running_loop().create_task(self._expire(session, status))
        log.info("call detached", extra={"call_id": session.call_id, "grace_s": self.resume_grace})

    async def _expire(self, session: CallSession, status: str) -> None:
        await asyncio.sleep(self.resume_grace)
        self._grace.pop(session.call_id, None)
        await self.end(session, status, "stream lost and not resumed" if status == "dropped" else None)

    def _recorder_fault(self, call_id: str, reason: str) -> None:
        """From the recorder thread: this call's rows cannot be stored."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.fault, call_id, reason)

    def fault(self, call_id: str, reason: str) -> None:
        """A storage fault of one call's rows: that call ends as ``error``, no other."""
        session = self._sessions.get(call_id)
        if session is not None and not session.ended:
            task = self._loop.create_task(self.end_by_fault(session, reason))
            self._ending.add(task)  # held until done: the loop keeps only weak references to tasks
            task.add_done_callback(self._ending.discard)

    async def end_by_fault(self, session: CallSession, reason: str) -> float:
        """Its recording or its rows cannot be stored: the call ends as ``error``, with its ``call.ended``."""
        if session.ended:
            return session.audio_seconds
        self.ended_by_fault += 1
        log.error("call ended by a storage fault", extra={"call_id": session.call_id, "reason": reason})
        return await self.end(session, "error", reason)

    async def end(self, session: CallSession, status: str = "ended", reason: str | None = None) -> float:
        if session.ended:
            return session.audio_seconds
        try:
            summary = await session.end(status, reason)  # its last finals, then call.ended; no second end
            audio_seconds = session.audio_seconds
            if session.audio.failed is not None:
                self.health.fault("disk", f"recording of {session.call_id} failed: {session.audio.failed}")
            self.deps.recorder.update_call(session.call_id, {
                "status": status, "end_reason": reason, "ended_at": time.time(),
                "audio_seconds": round(audio_seconds, 3), "summary": summary,
                "peak_heat": summary["peak_heat"], "warning_count": len(summary["warnings"])})
            if await asyncio.to_thread(self.audio_files.finalize, session.call_id) is None and session.audio.failed is None:
                self.health.fault("disk", f"recording of {session.call_id} not finalized")
            await self.deps.recorder.flush()
        finally:
            self._sessions.pop(session.call_id, None)
        log.info("call ended", extra={"call_id": session.call_id, "status": status})
        return audio_seconds

    async def shutdown(self) -> None:
        for task in self._grace.values():
            task.cancel()
        for session in self.all():
            try:
                await self.end(session, "interrupted", "server shut down")
            except Exception:  # one failing call must not leave the others live
                log.exception("call did not end cleanly at shutdown", extra={"call_id": session.call_id})


def _same_call(session: CallSession, start: Start) -> bool:
    """Whether a stream that takes up a detached call is that call's: its roles, and its agent, the one it started
    with or the one it was assigned since (a stream may also name none)."""
    return (start.agent_id in (None, session.agent_id, session.start.agent_id)
            and set(session.start.roles) == set(start.roles))
