"""At most so many websockets open at once: past the cap a handshake is refused with 503, before any work.

uvicorn's ``limit_concurrency`` answers plain HTTP requests with 503 but lets every websocket upgrade through,
and a socket is what an attacker (or a reconnect storm) holds open; this ASGI middleware counts those.
"""

from __future__ import annotations

import logging

from starlette.responses import JSONResponse
from starlette.websockets import WebSocket

log = logging.getLogger("calmline.connections")


class ConnectionLimit:
    def __init__(self, app, limit: int):
        self.app = app
        self.limit = limit  # 0: no cap
        self.open = 0
        self.refused = 0

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "websocket" or self.limit <= 0:
            await self.app(scope, receive, send)
            return
        if self.open >= self.limit:
            self.refused += 1
            log.warning("websocket refused: too many open", extra={"open": self.open, "limit": self.limit,
                                                                   "path": scope.get("path")})
            ws = WebSocket(scope, receive, send)
            await ws.send_denial_response(JSONResponse(
                {"type": "error", "code": "too_many_connections",
                 "message": f"{self.open} websockets open, the most this server takes (CALMLINE_MAX_CONNECTIONS)"},
                status_code=503, headers={"Retry-After": "5"}))
            return
        self.open += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.open -= 1
