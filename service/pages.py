"""HTML pages: served as static files; each page signs in with a token itself."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import FileResponse


async def agent_panel(request: Request) -> FileResponse:
    from clients.web import WEB_DIR

    return FileResponse(WEB_DIR / "agent.html", headers={"Cache-Control": "no-cache"})
