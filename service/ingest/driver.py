"""The asyncio side of ingest: reads a websocket, feeds an adapter, carries out what it returns."""

from __future__ import annotations

import logging

from starlette.websockets import WebSocket, WebSocketDisconnect

from service.calls import LiveCalls
from service.ingest.calls import Audio, Close, Dtmf, Pause, ProtocolError, Resume, Send, Start, Stop

log = logging.getLogger("calmline.ingest")


async def run_ingest(ws: WebSocket, adapter, calls: LiveCalls) -> None:
    session = None
    try:
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("bytes") is not None:
                actions = adapter.receive_bytes(message["bytes"])
            else:
                actions = adapter.receive_text(message.get("text") or "")
            for action in actions:
                if isinstance(action, Audio):
                    session.feed(action.frames)
                elif isinstance(action, Start):
                    try:
                        session = await calls.open(action)
                    except ProtocolError as exc:
                        await _send_error(ws, exc.code, exc.message, exc.close_code)
                        return
                    await ws.send_json(adapter.started({"audio_seconds": session.audio_seconds}).message)
                elif isinstance(action, Send):
                    await ws.send_json(action.message)
                elif isinstance(action, Dtmf):
                    session.dtmf(action.digit)
                elif isinstance(action, Pause):
                    session.pause()
                elif isinstance(action, Resume):
                    session.resume()
                elif isinstance(action, Stop):
                    _drain(adapter, session)
                    audio_seconds = await calls.end(session, "ended")
                    reply = adapter.ended(audio_seconds)
                    if reply is not None:
                        await ws.send_json(reply.message)
                    session = None
                    await ws.close(1000, "call ended")
                    return
                elif isinstance(action, Close):
                    _drain(adapter, session)
                    if session is not None and action.error:
                        await calls.end(session, "error", action.reason)
                        session = None
                    await ws.close(action.code, action.reason)
                    return
    except WebSocketDisconnect:
        pass
    finally:
        if session is not None and not session.ended:
            _drain(adapter, session)
            calls.detach(session)


def _drain(adapter, session) -> None:
    if session is None or session.ended:
        return
    for action in adapter.flush():
        session.feed(action.frames)


async def _send_error(ws: WebSocket, code: str, message: str, close_code: int) -> None:
    await ws.send_json({"type": "error", "code": code, "message": message})
    await ws.close(close_code, f"{code}: {message}"[:120])
