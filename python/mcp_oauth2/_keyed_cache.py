"""What is remembered about a token: a bounded, expiring, least-recently-used table whose keys are
keyed hashes of the token (and of whatever else the entry depends on), never the token itself.

- ``TokenDigest`` turns a token and its companions (an audience, scopes, ...) into an
  HMAC-SHA256 digest under a random key made per digest object, so per process: the token is
  never stored, and a digest seen in a memory dump or a metric says nothing about it. The parts
  are length-prefixed, so no two different lists of parts give the same message.
- ``ExpiringLRU`` keeps each value until the time it was given (unix seconds) and at most
  ``size`` values: the least recently used one goes first (an ``OrderedDict``).

The introspection results (``_introspection_cache``) and the exchanged tokens
(``_token_exchange``) are both kept here.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import OrderedDict
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

__all__ = ["ExpiringLRU", "TokenDigest"]

_KEY_BYTES: Final = 32
Value = TypeVar("Value")


class TokenDigest:
    """Keyed digests of tokens, under a random key of its own."""

    __slots__ = ("_key",)

    def __init__(self) -> None:
        self._key = secrets.token_bytes(_KEY_BYTES)

    def __call__(self, *parts: str) -> bytes:
        """The digest ``parts`` are known by (one part: the token alone)."""
        if len(parts) == 1:
            return hmac.digest(self._key, parts[0].encode(), hashlib.sha256)
        message = b"".join(
            len(encoded).to_bytes(4, "big") + encoded for encoded in (p.encode() for p in parts)
        )
        return hmac.digest(self._key, message, hashlib.sha256)

    def __repr__(self) -> str:
        return "TokenDigest()"


@dataclass(slots=True)
class _Entry(Generic[Value]):
    value: Value
    until: float
    """Wall-clock time (unix seconds) from which the value is no longer used."""


class ExpiringLRU(Generic[Value]):
    """At most ``size`` values, each until its own time; the least recently used out first."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.evictions = 0
        """Values pushed out to make room (expired ones are not counted)."""
        self._entries: OrderedDict[bytes, _Entry[Value]] = OrderedDict()

    def get(self, key: bytes, now: float) -> Value | None:
        """The value stored under ``key`` while it may be used, else None."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if now >= entry.until:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry.value

    def put(self, key: bytes, value: Value, until: float, now: float) -> None:
        """Keep ``value`` until ``until`` (not at all when that is not after ``now``)."""
        if until <= now or self.size <= 0:
            return
        self._entries[key] = _Entry(value, until)
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
            self.evictions += 1

    def discard(self, key: bytes) -> None:
        self._entries.pop(key, None)

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()
