"""The asyncio side of ingest: reads a websocket, feeds an adapter, carries out what it returns.

The same loop serves every protocol, through the contract of ``service.ingest.protocol.Adapter``:
``receive_text``/``receive_bytes`` answer with session calls and replies; ``started``/``ended``/
``rejected`` give its replies to the session's answers; ``flush`` hands over audio it still holds;
an adapter with ``forwards_events`` gets the call's events to pass back to the platform
(``on_event``); every message leaves through ``outgoing``; a ``resumable`` adapter's dropped call
waits for a resume, any other ends when its socket closes.

The connection's limits (``StreamLimits``) are kept here, where the clock and the socket are: a call
must start soon after the socket opens, a started stream that goes silent (no message at all) counts as
lost, a call ends at its maximum length, and audio is read no faster than real time past a lead.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from starlette.websockets import WebSocket, WebSocketDisconnect

from service.audio_files import RecordingFailed
from service.session import AnalysisFailed
from service.call_actions import Audio, Dtmf, Gap, Pause, ProtocolError, Resume, Split, Start, Stop, Suspend
from service.ingest.protocol import Adapter, Close, Send, close_reason
from service.live_calls import LiveCalls

log = logging.getLogger("calmline.ingest")


SESSION_CALLS = (Audio, Gap, Dtmf, Pause, Resume)


class _Closed(Exception):
    """The adapter asked to close the connection; nothing more is read."""


@dataclass(frozen=True)
class StreamLimits:
    """Seconds; 0 for none (service.config has each one's meaning)."""
    first_message: float = 0.0  # from the socket's accept until a call is started on it
    idle: float = 0.0  # a started stream sending nothing at all
    max_call: float = 0.0  # audio seconds of one call
    lead: float = 0.0  # audio a stream may run ahead of the wall clock since it (re)attached

    @classmethod
    def of(cls, settings) -> StreamLimits:
        return cls(settings.first_message_timeout, settings.idle_timeout, settings.max_call_seconds,
                   settings.stream_lead)


class IngestConnection:
    def __init__(self, ws: WebSocket, adapter: Adapter, calls: LiveCalls, limits: StreamLimits = StreamLimits()):
        self.ws = ws
        self.adapter = adapter
        self.calls = calls
        self.limits = limits
        self.session = None
        self._started_any = False
        self._clock0 = 0.0  # monotonic time at which the attached stream's audio would have started, at real time
        self._lost: str | None = None  # why the server gave up on the stream (a deadline)
        self._opened = time.monotonic()
        self._waiting_since: float | None = None  # set only while waiting for the peer's next message
        self._forwarder: asyncio.Task | None = None
        self._forwarded = None  # the forwarder's subscription
        self._send_lock = asyncio.Lock()
        self._close_code: int | None = None

    async def run(self) -> None:
        task = asyncio.current_task()
        watchdog = asyncio.create_task(self._watch(task)) if self.limits.first_message or self.limits.idle else None
        try:
            while True:
                # Two attribute writes a message; the watchdog reads them now and then. A timer moved on every
                # message (asyncio.timeout) cost 3.7 us a message, 50 a second per call.
                self._waiting_since = time.monotonic()
                message = await self.ws.receive()
                self._waiting_since = None
                if not await self._handle(message):
                    return
        except asyncio.CancelledError:
            if self._lost is None:
                raise  # not the watchdog's: the server is stopping
            task.uncancel()
            await self._give_up()
        except _Closed:
            pass
        except WebSocketDisconnect as exc:
            self._close_code = exc.code
        except Exception:
            log.exception("ingest connection failed", extra={"protocol": type(self.adapter).__name__})
            await self._close(1011, "internal error")
        finally:
            if watchdog is not None:
                watchdog.cancel()
            if self._forwarder is not None:
                self._forwarder.cancel()
            if self.session is not None and not self.session.ended:
                self._drain()
                if self.session.audio.failed is not None:
                    await self.calls.end_by_fault(self.session, f"recording failed: {self.session.audio.failed}")
                elif self.adapter.resumable:
                    self.calls.detach(self.session)
                else:
                    # Platforms that cannot resume end a call by closing the socket; an abnormal close is a drop.
                    clean = self._close_code in (1000, 1001, 1005) and self._lost is None
                    await self.calls.end(self.session, "ended" if clean else "dropped",
                                         None if clean else self._lost or f"stream lost (close code {self._close_code})")

    def _deadline(self) -> float | None:
        """When the connection is past its limit: no call started by ``first_message`` after opening, or
        nothing received for ``idle`` once one has; None for no limit."""
        if not self._started_any:
            return self._opened + self.limits.first_message if self.limits.first_message > 0 else None
        if self.limits.idle > 0:
            return (self._waiting_since or time.monotonic()) + self.limits.idle
        return None

    async def _watch(self, task: asyncio.Task) -> None:
        """Cancels the connection's wait for the peer once a deadline has passed; never its work on a message
        (a call's end must not be cut in half), so it acts only while ``run`` waits in ``receive``."""
        while True:
            deadline = self._deadline()
            if deadline is None:
                return
            now = time.monotonic()
            if now >= deadline and self._waiting_since is not None:
                self._lost = (f"no call started within {self.limits.first_message:g} s of connecting"
                              if not self._started_any else f"stream sent nothing for {self.limits.idle:g} s")
                task.cancel()
                return
            # Wakes about once per deadline, not per message: the deadline moves on while it sleeps.
            await asyncio.sleep(max(deadline - now, 0.05))

    async def _give_up(self) -> None:
        """A deadline passed: no call started in time, or a started stream fell silent (a peer gone without
        closing, or one holding a socket open): closed, and its call treated as a lost stream."""
        if not self._started_any:
            log.info("ingest connection closed: no start", extra={"protocol": type(self.adapter).__name__})
            try:
                await self._apply(self.adapter.rejected("no_start", self._lost, 1008))
            except _Closed:
                pass
            return
        log.info("ingest stream idle", extra={"protocol": type(self.adapter).__name__,
                                               "call_id": getattr(self.session, "call_id", None)})
        await self._close(1001, self._lost)

    async def _handle(self, message: dict) -> bool:
        """One websocket message: False once the peer has gone."""
        if message["type"] == "websocket.disconnect":
            self._close_code = message.get("code")
            return False
        if message.get("bytes") is not None:
            actions = self.adapter.receive_bytes(message["bytes"])
        else:
            actions = self.adapter.receive_text(message.get("text") or "")
        await self._apply(actions)
        if self.session is not None and 0 < self.limits.max_call <= self.session.audio_seconds:
            await self._too_long()
        return True

    async def _apply(self, actions: list) -> None:
        for action in actions:
            if isinstance(action, SESSION_CALLS) and self.session is None:
                # An adapter's slip (a call action with no call open) must not become a 1011.
                log.warning("session call without a call", extra={"action": type(action).__name__})
                continue
            match action:
                case Audio(frames=frames):
                    await self._pace()
                    await self._session_call(self.session.feed, frames)
                case Gap(seconds=seconds, roles=roles):
                    await self._session_call(self.session.gap, seconds, roles)
                case Start():
                    await self._start(action)
                case Send(message=message):
                    await self._send(message)
                case Dtmf(digit=digit):
                    self.session.dtmf(digit)
                case Pause():
                    self.session.pause()
                case Resume():
                    self.session.resume()
                case Split() if self.session is not None:
                    self.session.split()
                case Stop(status=status, reason=reason) if self.session is not None:
                    self._drain()
                    audio_seconds = await self.calls.end(self.session, status, reason)
                    self.session = None
                    await self._forwarded_all()
                    await self._apply(self.adapter.ended(audio_seconds))
                case Suspend(status=status) if self.session is not None:
                    self._drain()
                    audio_seconds = self.session.audio_seconds
                    self.calls.detach(self.session, status)
                    self.session = None
                    await self._apply(self.adapter.ended(audio_seconds))
                case Close(code=code, reason=reason, error=error):
                    if self.session is not None and error:
                        self._drain()  # a clean close is drained once, where the connection ends
                        await self.calls.end(self.session, "error", reason)
                        self.session = None
                    await self._close(code, reason)
                    raise _Closed

    async def _pace(self) -> None:
        """Past the lead, wait until the wall clock catches up with the audio: the socket is not read meanwhile,
        so a stream sent faster than real time waits in its TCP buffers, not in this call's share of the
        transcriber (where it would push every other call's finals back)."""
        if self.limits.lead <= 0:
            return
        # Until the clock says so: a timer may fire early by however stale the loop's own time is (uvloop).
        while (ahead := self.session.audio_seconds - (time.monotonic() - self._clock0)) > self.limits.lead:
            await asyncio.sleep(ahead - self.limits.lead)

    async def _too_long(self) -> None:
        limit = self.limits.max_call
        await self.calls.end(self.session, "ended", f"call longer than {limit:g} s of audio")
        self.session = None
        await self._apply(self.adapter.rejected(
            "call_too_long", f"calls end after {limit:g} s of audio (CALMLINE_MAX_CALL_SECONDS)", 1008))

    async def _session_call(self, call, *args) -> None:
        """Audio or a gap for the call; a recording that cannot be written ends it (and the stream) as an error."""
        try:
            call(*args)
        except RecordingFailed as exc:
            await self.calls.end_by_fault(self.session, f"recording failed: {exc}")
        if self.session.ended:
            await self._ended_by_server()

    async def _start(self, start: Start) -> None:
        try:
            self.session = await self.calls.open(start)
        except ProtocolError as exc:
            await self._apply(self.adapter.rejected(exc.code, exc.message, exc.close_code))
            return
        self._started_any = True
        # The clock itself, not the loop's: uvloop's time is the start of the current iteration.
        self._clock0 = time.monotonic() - self.session.audio_seconds
        if self.adapter.forwards_events:
            self._forwarder = asyncio.create_task(self._forward(start.call_id))
        await self._apply(self.adapter.started({"audio_seconds": self.session.audio_seconds,
                                                "agent_id": self.session.agent_id}))

    async def _ended_by_server(self) -> None:
        """The server ended the call while it streamed (a storage fault, here or in the recorder; a
        shutdown): the peer is told, the stream closed."""
        code = "storage_error" if self.session.end_status == "error" else "call_ended"
        reason = self.session.end_reason or "ended by the server"
        self.session = None
        await self._apply(self.adapter.rejected(code, reason, 1011))

    def _drain(self) -> None:
        if self.session is None or self.session.ended:
            return
        try:
            for action in self.adapter.flush():
                self.session.feed(action.frames)
        except RecordingFailed:
            pass  # kept in session.audio.failed: the connection's end makes the call an error
        except AnalysisFailed:
            pass  # logged where it happened; the call's audio is recorded, the rest of it is not analysed

    async def _forwarded_all(self) -> None:
        """Let the forwarder pass on the call's last events (its final transcripts) before the closing reply."""
        if self._forwarder is None or self._forwarded is None:
            return
        while not self._forwarded.queue.empty() and not self._forwarder.done():
            await asyncio.sleep(0)
        async with self._send_lock:  # the one it took last is on its way out
            pass

    async def _forward(self, call_id: str) -> None:
        sub = self._forwarded = self.calls.bus.for_supervisor(call_id)
        try:
            async for event in sub:
                for action in self.adapter.on_event(event):
                    await self._send(action.message)
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            self.calls.bus.unsubscribe(sub)

    async def _send(self, message: dict) -> None:
        # One sender at a time, and the envelope (sequence numbers) stamped in the order messages leave.
        async with self._send_lock:
            await self.ws.send_json(self.adapter.outgoing(message))

    async def _close(self, code: int, reason: str) -> None:
        try:
            await self.ws.close(code, close_reason(reason))
        except RuntimeError:  # already closed by the peer
            pass


async def run_ingest(ws: WebSocket, adapter: Adapter, calls: LiveCalls, limits: StreamLimits = StreamLimits()) -> None:
    await IngestConnection(ws, adapter, calls, limits).run()
