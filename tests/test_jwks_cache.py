"""JWKSCache and Authenticator against a real key server on loopback (``LocalIssuer``).

The server counts the requests it actually receives and can be told to rotate keys, refuse
connections, hang, or answer with errors and junk. Time-dependent behaviour (freshness, cooldown,
stale window, backoff) runs on an injectable clock, so no test sleeps for long.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import string
import tracemalloc
from collections import Counter
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from mcp_oauth2 import OAuth2Config, OAuth2Middleware
from mcp_oauth2.errors import (
    ConfigurationError,
    DiscoveryError,
    InvalidIssuerError,
    IssuerMismatchError,
    JWKSUnavailableError,
    TokenValidationError,
)
from mcp_oauth2.lowlevel import Authenticator, CacheSettings, JWKSCache, StaticKeys, TokenValidator
from mcp_oauth2.testing import BOMB_DECODED_BYTES, AppServer, LocalIssuer

pytestmark = pytest.mark.anyio

AUDIENCE = "https://mcp.example.com/mcp"


class FakeClock:
    """Monotonic seconds that move only when a test says so."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def issuer() -> AsyncIterator[LocalIssuer]:
    local = LocalIssuer(default_audience=AUDIENCE)
    async with local.serve_async():
        yield local


def jwks_url(issuer: LocalIssuer) -> str:
    return str(issuer.metadata()["jwks_uri"])


@pytest.fixture
async def cache(issuer: LocalIssuer, clock: FakeClock) -> AsyncIterator[JWKSCache]:
    settings = CacheSettings(timeout=2.0, retries=1)
    async with JWKSCache(jwks_uri=jwks_url(issuer), settings=settings, clock=clock) as jwks:
        yield jwks


def authenticator_for(issuer: LocalIssuer, cache: JWKSCache) -> Authenticator:
    validator = TokenValidator(issuer.issuer, AUDIENCE, algorithms=["RS256", "ES256"])
    return Authenticator(validator, cache)


async def settle() -> None:
    """Let background tasks (refresh-ahead, retries) run."""
    for _ in range(20):
        await asyncio.sleep(0.01)


async def until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    """Wait (in real time) until a background refresh has had its effect."""
    for _ in range(int(seconds / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached")


# -- single flight and warm path -------------------------------------------------------------


async def test_cold_cache_hundred_concurrent_validations_one_fetch(issuer: LocalIssuer) -> None:
    async with JWKSCache(jwks_uri=jwks_url(issuer), prefetch=False) as cache:
        auth = authenticator_for(issuer, cache)
        tokens = [issuer.mint(subject=f"user-{i}") for i in range(100)]
        users = await asyncio.gather(*(auth.authenticate(t) for t in tokens))
        assert [u.subject for u in users] == [f"user-{i}" for i in range(100)]
        assert issuer.jwks_requests == 1
        assert cache.stats().fetches == 1


async def test_warm_cache_serves_without_the_network(issuer: LocalIssuer, cache: JWKSCache) -> None:
    assert issuer.jwks_requests == 1  # the prefetch at start
    auth = authenticator_for(issuer, cache)
    for _ in range(50):
        await auth.authenticate(issuer.mint())
    assert issuer.jwks_requests == 1
    stats = cache.stats()
    assert stats.state == "fresh" and stats.key_count == 2 and stats.hits >= 50


async def test_caller_giving_up_does_not_cancel_the_shared_fetch(issuer: LocalIssuer) -> None:
    async with JWKSCache(jwks_uri=jwks_url(issuer), prefetch=False) as cache:
        waiter = asyncio.ensure_future(cache.get_keys())
        await asyncio.sleep(0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        keys = await cache.get_keys()  # joins or follows the fetch the first caller started
        assert len(keys) == 2
        assert issuer.jwks_requests == 1


async def test_refresh_ahead_in_the_background(
    issuer: LocalIssuer, cache: JWKSCache, clock: FakeClock
) -> None:
    clock.advance(0.85 * 600)  # past refresh_ahead (0.8) of the default 600 s freshness
    keys = await cache.get_keys()  # answers at once from memory
    assert len(keys) == 2
    await settle()
    assert issuer.jwks_requests == 2
    assert cache.stats().age == 0


async def test_no_store_with_no_minimum_fetches_at_most_once_a_second(
    issuer: LocalIssuer, clock: FakeClock
) -> None:
    """``Cache-Control: no-store`` and ``jwks_min_max_age=0`` give keys a lifetime of 0: every
    request, readiness probes included, would start a fetch without the one-second floor."""
    issuer.cache_control = "no-store"
    settings = CacheSettings(min_max_age=0, timeout=2.0)
    async with JWKSCache(jwks_uri=jwks_url(issuer), settings=settings, clock=clock) as cache:
        assert issuer.jwks_requests == 1  # the prefetch
        auth = authenticator_for(issuer, cache)
        for _ in range(5):
            for _ in range(50):
                assert (await auth.authenticate(issuer.mint())).subject == "user-1"
                await cache.get_keys()
                await auth.readiness(wait=0)
            await settle()
            clock.advance(0.25)
        # 1.25 s of the clock: the prefetch, then one refresh at most per second.
        assert issuer.jwks_requests <= 1 + 2


# -- unknown kids and rotation ---------------------------------------------------------------


async def test_random_unknown_kids_cost_at_most_one_fetch_a_second(
    issuer: LocalIssuer, cache: JWKSCache, clock: FakeClock
) -> None:
    """A flood of random key ids: never accepted, at most one key fetch per second, and each
    answer is either "unknown" (a fetch asked for the id) or "try again" (503), never a
    verdict without a fetch that asked."""
    auth = authenticator_for(issuer, cache)
    rng = random.Random(7)

    def random_kid() -> str:
        return "".join(rng.choices(string.ascii_letters, k=16))

    for second in range(3):
        results = await asyncio.gather(
            *(auth.authenticate(issuer.mint(kid=random_kid())) for _ in range(1000)),
            return_exceptions=True,
        )
        codes = Counter(getattr(r, "code", type(r).__name__) for r in results)
        assert set(codes) <= {"key_not_found", "jwks_unavailable"}, codes
        # The one id that started the fetch is known to be absent; the others joined a fetch
        # that left before they were seen, and are rate limited until the next second.
        assert codes["key_not_found"] >= 1
        retry_after = {r.retry_after for r in results if isinstance(r, JWKSUnavailableError)}
        assert retry_after <= {1}
        assert issuer.jwks_requests == 1 + (second + 1)  # the prefetch + one a second
        assert (await auth.authenticate(issuer.mint())).subject == "user-1"
        clock.advance(1.0)
    assert cache.stats().misses >= 3000
    # An id a fetch showed absent stays "unknown" without another fetch (within cooldown).
    kid = random_kid()
    with pytest.raises(TokenValidationError) as first:
        await auth.authenticate(issuer.mint(kid=kid))
    assert first.value.code == "key_not_found"
    for _ in range(20):
        with pytest.raises(TokenValidationError) as again:
            await auth.authenticate(issuer.mint(kid=kid))
        assert again.value.code == "key_not_found"
    assert issuer.jwks_requests == 5


async def test_a_flood_of_random_kids_cannot_delay_a_rotation(
    issuer: LocalIssuer, cache: JWKSCache, clock: FakeClock
) -> None:
    """The regression found against Ory Hydra: right after a miss used the refetch, the issuer
    rotates; the new key's tokens must be accepted within a second, and in the meantime be
    answered "try again" (503), never "unknown key" (401)."""
    auth = authenticator_for(issuer, cache)
    with pytest.raises(TokenValidationError) as removed:
        await auth.authenticate(issuer.mint(kid="removed-key"))  # uses the miss refetch
    assert removed.value.code == "key_not_found"
    new_kid = issuer.rotate("RS256")
    token = issuer.mint(kid=new_kid)
    with pytest.raises(JWKSUnavailableError) as wait:
        await auth.authenticate(token)
    assert wait.value.retry_after == 1
    clock.advance(0.5)
    # An attacker's random ids in between do not use up the next fetch for the real key:
    # whichever miss fetches next brings the new key for everyone.
    with pytest.raises(JWKSUnavailableError):
        await auth.authenticate(issuer.mint(kid="random-1"))
    clock.advance(0.5)
    with pytest.raises(TokenValidationError):
        await auth.authenticate(issuer.mint(kid="random-2"))  # this one fetches
    assert (await auth.authenticate(token)).subject == "user-1"  # within one second
    assert issuer.jwks_requests == 3


async def test_new_kid_validates_after_one_refetch(
    issuer: LocalIssuer, cache: JWKSCache, clock: FakeClock
) -> None:
    auth = authenticator_for(issuer, cache)
    # Right after the startup prefetch: scheduled and startup fetches leave the miss budget.
    new_kid = issuer.rotate("RS256")
    user = await auth.authenticate(issuer.mint(kid=new_kid))
    assert user.subject == "user-1"
    assert issuer.jwks_requests == 2


async def test_removed_kid_stops_after_the_next_refresh(
    issuer: LocalIssuer, cache: JWKSCache, clock: FakeClock
) -> None:
    auth = authenticator_for(issuer, cache)
    token = issuer.mint(algorithm="ES256")
    kid = issuer.jwks()["keys"][1]["kid"]
    assert (await auth.authenticate(token)).subject == "user-1"
    issuer.remove_key(kid)
    assert (await auth.authenticate(token)).subject == "user-1"  # still cached, still fresh
    clock.advance(601)
    await cache.get_keys()  # expired within max_stale: served, refresh starts
    await settle()
    assert issuer.jwks_requests == 2
    with pytest.raises(TokenValidationError) as caught:
        await auth.authenticate(token)
    assert caught.value.code == "key_not_found"


async def test_key_replaced_under_the_same_kid(
    issuer: LocalIssuer, cache: JWKSCache, clock: FakeClock
) -> None:
    auth = authenticator_for(issuer, cache)
    kid = issuer.jwks()["keys"][0]["kid"]
    issuer.replace_key(kid)  # a development issuer restarted with a new key, same id
    user = await auth.authenticate(issuer.mint())
    assert user.subject == "user-1"
    assert issuer.jwks_requests == 2
    # A forged signature under a known kid triggers no refetch inside the cooldown window.
    with pytest.raises(TokenValidationError) as caught:
        await auth.authenticate(issuer.mint_untrusted())
    assert caught.value.code == "invalid_signature"
    assert issuer.jwks_requests == 2


# -- outages -----------------------------------------------------------------------------


async def test_outage_serves_cached_keys_until_max_stale(issuer: LocalIssuer) -> None:
    clock = FakeClock()
    settings = CacheSettings(max_age=600, max_stale=1200, timeout=1.0, retries=0)
    async with JWKSCache(jwks_uri=jwks_url(issuer), settings=settings, clock=clock) as cache:
        auth = authenticator_for(issuer, cache)
        token = issuer.mint(expires_in=10_000)
        issuer.fault = "status:503"
        clock.advance(700)
        assert (await auth.authenticate(token)).subject == "user-1"
        await settle()
        stats = cache.stats()
        assert stats.state == "stale" and stats.failures >= 1
        clock.advance(1000)  # 1700 s old: within 600 + 1200
        assert (await auth.authenticate(token)).subject == "user-1"
        clock.advance(200)  # 1900 s: beyond the stale window
        with pytest.raises(JWKSUnavailableError) as caught:
            await auth.authenticate(token)
        assert caught.value.retry_after >= 1
        assert cache.stats().state == "failing"
        assert "127.0.0.1" not in caught.value.description


FAULTS = [
    "status:500",
    "status:404",
    "html",
    "invalid_json",
    "empty",
    "no_usable_keys",
    "huge",
    "redirect",
    "hang",
]


@pytest.mark.parametrize("fault", FAULTS)
async def test_bad_response_is_a_failed_refresh_and_keys_stay(
    issuer: LocalIssuer, fault: str
) -> None:
    clock = FakeClock()
    settings = CacheSettings(timeout=0.5, retries=0)
    async with JWKSCache(jwks_uri=jwks_url(issuer), settings=settings, clock=clock) as cache:
        before = await cache.get_keys()
        issuer.fault = fault
        clock.advance(601)
        assert await cache.get_keys() is before  # stale keys keep serving
        for _ in range(100):
            await asyncio.sleep(0.02)
            if cache.stats().failures:
                break
        stats = cache.stats()
        assert stats.failures == 1, fault
        assert stats.state == "stale"
        assert await cache.get_keys() is before
        assert issuer.jwks_requests == 2


async def test_refused_connections_are_failed_refreshes(issuer: LocalIssuer) -> None:
    clock = FakeClock()
    settings = CacheSettings(timeout=1.0, retries=2)
    async with JWKSCache(jwks_uri=jwks_url(issuer), settings=settings, clock=clock) as cache:
        before = await cache.get_keys()
        issuer.stop_listening()
        await asyncio.sleep(0.3)  # uvicorn winds down (and drops keep-alive connections)
        clock.advance(601)
        assert await cache.get_keys() is before
        await until(lambda: cache.stats().failures == 1)
        assert cache.stats().state == "stale"
        issuer.start_listening()
        clock.advance(5)  # past the first backoff pause
        assert await cache.get_keys() is before
        await until(lambda: cache.stats().state == "fresh")


async def test_down_at_startup_then_recovers(issuer: LocalIssuer) -> None:
    clock = FakeClock()
    issuer.fault = "status:503"
    settings = CacheSettings(timeout=1.0, retries=0)
    async with JWKSCache(jwks_uri=jwks_url(issuer), settings=settings, clock=clock) as cache:
        assert cache.stats().state == "failing"  # start() logged the failure, did not raise
        auth = authenticator_for(issuer, cache)
        with pytest.raises(JWKSUnavailableError) as caught:
            await auth.authenticate(issuer.mint())
        assert caught.value.code == "jwks_unavailable"
        requests = issuer.jwks_requests
        for _ in range(20):  # inside the backoff pause: fail fast, no network
            with pytest.raises(JWKSUnavailableError):
                await auth.authenticate(issuer.mint())
        assert issuer.jwks_requests == requests
        issuer.fault = None
        clock.advance(3)
        assert (await auth.authenticate(issuer.mint())).subject == "user-1"


async def test_cache_control_max_age_is_honoured_within_bounds(issuer: LocalIssuer) -> None:
    clock = FakeClock()
    settings = CacheSettings(min_max_age=60, max_max_age=3600)
    for header_age, expected in [(120, 120), (5, 60), (999_999, 3600)]:
        issuer.cache_max_age = header_age
        async with JWKSCache(jwks_uri=jwks_url(issuer), settings=settings, clock=clock) as cache:
            await cache.get_keys()
            clock.advance(expected - 1)
            assert cache.stats().state == "fresh"
            clock.advance(2)
            assert cache.stats().state == "stale"


# -- discovery -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["", "/tenant1"])
async def test_discovery_from_the_issuer(path: str) -> None:
    local = LocalIssuer(default_audience=AUDIENCE, path=path)
    async with local.serve_async():
        async with JWKSCache(issuer=local.issuer) as cache:
            auth = authenticator_for(local, cache)
            assert (await auth.authenticate(local.mint())).subject == "user-1"
            assert cache.jwks_uri == local.metadata()["jwks_uri"]
        expected = "/.well-known/oauth-authorization-server" + path
        assert local.requests[expected] == 1


async def test_discovery_refuses_a_mismatched_issuer() -> None:
    local = LocalIssuer(default_audience=AUDIENCE)
    async with local.serve_async():
        local.metadata_issuer = local.issuer + "/other"
        async with JWKSCache(issuer=local.issuer) as cache:
            with pytest.raises(IssuerMismatchError) as caught:
                await cache.get_keys()
            assert caught.value.code == "issuer_mismatch"
        assert local.jwks_requests == 0


async def test_discovery_failure_is_discovery_failed() -> None:
    local = LocalIssuer(default_audience=AUDIENCE)
    async with local.serve_async():
        local.metadata_fault = "status:404"
        async with JWKSCache(issuer=local.issuer) as cache:
            with pytest.raises(DiscoveryError) as caught:
                await cache.get_keys()
            assert caught.value.code == "discovery_failed"


async def test_redirects_are_not_followed(issuer: LocalIssuer) -> None:
    issuer.fault = "redirect"
    async with JWKSCache(jwks_uri=jwks_url(issuer), prefetch=False) as cache:
        with pytest.raises(JWKSUnavailableError) as caught:
            await cache.get_keys()
        assert "302" in caught.value.detail
    assert issuer.jwks_requests == 1  # the redirect target was never requested


@pytest.mark.parametrize(
    "url",
    ["http://auth.example.com/jwks", "http://10.0.0.1/jwks", "ftp://127.0.0.1/jwks", "jwks.json"],
)
def test_unsafe_urls_are_rejected_at_configuration(url: str) -> None:
    with pytest.raises(ConfigurationError):
        JWKSCache(jwks_uri=url)
    with pytest.raises(ConfigurationError):
        JWKSCache(issuer=url)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080/jwks", "http://localhost/jwks", "http://[::1]/jwks"]
)
def test_loopback_http_is_allowed(url: str) -> None:
    assert JWKSCache(jwks_uri=url).jwks_uri == url


@pytest.mark.parametrize(
    "options",
    [{"max_age": 0}, {"cooldown": -1}, {"timeout": 0}, {"max_bytes": 10}, {"retries": 99}],
)
def test_settings_are_bounded(options: dict[str, float]) -> None:
    with pytest.raises(ConfigurationError):
        CacheSettings(**options)  # type: ignore[arg-type]


# -- several issuers, static keys, blocking use ---------------------------------------------------


async def test_several_issuers_each_with_its_own_keys() -> None:
    first, second = LocalIssuer(default_audience=AUDIENCE), LocalIssuer(default_audience=AUDIENCE)
    async with first.serve_async(), second.serve_async():
        validator = TokenValidator([first.issuer, second.issuer], AUDIENCE)
        caches = {
            first.issuer: JWKSCache(issuer=first.issuer),
            second.issuer: JWKSCache(issuer=second.issuer),
        }
        auth = Authenticator(validator, caches)
        await auth.start()
        try:
            assert (await auth.authenticate(first.mint())).issuer == first.issuer
            assert (await auth.authenticate(second.mint())).issuer == second.issuer
            # A token claiming the first issuer but signed by the second: picked by iss, refused.
            forged = second.mint(claims={"iss": first.issuer})
            with pytest.raises(TokenValidationError):
                await auth.authenticate(forged)
            with pytest.raises(InvalidIssuerError):
                await auth.authenticate(first.mint(claims={"iss": "https://elsewhere"}))
        finally:
            await auth.aclose()


async def test_static_keys(issuer: LocalIssuer, tmp_path: object) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    document = tmp_path / "jwks.json"
    import json

    document.write_text(json.dumps(issuer.jwks()))
    for source in (StaticKeys(issuer.jwks()), StaticKeys(document)):
        auth = Authenticator(TokenValidator(issuer.issuer, AUDIENCE), source)
        assert (await auth.authenticate(issuer.mint())).subject == "user-1"
        assert source.stats().state == "static"
    assert issuer.jwks_requests == 0


def test_blocking_entry_point() -> None:
    local = LocalIssuer(default_audience=AUDIENCE)
    with local.serve():
        cache = JWKSCache(issuer=local.issuer)
        keys = cache.get_keys_sync()
        assert set(keys.key_ids) == {k["kid"] for k in local.jwks()["keys"]}
        assert cache.get_keys_sync() is keys
        validator = TokenValidator(local.issuer, AUDIENCE)
        assert validator.validate(local.mint(), keys).subject == "user-1"


# -- logging ---------------------------------------------------------------------------------


async def test_logs_never_contain_tokens(
    issuer: LocalIssuer, cache: JWKSCache, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="mcp_oauth2")
    auth = authenticator_for(issuer, cache)
    tokens = [issuer.mint(), issuer.mint(kid="unknown"), issuer.mint_expired()]
    issuer.fault = "status:500"
    clock.advance(700)
    for token in tokens:
        # (the unknown kid, while refreshes fail, is JWKSUnavailableError)
        with contextlib.suppress(TokenValidationError, JWKSUnavailableError):
            await auth.authenticate(token)
    await settle()
    assert "refresh failed" in caplog.text
    for token in tokens:
        for part in token.split("."):
            assert part not in caplog.text


# -- the miss budget: only key misses use it up -------------------------------------------------


async def test_rotation_right_after_a_scheduled_refresh_is_picked_up(
    issuer: LocalIssuer, cache: JWKSCache, clock: FakeClock
) -> None:
    auth = authenticator_for(issuer, cache)
    clock.advance(0.85 * 600)  # refresh-ahead: a scheduled fetch in the background
    await cache.get_keys()
    await until(lambda: issuer.jwks_requests == 2 and cache.stats().age == 0)
    new_kid = issuer.rotate("ES256")
    user = await auth.authenticate(issuer.mint(kid=new_kid))  # its first token
    assert user.subject == "user-1"
    assert issuer.jwks_requests == 3


async def test_misses_fetch_at_most_once_a_second_and_scheduled_fetches_leave_it(
    issuer: LocalIssuer, cache: JWKSCache, clock: FakeClock
) -> None:
    auth = authenticator_for(issuer, cache)
    first = issuer.rotate("RS256")
    assert (await auth.authenticate(issuer.mint(kid=first))).subject == "user-1"
    assert issuer.jwks_requests == 2  # prefetch + the miss
    second = issuer.rotate("RS256")
    clock.advance(0.5)
    with pytest.raises(JWKSUnavailableError) as caught:
        await auth.authenticate(issuer.mint(kid=second))  # within the second: no fetch, 503
    assert caught.value.retry_after == 1
    assert issuer.jwks_requests == 2
    clock.advance(0.5)
    assert (await auth.authenticate(issuer.mint(kid=second))).subject == "user-1"
    assert issuer.jwks_requests == 3
    # A scheduled refresh in between neither uses nor renews the miss budget.
    clock.advance(0.85 * 600)
    await cache.get_keys()
    await until(lambda: issuer.jwks_requests == 4)
    third = issuer.rotate("RS256")
    assert (await auth.authenticate(issuer.mint(kid=third))).subject == "user-1"
    assert issuer.jwks_requests == 5
    assert cache.stats().rejected_misses == 1


# -- every failure is a counted failed refresh --------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "fault"),
    [
        ("jwks", "bad_encoding"),
        ("jwks", "gzip_bomb"),
        ("jwks", "nested_json"),
        ("metadata", "bad_encoding"),
        ("metadata", "nested_json"),
    ],
)
async def test_decoding_and_parsing_failures_are_counted_failed_refreshes(
    endpoint: str, fault: str
) -> None:
    local = LocalIssuer(default_audience=AUDIENCE)
    clock = FakeClock()
    async with local.serve_async():
        if endpoint == "jwks":
            local.fault = fault
        else:
            local.metadata_fault = fault
        settings = CacheSettings(timeout=2.0, retries=0)
        async with JWKSCache(issuer=local.issuer, settings=settings, clock=clock) as cache:
            # start() logged the failed prefetch and returned; nothing escaped.
            assert cache.stats().failures == 1
            assert cache.stats().state == "failing"
            auth = authenticator_for(local, cache)
            served = sum(local.requests.values())
            for _ in range(10):  # inside the backoff pause: refused without the network
                with pytest.raises(JWKSUnavailableError) as caught:
                    await auth.authenticate(local.mint())
                assert caught.value.retry_after >= 1
            assert sum(local.requests.values()) == served
            assert cache.stats().failures == 1
            local.fault = local.metadata_fault = None
            clock.advance(3)  # past the first pause: the next request fetches and recovers
            assert (await auth.authenticate(local.mint())).subject == "user-1"


async def test_gzip_bomb_is_refused_unread_with_bounded_memory(issuer: LocalIssuer) -> None:
    issuer.fault = "gzip_bomb"
    settings = CacheSettings(timeout=5.0, retries=0)
    async with JWKSCache(jwks_uri=jwks_url(issuer), settings=settings, prefetch=False) as cache:
        tracemalloc.start()
        try:
            with pytest.raises(JWKSUnavailableError) as caught:
                await cache.get_keys()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        # The answer inflates to 64 MiB; the fetch never holds more than its byte cap and change.
        assert peak < BOMB_DECODED_BYTES // 16, peak
        assert "Content-Encoding" in caught.value.detail
        assert cache.stats().failures == 1


@pytest.mark.parametrize(
    ("header", "fresh_for"),
    [
        ("max-age=\u00b2", 600),  # "²".isdigit() is True, int("²") raises
        ("max-age=\u00b9\u00b2", 600),  # more Latin-1 superscript digits
        ("max-age=" + "9" * 5000, 3600),  # beyond int()'s digit limit: RFC 9111 says 2**31
        ("max-age=-5", 600),
        ("max-age=1e3", 600),
        ('max-age="120"', 120),
        ("no-cache", 60),
    ],
)
async def test_odd_cache_control_values_never_break_a_refresh(
    issuer: LocalIssuer, header: str, fresh_for: float
) -> None:
    clock = FakeClock()
    issuer.cache_control = header
    settings = CacheSettings(min_max_age=60, max_max_age=3600)
    async with JWKSCache(jwks_uri=jwks_url(issuer), settings=settings, clock=clock) as cache:
        assert cache.stats().failures == 0
        clock.advance(fresh_for - 1)
        assert cache.stats().state == "fresh"
        clock.advance(2)
        assert cache.stats().state == "stale"


# -- skipped keys are logged when the key set changes, not on every refresh -----------------------


def skip_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name == "mcp_oauth2.jwks" and r.levelno == logging.WARNING and "skipped" in r.message
    ]


async def refresh_now(cache: JWKSCache, clock: FakeClock, issuer: LocalIssuer) -> None:
    before = issuer.jwks_requests
    clock.advance(601)
    await cache.get_keys()
    await until(lambda: issuer.jwks_requests == before + 1 and cache.stats().age == 0)


async def test_an_encryption_key_is_logged_once_not_on_every_refresh(
    issuer: LocalIssuer, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="mcp_oauth2")
    rsa = issuer.jwks()["keys"][0]
    # What Keycloak publishes beside its signing keys, on every response.
    issuer.extra_keys = [{**rsa, "kid": "enc-1", "use": "enc", "alg": "RSA-OAEP"}]
    async with JWKSCache(jwks_uri=jwks_url(issuer), clock=clock) as cache:
        for _ in range(5):
            await refresh_now(cache, clock, issuer)
        assert issuer.jwks_requests == 6
        warnings = skip_warnings(caplog)
        assert len(warnings) == 1
        assert (
            """skipped 1 key(s): key 2 (kid "enc-1"): 'use' is not 'sig'""" in warnings[0].message
        )
        issuer.rotate("ES256")  # the key set changed: its skipped keys are worth a line again
        await refresh_now(cache, clock, issuer)
        await refresh_now(cache, clock, issuer)
        assert len(skip_warnings(caplog)) == 2


async def test_a_flood_of_junk_keys_is_one_short_line_per_change(
    issuer: LocalIssuer, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="mcp_oauth2")
    issuer.extra_keys = [{"kty": "junk"} for _ in range(3000)]
    async with JWKSCache(jwks_uri=jwks_url(issuer), clock=clock) as cache:
        assert len(await cache.get_keys()) == 2
        for _ in range(3):
            await refresh_now(cache, clock, issuer)
    warnings = skip_warnings(caplog)
    assert len(warnings) == 1
    assert len(warnings[0].message) < 2000
    jwks_lines = [r for r in caplog.records if r.name == "mcp_oauth2.jwks"]
    assert len(jwks_lines) <= 4 * 3  # a handful per refresh, never one per key


# -- the application starts whatever the key server does -----------------------------------------


def _protected_app(config: OAuth2Config, events: list[str]) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        events.append("startup")  # the application's own startup work
        yield
        events.append("shutdown")

    async def ok(_: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/mcp", ok), Route("/health", ok)], lifespan=lifespan)
    app.add_middleware(OAuth2Middleware, config=config)
    return app


@pytest.mark.parametrize(
    ("endpoint", "fault", "protected_status"),
    [
        ("jwks", "bad_encoding", 503),
        ("jwks", "gzip_bomb", 503),
        ("jwks", "status:500", 503),
        ("metadata", "nested_json", 503),
        ("cache-control", "max-age=\u00b2", 200),
    ],
)
def test_uvicorn_lifespan_on_starts_and_serves_through_key_server_faults(
    endpoint: str, fault: str, protected_status: int
) -> None:
    local = LocalIssuer(default_audience=AUDIENCE)
    with local.serve():
        if endpoint == "jwks":
            local.fault = fault
        elif endpoint == "metadata":
            local.metadata_fault = fault
        else:
            local.cache_control = fault
        config = OAuth2Config.model_validate(
            {
                "issuer": [local.issuer],
                "audience": [AUDIENCE],
                "exempt_routes": ["/health"],
            }
        )
        events: list[str] = []
        with AppServer(_protected_app(config, events), lifespan="on") as url:
            assert events == ["startup"]
            headers = {"Authorization": f"Bearer {local.mint()}"}
            with httpx.Client(base_url=url, timeout=10) as http:
                for _ in range(3):
                    assert http.get("/health").status_code == 200
                    protected = http.get("/mcp", headers=headers)
                    assert protected.status_code == protected_status
                    if protected_status == 503:
                        assert protected.json()["code"] in ("jwks_unavailable", "discovery_failed")
        assert events == ["startup", "shutdown"]


async def test_unknown_kid_during_an_outage_is_unavailable_not_key_not_found(
    issuer: LocalIssuer,
) -> None:
    clock = FakeClock()
    settings = CacheSettings(timeout=1.0, retries=0)
    async with JWKSCache(jwks_uri=jwks_url(issuer), settings=settings, clock=clock) as cache:
        auth = authenticator_for(issuer, cache)
        seen = issuer.mint()
        assert (await auth.authenticate(seen)).subject == "user-1"
        new_kid = issuer.rotate("RS256")
        issuer.fault = "status:503"
        unknown = issuer.mint(kid=new_kid)
        # The refetch the unknown kid triggers fails: the key may exist, so 503, not 401.
        with pytest.raises(JWKSUnavailableError) as caught:
            await auth.authenticate(unknown)
        assert caught.value.code == "jwks_unavailable" and caught.value.retry_after >= 1
        requests = issuer.jwks_requests
        # While failures back off, another unknown kid is unavailable too, without a fetch.
        with pytest.raises(JWKSUnavailableError):
            await auth.authenticate(issuer.mint(kid=new_kid))
        assert issuer.jwks_requests == requests
        assert (await auth.authenticate(seen)).subject == "user-1"  # cached keys still serve
        # A forged signature under a cached key stays a refusal of the token.
        forged = issuer.mint_untrusted(kid=issuer.current_kid("ES256"), algorithm="ES256")
        with pytest.raises(TokenValidationError) as refused:
            await auth.authenticate(forged)
        assert refused.value.code == "invalid_signature"
        issuer.fault = None
        clock.advance(120)
        await until(lambda: cache.stats().state == "fresh")
        assert (await auth.authenticate(unknown)).subject == "user-1"
