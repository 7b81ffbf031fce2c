"""Checks on every endpoint: who the token belongs to, and whether they may touch this call."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.websockets import WebSocket

from service.auth import Principal, token_from


def principal(conn: HTTPConnection, basic: bool = False) -> Principal | None:
    """Whose token this is; an HTTP Basic password counts only where ``basic`` (the jambonz socket)."""
    return conn.app.state.services.credentials.identify(token_from(conn.headers, conn.query_params, basic))


def require(conn: HTTPConnection, *roles: str) -> Principal:
    who = principal(conn)
    if who is None:
        raise HTTPException(401, "missing or unknown token", headers={"WWW-Authenticate": "Bearer"})
    if who.role not in roles:
        raise HTTPException(403, f"a {who.role} token cannot use this endpoint")
    return who


def require_call_access(who: Principal, call_agent_id: str | None) -> None:
    if not who.may_read_call(call_agent_id):
        raise HTTPException(403, "this call belongs to another agent")


ERROR_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
               409: "conflict", 413: "too_large", 503: "overloaded"}


async def error_response(request: Request, exc: HTTPException) -> Response:
    """A refused REST request says why in the JSON the ingest errors and refused handshakes use
    (``{"type": "error", "code", "message"}``), so a client reads every error one way; the pages keep plain text."""
    if exc.status_code in (204, 304):
        return Response(status_code=exc.status_code, headers=exc.headers)
    path = request.url.path
    if not (path.startswith("/v1/") or path in ("/metrics", "/healthz")):
        return PlainTextResponse(exc.detail, status_code=exc.status_code, headers=exc.headers)
    return JSONResponse({"type": "error", "code": ERROR_CODES.get(exc.status_code, "error"), "message": exc.detail},
                        status_code=exc.status_code, headers=exc.headers)


async def deny(ws: WebSocket, status: int, message: str, code: str | None = None, headers: dict | None = None) -> None:
    """Refuse a websocket handshake with a real HTTP status and a JSON reason (``code``: by status unless given)."""
    code = code or ERROR_CODES.get(status, "bad_request")
    await ws.send_denial_response(JSONResponse({"type": "error", "code": code, "message": message}, status_code=status,
                                               headers=headers))


def origin_allowed(conn: HTTPConnection, allowed: list[str]) -> bool:
    """A browser page may open a socket only from the server's own origin or a configured one.

    Browsers send ``Origin`` on every websocket handshake and let any page open one (no CORS), so a
    page elsewhere could ride on a token it got hold of; clients that are not browsers send none.
    """
    origin = conn.headers.get("origin")
    if origin is None:
        return True
    origin = origin.strip().lower().rstrip("/")
    if origin in {o.strip().lower().rstrip("/") for o in allowed}:
        return True
    scheme, sep, netloc = origin.partition("://")
    host = conn.headers.get("host", "").strip().lower()
    if not sep or scheme not in ("http", "https") or not host:
        return False
    default = {"http": ":80", "https": ":443"}[scheme]
    return netloc == host or netloc + default == host or netloc == host + default


async def ws_principal(ws: WebSocket, *roles: str, basic: bool = False) -> Principal | None:
    """The websocket's principal, or None after refusing it (401 unknown, 403 wrong kind)."""
    who = principal(ws, basic)
    if who is None:
        await deny(ws, 401, "missing or unknown token")
        return None
    if who.role not in roles:
        await deny(ws, 403, f"a {who.role} token cannot use this endpoint")
        return None
    return who
