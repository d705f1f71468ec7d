"""The middleware's cost in process, and the first request of a cold server.

The ASGI apps are called directly (a prepared scope, a no-op ``send``), interleaved round by
round: a minimal ASGI app and a FastAPI endpoint, each with and without ``OAuth2Middleware``,
the same token every time, warm key and token caches. Each case has its own pytest-benchmark
entry (group ``middleware``). The cold start times the first request of a new app: the issuer's
metadata (discovery), the JWKS fetch, then validation.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

import pytest

from cases import AUDIENCE
from e2e_app import PING_PATH, build_app
from harness import Batch, Run, interleaved, record, timed, timed_async
from mcp_oauth2 import OAuth2Config, OAuth2Middleware
from mcp_oauth2.lowlevel import Authenticator, JWKSCache, KeySet, TokenValidator
from mcp_oauth2.testing import LocalIssuer

ROUNDS = 300
BATCH_NS = 3_000_000
JSON_HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"11")]
COLD_STARTS = 9

MINIMAL = "minimal ASGI app"
MINIMAL_PROTECTED = "minimal ASGI app + OAuth2Middleware"
FASTAPI = "FastAPI endpoint"
FASTAPI_PROTECTED = "FastAPI endpoint + OAuth2Middleware"
AUTHENTICATE = "Authenticator.authenticate (warm caches)"
CACHED = "TokenValidator.validate (cached)"
AUTHORIZE = "TokenValidator.authorize (cached)"
UNCACHED = "TokenValidator.validate (uncached)"
CASES = (
    MINIMAL,
    MINIMAL_PROTECTED,
    FASTAPI,
    FASTAPI_PROTECTED,
    AUTHENTICATE,
    CACHED,
    AUTHORIZE,
    UNCACHED,
)


async def minimal(scope: Any, receive: Any, send: Any) -> None:
    """The least an ASGI app can do: isolates the middleware's own cost from FastAPI's."""
    await send({"type": "http.response.start", "status": 200, "headers": JSON_HEADERS})
    await send({"type": "http.response.body", "body": b'{"ok":true}'})


def http_scope(token: str | None) -> dict[str, Any]:
    headers = [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"bench"), (b"accept", b"*/*")]
    if token is not None:
        headers.append((b"authorization", b"Bearer " + token.encode()))
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": PING_PATH,
        "raw_path": PING_PATH.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


class Recorder:
    """``receive`` and ``send`` for direct calls; counts the statuses answered."""

    def __init__(self) -> None:
        self.statuses: Counter[int] = Counter()

    async def receive(self) -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(self, message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.statuses[message["status"]] += 1


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture(scope="module")
def middleware_run(issuer: LocalIssuer, loop: asyncio.AbstractEventLoop, full: bool) -> Run:
    token = issuer.mint(expires_in=3600, scopes=["mcp:tools"])
    config = OAuth2Config(
        issuer=issuer.issuer, audience=AUDIENCE, jwks_uri=issuer.metadata()["jwks_uri"]
    )
    source = JWKSCache(jwks_uri=issuer.metadata()["jwks_uri"], settings=config.cache_settings())
    authenticator = Authenticator(config.token_validator(), source)
    plain = build_app(None)
    protected = build_app(config, key_sources=source)
    minimal_protected = OAuth2Middleware(minimal, config, key_sources=source)
    scope = http_scope(token)
    answers = Recorder()

    def caller(app: Any) -> Callable[[], Any]:
        return lambda: app(dict(scope), answers.receive, answers.send)

    keys: KeySet = loop.run_until_complete(source.get_keys())
    validator = config.token_validator()
    uncached = TokenValidator(issuer.issuer, AUDIENCE, cache_size=0)
    header = b"Bearer " + token.encode()
    rules = minimal_protected.access.rules
    assert validator.validate(token, keys).subject == "user-1"
    cases: dict[str, Batch] = {
        MINIMAL: timed_async(loop, caller(minimal)),
        MINIMAL_PROTECTED: timed_async(loop, caller(minimal_protected)),
        FASTAPI: timed_async(loop, caller(plain)),
        FASTAPI_PROTECTED: timed_async(loop, caller(protected)),
        AUTHENTICATE: timed_async(loop, lambda: authenticator.authenticate(token)),
        CACHED: timed(lambda: validator.validate(token, keys)),
        AUTHORIZE: timed(lambda: validator.authorize(header, keys, rules)),
        UNCACHED: timed(lambda: uncached.validate(token, keys)),
    }
    try:
        run = interleaved(cases, rounds=ROUNDS, target_ns=BATCH_NS, full=full)
        # Every request was answered 200: nothing was refused or short-circuited.
        assert set(answers.statuses) == {200}, answers.statuses
        # A request without a token is refused: the protected apps are not pass-throughs.
        answers.statuses.clear()
        for app in (protected, minimal_protected):
            loop.run_until_complete(app(http_scope(None), answers.receive, answers.send))
        assert answers.statuses == Counter({401: 2}), answers.statuses
    finally:
        loop.run_until_complete(source.aclose())
    return run


@pytest.mark.parametrize("name", CASES)
def test_middleware(benchmark: Any, middleware_run: Run, name: str) -> None:
    benchmark.group = "middleware"
    run = middleware_run
    extra: dict[str, Any] = {"conditions": run.conditions}
    if name == MINIMAL_PROTECTED:
        extra["over"] = {"app": MINIMAL, "paired_us": paired_difference(run, name, MINIMAL)}
    if name == FASTAPI_PROTECTED:
        extra["over"] = {"app": FASTAPI, "paired_us": paired_difference(run, name, FASTAPI)}
    record(benchmark, run, name, **extra)


def paired_difference(run: Run, name: str, reference: str) -> float:
    """Median over rounds of the per-call difference: what ``name`` adds to ``reference``."""
    pairs = zip(run.samples[name], run.samples[reference], strict=True)
    return statistics.median(n - r for n, r in pairs)


def test_cold_start(benchmark: Any, issuer: LocalIssuer, loop: asyncio.AbstractEventLoop) -> None:
    """The first request of a new app, with discovery (``issuer`` only) and with ``jwks_uri``;
    the app's lifespan is not run, so the request itself fetches what it needs."""
    token = issuer.mint(expires_in=3600, scopes=["mcp:tools"])
    config = OAuth2Config(issuer=issuer.issuer, audience=AUDIENCE)
    jwks_uri = issuer.metadata()["jwks_uri"]
    sources: dict[str, Callable[[], JWKSCache]] = {
        "discovery + JWKS fetch": lambda: JWKSCache(issuer=issuer.issuer),
        "JWKS fetch (jwks_uri set)": lambda: JWKSCache(jwks_uri=jwks_uri),
    }

    async def first_and_second(new_source: Callable[[], JWKSCache]) -> tuple[float, float]:
        source = new_source()
        app = OAuth2Middleware(minimal, config, key_sources=source)
        answers = Recorder()
        try:
            times = []
            for _ in range(2):
                start = time.perf_counter()
                await app(http_scope(token), answers.receive, answers.send)
                times.append((time.perf_counter() - start) * 1e6)
                assert answers.statuses == Counter({200: len(times)}), answers.statuses
        finally:
            await source.aclose()
        return times[0], times[1]

    def body() -> dict[str, Any]:
        out: dict[str, Any] = {}
        for label, new_source in sources.items():
            fetches = issuer.jwks_requests
            pairs = [
                loop.run_until_complete(first_and_second(new_source)) for _ in range(COLD_STARTS)
            ]
            assert issuer.jwks_requests - fetches == COLD_STARTS
            firsts = sorted(first for first, _ in pairs)
            out[label] = {
                "first_median_us": statistics.median(firsts),
                "first_min_us": firsts[0],
                "first_max_us": firsts[-1],
                "second_median_us": statistics.median(second for _, second in pairs),
                "starts": COLD_STARTS,
            }
        return out

    benchmark.extra_info["cold_start"] = benchmark.pedantic(body, rounds=1, iterations=1)
