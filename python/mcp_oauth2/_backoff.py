"""How long to wait after failures: the one pause formula, and the failure episodes of an endpoint.

Every wait after a failure in the package comes from ``pause``: a first pause that doubles with
each failure in a row, up to a cap, stretched by a jitter factor in [0.8, 1.2) so that many
processes that failed together do not retry together. The retries inside one HTTP exchange
(``_http_fetch``), the key caches' refreshes (``_key_schedule``) and the calls to introspection
and token endpoints (``_introspection``, ``_token_exchange``) all use it.

``Backoff`` counts the failures of one endpoint as episodes, not as callers: a call that started
before the last counted failure belongs to the same burst and is not counted again. Sixty-four
requests that time out together are one failure, not sixty-four, so the pause reflects how long
the endpoint has been failing, not how many callers noticed.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Final

__all__ = ["Backoff", "pause"]

# The jitter factor of a pause is 0.8 + 0.4 * (a random number in [0, 1)).
_JITTER_LOW: Final = 0.8
_JITTER_SPAN: Final = 0.4


def pause(
    failures: int,
    *,
    first: float,
    cap: float,
    random_source: Callable[[], float] = random.random,
) -> float:
    """The pause after ``failures`` failures in a row (1 or more): ``first`` doubled for each
    failure after the first, at most ``cap``, times a jitter factor in [0.8, 1.2)."""
    base = min(first * 2.0 ** max(failures - 1, 0), cap)
    return base * (_JITTER_LOW + _JITTER_SPAN * random_source())


class Backoff:
    """The failure episodes of one endpoint; every method takes ``now`` from the caller's clock
    (any monotonic scale, as long as one backoff always gets the same one)."""

    def __init__(
        self,
        *,
        first: float = 1.0,
        cap: float = 60.0,
        random_source: Callable[[], float] = random.random,
    ) -> None:
        self.first = first
        self.cap = cap
        self._random = random_source
        self.failures = 0
        """Failure episodes in a row (0 after a success)."""
        self.next_attempt_at = -math.inf
        """Until when the endpoint is left alone."""
        self._counted_at = -math.inf

    def failed(self, started_at: float, now: float) -> float:
        """A call that started at ``started_at`` failed at ``now``: count it, unless a failure
        was already counted since it started (the same burst). Returns the pause still ahead."""
        if started_at < self._counted_at:
            return self.delay(now)
        self.failures += 1
        wait = pause(self.failures, first=self.first, cap=self.cap, random_source=self._random)
        self.next_attempt_at = now + wait
        self._counted_at = now
        return wait

    def episode(self, started_at: float, now: float) -> tuple[int, bool]:
        """``failed``, then the ``Retry-After`` to answer and whether this failure began a new
        episode (what callers log, once per episode)."""
        before = self.failures
        self.failed(started_at, now)
        return self.retry_after(now), self.failures != before

    def succeeded(self) -> None:
        """A call succeeded: the endpoint is healthy again."""
        self.failures = 0
        self.next_attempt_at = -math.inf

    def backing_off(self, now: float) -> bool:
        return now < self.next_attempt_at

    def holds_back(self, now: float, calls_in_flight: int) -> bool:
        """Whether a new call must not be made now: during the pause after a failure, and after
        it beside the one call already probing the endpoint (until a call succeeds)."""
        return self.failures > 0 and (now < self.next_attempt_at or calls_in_flight > 0)

    def delay(self, now: float) -> float:
        """Seconds until the pause ends (0 when there is none)."""
        return max(0.0, self.next_attempt_at - now)

    def retry_after(self, now: float) -> int:
        """The ``Retry-After`` of a 503: whole seconds, at least 1."""
        return max(1, math.ceil(self.delay(now)))
