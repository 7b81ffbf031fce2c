"""At most so many websockets open at once: past the cap a handshake is refused with 503, before any work.

uvicorn's ``limit_concurrency`` answers plain HTTP requests with 503 but lets every websocket upgrade through,
and a socket is what an attacker (or a reconnect storm) holds open; this ASGI middleware counts those.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from starlette.websockets import WebSocket

from service.access import deny

log = logging.getLogger("calmline.connections")


@dataclass
class WebsocketCount:
    """What /metrics reports: kept on the server's Services, counted by the middleware."""
    open: int = 0
    refused: int = 0


class ConnectionLimit:
    def __init__(self, app, limit: int):
        self.app = app
        self.limit = limit  # 0: no cap

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        count: WebsocketCount = scope["app"].state.services.sockets
        if 0 < self.limit <= count.open:
            count.refused += 1
            log.warning("websocket refused: too many open", extra={"open": count.open, "limit": self.limit,
                                                                   "path": scope.get("path")})
            await deny(WebSocket(scope, receive, send), 503,
                       f"{count.open} websockets open, the most this server takes (CALMLINE_MAX_CONNECTIONS)",
                       code="too_many_connections", headers={"Retry-After": "5"})
            return
        count.open += 1
        try:
            await self.app(scope, receive, send)
        finally:
            count.open -= 1
