"""Live event websockets: an agent's panel, and supervisors watching every call or one."""

from __future__ import annotations

import asyncio

from starlette.websockets import WebSocket, WebSocketDisconnect

from service.access import deny, origin_allowed, ws_principal
from service.auth import AGENT, SUPERVISOR
from service.bus import SUPERVISOR_ONLY, Subscription
from service.events import SNAPSHOT_TYPES, snapshot_of
from service.storage import LIVE

BATCH = 200  # events sent per wake-up at most, so a board's folded backlog is never far behind


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
    await _stream(ws, sub, lambda: _live_calls(svc, agent_id=agent_id), lambda e: e["type"] not in SUPERVISOR_ONLY)


async def supervise(ws: WebSocket) -> None:
    if await _origin_refused(ws):
        return
    if await ws_principal(ws, SUPERVISOR) is None:
        return
    svc = ws.app.state.services
    call_id = ws.query_params.get("call_id")
    if call_id is not None:  # following one call: its history, then what is new
        sub = svc.bus.for_supervisor(call_id)
        await _stream(ws, sub, lambda: _live_calls(svc, call_id=call_id), lambda e: True)
        return
    sub = svc.bus.for_board()
    # The board: each live call's current state, not its history (20 long calls' histories overflowed the
    # queue while being sent). This node's calls from memory, taken with no await after subscribing, so
    # nothing is missed or sent twice; in a cluster the other nodes' from their stored events.
    sessions = svc.calls.all()
    here = {s.call_id for s in sessions}
    await _stream(ws, sub, lambda: [c for c in _live_calls(svc) if c not in here], lambda e: True,
                  snapshot=[e for s in sessions for e in s.events.snapshot()],
                  sent={s.call_id: s.events.last_seq for s in sessions})


def _live_calls(svc, agent_id: str | None = None, call_id: str | None = None) -> list[str]:
    """This node's live calls, and in a cluster every node's (from the database), that the socket may see."""
    found = [s.call_id for s in svc.calls.all()
             if (agent_id is None or s.agent_id == agent_id) and (call_id is None or s.call_id == call_id)]
    if svc.cluster is not None:
        rows = svc.store.list_calls(agent_id=agent_id, status=LIVE, limit=100_000).calls
        found += [r["call_id"] for r in rows if r["call_id"] not in found and (call_id is None or r["call_id"] == call_id)]
    return found


async def _stream(ws: WebSocket, sub: Subscription, live_calls, keep, snapshot: list[dict] | None = None,
                  sent: dict[str, int] | None = None) -> None:
    """Send the live calls' events so far, then everything new: a panel that (re)connects mid-call catches up.

    Per call, events go out in seq order with none twice: one already sent is skipped, and a gap (an event
    of another node's call relayed before this socket knew the call, or lost in the relay) is filled from
    the database, where every relayed event is before it is relayed. With a ``snapshot`` (the board) each
    call's current state is sent instead of its history, and gaps are not filled: a board row needs none."""
    svc = ws.app.state.services
    board = snapshot is not None
    sent = dict(sent or {})
    try:
        await ws.accept()
        for event in snapshot or []:
            await ws.send_json(event)
        await svc.recorder.flush()
        for call_id in await asyncio.to_thread(live_calls):
            history = await asyncio.to_thread(svc.store.get_events, call_id, sorted(SNAPSHOT_TYPES) if board else None)
            for event in snapshot_of(history) if board else history:
                if keep(event):
                    await ws.send_json(event)
            if history:
                sent[call_id] = history[-1]["seq"]
        reader = asyncio.create_task(_drain_client(ws))
        while not reader.done():
            getter = asyncio.create_task(sub.queue.get())
            done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                break
            # What else is waiting goes out in the same turn: a task and a wait per event cost more than the send.
            batch = [getter.result()]
            while len(batch) < BATCH and not sub.queue.empty():
                batch.append(sub.queue.get_nowait())
            for event in batch:
                last = sent.get(event["call_id"], 0)
                if event["seq"] <= last:
                    continue  # already in the backlog
                if event["seq"] > last + 1 and not board:
                    # Also a call that became this agent's mid-way (call.assigned): its history first. This
                    # node's events reach the store through the recorder's queue, so flush it before reading.
                    await svc.recorder.flush()
                    for missed in await asyncio.to_thread(svc.store.get_events, event["call_id"], None, last, event["seq"]):
                        if keep(missed):
                            await ws.send_json(missed)
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
