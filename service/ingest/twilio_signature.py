"""X-Twilio-Signature for a Media Streams websocket: base64 HMAC-SHA1 of the stream URL with the auth token."""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import urlsplit, urlunsplit


def signature(auth_token: str, url: str) -> str:
    return base64.b64encode(hmac.new(auth_token.encode(), url.encode(), hashlib.sha1).digest()).decode()


def candidate_urls(host: str, path_and_query: str, forwarded_proto: str | None) -> list[str]:
    """The URL Twilio signed, as this server can rebuild it: wss behind TLS, ws without; with and without a port."""
    schemes = ["wss", "ws"] if forwarded_proto in (None, "https", "wss") else ["ws", "wss"]
    urls = []
    for scheme in schemes:
        url = f"{scheme}://{host}{path_and_query}"
        parts = urlsplit(url)
        urls += [url, urlunsplit(parts._replace(netloc=parts.hostname))]
        default = 443 if scheme == "wss" else 80
        urls.append(urlunsplit(parts._replace(netloc=f"{parts.hostname}:{parts.port or default}")))
    return list(dict.fromkeys(urls))


def valid(auth_token: str, given: str | None, urls: list[str]) -> bool:
    if not given:
        return False
    return any(hmac.compare_digest(signature(auth_token, url), given) for url in urls)
