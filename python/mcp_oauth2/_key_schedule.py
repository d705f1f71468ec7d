"""When a key cache may serve its keys and when it may fetch, decided from the clock alone (no I/O).

``KeySchedule`` is told what happened (a fetch started, succeeded after saying how long its answer
is fresh, failed) and answers what may happen now:

- a key set is fresh for its lifetime (``freshness``: the server's ``Cache-Control: max-age``
  clamped to the configured bounds, or the default), due for a background refresh after
  ``refresh_ahead`` of it, and served stale for ``max_stale`` more while refreshes fail; never
  after that;
- failures back off: the pause doubles from 1 s up to ``max_backoff``, each stretched by a jitter
  factor in [0.8, 1.2) from an injectable random source; a success resets it;
- a key miss may start a fetch at most once per ``cooldown`` window, and never while backing
  off; only miss-triggered fetches spend that budget, so a scheduled or startup fetch leaves it
  whole for a key rotated in just after;
- with nothing servable, requests may start a fetch whatever the backoff, but at most once per
  ``COLD_RETRY_INTERVAL``, so a key server that comes back is used at once and never flooded.

``JWKSCache`` keeps one, and does the fetching.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from mcp_oauth2._cache_settings import CacheSettings

__all__ = ["COLD_RETRY_INTERVAL", "Freshness", "KeySchedule", "State", "Window", "freshness"]

State = Literal["empty", "fresh", "stale", "failing", "static"]
# With nothing usable cached, requests may start a fetch this often (seconds), whatever the
# backoff of the background retries.
COLD_RETRY_INTERVAL = 1.0
# RFC 9111 delta-seconds: ASCII digits only (str.isdigit also accepts "²" and other digits).
_DELTA_SECONDS = re.compile(r"[0-9]+")
# The jitter factor of a pause is 0.8 + 0.4 * (a random number in [0, 1)).
_JITTER_LOW, _JITTER_SPAN = 0.8, 0.4


@dataclass(frozen=True, slots=True)
class Freshness:
    """How long an answer stays fresh, and why (for the ``jwks`` and ``check`` commands)."""

    seconds: float
    basis: Literal["no-cache", "max-age", "raised", "capped", "default"]
    """``no-cache`` (``no-cache``/``no-store``: the minimum), ``max-age`` (as sent),
    ``raised`` to the minimum, ``capped`` at the maximum, or the ``default`` (no usable
    ``max-age``)."""
    sent: int | None = None
    """The ``max-age`` the server sent (2**31 for a value too long to represent)."""


def freshness(cache_control: str | None, settings: CacheSettings) -> Freshness:
    """The lifetime an answer with this ``Cache-Control`` gets: its ``max-age`` clamped to
    ``[min_max_age, max_max_age]``, the minimum for ``no-cache``/``no-store``, else ``max_age``."""
    directives: dict[str, str] = {}
    for part in (cache_control or "").split(","):
        name, _, argument = part.strip().partition("=")
        if name:
            directives[name.lower()] = argument.strip().strip('"')
    if "no-store" in directives or "no-cache" in directives:
        return Freshness(settings.min_max_age, "no-cache")
    raw = directives.get("max-age")
    if raw is None or not _DELTA_SECONDS.fullmatch(raw):
        return Freshness(settings.max_age, "default")  # absent, or not delta-seconds
    # RFC 9111 section 1.2.2: a value too large to represent counts as 2**31.
    sent = int(raw) if len(raw) <= 10 else 2**31
    if sent < settings.min_max_age:
        return Freshness(settings.min_max_age, "raised", sent)
    if sent > settings.max_max_age:
        return Freshness(settings.max_max_age, "capped", sent)
    return Freshness(float(sent), "max-age", sent)


@dataclass(frozen=True, slots=True)
class Window:
    """The times of the key set in hand (monotonic seconds)."""

    fetched_at: float
    refresh_at: float
    fresh_until: float
    stale_until: float


class KeySchedule:
    """The clock-driven rules of one key cache; every method takes ``now`` (monotonic seconds)."""

    def __init__(
        self, settings: CacheSettings, *, random_source: Callable[[], float] = random.random
    ) -> None:
        """``random_source`` returns numbers in [0, 1) for the backoff's jitter."""
        self.settings = settings
        self._random = random_source
        self.window: Window | None = None
        self.consecutive_failures = 0
        self.next_attempt_at = -math.inf
        """Until when failures back off: no scheduled or miss-triggered fetch before it."""
        self.last_fetch_started: float | None = None
        self.last_miss_fetch: float | None = None

    # -- what happened ----------------------------------------------------------------------------

    def fetch_started(self, now: float) -> None:
        self.last_fetch_started = now

    def miss_fetch_started(self, now: float) -> None:
        """A key miss starts a fetch: it spends the miss budget of this cooldown window."""
        self.last_miss_fetch = now

    def fetch_succeeded(self, now: float, lifetime: float) -> Window:
        """A new key set fresh for ``lifetime``: serve it, and forget past failures."""
        settings = self.settings
        self.window = Window(
            fetched_at=now,
            refresh_at=now + lifetime * settings.refresh_ahead,
            fresh_until=now + lifetime,
            stale_until=now + lifetime + settings.max_stale,
        )
        self.consecutive_failures = 0
        self.next_attempt_at = -math.inf
        return self.window

    def fetch_failed(self, now: float) -> float:
        """A failed fetch: back off. Returns the pause before the next attempt."""
        self.consecutive_failures += 1
        pause = min(2.0 ** (self.consecutive_failures - 1), self.settings.max_backoff)
        pause *= _JITTER_LOW + _JITTER_SPAN * self._random()
        self.next_attempt_at = now + pause
        return pause

    # -- what may happen now ----------------------------------------------------------------------

    def servable(self, now: float) -> bool:
        """Whether the key set in hand may be used (fresh, or stale within ``max_stale``)."""
        return self.window is not None and now < self.window.stale_until

    def refresh_due(self, now: float) -> bool:
        """Whether a request should start a background refresh of servable keys."""
        window = self.window
        return window is not None and now >= window.refresh_at and now >= self.next_attempt_at

    def cold_fetch_allowed(self, now: float) -> bool:
        """With nothing servable: whether a request may start a fetch (at most one per
        ``COLD_RETRY_INTERVAL`` while failures back off)."""
        last = self.last_fetch_started
        backing_off = now < self.next_attempt_at
        return not (backing_off and last is not None and now - last < COLD_RETRY_INTERVAL)

    def miss_fetch_allowed(self, now: float) -> bool:
        """Whether a key miss may start a fetch: once per ``cooldown``, never while backing off."""
        last = self.last_miss_fetch
        cooling = last is not None and now - last < self.settings.cooldown
        return not cooling and now >= self.next_attempt_at

    def retry_delay(self, now: float) -> float:
        """Seconds until failures stop backing off (0 when they do not)."""
        return max(0.0, self.next_attempt_at - now)

    def retry_after(self, now: float) -> int:
        """The ``Retry-After`` of a 503: whole seconds, at least 1."""
        return max(1, math.ceil(self.retry_delay(now)))

    def state(self, now: float) -> State:
        window = self.window
        if window is None:
            return "failing" if self.consecutive_failures else "empty"
        if now < window.fresh_until:
            return "fresh"
        if now < window.stale_until:
            return "stale"
        return "failing"
