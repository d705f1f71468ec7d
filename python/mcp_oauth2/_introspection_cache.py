"""The memory of RFC 7662 introspection results: what the authorization server said about a
token, kept for a bounded time in a bounded space, under a keyed hash of the token.

- Keys are HMAC-SHA256 digests of the token under a random key made per cache
  (``_keyed_cache.TokenDigest``): the token itself is never stored.
- Active results are kept until the earlier of the token's ``exp`` and ``ttl`` seconds after the
  answer; refused ones (inactive, or failing a claim rule) for ``negative_ttl`` seconds, so that
  a client repeating a bad token costs one call per window, not one per request.
- The two kinds live in separate least-recently-used tables of ``size`` entries each
  (``_keyed_cache.ExpiringLRU``): a flood of random tokens churns the refused table only, and
  cannot push the results of real users out.
"""

from __future__ import annotations

from dataclasses import dataclass

from mcp_oauth2._keyed_cache import ExpiringLRU, TokenDigest
from mcp_oauth2._rust import AuthenticatedUser
from mcp_oauth2.errors import InsufficientScopeError, TokenValidationError

__all__ = ["CachedResult", "IntrospectionCache", "Refused"]


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


class IntrospectionCache:
    """Bounded, expiring, keyed-hash storage of introspection results (``_keyed_cache``)."""

    def __init__(self, *, size: int, ttl: float, negative_ttl: float) -> None:
        self.size = size
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        self.key = TokenDigest()
        """The digest a token is known by: ``cache.key(token)``."""
        self._active: ExpiringLRU[CachedResult] = ExpiringLRU(size)
        self._refused: ExpiringLRU[CachedResult] = ExpiringLRU(size)

    def get(self, key: bytes, now: float) -> CachedResult | None:
        """The result stored under ``key`` while it may be used, else None."""
        found = self._active.get(key, now)
        return found if found is not None else self._refused.get(key, now)

    def put(self, key: bytes, result: CachedResult, now: float) -> None:
        """Keep ``result`` for as long as its kind allows (not at all for a zero lifetime)."""
        if isinstance(result, Refused):
            self._refused.put(key, result, now + self.negative_ttl, now)
            return
        until = now + self.ttl
        if result.expires_at is not None:
            until = min(until, float(result.expires_at))
        self._active.put(key, result, until, now)

    @property
    def evictions(self) -> int:
        return self._active.evictions + self._refused.evictions

    def __len__(self) -> int:
        return len(self._active) + len(self._refused)

    def clear(self) -> None:
        self._active.clear()
        self._refused.clear()
