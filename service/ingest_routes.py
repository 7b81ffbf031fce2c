"""Ingest websocket endpoints: authenticate the way each platform can, pick the adapter, hand over to the driver."""

from __future__ import annotations

import time

from starlette.websockets import WebSocket

from service.access import deny, principal, ws_principal
from service.auth import INGEST
from service.ingest import http_signature, twilio_signature, twilio_ticket
from service.ingest.audiohook import AudioHookProtocol
from service.ingest.driver import StreamLimits, run_ingest
from service.ingest.jambonz import SUBPROTOCOLS, JambonzProtocol
from service.ingest.native import NativeProtocol
from service.ingest.nonces import NonceCacheFull
from service.ingest.twilio import TwilioProtocol


async def native_stream(ws: WebSocket) -> None:
    if await ws_principal(ws, INGEST) is None:
        return
    svc = ws.app.state.services
    await ws.accept()
    await _ingest(ws, NativeProtocol(svc.settings.max_frame_bytes))


async def twilio_stream(ws: WebSocket) -> None:
    svc = ws.app.state.services
    if svc.settings.twilio_auth_token:
        # A TwiML <Stream url> is the same for every call, so its signature is too: alone it would replay forever.
        await deny(ws, 403, "a stream URL with a ticket is required when CALMLINE_TWILIO_AUTH_TOKEN is set: "
                            "/v1/twilio/t/<ticket>")
        return
    authorize = None
    who = principal(ws)
    if who is None and ("authorization" in ws.headers or "token" in ws.query_params):
        await deny(ws, 401, "unknown ingest key")
        return
    if who is not None and who.role != INGEST:
        await deny(ws, 403, f"a {who.role} token cannot stream calls")
        return
    if who is None:
        creds = svc.credentials

        def authorize(token):
            found = creds.identify(token) if isinstance(token, str) else None
            return found is not None and found.role == INGEST
    await ws.accept()
    await _ingest(ws, TwilioProtocol(svc.settings.max_frame_bytes, authorize, pause=svc.settings.twilio_pause))


async def twilio_ticket_stream(ws: WebSocket) -> None:
    """Twilio proves itself by signing the stream URL; the ticket in its path ties that URL to one call."""
    svc = ws.app.state.services
    auth_token = svc.settings.twilio_auth_token
    if not auth_token:
        await deny(ws, 403, "stream tickets need CALMLINE_TWILIO_AUTH_TOKEN on the server; without it stream to "
                            "/v1/twilio with an ingest key")
        return
    connected = time.time()  # the ticket must be good when the stream connects; the call may outlast it
    urls = twilio_signature.candidate_urls(ws.headers.get("host", ""), _target(ws), ws.headers.get("x-forwarded-proto"))
    if not twilio_signature.valid(auth_token, ws.headers.get("x-twilio-signature"), urls):
        await deny(ws, 403, "X-Twilio-Signature missing or invalid")
        return
    ticket = ws.path_params["ticket"]

    def call_sid_check(call_sid: str) -> str | None:
        return twilio_ticket.check(auth_token, ticket, call_sid, connected)
    await ws.accept()
    await _ingest(ws, TwilioProtocol(svc.settings.max_frame_bytes, call_sid_check=call_sid_check,
                                     pause=svc.settings.twilio_pause))


# Headers the AudioHook checks read, each exactly once: with two, the key check and the signature
# check could each read a different one (Starlette's get takes the first, a dict the last).
AUDIOHOOK_SINGLE = ("X-API-KEY", "Authorization", "Signature", "Signature-Input", "Host",
                    "Audiohook-Organization-Id", "Audiohook-Session-Id", "Audiohook-Correlation-Id")


async def audiohook_stream(ws: WebSocket) -> None:
    svc = ws.app.state.services
    repeated = next((name for name in AUDIOHOOK_SINGLE if len(ws.headers.getlist(name)) > 1), None)
    if repeated:
        await deny(ws, 400, f"{repeated} given more than once")
        return
    api_key = ws.headers.get("x-api-key")
    who = svc.credentials.identify(api_key) if api_key else principal(ws)
    if who is None or who.role != INGEST:
        await deny(ws, 401, "X-API-KEY is not a known ingest key")
        return
    secret = svc.settings.audiohook_client_secret
    if secret:
        headers = {k.lower(): v for k, v in ws.headers.items()}
        now = time.time()
        try:
            signed = http_signature.verify(_target(ws), ws.headers.get("host", ""), headers, secret, now)
            # Only a good signature's nonce is kept: without the secret nobody can fill the cache.
            replayed = svc.nonces.seen_before(signed.nonce, signed.created, now)
        except http_signature.SignatureError as exc:
            await deny(ws, 401, f"signature: {exc}")
            return
        except NonceCacheFull:
            await deny(ws, 503, "too many signed handshakes at once; try again later")
            return
        if replayed:
            await deny(ws, 401, "signature nonce already used")
            return
    await ws.accept()
    adapter = AudioHookProtocol(svc.settings.max_frame_bytes, ws.headers.get("audiohook-session-id"),
                                ws.headers.get("audiohook-organization-id"))
    await _ingest(ws, adapter)


async def jambonz_stream(ws: WebSocket) -> None:
    if await ws_principal(ws, INGEST, basic=True) is None:  # jambonz's wsAuth sends the key as a Basic password
        return
    svc = ws.app.state.services
    offered = ws.scope.get("subprotocols") or []
    chosen = next((p for p in offered if p in SUBPROTOCOLS), None)
    if offered and chosen is None:
        await deny(ws, 400, f"subprotocol must be one of {', '.join(SUBPROTOCOLS)}")
        return
    await ws.accept(subprotocol=chosen)
    await _ingest(ws, JambonzProtocol(svc.settings.max_frame_bytes, chosen))


async def _ingest(ws: WebSocket, adapter) -> None:
    """The accepted socket to the driver, under this server's connection limits."""
    svc = ws.app.state.services
    await run_ingest(ws, adapter, svc.calls, StreamLimits.of(svc.settings))


def _target(ws: WebSocket) -> str:
    query = ws.scope.get("query_string", b"").decode()
    return ws.scope["path"] + (f"?{query}" if query else "")
