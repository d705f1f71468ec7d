"""When a key cache may serve its keys and when it may fetch, decided from the clock alone (no I/O).

``KeySchedule`` is told what happened (a fetch started, succeeded after saying how long its answer
is fresh, failed) and answers what may happen now:

- a key set is fresh for its lifetime (``freshness``: the server's ``Cache-Control: max-age``
  clamped to the configured bounds, or the default), due for a background refresh after
  ``refresh_ahead`` of it, and served stale for ``max_stale`` more while refreshes fail; never
  after that;
- refreshes are never started more often than once per ``MIN_REFRESH_INTERVAL``, whatever the
  server's ``Cache-Control`` and the settings allow (``no-store`` with ``min_max_age=0`` would
  otherwise make every request, readiness probes included, a fetch);
- failures back off (``_backoff.Backoff``): the pause doubles from 1 s up to ``max_backoff``,
  each stretched by a jitter factor in [0.8, 1.2) from an injectable random source; a success
  resets it;
- a key miss (a token whose key id the set in hand does not know) is judged per key id: when a
  set asked for after the id was first seen does not have it, the id is absent (``absent``:
  refused as unknown, for ``cooldown`` seconds, without another fetch); otherwise a fetch is
  needed (``fetch``), at most one per ``MISS_FETCH_INTERVAL`` across all ids and never while
  backing off (``wait``: the token may be valid, so the answer is "try again", not "unknown").
  An attacker's random key ids thus cost at most one fetch a second, and cannot delay a real
  rotation: the next fetch, whoever triggers it, brings the new key for everyone;
- with nothing servable, requests may start a fetch whatever the backoff, but at most once per
  ``COLD_RETRY_INTERVAL``, so a key server that comes back is used at once and never flooded.

``JWKSCache`` keeps one, and does the fetching.
"""

from __future__ import annotations

import math
import random
import re
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from mcp_oauth2._backoff import Backoff
from mcp_oauth2._cache_settings import CacheSettings

__all__ = [
    "COLD_RETRY_INTERVAL",
    "MIN_REFRESH_INTERVAL",
    "MISS_FETCH_INTERVAL",
    "Freshness",
    "KeySchedule",
    "MissVerdict",
    "State",
    "Window",
    "freshness",
]

State = Literal["empty", "fresh", "stale", "failing", "static"]
# What a key miss calls for: a fetch, a refusal of the key id as absent, or waiting (rate limit
# or backoff: the key may exist).
MissVerdict = Literal["fetch", "absent", "wait"]
# With nothing usable cached, requests may start a fetch this often (seconds), whatever the
# backoff of the background retries.
COLD_RETRY_INTERVAL = 1.0
# Scheduled refreshes start at most this often (seconds), whatever the freshness allows.
MIN_REFRESH_INTERVAL = 1.0
# Key misses start a fetch at most this often (seconds), across all key ids.
MISS_FETCH_INTERVAL = 1.0
# Key ids remembered as missed (least recently missed out): a flood of random ids cannot grow it.
MAX_TRACKED_MISSES = 1024
# RFC 9111 delta-seconds: ASCII digits only (str.isdigit also accepts "²" and other digits).
_DELTA_SECONDS = re.compile(r"[0-9]+")


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
    fetch_number: int = 0
    """The number of the fetch that brought it (``fetch_started`` counts from 1): a key id first
    missed before that fetch started was asked for."""


class KeySchedule:
    """The clock-driven rules of one key cache; every method takes ``now`` (monotonic seconds)."""

    def __init__(
        self, settings: CacheSettings, *, random_source: Callable[[], float] = random.random
    ) -> None:
        """``random_source`` returns numbers in [0, 1) for the backoff's jitter."""
        self.settings = settings
        self.backoff = Backoff(first=1.0, cap=settings.max_backoff, random_source=random_source)
        self.window: Window | None = None
        self.last_fetch_started: float | None = None
        self.last_miss_fetch: float | None = None
        self.fetches_started = 0
        # Each missed key id: when it was first missed, and the first fetch that asks for it.
        self._missed: OrderedDict[str | None, tuple[float, int]] = OrderedDict()

    @property
    def consecutive_failures(self) -> int:
        return self.backoff.failures

    @property
    def next_attempt_at(self) -> float:
        """Until when failures back off: no scheduled or miss-triggered fetch before it."""
        return self.backoff.next_attempt_at

    # -- what happened ----------------------------------------------------------------------------

    def fetch_started(self, now: float) -> int:
        """A fetch starts; returns its number."""
        self.last_fetch_started = now
        self.fetches_started += 1
        return self.fetches_started

    def miss_fetch_started(self, now: float) -> None:
        """A key miss starts a fetch: no other miss may start one for ``MISS_FETCH_INTERVAL``."""
        self.last_miss_fetch = now

    def fetch_succeeded(
        self, now: float, lifetime: float, fetch_number: int | None = None
    ) -> Window:
        """A new key set fresh for ``lifetime``, from fetch number ``fetch_number`` (default:
        the last one started): serve it, and forget past failures."""
        settings = self.settings
        self.window = Window(
            fetched_at=now,
            refresh_at=now + lifetime * settings.refresh_ahead,
            fresh_until=now + lifetime,
            stale_until=now + lifetime + settings.max_stale,
            fetch_number=self.fetches_started if fetch_number is None else fetch_number,
        )
        self.backoff.succeeded()
        return self.window

    def fetch_failed(self, now: float) -> float:
        """A failed fetch: back off. Returns the pause before the next attempt."""
        started = self.last_fetch_started if self.last_fetch_started is not None else now
        return self.backoff.failed(started, now)

    # -- what may happen now ----------------------------------------------------------------------

    def servable(self, now: float) -> bool:
        """Whether the key set in hand may be used (fresh, or stale within ``max_stale``)."""
        return self.window is not None and now < self.window.stale_until

    def refresh_due(self, now: float) -> bool:
        """Whether a request should start a background refresh of servable keys."""
        window = self.window
        last = self.last_fetch_started
        return (
            window is not None
            and now >= window.refresh_at
            and not self.backoff.backing_off(now)
            and (last is None or now - last >= MIN_REFRESH_INTERVAL)
        )

    def cold_fetch_allowed(self, now: float) -> bool:
        """With nothing servable: whether a request may start a fetch (at most one per
        ``COLD_RETRY_INTERVAL`` while failures back off)."""
        last = self.last_fetch_started
        backing_off = self.backoff.backing_off(now)
        return not (backing_off and last is not None and now - last < COLD_RETRY_INTERVAL)

    def note_miss(self, kid: str | None, now: float) -> int:
        """A token names ``kid``, which the key set in hand lacks (or whose signature fails
        under it). Returns the number of the first fetch that asks for it: the next one to
        start after it was first missed (within ``cooldown``)."""
        missed = self._missed.get(kid)
        if missed is None or now - missed[0] >= self.settings.cooldown:
            missed = (now, self.fetches_started + 1)
        self._missed[kid] = missed
        self._missed.move_to_end(kid)
        while len(self._missed) > MAX_TRACKED_MISSES:
            self._missed.popitem(last=False)
        return missed[1]

    def miss(self, kid: str | None, now: float) -> MissVerdict:
        """What a miss of ``kid`` calls for, with no fetch in flight: ``absent`` when a key set
        asked for since it was first missed lacks it, else ``fetch``, or ``wait`` when misses
        are rate limited or failures back off."""
        asked_by = self.note_miss(kid, now)
        window = self.window
        if window is not None and window.fetch_number >= asked_by:
            return "absent"
        if self.miss_fetch_allowed(now):
            return "fetch"
        return "wait"

    def miss_fetch_allowed(self, now: float) -> bool:
        """Whether a key miss may start a fetch: once per ``MISS_FETCH_INTERVAL`` across all key
        ids, never while backing off."""
        last = self.last_miss_fetch
        limited = last is not None and now - last < MISS_FETCH_INTERVAL
        return not limited and not self.backoff.backing_off(now)

    def miss_retry_after(self, now: float) -> int:
        """The ``Retry-After`` for a miss that must wait: the backoff, or the rate limit."""
        limit = 0.0
        if self.last_miss_fetch is not None:
            limit = self.last_miss_fetch + MISS_FETCH_INTERVAL - now
        return max(1, math.ceil(max(self.backoff.delay(now), limit)))

    def retry_delay(self, now: float) -> float:
        """Seconds until failures stop backing off (0 when they do not)."""
        return self.backoff.delay(now)

    def retry_after(self, now: float) -> int:
        """The ``Retry-After`` of a 503: whole seconds, at least 1."""
        return self.backoff.retry_after(now)

    def state(self, now: float) -> State:
        window = self.window
        if window is None:
            return "failing" if self.backoff.failures else "empty"
        if now < window.fresh_until:
            return "fresh"
        if now < window.stale_until:
            return "stale"
        return "failing"
