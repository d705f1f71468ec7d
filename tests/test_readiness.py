"""Readiness: ``Authenticator.health()`` and the middleware's ``readiness_path``, over real uvicorn
servers (the protected app and a ``LocalIssuer``) on loopback.

The key caches run on the real clock with one-second freshness and no stale window, so losing the
key server shows within seconds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.types import Message

from mcp_oauth2 import OAuth2Config, OAuth2Middleware, ToolScopes
from mcp_oauth2.lowlevel import Authenticator, CacheSettings, JWKSCache, StaticKeys, TokenValidator
from mcp_oauth2.testing import AppServer, LocalIssuer

AUDIENCE = "https://mcp.example.com/mcp"
# Freshness of one second, nothing served stale, failures noticed fast.
QUICK_KEYS = CacheSettings(
    max_age=1, min_max_age=1, max_max_age=1, max_stale=0, timeout=1, retries=0
)


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


def protected_app(
    issuer: LocalIssuer, keys: CacheSettings | None = None, **options: Any
) -> Starlette:
    """The app under ``OAuth2Middleware``; with ``keys``, its key cache has those settings."""
    config = OAuth2Config.model_validate(
        {"issuer": [issuer.issuer], "audience": [AUDIENCE], **options}
    )
    cache = None if keys is None else JWKSCache(issuer=issuer.issuer, settings=keys)
    # Without a probe, /ready is an ordinary route of the application.
    paths = ["/mcp"] if config.readiness_path else ["/mcp", "/ready"]
    app = Starlette(routes=[Route(path, hello) for path in paths])
    app.add_middleware(OAuth2Middleware, config=config, key_sources=cache)
    return app


async def start(app: Any) -> Message:
    """Run the application's lifespan startup in process: its answer."""
    sent: list[Message] = []
    messages: list[Message] = [{"type": "lifespan.shutdown"}, {"type": "lifespan.startup"}]

    async def receive() -> Message:
        return messages.pop()

    async def send(message: Message) -> None:
        sent.append(message)

    await app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send)
    return sent[0]


@pytest.mark.anyio
@pytest.mark.parametrize("path", ["/mcp", "/tools/list"])
async def test_a_readiness_path_that_is_also_a_route_stops_the_start(path: str) -> None:
    """The probe answers before routing, without a token: on the MCP endpoint (or any route)
    it would hide the route, so the application does not start."""
    config = OAuth2Config.model_validate(
        {"issuer": ["https://auth.example.com"], "audience": [AUDIENCE], "readiness_path": path}
    )
    keys = StaticKeys(LocalIssuer("https://auth.example.com").jwks())
    inner = Starlette(routes=[Route("/list", hello)])
    app = FastAPI()
    app.mount("/tools", ToolScopes(inner, {}))  # reached through a mount and a wrapper
    app.router.routes.append(Route("/mcp", hello))
    app.add_middleware(OAuth2Middleware, config=config, key_sources=keys)
    failed = await start(app)  # uvicorn reports "Application startup failed" and exits
    assert failed["type"] == "lifespan.startup.failed"
    assert "readiness_path (MCP_OAUTH2_READINESS_PATH)" in failed["message"]
    fine = config.model_copy(update={"readiness_path": "/ready"})
    app.user_middleware.clear()
    app.middleware_stack = None
    app.add_middleware(OAuth2Middleware, config=fine, key_sources=keys)
    assert (await start(app))["type"] == "lifespan.startup.complete"


def wait_for(check: Callable[[], httpx.Response | None], seconds: float = 15.0) -> httpx.Response:
    """Poll (real time) until ``check`` returns a response."""
    deadline = time.monotonic() + seconds
    while True:
        answer = check()
        if answer is not None:
            return answer
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.1)


def probe_with(url: str, status: int) -> Callable[[], httpx.Response | None]:
    def check() -> httpx.Response | None:
        answer = httpx.get(url + "/ready")
        return answer if answer.status_code == status else None

    return check


@pytest.fixture
def issuer() -> Iterator[LocalIssuer]:
    local = LocalIssuer(default_audience=AUDIENCE)
    with local.serve():
        yield local


def test_readiness_flips_when_the_key_server_goes_away_and_comes_back(
    issuer: LocalIssuer, caplog: pytest.LogCaptureFixture
) -> None:
    app = protected_app(issuer, QUICK_KEYS, readiness_path="/ready")
    token = {"Authorization": f"Bearer {issuer.mint()}"}
    with caplog.at_level(logging.INFO, logger="mcp_oauth2"), AppServer(app) as url:
        ready = httpx.get(url + "/ready")
        assert ready.status_code == 200, ready.text
        assert ready.headers["cache-control"] == "no-store"
        assert ready.json() == {"ready": True, "checks": {"keys": "ok"}}
        assert httpx.get(url + "/mcp", headers=token).status_code == 200
        # Idle past freshness and stale window: the probe itself refreshes, no token needed.
        time.sleep(2.5)
        assert httpx.get(url + "/ready").status_code == 200

        issuer.stop_listening()  # the key server goes away
        down = wait_for(probe_with(url, 503))
        # Which check failed, and nothing about the identity provider: the route needs no
        # token. The details are in the log line written when readiness changed.
        assert down.json() == {"ready": False, "checks": {"keys": "failing"}}
        lost = [r.getMessage() for r in caplog.records if r.getMessage().startswith("not ready:")]
        assert lost and all("'ready': False" in line for line in lost), lost
        refused = httpx.get(url + "/mcp", headers=token)
        assert refused.status_code == 503 and refused.json()["code"] == "jwks_unavailable"

        issuer.start_listening()  # and comes back: the probe itself notices
        up = wait_for(probe_with(url, 200))
        assert up.json() == {"ready": True, "checks": {"keys": "ok"}}
        assert httpx.get(url + "/mcp", headers=token).status_code == 200


def test_not_ready_while_the_key_server_fails_at_startup(issuer: LocalIssuer) -> None:
    issuer.fault = "status:503"
    app = protected_app(issuer, QUICK_KEYS, readiness_path="/ready")
    with AppServer(app) as url:
        first = httpx.get(url + "/ready")
        assert first.status_code == 503
        assert first.json() == {"ready": False, "checks": {"keys": "failing"}}
        assert httpx.head(url + "/ready").status_code == 503
        issuer.fault = None
        up = wait_for(probe_with(url, 200))
        assert up.json()["ready"] is True
        assert httpx.head(url + "/ready").content == b""
        assert httpx.post(url + "/ready").status_code == 405


def test_opaque_tokens_need_no_keys_to_be_ready(issuer: LocalIssuer) -> None:
    # token_format="opaque" holds no keys: the probe must not keep the process out for ever.
    # Introspection failures are reported, not made unready: no call can be tried without a
    # token, so a process out of service would never see the endpoint come back.
    issuer.fault = "status:503"  # the key server: not used at all
    app = protected_app(
        issuer,
        readiness_path="/ready",
        token_format="opaque",
        client_id=issuer.introspection_client_id,
        client_secret=issuer.introspection_client_secret,
    )
    with AppServer(app) as url:
        ready = httpx.get(url + "/ready")
        assert ready.status_code == 200
        assert ready.json() == {"ready": True, "checks": {"introspection": "ok"}}
        issuer.introspection_fault = "status:500"
        token = issuer.mint_opaque()
        assert (
            httpx.get(url + "/mcp", headers={"Authorization": f"Bearer {token}"}).status_code == 503
        )
        still = httpx.get(url + "/ready")
        assert still.status_code == 200  # reported, not a reason to be taken out of service
        assert still.json() == {"ready": True, "checks": {"introspection": "failing"}}


def test_without_readiness_path_the_path_is_the_apps(issuer: LocalIssuer) -> None:
    with AppServer(protected_app(issuer, QUICK_KEYS)) as url:
        assert httpx.get(url + "/ready").status_code == 401  # an ordinary protected route


@pytest.mark.parametrize(
    "path", ["ready", "/", "/ready?x=1", "/re*dy", "/a b", "/.well-known/ready", "/ready#x"]
)
def test_readiness_path_must_be_a_plain_path(path: str) -> None:
    with pytest.raises(ValueError, match="MCP_OAUTH2_READINESS_PATH"):
        OAuth2Config(issuer="https://auth.example.com", audience=AUDIENCE, readiness_path=path)


@pytest.mark.anyio
async def test_health_needs_every_issuer_with_usable_keys(issuer: LocalIssuer) -> None:
    other = "https://other.example.com"
    static = StaticKeys(issuer.jwks())
    validator = TokenValidator([issuer.issuer, other], AUDIENCE)
    cache = JWKSCache(issuer=issuer.issuer, prefetch=False)
    auth = Authenticator(validator, {issuer.issuer: cache, other: static})
    try:
        health = auth.health()
        assert not health.ready and health.state == "empty"
        assert health.sources[other].usable_key_count == len(issuer.key_ids)
        assert health.sources[issuer.issuer].usable_key_count == 0
        health = await auth.readiness()  # asks the empty cache for its keys
        assert health.ready and health.state == "fresh"
        assert health.usable_key_count == 2 * len(issuer.key_ids)
        assert health.age is not None and health.age < 5
    finally:
        await auth.aclose()
