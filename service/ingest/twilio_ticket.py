"""Per-call stream tickets for Twilio: the part of the stream URL that makes a signed URL good for one call only.

Twilio signs the stream URL (X-Twilio-Signature), but a TwiML ``<Stream url>`` that never changes gets the same
signature on every call, so one captured handshake would let anyone in for good. The customer's TwiML webhook
therefore puts a ticket in the URL's path (Twilio drops query strings from ``<Stream url>``):

    ticket = f"{expires}.{base64url(HMAC-SHA256(auth_token, f'{call_sid}:{expires}'))}"   # no "=" padding
    url    = f"wss://HOST/v1/twilio/t/{ticket}"

``expires`` is Unix seconds. The server checks it when the stream connects (a call may outlast the ticket) and
the HMAC against the ``callSid`` of the stream's ``start``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time

SKEW = 30  # seconds of clock difference allowed between the webhook's host and this server
_TICKET = re.compile(r"^([0-9]{1,12})\.([A-Za-z0-9_-]{43})$")  # 43 = an unpadded base64url SHA-256


def mint(auth_token: str, call_sid: str, expires: int) -> str:
    return f"{expires}.{_mac(auth_token, call_sid, expires)}"


def check(auth_token: str, ticket: str, call_sid: str, now: float) -> str | None:
    """Why ``ticket`` does not let ``call_sid`` stream at ``now`` (the connect time), or None when it does."""
    match = _TICKET.match(ticket)
    if match is None:
        return "the stream URL's ticket is malformed"
    expires = int(match.group(1))
    # The HMAC first: a forged ticket is told nothing about its expiry.
    if not hmac.compare_digest(_mac(auth_token, call_sid, expires), match.group(2)):
        return "the stream URL's ticket was not minted for this callSid"
    if now > expires + SKEW:
        return f"the stream URL's ticket expired {int(now - expires)} s before the stream connected"
    return None


def stream_url(base_wss_url: str, auth_token: str, call_sid: str, ttl: int = 300, now: float | None = None) -> str:
    """The ``<Stream url>`` for one call, for a TwiML webhook: ``base_wss_url`` is ``wss://host`` (a path prefix
    before ``/v1`` is kept)."""
    expires = int((time.time() if now is None else now) + ttl)
    return f"{base_wss_url.rstrip('/')}/v1/twilio/t/{mint(auth_token, call_sid, expires)}"


def _mac(auth_token: str, call_sid: str, expires: int) -> str:
    digest = hmac.new(auth_token.encode(), f"{call_sid}:{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
