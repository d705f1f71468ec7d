"""The memory of RFC 7662 introspection results: what the authorization server said about a
token, kept for a bounded time in a bounded space, under a keyed hash of the token.

- Keys are HMAC-SHA256 digests of the token under a random key made per cache: the token itself
  is never stored, and a digest seen in a memory dump or a metric says nothing about it.
- Active results are kept until the earlier of the token's ``exp`` and ``ttl`` seconds after the
  answer; refused ones (inactive, or failing a claim rule) for ``negative_ttl`` seconds, so that
  a client repeating a bad token costs one call per window, not one per request.
- The two kinds live in separate least-recently-used tables of ``size`` entries each (an
  ``OrderedDict``): a flood of random tokens churns the refused table only, and cannot push the
  results of real users out.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import OrderedDict
from dataclasses import dataclass
from typing import Final

from mcp_oauth2._rust import AuthenticatedUser
from mcp_oauth2.errors import InsufficientScopeError, TokenValidationError

__all__ = ["CachedResult", "IntrospectionCache", "Refused"]

_KEY_BYTES: Final = 32


@dataclass(frozen=True, slots=True)
class Refused:
    """A refusal to repeat: the error class, its client-safe words and the scopes it challenges
    for (a fresh exception is raised each time, so tracebacks never pile up on a shared one)."""

    error: type[TokenValidationError]
    description: str
    required_scopes: tuple[str, ...] = ()

    @classmethod
    def of(cls, error: TokenValidationError) -> Refused:
        scopes = error.required_scopes if isinstance(error, InsufficientScopeError) else ()
        return cls(type(error), error.description, scopes)

    def exception(self) -> TokenValidationError:
        if issubclass(self.error, InsufficientScopeError):
            return self.error(self.description, self.required_scopes)
        return self.error(self.description)


# What the authorization server's answer came to: the user, or the refusal.
CachedResult = AuthenticatedUser | Refused


@dataclass(slots=True)
class _Entry:
    result: CachedResult
    until: float
    """Wall-clock time (unix seconds) after which the result is no longer used."""


class IntrospectionCache:
    """Bounded, expiring, keyed-hash storage of introspection results."""

    def __init__(self, *, size: int, ttl: float, negative_ttl: float) -> None:
        self.size = size
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        self._key = secrets.token_bytes(_KEY_BYTES)
        self._active: OrderedDict[bytes, _Entry] = OrderedDict()
        self._refused: OrderedDict[bytes, _Entry] = OrderedDict()
        self.evictions = 0

    def key(self, token: str) -> bytes:
        """The digest a token is known by."""
        return hmac.digest(self._key, token.encode(), hashlib.sha256)

    def get(self, key: bytes, now: float) -> CachedResult | None:
        """The result stored under ``key`` while it may be used, else None."""
        for table in (self._active, self._refused):
            entry = table.get(key)
            if entry is None:
                continue
            if now >= entry.until:
                del table[key]
                return None
            table.move_to_end(key)
            return entry.result
        return None

    def put(self, key: bytes, result: CachedResult, now: float) -> None:
        """Keep ``result`` for as long as its kind allows (not at all for a zero lifetime)."""
        if isinstance(result, Refused):
            table, until = self._refused, now + self.negative_ttl
        else:
            table, until = self._active, now + self.ttl
            if result.expires_at is not None:
                until = min(until, float(result.expires_at))
        if until <= now or self.size == 0:
            return
        table[key] = _Entry(result, until)
        table.move_to_end(key)
        while len(table) > self.size:
            table.popitem(last=False)
            self.evictions += 1

    def __len__(self) -> int:
        return len(self._active) + len(self._refused)

    def clear(self) -> None:
        self._active.clear()
        self._refused.clear()
