"""REST: calls, their annotated timelines and recordings; health and metrics."""

from __future__ import annotations

import asyncio
from datetime import datetime

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from service import metrics, retention
from service.access import require, require_call_access
from service.auth import AGENT, INGEST, SUPERVISOR
from service.bus import SUPERVISOR_ONLY
from service.ingest.protocol import CALL_ID

READERS = (AGENT, SUPERVISOR)


def _call_view(svc, row: dict) -> dict:
    live = svc.calls.get(row["call_id"])
    view = {k: row[k] for k in ("call_id", "agent_id", "status", "end_reason", "source", "started_at",
                                 "ended_at", "audio_seconds", "metadata", "media", "summary", "peak_heat", "warning_count",
                                 "node_id")}
    if live is not None:
        view["audio_seconds"] = round(live.audio_seconds, 3)
        view["connected"] = live.connected
    return view


async def _readable_call(request: Request) -> tuple:
    """The services, the call's row and who asks, once the token may read this call."""
    who = require(request, *READERS)
    svc = request.app.state.services
    call_id = request.path_params["call_id"]
    row = await asyncio.to_thread(svc.store.get_call, call_id)
    if row is None:
        # Created calls are queued for the writer; a very new live call may not be there yet.
        if svc.calls.get(call_id) is not None:
            await svc.recorder.flush()
            row = await asyncio.to_thread(svc.store.get_call, call_id)
        if row is None:
            raise HTTPException(404, f"no call {call_id}")
    require_call_access(who, row["agent_id"])
    return svc, row, who


def _param(request: Request, name: str, parse, what: str):
    """A query parameter parsed by ``parse``; absent or empty is None, unparsable is a 400 that says why."""
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return None
    try:
        return parse(raw)
    except ValueError:
        raise HTTPException(400, f"{name} must be {what}") from None


def _unix_or_iso(raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        return datetime.fromisoformat(raw).timestamp()


def _time_param(request: Request, name: str) -> float | None:
    return _param(request, name, _unix_or_iso, "unix seconds or an ISO date")


def _float_param(request: Request, name: str) -> float | None:
    return _param(request, name, float, "a number")


def _int_param(request: Request, name: str, default: int | None, low: int, high: int) -> int | None:
    value = _param(request, name, int, "an integer")
    if value is None:
        return default
    if not low <= value <= high:
        raise HTTPException(400, f"{name} must be between {low} and {high}")
    return value


async def list_calls(request: Request) -> JSONResponse:
    who = require(request, *READERS)
    svc = request.app.state.services
    agent_id = request.query_params.get("agent_id")
    if who.role == AGENT:
        if agent_id and agent_id != who.agent_id:
            raise HTTPException(403, "an agent can list only their own calls")
        agent_id = who.agent_id
    limit = _int_param(request, "limit", 50, 1, 500)
    offset = _int_param(request, "offset", 0, 0, 10**9)
    page = await asyncio.to_thread(
        svc.store.list_calls, agent_id=agent_id, status=request.query_params.get("status"),
        since=_time_param(request, "since"), until=_time_param(request, "until"),
        min_peak_heat=_float_param(request, "min_peak_heat"), min_warnings=_int_param(request, "min_warnings", None, 0, 10**6),
        limit=limit, offset=offset)
    return JSONResponse({"calls": [_call_view(svc, r) for r in page.calls], "total": page.total,
                         "limit": limit, "offset": offset})


async def get_call(request: Request) -> JSONResponse:
    svc, row, _ = await _readable_call(request)
    return JSONResponse(_call_view(svc, row))


async def get_events(request: Request) -> JSONResponse:
    svc, row, who = await _readable_call(request)
    types = [t for t in request.query_params.get("type", "").split(",") if t]
    await svc.recorder.flush()
    found = await asyncio.to_thread(svc.store.get_events, row["call_id"], types or None)
    if who.role != SUPERVISOR:
        found = [e for e in found if e["type"] not in SUPERVISOR_ONLY]  # as the agent saw them live
    return JSONResponse(found)


async def get_audio(request: Request) -> Response:
    """The recording as a WAV streamed from disk, with byte ranges; a live call's so far, written nowhere."""
    svc, row, _ = await _readable_call(request)
    recording = await svc.calls.recording(row["call_id"])
    if recording is None:
        live = svc.calls.get(row["call_id"]) is not None
        raise HTTPException(404, "this call has no audio yet" if live else "this call has no audio")
    headers = {"Cache-Control": "private, no-store", "Accept-Ranges": "bytes"}
    span = _byte_range(request.headers.get("range"), recording.size)
    if span == "unsatisfiable":
        recording.close()
        return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{recording.size}"})
    if span is None:
        return StreamingResponse(recording.chunks(), media_type="audio/wav",
                                 headers={**headers, "Content-Length": str(recording.size)})
    start, end = span
    return StreamingResponse(recording.chunks(start, end + 1), status_code=206, media_type="audio/wav",
                             headers={**headers, "Content-Length": str(end + 1 - start),
                                      "Content-Range": f"bytes {start}-{end}/{recording.size}"})


def _byte_range(header: str | None, size: int):
    """One ``bytes=a-b`` range as inclusive (start, end); None for the whole file (no range, or
    several, or one we cannot read: RFC 9110 lets a server ignore it); "unsatisfiable" past the end."""
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    first, _, last = header[6:].strip().partition("-")
    try:
        if first == "":
            if not last:
                return None
            start, end = max(0, size - int(last)), size - 1
        else:
            start = int(first)
            if last and int(last) < start:
                return None  # not a valid range: ignored
            end = min(int(last), size - 1) if last else size - 1
    except ValueError:
        return None
    if start < 0 or start >= size:
        return "unsatisfiable"
    return start, end


async def delete_call(request: Request) -> Response:
    """Supervisor only: the call's row, events and recording; a live call must end first."""
    require(request, SUPERVISOR)
    svc = request.app.state.services
    call_id = request.path_params["call_id"]
    if svc.calls.get(call_id) is not None:
        raise HTTPException(409, f"call {call_id} is live; delete it once it has ended")
    await svc.recorder.flush()  # the rows of a call that just ended are written before they are deleted
    if not await asyncio.to_thread(retention.delete_call, svc, call_id):
        raise HTTPException(404, f"no call {call_id}")
    return Response(status_code=204)


async def assign_agent(request: Request) -> JSONResponse:
    """PUT {"agent_id": ...}: name the agent of a live call (by call id or Genesys conversation id).

    A supervisor, or an integration with an ingest key (a Genesys flow that learns the agent
    after the AudioHook session opened), may; an agent may not pick up calls for themselves."""
    require(request, SUPERVISOR, INGEST)
    svc = request.app.state.services
    try:
        body = await request.json()
    except ValueError:
        raise HTTPException(400, "the body must be JSON: {\"agent_id\": \"...\"}") from None
    agent_id = body.get("agent_id") if isinstance(body, dict) else None
    if not isinstance(agent_id, str) or not CALL_ID.match(agent_id):
        raise HTTPException(400, "agent_id must be 1-128 characters of letters, digits and . _ : -")
    ref = request.path_params["call_id"]
    session = svc.calls.find(ref)
    if session is None or session.ended:
        if await asyncio.to_thread(svc.store.get_call, ref) is not None:
            raise HTTPException(409, f"call {ref} has ended; only a live call can be assigned")
        raise HTTPException(404, f"no live call {ref}")
    event = await svc.calls.assign(session, agent_id)
    return JSONResponse({"call_id": session.call_id, "agent_id": agent_id,
                         "previous_agent_id": event["previous_agent_id"], "seq": event["seq"]})


async def whoami(request: Request) -> JSONResponse:
    who = require(request, AGENT, SUPERVISOR)
    return JSONResponse({"role": who.role, "agent_id": who.agent_id})


async def healthz(request: Request) -> JSONResponse:
    svc = request.app.state.services
    live = len(svc.calls.all())
    reasons = svc.health.reasons() + (svc.admission.reasons(live) if svc.admission else [])
    health = {"status": "ok", "reasons": reasons, "model": svc.transcriber.model_name, "device": svc.transcriber.device,
              "workers": svc.transcriber.workers, "live_calls": len(svc.calls.all()), "queue_depth": svc.scheduler.depth,
              "recorder_queue_depth": svc.recorder.depth, "node_id": svc.calls.node_id}
    if svc.admission is not None:
        health["admission"] = svc.admission.state(live)
    if svc.cluster is not None:
        try:
            health["cluster"] = await svc.cluster.nodes()
        except Exception:  # Redis away: this node still serves its own calls
            health["cluster"] = None
            reasons.append("cluster: Redis unreachable")
    # Still 200 when degraded: the server serves; the body says what is failing.
    if reasons:
        health["status"] = "degraded"
    return JSONResponse(health)


async def metrics_endpoint(request: Request) -> Response:
    require(request, SUPERVISOR)
    return Response(metrics.render(request.app.state.services), media_type="text/plain; version=0.0.4")
