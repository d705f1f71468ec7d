"""Key sources: where the current ``KeySet`` comes from.

``JWKSCache`` fetches an issuer's JWKS over HTTP and keeps validation going through rotation,
outages and floods:

- one fetch at a time (single flight), shared by every waiting request; a caller that gives up
  does not cancel it, and an older response never replaces a newer one;
- fresh keys are served from memory, and refreshed in the background before they expire, so a
  request on a warm cache never waits for the network;
- ``Cache-Control: max-age`` is honoured within configured bounds;
- a failed refresh never clears the cache: the last good set keeps serving for ``max_stale``
  after it expired, then validation fails closed (``JWKSUnavailableError``, HTTP 503);
- a token naming an unknown ``kid`` (or failing its signature under a known one) may trigger one
  refetch per ``cooldown`` window, across all kids; other misses in the window cost nothing;
  scheduled and startup fetches do not count against that window;
- after a failure, retries back off exponentially (with jitter) in the background.

``StaticKeys`` serves a fixed JWKS (a dict, JSON text, or a file) for offline use and tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import httpx

from mcp_oauth2._discovery import discover_jwks_uri
from mcp_oauth2._http_fetch import FetchError, fetch_document, new_client
from mcp_oauth2._rust import KeySet
from mcp_oauth2._url_rules import require_fetchable_url
from mcp_oauth2.errors import ConfigurationError, JWKSError, JWKSUnavailableError

__all__ = ["CacheSettings", "JWKSCache", "KeySource", "KeySourceStats", "StaticKeys"]

logger = logging.getLogger("mcp_oauth2.jwks")

Clock = Callable[[], float]
# With nothing usable cached, requests may start a fetch this often (seconds), whatever the
# backoff of the background retries.
COLD_RETRY_INTERVAL = 1.0
State = Literal["empty", "fresh", "stale", "failing", "static"]
# RFC 9111 delta-seconds: ASCII digits only (str.isdigit also accepts "²" and other digits).
DELTA_SECONDS = re.compile(r"[0-9]+")
# Skipped keys named in one log line; the rest are counted.
SKIPPED_IN_LOG = 5


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
    """At most one refetch per window triggered by tokens whose key is not (or no longer) in the
    set; scheduled and startup fetches do not count."""
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
        def check(name: str, low: float, high: float, example: str) -> None:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigurationError(f"{name} must be a number, e.g. {name}={example}")
            if not (low <= value <= high) or math.isnan(value):
                raise ConfigurationError(
                    f"{name} must be between {low:g} and {high:g} (got {value!r}), "
                    f"e.g. {name}={example}"
                )

        check("max_age", 1, 7 * 86_400, "600")
        check("min_max_age", 0, 86_400, "60")
        check("max_max_age", 1, 30 * 86_400, "86400")
        check("max_stale", 0, 30 * 86_400, "3600")
        check("cooldown", 0, 3_600, "30")
        check("timeout", 0.1, 120, "5")
        check("max_bytes", 1_024, 16 * 1024 * 1024, "65536")
        check("retries", 0, 10, "2")
        check("refresh_ahead", 0.1, 1.0, "0.8")
        check("max_backoff", 1, 3_600, "60")
        if self.min_max_age > self.max_max_age:
            raise ConfigurationError("min_max_age must not exceed max_max_age")

    def freshness(self, headers: httpx.Headers) -> float:
        """How long a response stays fresh: its ``max-age`` clamped to the bounds, else default."""
        directives = _cache_control(headers.get("cache-control", ""))
        if "no-store" in directives or "no-cache" in directives:
            return self.min_max_age
        raw = directives.get("max-age")
        if raw is None or not DELTA_SECONDS.fullmatch(raw):
            return self.max_age  # absent or not delta-seconds (ASCII digits only): the default
        # RFC 9111 section 1.2.2: a value too large to represent counts as 2**31.
        seconds = int(raw) if len(raw) <= 10 else 2**31
        return float(min(max(seconds, self.min_max_age), self.max_max_age))


def _cache_control(value: str) -> dict[str, str]:
    directives: dict[str, str] = {}
    for part in value.split(","):
        name, _, argument = part.strip().partition("=")
        if name:
            directives[name.lower()] = argument.strip().strip('"')
    return directives


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
    misses: int
    rejected_misses: int
    fetches: int
    failures: int
    last_success: float | None
    """Wall-clock time (unix seconds) of the last successful fetch."""
    age: float | None
    """Seconds since the current key set was fetched."""
    consecutive_failures: int


@runtime_checkable
class KeySource(Protocol):
    """What the authenticator needs from a source of keys."""

    async def get_keys(self) -> KeySet:
        """The current key set; raises ``JWKSUnavailableError`` when none is usable."""
        ...

    async def refresh_after_miss(self, seen: KeySet) -> KeySet | None:
        """A newer key set after a key miss on ``seen``, or None (rate limited, or no change)."""
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

    def get_keys_sync(self) -> KeySet:
        return self._keys

    async def refresh_after_miss(self, seen: KeySet) -> KeySet | None:
        return None

    def stats(self) -> KeySourceStats:
        return KeySourceStats(
            state="static",
            key_count=len(self._keys),
            hits=self._hits,
            misses=0,
            rejected_misses=0,
            fetches=0,
            failures=0,
            last_success=None,
            age=None,
            consecutive_failures=0,
        )

    async def start(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


@dataclass(frozen=True, slots=True)
class _Entry:
    keys: KeySet
    fetched_at: float
    fresh_until: float
    refresh_at: float
    stale_until: float
    wall_time: float


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
        self._jwks_uri = jwks_uri
        self._client = client
        self._owns_client = client is None
        self._clock = clock
        self._entry: _Entry | None = None
        self._inflight: asyncio.Task[_Entry] | None = None
        self._inflight_for_miss = False  # whether the fetch in flight was started by a key miss
        self._retry_task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._started_seq = 0
        self._applied_seq = 0
        self._last_fetch_started: float | None = None
        self._last_miss_fetch: float | None = None  # when a key miss last started a fetch
        self._next_attempt_at = -math.inf
        self._consecutive_failures = 0
        # The kind of the last failure (discovery_failed, issuer_mismatch, jwks_unavailable), so
        # that requests refused without a new attempt report the same cause.
        self._last_failure: type[JWKSUnavailableError] = JWKSUnavailableError
        self._sync_lock = threading.Lock()
        self._closed = False
        self._hits = 0
        self._misses = 0
        self._rejected_misses = 0
        self._fetches = 0
        self._failures = 0

    @property
    def jwks_uri(self) -> str | None:
        """The configured or discovered key URL (None until discovery succeeded)."""
        return self._jwks_uri

    # -- the request path -------------------------------------------------------------------

    async def get_keys(self) -> KeySet:
        now = self._clock()
        entry = self._entry
        if entry is not None and now < entry.stale_until:
            self._hits += 1
            if now >= entry.refresh_at and now >= self._next_attempt_at:
                self._start_refresh()
            if now >= entry.fresh_until:
                logger.debug("serving stale keys (%.0f s past freshness)", now - entry.fresh_until)
            return entry.keys
        # Cold, or expired beyond max_stale: nothing may be served until a fetch succeeds.
        # Background retries back off; requests may still try, at most once per
        # COLD_RETRY_INTERVAL, so a key server that comes up is used at once, never flooded.
        if now < self._next_attempt_at and not self._fetching:
            last = self._last_fetch_started
            if last is not None and now - last < COLD_RETRY_INTERVAL:
                raise self._unavailable("the last refresh failed; not retrying yet")
        entry = await self._await_refresh()
        return entry.keys

    async def refresh_after_miss(self, seen: KeySet) -> KeySet | None:
        self._misses += 1
        entry = self._entry
        if entry is not None and entry.keys is not seen:
            return entry.keys  # a newer set arrived since the caller read its keys
        if self._fetching and not self._inflight_for_miss:
            # A scheduled or startup fetch in flight may have left before the key was published:
            # wait for it, and if it does not know the key either, a miss fetch may follow.
            newer = await self._join_refresh(seen)
            if newer is not None:
                return newer
        if not self._fetching:
            # The miss budget: one miss-triggered fetch per cooldown window. Scheduled,
            # refresh-ahead and startup fetches do not use it up, so a key rotated in just after
            # one of them is fetched for its first token.
            now = self._clock()
            last = self._last_miss_fetch
            cooling = last is not None and now - last < self.settings.cooldown
            if cooling or now < self._next_attempt_at:
                self._rejected_misses += 1
                return None
            self._last_miss_fetch = now
            self._start_refresh(for_miss=True)
        return await self._join_refresh(seen)

    async def _join_refresh(self, seen: KeySet) -> KeySet | None:
        """The outcome of the fetch in flight (or of a new one): its keys if they differ from
        ``seen``, else None (also when it failed)."""
        try:
            fresh = await self._await_refresh()
        except JWKSError:
            return None
        return None if fresh.keys.fingerprint == seen.fingerprint else fresh.keys

    def get_keys_sync(self) -> KeySet:
        """Blocking variant for scripts and command-line tools (not for use inside an event loop).

        Serves the cache like ``get_keys``; when a fetch is needed it runs one on a private
        client in a private event loop.
        """
        now = self._clock()
        entry = self._entry
        if entry is not None and now < entry.fresh_until:
            self._hits += 1
            return entry.keys
        with self._sync_lock:

            async def fetch() -> _Entry:
                async with new_client(self.settings.timeout) as client:
                    return await self._refresh(client)

            try:
                return asyncio.run(fetch()).keys
            except JWKSError:
                entry = self._entry
                if entry is not None and self._clock() < entry.stale_until:
                    return entry.keys
                raise

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Warm the cache before traffic (when ``prefetch``). A failure is logged, not raised:
        the application starts, requests fail closed, and retries back off in the background."""
        if not self.prefetch or self._entry is not None:
            return
        try:
            await self._await_refresh()
        except JWKSError as error:
            logger.warning("key prefetch failed; will retry in the background: %s", error.detail)
        except Exception:
            # _refresh turns every failure into a JWKSError; this is the last line of defence
            # for the promise that the application starts whatever the key server does.
            logger.exception("key prefetch failed; will retry in the background")

    async def aclose(self) -> None:
        self._closed = True
        tasks = [t for t in (self._inflight, self._retry_task, *self._background) if t]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._inflight = None
        self._retry_task = None
        self._background.clear()
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    async def __aenter__(self) -> JWKSCache:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- observability -----------------------------------------------------------------------

    def stats(self) -> KeySourceStats:
        now = self._clock()
        entry = self._entry
        state: State
        if entry is None:
            state = "failing" if self._consecutive_failures else "empty"
        elif now < entry.fresh_until:
            state = "fresh"
        elif now < entry.stale_until:
            state = "stale"
        else:
            state = "failing"
        return KeySourceStats(
            state=state,
            key_count=len(entry.keys) if entry else 0,
            hits=self._hits,
            misses=self._misses,
            rejected_misses=self._rejected_misses,
            fetches=self._fetches,
            failures=self._failures,
            last_success=entry.wall_time if entry else None,
            age=now - entry.fetched_at if entry else None,
            consecutive_failures=self._consecutive_failures,
        )

    # -- fetching ----------------------------------------------------------------------------

    @property
    def _fetching(self) -> bool:
        """Whether a fetch is running (a finished one may wait a loop turn for its callback)."""
        return self._inflight is not None and not self._inflight.done()

    def _start_refresh(self, *, for_miss: bool = False) -> asyncio.Task[_Entry]:
        """The one in-flight refresh, started if none is running (``for_miss``: by a key miss)."""
        if self._inflight is None or self._inflight.done():
            task = asyncio.get_running_loop().create_task(self._refresh(self._shared_client()))
            self._inflight = task
            self._inflight_for_miss = for_miss
            task.add_done_callback(self._refresh_done)
        return self._inflight

    def _refresh_done(self, task: asyncio.Task[_Entry]) -> None:
        if self._inflight is task:
            self._inflight = None
        if not task.cancelled() and task.exception() is not None:
            self._schedule_retry()

    async def _await_refresh(self) -> _Entry:
        # shield: a caller that gives up (a client disconnect, a timeout) must not cancel the
        # fetch other requests are waiting on.
        return await asyncio.shield(self._start_refresh())

    def _shared_client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = new_client(self.settings.timeout)
        return self._client

    async def _refresh(self, client: httpx.AsyncClient) -> _Entry:
        self._started_seq += 1
        seq = self._started_seq
        self._last_fetch_started = self._clock()
        self._fetches += 1
        settings = self.settings
        try:
            if self._jwks_uri is None:
                assert self.issuer is not None
                self._jwks_uri = await discover_jwks_uri(
                    client,
                    self.issuer,
                    deadline=settings.timeout,
                    max_bytes=settings.max_bytes,
                    retries=settings.retries,
                )
            document = await fetch_document(
                client,
                self._jwks_uri,
                deadline=settings.timeout,
                max_bytes=settings.max_bytes,
                retries=settings.retries,
            )
            keys = KeySet.from_jwks(document.body)
            lifetime = settings.freshness(document.headers)
        except Exception as error:
            # Every failure (fetch, decoding, discovery, parsing, freshness) is a counted
            # failed refresh with backoff, never an exception of another kind.
            if isinstance(error, JWKSError):
                detail, reasons = error.detail, error.reasons
            elif isinstance(error, FetchError):
                detail, reasons = str(error), ()
            else:
                detail, reasons = f"{type(error).__name__}: {str(error)[:300]}", ()
            self._record_failure(detail)
            cls = type(error) if isinstance(error, JWKSUnavailableError) else JWKSUnavailableError
            self._last_failure = cls
            raise cls(f"refresh failed: {detail}", reasons, self._retry_after()) from None
        now = self._clock()
        entry = _Entry(
            keys=keys,
            fetched_at=now,
            fresh_until=now + lifetime,
            refresh_at=now + lifetime * settings.refresh_ahead,
            stale_until=now + lifetime + settings.max_stale,
            wall_time=time.time(),
        )
        if seq < self._applied_seq:
            # A fetch that started later has already landed: keep its newer keys.
            assert self._entry is not None
            return self._entry
        self._applied_seq = seq
        previous = self._entry
        self._entry = entry
        self._consecutive_failures = 0
        self._next_attempt_at = -math.inf
        changed = previous is None or previous.keys.fingerprint != keys.fingerprint
        skips_changed = previous is None or previous.keys.skipped != keys.skipped
        if keys.skipped:
            # At WARNING once per change of the key set, not on every refresh: an issuer that
            # always publishes a key this library cannot use (an encryption key) is not news.
            level = logging.WARNING if changed or skips_changed else logging.DEBUG
            logger.log(level, "JWKS %s: %s", self._jwks_uri, skipped_summary(keys.skipped))
        if changed:
            logger.info(
                "fetched %d key(s) %s from %s (fresh for %.0f s)",
                len(keys),
                list(keys.key_ids),
                self._jwks_uri,
                lifetime,
            )
        return entry

    def _record_failure(self, detail: str) -> None:
        self._failures += 1
        self._consecutive_failures += 1
        pause = min(2.0 ** (self._consecutive_failures - 1), self.settings.max_backoff)
        self._next_attempt_at = self._clock() + pause * random.uniform(0.8, 1.2)  # noqa: S311
        state = "serving cached keys" if self._entry is not None else "no keys cached"
        logger.warning(
            "JWKS refresh failed (%d in a row, %s): %s",
            self._consecutive_failures,
            state,
            detail,
        )

    def _retry_after(self) -> int:
        return max(1, math.ceil(self._next_attempt_at - self._clock()))

    def _unavailable(self, why: str) -> JWKSUnavailableError:
        return self._last_failure(
            f"keys of {self._jwks_uri or self.issuer} unavailable: {why}",
            retry_after=self._retry_after(),
        )

    def _schedule_retry(self) -> None:
        """After a failure, keep trying in the background (backing off) until a fetch succeeds."""
        if self._closed or (self._retry_task is not None and not self._retry_task.done()):
            return
        self._retry_task = asyncio.get_running_loop().create_task(self._retry_loop())

    async def _retry_loop(self) -> None:
        while not self._closed and self._consecutive_failures:
            await asyncio.sleep(max(0.0, self._next_attempt_at - self._clock()))
            if self._closed:
                return
            with contextlib.suppress(JWKSError):
                await self._await_refresh()
