"""Ingest websocket endpoints: authenticate, pick the adapter, hand over to the driver."""

from __future__ import annotations

from starlette.websockets import WebSocket

from service.access import ws_principal
from service.auth import INGEST
from service.ingest.driver import run_ingest
from service.ingest.native import NativeProtocol


async def native_stream(ws: WebSocket) -> None:
    if await ws_principal(ws, INGEST) is None:
        return
    svc = ws.app.state.services
    await ws.accept()
    await run_ingest(ws, NativeProtocol(svc.settings.max_frame_bytes), svc.calls)
