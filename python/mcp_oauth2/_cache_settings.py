"""``CacheSettings``: the knobs of a ``JWKSCache``, checked once when they are made."""

from __future__ import annotations

import math
from dataclasses import dataclass

from mcp_oauth2._http_fetch import FetchLimits
from mcp_oauth2.errors import ConfigurationError

__all__ = ["CacheSettings"]


@dataclass(frozen=True, slots=True)
class CacheSettings:
    """The knobs of a ``JWKSCache``; every duration is in seconds."""

    max_age: float = 600.0
    """How long a fetched key set is fresh when the server sends no ``Cache-Control: max-age``."""
    min_max_age: float = 60.0
    """Lower bound for a server's ``max-age`` (also used for ``no-cache`` / ``no-store``)."""
    max_max_age: float = 86_400.0
    """Upper bound for a server's ``max-age``."""
    max_stale: float = 3_600.0
    """How long an expired key set keeps serving while refreshes fail; then fail closed."""
    cooldown: float = 30.0
    """How long a key id that a fetch showed absent is refused without another fetch (new key
    ids are fetched at once, at most one miss fetch a second across all ids)."""
    timeout: float = 5.0
    """Total deadline of one refresh, retries included."""
    max_bytes: int = 65_536
    """Largest JWKS or metadata document accepted."""
    retries: int = 2
    """Extra attempts within one refresh after a connection error or a 5xx answer."""
    refresh_ahead: float = 0.8
    """Fraction of the freshness lifetime after which a request starts a background refresh."""
    max_backoff: float = 60.0
    """Longest pause between failed refreshes (the pause doubles from 1 s up to this)."""

    def __post_init__(self) -> None:
        for name, low, high, example in _BOUNDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigurationError(f"{name} must be a number, e.g. {name}={example}")
            if not (low <= value <= high) or math.isnan(value):
                raise ConfigurationError(
                    f"{name} must be between {low:g} and {high:g} (got {value!r}), "
                    f"e.g. {name}={example}"
                )
        if self.min_max_age > self.max_max_age:
            raise ConfigurationError("min_max_age must not exceed max_max_age")

    @property
    def fetch_limits(self) -> FetchLimits:
        """The bounds of each fetch of a refresh (metadata, then the JWKS)."""
        return FetchLimits(deadline=self.timeout, max_bytes=self.max_bytes, retries=self.retries)


# Each setting's range, and a valid example for the error message.
_BOUNDS: tuple[tuple[str, float, float, str], ...] = (
    ("max_age", 1, 7 * 86_400, "600"),
    ("min_max_age", 0, 86_400, "60"),
    ("max_max_age", 1, 30 * 86_400, "86400"),
    ("max_stale", 0, 30 * 86_400, "3600"),
    ("cooldown", 0, 3_600, "30"),
    ("timeout", 0.1, 120, "5"),
    ("max_bytes", 1_024, 16 * 1024 * 1024, "65536"),
    ("retries", 0, 10, "2"),
    ("refresh_ahead", 0.1, 1.0, "0.8"),
    ("max_backoff", 1, 3_600, "60"),
)
