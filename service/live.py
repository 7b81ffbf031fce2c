"""Live event websockets: an agent's panel, and supervisors watching every call or one."""

from __future__ import annotations

import asyncio

from starlette.websockets import WebSocket, WebSocketDisconnect

from service.access import deny, origin_allowed, ws_principal
from service.auth import AGENT, SUPERVISOR
from service.bus import SUPERVISOR_ONLY, Subscription


async def _origin_refused(ws: WebSocket) -> bool:
    if origin_allowed(ws, ws.app.state.services.settings.allowed_origins):
        return False
    await deny(ws, 403, "this page's origin may not open event sockets (CALMLINE_ALLOWED_ORIGINS)")
    return True


async def agent_events(ws: WebSocket) -> None:
    agent_id = ws.path_params["agent_id"]
    if await _origin_refused(ws):
        return
    who = await ws_principal(ws, AGENT, SUPERVISOR)
    if who is None:
        return
    if who.role == AGENT and who.agent_id != agent_id:
        await deny(ws, 403, "an agent token can follow only its own agent's calls")
        return
    svc = ws.app.state.services
    sub = svc.bus.for_agent(agent_id)
    live = [s.call_id for s in svc.calls.all() if s.agent_id == agent_id]
    await _stream(ws, sub, live, lambda e: e["type"] not in SUPERVISOR_ONLY)


async def supervise(ws: WebSocket) -> None:
    if await _origin_refused(ws):
        return
    if await ws_principal(ws, SUPERVISOR) is None:
        return
    svc = ws.app.state.services
    call_id = ws.query_params.get("call_id")
    sub = svc.bus.for_supervisor(call_id)
    live = [s.call_id for s in svc.calls.all() if call_id is None or s.call_id == call_id]
    await _stream(ws, sub, live, lambda e: True)


async def _stream(ws: WebSocket, sub: Subscription, live_calls: list[str], keep) -> None:
    """Send the live calls' events so far, then everything new: a panel that (re)connects mid-call catches up."""
    svc = ws.app.state.services
    try:
        await ws.accept()
        await svc.recorder.flush()
        sent: dict[str, int] = {}
        for call_id in live_calls:
            for event in await asyncio.to_thread(svc.store.get_events, call_id):
                if keep(event):
                    await ws.send_json(event)
                sent[call_id] = event["seq"]
        reader = asyncio.create_task(_drain_client(ws))
        while not reader.done():
            getter = asyncio.create_task(sub.queue.get())
            done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                break
            event = getter.result()
            if event["seq"] <= sent.get(event["call_id"], 0):
                continue  # already in the backlog
            await ws.send_json(event)
            if sub.overflowed:
                await ws.close(1013, "too slow: reconnect to catch up")
                break
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        svc.bus.unsubscribe(sub)


async def _drain_client(ws: WebSocket) -> None:
    """Watchers only listen; reading tells us when they leave."""
    while (await ws.receive())["type"] != "websocket.disconnect":
        pass
