"""The asyncio side of ingest: reads a websocket, feeds an adapter, carries out what it returns.

The same loop serves every protocol, through the contract of ``service.ingest.protocol.Adapter``:
``receive_text``/``receive_bytes`` answer with session calls and replies; ``started``/``ended``/
``rejected`` give its replies to the session's answers; ``flush`` hands over audio it still holds;
an adapter with ``forwards_events`` gets the call's events to pass back to the platform
(``on_event``); every message leaves through ``outgoing``; a ``resumable`` adapter's dropped call
waits for a resume, any other ends when its socket closes.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.websockets import WebSocket, WebSocketDisconnect

from service.audio_files import RecordingFailed
from service.call_actions import Audio, Dtmf, Gap, Pause, ProtocolError, Resume, Split, Start, Stop, Suspend
from service.ingest.protocol import Adapter, Close, Send, close_reason
from service.live_calls import LiveCalls

log = logging.getLogger("calmline.ingest")


SESSION_CALLS = (Audio, Gap, Dtmf, Pause, Resume)


class _Closed(Exception):
    """The adapter asked to close the connection; nothing more is read."""


class IngestConnection:
    def __init__(self, ws: WebSocket, adapter: Adapter, calls: LiveCalls):
        self.ws = ws
        self.adapter = adapter
        self.calls = calls
        self.session = None
        self._forwarder: asyncio.Task | None = None
        self._forwarded = None  # the forwarder's subscription
        self._send_lock = asyncio.Lock()
        self._close_code: int | None = None

    async def run(self) -> None:
        try:
            while True:
                message = await self.ws.receive()
                if message["type"] == "websocket.disconnect":
                    self._close_code = message.get("code")
                    return
                if message.get("bytes") is not None:
                    actions = self.adapter.receive_bytes(message["bytes"])
                else:
                    actions = self.adapter.receive_text(message.get("text") or "")
                await self._apply(actions)
        except _Closed:
            pass
        except WebSocketDisconnect as exc:
            self._close_code = exc.code
        except Exception:
            log.exception("ingest connection failed", extra={"protocol": type(self.adapter).__name__})
            await self._close(1011, "internal error")
        finally:
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
                    clean = self._close_code in (1000, 1001, 1005)
                    await self.calls.end(self.session, "ended" if clean else "dropped",
                                         None if clean else f"stream lost (close code {self._close_code})")

    async def _apply(self, actions: list) -> None:
        for action in actions:
            if isinstance(action, SESSION_CALLS) and self.session is None:
                # An adapter's slip (a call action with no call open) must not become a 1011.
                log.warning("session call without a call", extra={"action": type(action).__name__})
                continue
            match action:
                case Audio(frames=frames):
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
        if self.adapter.forwards_events:
            self._forwarder = asyncio.create_task(self._forward(start.call_id))
        await self._apply(self.adapter.started({"audio_seconds": self.session.audio_seconds}))

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


async def run_ingest(ws: WebSocket, adapter: Adapter, calls: LiveCalls) -> None:
    await IngestConnection(ws, adapter, calls).run()
