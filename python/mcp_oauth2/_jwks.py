"""Key sources: where the current ``KeySet`` comes from.

``JWKSCache`` keeps an issuer's JWKS through rotation, outages and floods. It is the thin part
that joins two others: ``KeySchedule`` (``_key_schedule``) decides from the clock when keys may
be served and when to fetch, and ``KeyFetcher`` (``_key_fetcher``) fetches. The cache itself runs
one fetch at a time (``_upstream.SingleFlight``), shared by every waiting request (a caller that
gives up does not cancel it; sequence numbers keep an older response from replacing a newer one),
retries in the background after failures, counts what happens (``stats()``) and logs when the key
set changes:

- fresh keys are served from memory, and refreshed in the background before they expire, so a
  request on a warm cache never waits for the network;
- a failed refresh never clears the cache: the last good set keeps serving for ``max_stale``
  after it expired, then validation fails closed (``JWKSUnavailableError``, HTTP 503);
- a token naming an unknown ``kid`` (or failing its signature under a known one) is judged per
  key id (``KeySchedule.miss``): a key id never asked for is fetched promptly (one miss fetch
  per second at most, across all ids), one that a fetch showed absent is refused as unknown for
  ``cooldown`` seconds; when the rate limit, a backoff or a failed fetch prevents the answer,
  the token is not refused as unknown: the answer is ``JWKSUnavailableError`` (503 with
  ``Retry-After``), as the key may exist.

``StaticKeys`` serves a fixed JWKS (a dict, JSON text, or a file) for offline use and tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, get_args, runtime_checkable

import httpx

from mcp_oauth2._cache_settings import CacheSettings
from mcp_oauth2._key_fetcher import FetchedKeys, KeyFetcher, SpanFactory
from mcp_oauth2._key_schedule import KeySchedule, State
from mcp_oauth2._rust import KeySet
from mcp_oauth2._upstream import SingleFlight, Upstream
from mcp_oauth2._url_rules import require_fetchable_url
from mcp_oauth2.errors import ConfigurationError, JWKSError, JWKSUnavailableError

__all__ = [
    "USABLE_STATES",
    "JWKSCache",
    "KeySource",
    "KeySourceStats",
    "StaticKeys",
    "skipped_summary",
]

logger = logging.getLogger("mcp_oauth2.jwks")

Clock = Callable[[], float]
# What a JWKSCache counts (named as in KeySourceStats).
Counted = Literal["hits", "misses", "rejected_misses", "fetches", "successes", "failures"]
# Skipped keys named in one log line; the rest are counted.
SKIPPED_IN_LOG = 5


def skipped_summary(reasons: tuple[str, ...]) -> str:
    """One log line for the keys a document's parse skipped, however many there were."""
    shown = "; ".join(reasons[:SKIPPED_IN_LOG])
    more = len(reasons) - SKIPPED_IN_LOG
    return f"skipped {len(reasons)} key(s): {shown}" + (f"; and {more} more" if more > 0 else "")


@dataclass(frozen=True, slots=True)
class KeySourceStats:
    """A snapshot for health checks and metrics."""

    state: State
    key_count: int
    hits: int
    misses: int = 0
    rejected_misses: int = 0
    fetches: int = 0
    failures: int = 0
    last_success: float | None = None
    """Wall-clock time (unix seconds) of the last successful fetch."""
    age: float | None = None
    """Seconds since the current key set was fetched."""
    consecutive_failures: int = 0
    successes: int = 0
    """Fetches that succeeded (``fetches`` also counts those in flight)."""
    last_failure: str | None = None
    """The ``code`` of the last failed refresh (``jwks_unavailable``, ``discovery_failed``,
    ``issuer_mismatch``), kept after a success; the log line of the failure says more."""
    last_failure_at: float | None = None
    """Wall-clock time (unix seconds) of the last failed refresh."""

    @property
    def usable_key_count(self) -> int:
        """The keys a request may be validated with now: ``key_count`` while the set is
        ``fresh``, ``stale`` (within ``max_stale``) or ``static``, else 0."""
        return self.key_count if self.state in USABLE_STATES else 0


# The states in which a source serves its keys.
USABLE_STATES: frozenset[State] = frozenset({"fresh", "stale", "static"})


@runtime_checkable
class KeySource(Protocol):
    """What the authenticator needs from a source of keys."""

    async def get_keys(self) -> KeySet:
        """The current key set; raises ``JWKSUnavailableError`` when none is usable."""
        ...

    async def refresh_after_miss(self, seen: KeySet, kid: str | None = None) -> KeySet | None:
        """A newer key set after a miss of key ``kid`` on ``seen``, or None: the key is absent
        (a set asked for since the miss does not have it).

        Raises ``JWKSUnavailableError`` when the key server could not be asked (the refetch
        failed, failures are backing off, or misses are rate limited): the key may exist, so the
        miss proves nothing.
        """
        ...

    def stats(self) -> KeySourceStats: ...

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...


class StaticKeys:
    """A fixed key set, from a JWKS dict, its JSON text, or a path to a JSON file."""

    def __init__(self, jwks: Mapping[str, Any] | str | bytes | Path) -> None:
        if isinstance(jwks, Path):
            jwks = jwks.read_bytes()
        self._keys = KeySet.from_jwks(jwks)
        if self._keys.skipped:
            logger.warning("static JWKS: %s", skipped_summary(self._keys.skipped))
        self._hits = 0

    @property
    def keys(self) -> KeySet:
        return self._keys

    async def get_keys(self) -> KeySet:
        self._hits += 1
        return self._keys

    async def refresh_after_miss(self, seen: KeySet, kid: str | None = None) -> KeySet | None:
        return None

    def stats(self) -> KeySourceStats:
        return KeySourceStats(state="static", key_count=len(self._keys), hits=self._hits)

    async def start(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


class JWKSCache:
    """A JWKS fetched from ``jwks_uri``, or discovered from ``issuer``'s metadata.

    Use one per issuer and share it; call ``start()`` when the application starts (optionally
    warming the cache) and ``aclose()`` when it stops. ``clock`` (monotonic seconds) is
    injectable for tests.
    """

    def __init__(
        self,
        *,
        jwks_uri: str | None = None,
        issuer: str | None = None,
        settings: CacheSettings | None = None,
        client: httpx.AsyncClient | None = None,
        clock: Clock = time.monotonic,
        prefetch: bool = True,
    ) -> None:
        if (jwks_uri is None) == (issuer is None):
            raise ConfigurationError(
                "give exactly one of jwks_uri (fetch keys there) or issuer (discover jwks_uri "
                "from its metadata), e.g. JWKSCache(issuer='https://auth.example.com')"
            )
        for name, value in (("jwks_uri", jwks_uri), ("issuer", issuer)):
            if value is not None:
                try:
                    require_fetchable_url(value, name)
                except ValueError as error:
                    raise ConfigurationError(str(error)) from None
        self.issuer = issuer
        self.settings = settings or CacheSettings()
        self.prefetch = prefetch
        self._fetcher = KeyFetcher(
            jwks_uri=jwks_uri, issuer=issuer, settings=self.settings, client=client
        )
        self._schedule = KeySchedule(self.settings)
        self._clock = clock
        self._keys: KeySet | None = None
        self._fetched_wall_time: float | None = None
        self._flight: SingleFlight[None, KeySet] = SingleFlight()
        self._retry_task: asyncio.Task[None] | None = None
        self._started_seq = 0
        self._applied_seq = 0
        # The kind of the last failure (discovery_failed, issuer_mismatch, jwks_unavailable), so
        # that requests refused without a new attempt report the same cause.
        self._last_failure: type[JWKSUnavailableError] = JWKSUnavailableError
        self._last_failure_at: float | None = None  # wall-clock time, for stats()
        self._sync_lock = threading.Lock()
        self._closed = False
        self._counts: dict[Counted, int] = dict.fromkeys(get_args(Counted), 0)

    @property
    def jwks_uri(self) -> str | None:
        """The configured or discovered key URL (None until discovery succeeded)."""
        return self._fetcher.jwks_uri

    def trace_fetches(self, span: SpanFactory) -> None:
        """Wrap each key fetch, and discovery, in ``span(name, attributes)`` (for tracing:
        ``mcp_oauth2.telemetry`` passes OpenTelemetry spans)."""
        self._fetcher.span = span

    # -- the request path -------------------------------------------------------------------

    async def get_keys(self) -> KeySet:
        now = self._clock()
        schedule = self._schedule
        if self._keys is not None and schedule.servable(now):
            self._counts["hits"] += 1
            if schedule.refresh_due(now):
                self._start_refresh()
            if schedule.state(now) == "stale":
                logger.debug("serving stale keys; refreshes are failing")
            return self._keys
        # Cold, or expired beyond max_stale: nothing may be served until a fetch succeeds.
        if not self._fetching and not schedule.cold_fetch_allowed(now):
            raise self._last_failure(
                f"keys of {self.jwks_uri or self.issuer} unavailable: the last refresh failed; "
                "not retrying yet",
                retry_after=schedule.retry_after(now),
            )
        return await self._await_refresh()

    async def refresh_after_miss(self, seen: KeySet, kid: str | None = None) -> KeySet | None:
        self._counts["misses"] += 1
        if self._keys is not None and self._keys is not seen:
            return self._keys  # a newer set arrived since the caller read its keys
        self._schedule.note_miss(kid, self._clock())
        # At most: the fetch in flight, then one this miss starts; after that the verdict is
        # "absent" (a fetch that asked for the key has landed) or "wait".
        for _ in range(3):
            if self._fetching:
                fresh = await self._await_refresh()
                if fresh.fingerprint != seen.fingerprint:
                    return fresh
                continue
            now = self._clock()
            verdict = self._schedule.miss(kid, now)
            if verdict == "absent":
                self._counts["rejected_misses"] += 1
                return None
            if verdict == "wait":
                # Rate limited or backing off: whether the issuer has the key is unknown.
                self._counts["rejected_misses"] += 1
                cause = (
                    "refreshes are failing"
                    if self._schedule.consecutive_failures
                    else "key refetches are rate limited"
                )
                raise self._last_failure(
                    f"keys of {self.jwks_uri or self.issuer} unavailable: a token names a key "
                    f"not cached, and {cause}",
                    retry_after=self._schedule.miss_retry_after(now),
                )
            self._schedule.miss_fetch_started(now)
            self._start_refresh()
        return None

    def get_keys_sync(self) -> KeySet:
        """Blocking variant for scripts and command-line tools (not for use inside an event loop).

        Serves the cache like ``get_keys``; when a fetch is needed it runs one on a private
        client in a private event loop.
        """
        window = self._schedule.window
        if self._keys is not None and window is not None and self._clock() < window.fresh_until:
            self._counts["hits"] += 1
            return self._keys
        with self._sync_lock:

            async def fetch() -> KeySet:
                upstream = self._fetcher.new_upstream()
                try:
                    return await self._refresh(upstream)
                finally:
                    await upstream.aclose()

            try:
                return asyncio.run(fetch())
            except JWKSError:
                if self._keys is not None and self._schedule.servable(self._clock()):
                    return self._keys
                raise

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Warm the cache before traffic (when ``prefetch``). A failure is logged, not raised:
        the application starts, requests fail closed, and retries back off in the background."""
        if not self.prefetch or self._keys is not None:
            return
        try:
            await self._await_refresh()
        except JWKSError as error:  # the fetcher turns every failure into one
            logger.warning("key prefetch failed; will retry in the background: %s", error.detail)

    async def aclose(self) -> None:
        self._closed = True
        if self._retry_task is not None:
            self._retry_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._retry_task
            self._retry_task = None
        await self._flight.aclose()
        await self._fetcher.aclose()

    async def __aenter__(self) -> JWKSCache:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- observability -----------------------------------------------------------------------

    def stats(self) -> KeySourceStats:
        now = self._clock()
        window = self._schedule.window
        counts = self._counts
        return KeySourceStats(
            state=self._schedule.state(now),
            key_count=len(self._keys) if self._keys is not None else 0,
            hits=counts["hits"],
            misses=counts["misses"],
            rejected_misses=counts["rejected_misses"],
            fetches=counts["fetches"],
            failures=counts["failures"],
            last_success=self._fetched_wall_time,
            age=now - window.fetched_at if window is not None else None,
            consecutive_failures=self._schedule.consecutive_failures,
            successes=counts["successes"],
            last_failure=self._last_failure.code if self._last_failure_at is not None else None,
            last_failure_at=self._last_failure_at,
        )

    # -- fetching ----------------------------------------------------------------------------

    @property
    def _fetching(self) -> bool:
        """Whether a fetch is running."""
        return self._flight.running(None)

    def _start_refresh(self) -> asyncio.Task[KeySet]:
        """The one in-flight refresh, started if none is running."""
        if self._fetching:
            return self._flight.start(None, self._refresh)  # the one running
        task = self._flight.start(None, self._refresh)
        task.add_done_callback(self._refresh_done)
        return task

    def _refresh_done(self, task: asyncio.Task[KeySet]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self._schedule_retry()

    async def _await_refresh(self) -> KeySet:
        # shield: a caller that gives up (a client disconnect, a timeout) must not cancel the
        # fetch other requests are waiting on.
        return await asyncio.shield(self._start_refresh())

    async def _refresh(self, upstream: Upstream | None = None) -> KeySet:
        """One fetch, applied unless a fetch that started later has landed first."""
        self._started_seq += 1
        seq = self._started_seq
        number = self._schedule.fetch_started(self._clock())
        self._counts["fetches"] += 1
        try:
            fetched = await self._fetcher.fetch(upstream)
        except JWKSUnavailableError as failure:
            raise self._failed(failure) from None
        self._counts["successes"] += 1
        if seq < self._applied_seq:
            assert self._keys is not None
            return self._keys  # a fetch that started later has landed: keep its newer keys
        self._applied_seq = seq
        self._apply(fetched, number)
        return fetched.keys

    def _failed(self, failure: JWKSUnavailableError) -> JWKSUnavailableError:
        """Count and log a failed refresh, back off, and say when to retry."""
        now = self._clock()
        self._counts["failures"] += 1
        self._schedule.fetch_failed(now)
        state = "serving cached keys" if self._keys is not None else "no keys cached"
        logger.warning(
            "JWKS refresh failed (%d in a row, %s): %s",
            self._schedule.consecutive_failures,
            state,
            failure.detail,
        )
        self._last_failure = type(failure)
        self._last_failure_at = time.time()
        return type(failure)(
            f"refresh failed: {failure.detail}", failure.reasons, self._schedule.retry_after(now)
        )

    def _apply(self, fetched: FetchedKeys, fetch_number: int) -> None:
        """Serve the new keys; log when the set, or what it skipped, changed."""
        keys, previous = fetched.keys, self._keys
        self._schedule.fetch_succeeded(self._clock(), fetched.lifetime, fetch_number)
        self._keys = keys
        self._fetched_wall_time = time.time()
        changed = previous is None or previous.fingerprint != keys.fingerprint
        skips_changed = previous is None or previous.skipped != keys.skipped
        if keys.skipped:
            # At WARNING once per change of the key set, not on every refresh: an issuer that
            # always publishes a key this library cannot use (an encryption key) is not news.
            level = logging.WARNING if changed or skips_changed else logging.DEBUG
            logger.log(level, "JWKS %s: %s", self.jwks_uri, skipped_summary(keys.skipped))
        if changed:
            logger.info(
                "fetched %d key(s) %s from %s (fresh for %.0f s)",
                len(keys),
                list(keys.key_ids),
                self.jwks_uri,
                fetched.lifetime,
            )

    def _schedule_retry(self) -> None:
        """After a failure, keep trying in the background (backing off) until a fetch succeeds."""
        if self._closed or (self._retry_task is not None and not self._retry_task.done()):
            return
        self._retry_task = asyncio.get_running_loop().create_task(self._retry_loop())

    async def _retry_loop(self) -> None:
        while not self._closed and self._schedule.consecutive_failures:
            await asyncio.sleep(self._schedule.retry_delay(self._clock()))
            if self._closed:
                return
            with contextlib.suppress(JWKSError):
                await self._await_refresh()
