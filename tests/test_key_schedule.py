"""The key cache's schedule on its own: no HTTP, no event loop, a clock that is a number.

Unit tests pin each rule (freshness from ``Cache-Control``, refresh-ahead, the stale window,
backoff with jitter, the miss budget, the cold retry interval); Hypothesis then drives the
schedule the way ``JWKSCache`` does through random sequences of requests, key misses, fetch
outcomes and clock jumps, and checks the invariants after every step.
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcp_oauth2._key_schedule import (
    COLD_RETRY_INTERVAL,
    MIN_REFRESH_INTERVAL,
    MISS_FETCH_INTERVAL,
    KeySchedule,
    freshness,
)
from mcp_oauth2.lowlevel import CacheSettings

SETTINGS = CacheSettings(
    max_age=600, min_max_age=60, max_max_age=3600, max_stale=900, cooldown=30, max_backoff=60
)


def schedule(jitter: float = 0.5, settings: CacheSettings = SETTINGS) -> KeySchedule:
    """A schedule whose jitter factor is fixed: 0.5 gives exactly 1.0."""
    return KeySchedule(settings, random_source=lambda: jitter)


# -- freshness from Cache-Control ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "seconds", "basis", "sent"),
    [
        (None, 600, "default", None),
        ("", 600, "default", None),
        ("public", 600, "default", None),
        ("max-age=300", 300, "max-age", 300),
        ('max-age="300"', 300, "max-age", 300),
        ("Public, MAX-AGE=300", 300, "max-age", 300),
        ("max-age=5", 60, "raised", 5),
        ("max-age=999999", 3600, "capped", 999999),
        ("max-age=" + "9" * 40, 3600, "capped", 2**31),  # RFC 9111: too large counts as 2**31
        ("max-age=-5", 600, "default", None),
        ("max-age=1e3", 600, "default", None),
        ("max-age=\u00b2", 600, "default", None),  # a digit to str.isdigit, not to RFC 9111
        ("no-cache", 60, "no-cache", None),
        ("max-age=3000, no-store", 60, "no-cache", None),
    ],
)
def test_freshness_follows_cache_control_within_bounds(
    header: str | None, seconds: float, basis: str, sent: int | None
) -> None:
    fresh = freshness(header, SETTINGS)
    assert (fresh.seconds, fresh.basis, fresh.sent) == (seconds, basis, sent)


# -- the life of a key set -----------------------------------------------------------------------


def test_a_key_set_is_fresh_then_due_then_stale_then_gone() -> None:
    keys = schedule()
    assert keys.state(0) == "empty" and not keys.servable(0)
    window = keys.fetch_succeeded(100, lifetime=300)
    assert (window.fetched_at, window.refresh_at, window.fresh_until, window.stale_until) == (
        100,
        100 + 300 * 0.8,
        400,
        400 + 900,
    )
    assert keys.state(399) == "fresh" and not keys.refresh_due(339)
    assert keys.refresh_due(340)  # refresh-ahead: 80% of the lifetime
    assert keys.state(400) == "stale" and keys.servable(1299)
    assert keys.state(1300) == "failing" and not keys.servable(1300)


def test_backoff_doubles_up_to_the_maximum_and_a_success_resets_it() -> None:
    keys = schedule()
    pauses = [keys.fetch_failed(now=0) for _ in range(9)]
    assert pauses == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    assert keys.state(0) == "failing" and keys.consecutive_failures == 9
    assert keys.retry_after(0) == 60 and keys.retry_delay(0) == 60
    keys.fetch_succeeded(1, lifetime=300)
    assert keys.consecutive_failures == 0 and keys.next_attempt_at == -math.inf
    assert keys.fetch_failed(now=2) == 1


@pytest.mark.parametrize(("draw", "factor"), [(0.0, 0.8), (0.5, 1.0), (0.999, 1.1996)])
def test_the_jitter_comes_from_the_random_source(draw: float, factor: float) -> None:
    keys = schedule(jitter=draw)
    keys.fetch_failed(now=0)
    assert keys.fetch_failed(now=10) == pytest.approx(2 * factor)
    assert keys.next_attempt_at == pytest.approx(10 + 2 * factor)


def test_backing_off_holds_refresh_ahead_and_misses() -> None:
    keys = schedule()
    keys.fetch_succeeded(0, lifetime=100)
    keys.fetch_failed(now=90)  # a refresh-ahead that failed: the next may start at 91
    assert not keys.refresh_due(90.5) and not keys.miss_fetch_allowed(90.5)
    assert keys.refresh_due(91) and keys.miss_fetch_allowed(91)
    assert keys.servable(90.5)  # the keys in hand still serve


def test_only_miss_triggered_fetches_spend_the_miss_budget() -> None:
    keys = schedule()
    keys.fetch_succeeded(0, lifetime=600)
    keys.fetch_started(1)  # a scheduled or startup fetch
    assert keys.miss_fetch_allowed(1)
    keys.miss_fetch_started(2)
    keys.fetch_started(2)
    assert not keys.miss_fetch_allowed(2) and not keys.miss_fetch_allowed(2.9)
    keys.fetch_started(2.5)  # scheduled fetches in between change nothing
    assert not keys.miss_fetch_allowed(2.9)
    assert keys.miss_fetch_allowed(2 + MISS_FETCH_INTERVAL)


def test_a_key_id_is_absent_only_once_a_fetch_asked_for_it() -> None:
    keys = schedule()
    keys.fetch_started(0)
    keys.fetch_succeeded(0, lifetime=600)
    assert keys.miss("new", 10) == "fetch"  # never asked for
    keys.miss_fetch_started(10)
    number = keys.fetch_started(10)
    assert keys.miss("other", 10.1) == "wait"  # rate limited: 503, the key may exist
    assert keys.miss_retry_after(10.1) == 1
    keys.fetch_succeeded(10.2, lifetime=600, fetch_number=number)
    assert keys.miss("new", 10.3) == "absent"  # the fetch it started lacks it: unknown
    assert keys.miss("other", 10.3) == "wait"  # that fetch left before "other" was seen
    assert keys.miss("other", 11.0) == "fetch"
    # Within ``cooldown`` an absent id stays absent without a fetch; after it, it is asked
    # for again (once).
    assert keys.miss("new", 10 + SETTINGS.cooldown - 0.1) == "absent"
    assert keys.miss("new", 10 + SETTINGS.cooldown) == "fetch"


def test_scheduled_refreshes_start_at_most_once_a_second() -> None:
    """``no-store`` with ``min_max_age=0`` gives a lifetime of 0: without a floor, every
    request (readiness probes included) would be a key fetch."""
    keys = schedule(settings=CacheSettings(min_max_age=0))
    keys.fetch_started(0)
    keys.fetch_succeeded(0, lifetime=freshness("no-store", keys.settings).seconds)
    assert keys.refresh_due(MIN_REFRESH_INTERVAL)
    keys.fetch_started(1.0)
    keys.fetch_succeeded(1.01, lifetime=0)
    assert not keys.refresh_due(1.5) and not keys.refresh_due(1.99)
    assert keys.refresh_due(2.0)


def test_with_nothing_to_serve_requests_retry_at_most_once_a_second() -> None:
    keys = schedule()
    assert keys.cold_fetch_allowed(0)
    keys.fetch_started(0)
    keys.fetch_failed(now=0.2)  # backing off until 1.2
    assert not keys.cold_fetch_allowed(0.5)
    assert keys.cold_fetch_allowed(COLD_RETRY_INTERVAL)  # a second after the last start
    keys.fetch_started(1.0)
    for _ in range(5):
        keys.fetch_failed(now=1.1)  # a long backoff now
    assert not keys.cold_fetch_allowed(1.9)
    assert keys.cold_fetch_allowed(2.0)


def test_retry_after_is_whole_seconds_and_at_least_one() -> None:
    keys = schedule(jitter=0.0)
    assert keys.retry_after(0) == 1  # not backing off
    keys.fetch_failed(now=0)  # 0.8 s
    assert keys.retry_after(0) == 1
    keys.fetch_failed(now=0)  # 1.6 s
    assert keys.retry_after(0) == 2 and keys.retry_after(5) == 1


# -- random sequences of events ------------------------------------------------------------------


@dataclass
class Driver:
    """Drives a schedule as ``JWKSCache`` does, with at most one fetch in flight, and records
    what the invariants are checked against."""

    settings: CacheSettings
    keys: KeySchedule
    now: float = 0.0
    in_flight: str | None = None  # "miss", "scheduled", "cold" or "retry"
    in_flight_number: int = 0
    miss_starts: list[float] = field(default_factory=list)
    refresh_starts: list[float] = field(default_factory=list)
    # Each key id: when it was first missed (within cooldown), and the fetches that had started
    # by then; the number of the last fetch that succeeded.
    first_missed: dict[str, tuple[float, int]] = field(default_factory=dict)
    succeeded_number: int = 0
    cold_starts_backing_off: list[float] = field(default_factory=list)
    last_success: tuple[float, float] | None = None  # (when, lifetime)
    base_pauses: list[float] = field(default_factory=list)  # since the last success

    def start(self, kind: str) -> None:
        self.in_flight_number = self.keys.fetch_started(self.now)
        self.in_flight = kind

    def request(self) -> None:
        if self.keys.servable(self.now):
            if self.keys.refresh_due(self.now) and self.in_flight is None:
                self.refresh_starts.append(self.now)
                self.start("scheduled")
        elif self.in_flight is None and self.keys.cold_fetch_allowed(self.now):
            if self.now < self.keys.next_attempt_at:
                self.cold_starts_backing_off.append(self.now)
            self.start("cold")

    def background_retry(self) -> None:
        """The retry loop after a failure: sleep out the backoff, then fetch."""
        if self.in_flight is None and self.keys.consecutive_failures:
            self.now += self.keys.retry_delay(self.now)
            self.start("retry")

    def miss(self, kid: str) -> None:
        first = self.first_missed.get(kid)
        if first is None or self.now - first[0] >= self.settings.cooldown:
            self.first_missed[kid] = (self.now, self.keys.fetches_started)
        if self.in_flight is not None:
            self.keys.note_miss(kid, self.now)
            return
        verdict = self.keys.miss(kid, self.now)
        if verdict == "absent":
            # Only once a fetch that started after the id was first missed has succeeded.
            assert self.succeeded_number > self.first_missed[kid][1]
        elif verdict == "fetch":
            # Never while failures back off: misses cannot hurry a failing key server.
            assert self.now >= self.keys.next_attempt_at
            self.keys.miss_fetch_started(self.now)
            self.miss_starts.append(self.now)
            self.start("miss")

    def finish(self, ok: bool, lifetime: float) -> None:
        if self.in_flight is None:
            return
        self.in_flight = None
        if ok:
            self.keys.fetch_succeeded(self.now, lifetime, self.in_flight_number)
            self.succeeded_number = self.in_flight_number
            self.last_success = (self.now, lifetime)
            self.base_pauses.clear()
        else:
            failures = self.keys.consecutive_failures + 1
            pause = self.keys.fetch_failed(self.now)
            base = min(2.0 ** (failures - 1), self.settings.max_backoff)
            assert 0.8 * base <= pause < 1.2 * base + 1e-9
            self.base_pauses.append(base)

    def check(self) -> None:
        settings, keys, now = self.settings, self.keys, self.now
        # Never more than one miss-triggered fetch per interval, nor scheduled refreshes.
        for earlier, later in itertools.pairwise(self.miss_starts):
            assert later - earlier >= MISS_FETCH_INTERVAL
        for earlier, later in itertools.pairwise(self.refresh_starts):
            assert later - earlier >= MIN_REFRESH_INTERVAL
        # While backing off, requests start at most one fetch per cold retry interval.
        starts = self.cold_starts_backing_off
        for earlier, later in itertools.pairwise(starts):
            assert later - earlier >= COLD_RETRY_INTERVAL
        # Stale keys are never served past max_stale; fresh ones are fresh.
        if keys.servable(now):
            assert self.last_success is not None
            when, lifetime = self.last_success
            assert now < when + lifetime + settings.max_stale
            assert (keys.state(now) == "fresh") == (now < when + lifetime)
        elif self.last_success is not None:
            when, lifetime = self.last_success
            assert now >= when + lifetime + settings.max_stale
        # Backoff is monotone up to its maximum, and a success resets it.
        assert self.base_pauses == sorted(self.base_pauses)
        assert all(pause <= settings.max_backoff for pause in self.base_pauses)
        assert keys.consecutive_failures == len(self.base_pauses)
        if not self.base_pauses:
            assert keys.next_attempt_at == -math.inf
        assert keys.retry_after(now) >= 1


# A step: what happens, then (for one that may start a fetch) how that fetch ends, if it ends
# within the step: None (still in flight), a lifetime (success) or "failure".
outcomes = st.none() | st.just("failure") | st.floats(0, 4000, allow_nan=False)
events = st.one_of(
    st.tuples(st.just("advance"), st.floats(0, 120, allow_nan=False), st.none()),
    st.tuples(st.sampled_from(["request", "miss", "retry"]), st.just(0.0), outcomes),
    st.tuples(st.sampled_from(["success", "failure"]), st.floats(0, 4000), st.none()),
)

cache_settings = st.builds(
    CacheSettings,
    max_age=st.floats(1, 7200),
    min_max_age=st.floats(0, 60),
    max_max_age=st.floats(60, 7200),
    max_stale=st.floats(0, 3600),
    cooldown=st.sampled_from([0.0, 30.0]) | st.floats(0, 120),
    max_backoff=st.sampled_from([1.0, 2.0, 8.0, 60.0]) | st.floats(1, 300),
    refresh_ahead=st.floats(0.1, 1.0),
)


@settings(max_examples=300, deadline=None)
@given(settings_=cache_settings, steps=st.lists(events, min_size=20, max_size=60), rng=st.randoms())
def test_invariants_hold_over_random_event_sequences(
    settings_: CacheSettings, steps: list[tuple[str, float, float | str | None]], rng: random.Random
) -> None:
    driver = Driver(settings_, KeySchedule(settings_, random_source=rng.random))

    def finish(ok: bool, max_age: float) -> None:
        driver.finish(ok, freshness(f"max-age={int(max_age)}", settings_).seconds)

    for kind, value, outcome in steps:
        if kind == "advance":
            driver.now += value
        elif kind == "request":
            driver.request()
        elif kind == "miss":
            driver.miss(rng.choice("abc"))
        elif kind == "retry":
            driver.background_retry()
        else:
            finish(kind == "success", value)
        driver.check()
        if outcome is not None:
            finish(outcome != "failure", 0 if outcome == "failure" else float(outcome))
            driver.check()
