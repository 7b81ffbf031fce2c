"""Signature nonces seen lately, so that a captured signed handshake cannot be replayed while still current."""

from __future__ import annotations

import heapq

from service.ingest.http_signature import MAX_AGE, SKEW

LIMIT = 100_000  # nonces remembered at most: ~6000 signed handshakes a second for the 16 s a nonce is kept


class NonceCacheFull(RuntimeError):
    """More current nonces than the bound: the caller refuses the handshake rather than forget one."""


class NonceCache:
    """Pure bookkeeping: the caller passes the clock. A nonce is kept until a signature created when it
    says could no longer pass ``http_signature.verify`` (``created + MAX_AGE + SKEW``), then forgotten."""

    def __init__(self, limit: int = LIMIT):
        self.limit = limit
        self._until: dict[str, float] = {}  # nonce -> when it may be forgotten
        self._expiries: list[tuple[float, str]] = []  # heap of (until, nonce), oldest first

    def __len__(self) -> int:
        return len(self._until)

    def seen_before(self, nonce: str, created: float, now: float) -> bool:
        """True for a nonce still remembered (a replay); otherwise remembers it and returns False.

        Raises NonceCacheFull when ``limit`` nonces are current: the bound holds under a flood.
        """
        self._forget_expired(now)
        if nonce in self._until:
            return True
        if len(self._until) >= self.limit:
            raise NonceCacheFull(f"{self.limit} signature nonces are current")
        until = created + MAX_AGE + SKEW
        self._until[nonce] = until
        heapq.heappush(self._expiries, (until, nonce))
        return False

    def _forget_expired(self, now: float) -> None:
        while self._expiries and self._expiries[0][0] < now:
            _, nonce = heapq.heappop(self._expiries)
            del self._until[nonce]
