"""Live event websockets: an agent's panel, and supervisors watching every call or one."""

from __future__ import annotations

import asyncio

from starlette.websockets import WebSocket, WebSocketDisconnect

from service.access import deny, ws_principal
from service.auth import AGENT, SUPERVISOR
from service.bus import SUPERVISOR_ONLY, Subscription


async def agent_events(ws: WebSocket) -> None:
    agent_id = ws.path_params["agent_id"]
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
    sent: dict[str, int] = {}

    async def catch_up(call_id: str) -> None:
        sent.setdefault(call_id, 0)
        for event in await asyncio.to_thread(svc.store.get_events, call_id):
            if keep(event):
                await ws.send_json(event)
            sent[call_id] = event["seq"]

    try:
        await ws.accept()
        await svc.recorder.flush()
        for call_id in live_calls:
            await catch_up(call_id)
        reader = asyncio.create_task(_drain_client(ws))
        while not reader.done():
            getter = asyncio.create_task(sub.queue.get())
            done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                break
            event = getter.result()
            if event["call_id"] not in sent and event["seq"] > 1:
                # A call that became ours mid-way (call.assigned): its history first. Everything
                # before this event is in the store once flushed; anything after is queued here too.
                await svc.recorder.flush()
                await catch_up(event["call_id"])
            if event["seq"] <= sent.get(event["call_id"], 0):
                continue  # already in the backlog
            sent[event["call_id"]] = event["seq"]
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
