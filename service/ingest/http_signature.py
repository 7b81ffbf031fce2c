"""HTTP Message Signatures (RFC 9421) with hmac-sha256, as Genesys AudioHook signs its websocket upgrade.

Pure functions: the caller passes the request's target, authority and headers.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from typing import NamedTuple

REQUIRED = ("@request-target", "@authority", "audiohook-organization-id", "audiohook-session-id",
            "audiohook-correlation-id", "x-api-key")
SKEW = 3  # seconds of clock difference allowed
MAX_AGE = 10


class SignatureError(ValueError):
    pass


class Signed(NamedTuple):
    """What a good signature says about itself, for the replay check (service/ingest/nonces.py)."""

    nonce: str
    created: int


def _parse_input(value: str) -> tuple[str, list[str], dict, str]:
    """``sig1=("a" "b");keyid="k";created=1`` -> label, components, params, the inner list as sent."""
    m = re.fullmatch(r'\s*([a-z][a-z0-9_\-.*]*)=(\((?:\s*"[^"]*")*\s*\)((?:;[a-z][a-z0-9_\-.*]*=(?:"[^"]*"|-?\d+))*))\s*', value)
    if not m:
        raise SignatureError("Signature-Input is not a single well-formed signature")
    label, inner, params_text = m.group(1), m.group(2), m.group(3)
    components = re.findall(r'"([^"]*)"', inner.split(")")[0])
    params = {k: (v.strip('"') if v.startswith('"') else int(v)) for k, v in re.findall(r';([a-z][a-z0-9_\-.*]*)=("[^"]*"|-?\d+)', params_text)}
    return label, components, params, inner


def signature_base(components: list[str], values: dict[str, str], inner: str) -> str:
    lines = [f'"{c}": {values[c]}' for c in components]
    lines.append(f'"@signature-params": {inner}')
    return "\n".join(lines)


def sign(base: str, secret_b64: str) -> str:
    key = base64.b64decode(secret_b64)
    return base64.b64encode(hmac.new(key, base.encode(), hashlib.sha256).digest()).decode()


def verify(target: str, authority: str, headers: dict[str, str], secret_b64: str, now: float) -> Signed:
    """Raises SignatureError with the reason, or returns the nonce and created time of a good signature.

    ``headers`` lower-case, one value each (the caller refuses repeated ones). A good signature may still
    be a replay: the caller checks its nonce against the ones seen lately."""
    sig_input, sig = headers.get("signature-input"), headers.get("signature")
    if not sig_input or not sig:
        raise SignatureError("missing Signature or Signature-Input header")
    label, components, params, inner = _parse_input(sig_input)
    missing = [c for c in REQUIRED if c not in components]
    if missing:
        raise SignatureError(f"signature does not cover {', '.join(missing)}")
    if params.get("alg", "hmac-sha256") != "hmac-sha256":
        raise SignatureError("only hmac-sha256 signatures are accepted")
    if params.get("keyid") != headers.get("x-api-key"):
        raise SignatureError("keyid is not the X-API-KEY")
    if len(str(params.get("nonce", ""))) < 22:
        raise SignatureError("nonce missing or too short")
    created, expires = params.get("created"), params.get("expires")
    if not isinstance(created, int) or created > now + SKEW or created + MAX_AGE < now - SKEW:
        raise SignatureError("signature created time is missing or not current")
    if expires is not None and (not isinstance(expires, int) or expires < now - SKEW):
        raise SignatureError("signature expired")
    m = re.fullmatch(rf'\s*{re.escape(label)}=:([A-Za-z0-9+/=]+):\s*', sig)
    if not m:
        raise SignatureError(f"Signature has no {label} byte sequence")
    values = {"@request-target": target, "@authority": authority}
    for c in components:
        if not c.startswith("@"):
            if c not in headers:
                raise SignatureError(f"signed header {c} is missing")
            values[c] = " ".join(headers[c].split())
        elif c not in values:
            raise SignatureError(f"unsupported derived component {c}")
    try:
        expected = base64.b64decode(sign(signature_base(components, values, inner), secret_b64))
        given = base64.b64decode(m.group(1))
    except (binascii.Error, ValueError):
        raise SignatureError("signature or secret is not base64") from None
    if not hmac.compare_digest(expected, given):
        raise SignatureError("signature does not match")
    return Signed(str(params["nonce"]), created)
