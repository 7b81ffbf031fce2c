"""HTML pages: static files that sign in with a token themselves; every datum they show comes from the checked API."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import FileResponse

from clients.web import WEB_DIR

_HEADERS = {"Cache-Control": "no-cache", "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; "
            "media-src 'self' blob:; connect-src 'self'; img-src 'self' data:"}


def _page(name: str):
    async def serve(request: Request) -> FileResponse:
        return FileResponse(WEB_DIR / name, headers=_HEADERS)

    return serve


agent_panel = _page("agent.html")
supervisor_board = _page("supervisor.html")
call_replay = _page("replay.html")
