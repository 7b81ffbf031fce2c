"""Who is calling: ingest keys, agent tokens and supervisor tokens, and the checks on them."""

from __future__ import annotations

import base64
import hmac
import ipaddress
import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from service.config import Settings

INGEST, AGENT, SUPERVISOR = "ingest", "agent", "supervisor"


@dataclass(frozen=True)
class Principal:
    role: str  # INGEST, AGENT or SUPERVISOR
    agent_id: str | None = None

    def may_read_call(self, call_agent_id: str | None) -> bool:
        return self.role == SUPERVISOR or (self.role == AGENT and self.agent_id == call_agent_id)


@dataclass
class Credentials:
    ingest_keys: list[str] = field(default_factory=list)
    agent_tokens: dict[str, str] = field(default_factory=dict)  # agent_id -> token
    supervisor_tokens: list[str] = field(default_factory=list)
    development: bool = False  # generated here, to be printed for the developer

    def identify(self, token: str | None) -> Principal | None:
        if not token:
            return None
        # Compared as UTF-8 bytes: compare_digest refuses non-ASCII str, and a token is just bytes to match.
        given = _bytes(token)
        # compare_digest against every entry: no early exit that times out the secret.
        found = None
        for key in self.ingest_keys:
            if hmac.compare_digest(_bytes(key), given):
                found = Principal(INGEST)
        for agent_id, agent_token in self.agent_tokens.items():
            if hmac.compare_digest(_bytes(agent_token), given):
                found = Principal(AGENT, agent_id)
        for sup in self.supervisor_tokens:
            if hmac.compare_digest(_bytes(sup), given):
                found = Principal(SUPERVISOR)
        return found


def _bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def load_credentials(settings: Settings) -> Credentials:
    creds = Credentials(list(settings.ingest_keys), dict(settings.agent_tokens), list(settings.supervisor_tokens))
    if settings.auth_file:
        data = json.loads(Path(settings.auth_file).read_text())
        creds.ingest_keys += list(data.get("ingest_keys", []))
        creds.agent_tokens.update(data.get("agent_tokens", {}))
        creds.supervisor_tokens += list(data.get("supervisor_tokens", []))
    if creds.ingest_keys or creds.agent_tokens or creds.supervisor_tokens:
        return creds
    if not _loopback(settings.host):
        # Generated tokens are for a developer's own machine: on an address others can reach they would be
        # printed to a console or a container log, where whoever reads it gets every call.
        raise SystemExit(f"calmline: listening on {settings.host} needs real tokens: set CALMLINE_INGEST_KEYS, "
                         "CALMLINE_AGENT_TOKENS and CALMLINE_SUPERVISOR_TOKENS (or CALMLINE_AUTH_FILE); "
                         "development tokens are made only for a loopback address")
    return _development_credentials(settings.data_dir)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


def _development_credentials(data_dir: Path) -> Credentials:
    """Random tokens kept in the data dir, so a developer's browser tabs survive a restart."""
    path = data_dir / "dev-tokens.json"
    if path.exists():
        data = json.loads(path.read_text())
    else:
        data = {
            "ingest_keys": ["ik-" + secrets.token_urlsafe(12)],
            "agent_tokens": {"a-1": "at-" + secrets.token_urlsafe(12), "a-2": "at-" + secrets.token_urlsafe(12)},
            "supervisor_tokens": ["st-" + secrets.token_urlsafe(12)],
        }
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=1))
        path.chmod(0o600)
    return Credentials(data["ingest_keys"], data["agent_tokens"], data["supervisor_tokens"], development=True)


def development_banner(creds: Credentials, path: Path) -> str:
    """The generated tokens, for the developer's console (never the log): empty when real ones are configured."""
    if not creds.development:
        return ""
    lines = [f"Development tokens (kept in {path}; set CALMLINE_INGEST_KEYS, CALMLINE_AGENT_TOKENS and "
             "CALMLINE_SUPERVISOR_TOKENS for real ones):", f"  ingest key:  {creds.ingest_keys[0]}"]
    lines += [f"  agent {aid + ':':<6} {tok}" for aid, tok in creds.agent_tokens.items()]
    lines.append(f"  supervisor:  {creds.supervisor_tokens[0]}")
    return "\n".join(lines)


def token_from(headers, query_params, basic: bool = False) -> str | None:
    """Bearer header or ?token= (browsers, Twilio); the HTTP Basic password only where ``basic`` (jambonz wsAuth).

    A Basic header where Basic is not accepted gives no token at all, not the ?token= beside it: a browser
    resends Basic credentials by itself to the whole origin, so they stay on the one socket that needs them.
    """
    auth = headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value:
        return value.strip()
    if scheme.lower() == "basic" and value:
        if not basic:
            return None
        try:
            return base64.b64decode(value).decode("utf-8", "replace").partition(":")[2] or None
        except (ValueError, UnicodeEncodeError):  # not base64, or non-ASCII where base64 belongs
            return None
    return query_params.get("token") or None
