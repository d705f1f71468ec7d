"""Opaque tokens end to end: the demo server (FastAPI + ``MCPServer`` behind ``OAuth2Middleware``
and ``ToolScopes``, with a FastAPI route behind ``OAuth2Bearer``) configured with
``token_format="auto"``, under uvicorn on loopback, driven by the official MCP SDK client; the
``LocalIssuer`` serves metadata, JWKS and its RFC 7662 endpoint. Last, the SDK's own auth with
``MCPTokenVerifier`` and ``token_format="opaque"``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Security
from mcp.shared.exceptions import MCPError
from mcp_types import TextContent
from pydantic import SecretStr
from starlette.applications import Starlette

from demo import ADMIN_SCOPE, TOOLS_SCOPE, build_demo_app, demo_config
from mcp_oauth2 import AuthenticatedUser, OAuth2Config
from mcp_oauth2._introspection import IntrospectionSettings
from mcp_oauth2.fastapi import OAuth2Bearer
from mcp_oauth2.testing import AppServer, LocalIssuer, bind_loopback, url_of
from test_mcp_e2e import RecordingClient, challenge, sdk_auth_app

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

CACHE_TTL = 1.0
REPORTS_SCOPE = "reports:read"


def introspecting(config: OAuth2Config, issuer: LocalIssuer, **settings: Any) -> OAuth2Config:
    """``config`` with introspection as the local issuer allows it."""
    given = config.model_dump()
    given.update(
        client_id=issuer.introspection_client_id,
        client_secret=issuer.introspection_client_secret,
        **settings,
    )
    return OAuth2Config.model_validate(given)


BEARER = OAuth2Bearer()


async def reports(
    user: Annotated[AuthenticatedUser, Security(BEARER, scopes=[REPORTS_SCOPE])],
) -> dict[str, Any]:
    """A FastAPI route behind the ``OAuth2Bearer`` dependency."""
    return {"subject": user.subject, "scopes": sorted(user.scopes)}


@dataclass
class Stack:
    issuer: LocalIssuer
    url: str

    @property
    def mcp_url(self) -> str:
        return self.url + "/mcp"

    def jwt(self, *scopes: str, subject: str = "jay") -> str:
        return self.issuer.mint(subject=subject, audience=self.mcp_url, scopes=scopes)

    def opaque(self, *scopes: str, subject: str = "opal") -> str:
        return self.issuer.mint_opaque(subject=subject, audience=self.mcp_url, scopes=scopes)


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    issuer = LocalIssuer()
    with issuer.serve():
        sock = bind_loopback()
        config = introspecting(
            demo_config(issuer.issuer, url_of(sock)),
            issuer,
            token_format="auto",
            introspection_cache_ttl=CACHE_TTL,
        )
        app = build_demo_app(config, json_response=True)
        app.get("/reports")(reports)
        # Before the catch-all mount of the MCP app.
        app.router.routes.insert(0, app.router.routes.pop())
        with AppServer(app, sock) as url:
            yield Stack(issuer, url)


@pytest.fixture
def healthy(stack: Stack) -> Iterator[Stack]:
    """The stack with a working introspection endpoint, waiting out any backoff left behind."""
    stack.issuer.introspection_fault = None
    stack.issuer.introspection_delay = 0.0
    deadline = time.monotonic() + 20
    while True:
        response = httpx.get(
            stack.url + "/reports",
            headers={"Authorization": f"Bearer {stack.opaque(TOOLS_SCOPE, REPORTS_SCOPE)}"},
        )
        if response.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert response.status_code == 200, response.text
    yield stack
    stack.issuer.introspection_fault = None
    stack.issuer.introspection_delay = 0.0


async def whoami(stack: Stack, token: str) -> dict[str, Any]:
    client = RecordingClient(stack.mcp_url, token)
    async with client.session() as session:
        await session.initialize()
        result = await session.call_tool("whoami", {})
    content: dict[str, Any] | None = result.structured_content
    assert content is not None
    return content


async def refusal(stack: Stack, token: str) -> httpx.Response:
    """The answer to an MCP ``initialize`` that must be refused (checked with the SDK client)."""
    client = RecordingClient(stack.mcp_url, token)
    async with client.session() as session:
        with pytest.raises(MCPError):
            await session.initialize()
    refused = [r for r in client.responses if r.status_code >= 400]
    assert refused, [r.status_code for r in client.responses]
    return refused[-1]  # type: ignore[return-value]


async def test_auto_accepts_a_jwt_and_an_opaque_token(healthy: Stack) -> None:
    stack = healthy
    assert (await whoami(stack, stack.jwt(TOOLS_SCOPE)))["subject"] == "jay"
    calls = stack.issuer.introspection_requests
    opaque = stack.opaque(TOOLS_SCOPE, ADMIN_SCOPE)
    identity = await whoami(stack, opaque)
    claims = identity.pop("claims")  # the introspection answer
    assert identity == {
        "subject": "opal",
        "client_id": "local-client",
        "scopes": [ADMIN_SCOPE, TOOLS_SCOPE],
    }
    assert (claims["active"], claims["sub"]) == (True, "opal")
    # The MCP session's several requests: one introspection, the rest from the cache.
    assert stack.issuer.introspection_requests == calls + 1
    # ToolScopes with an opaque token: a tool that needs a scope the token lacks is 403.
    client = RecordingClient(stack.mcp_url, stack.opaque(TOOLS_SCOPE))
    async with client.session() as session:
        await session.initialize()
        with pytest.raises(MCPError):
            await session.call_tool("admin_reset", {})
        result = await session.call_tool("echo", {"text": "opaque"})
        assert [block.text for block in result.content if isinstance(block, TextContent)] == [
            "opaque"
        ]
    forbidden = client.last(403)
    assert forbidden.json()["code"] == "insufficient_scope"
    assert challenge(forbidden)["scope"] == f"{TOOLS_SCOPE} {ADMIN_SCOPE}"


async def test_the_fastapi_dependency_with_both_kinds(healthy: Stack) -> None:
    stack = healthy
    async with httpx.AsyncClient() as http:
        for token, subject in (
            (stack.jwt(TOOLS_SCOPE, REPORTS_SCOPE), "jay"),
            (stack.opaque(TOOLS_SCOPE, REPORTS_SCOPE), "opal"),
        ):
            ok = await http.get(
                stack.url + "/reports", headers={"Authorization": f"Bearer {token}"}
            )
            assert ok.status_code == 200
            assert ok.json()["subject"] == subject
        lacking = stack.opaque(TOOLS_SCOPE)
        forbidden = await http.get(
            stack.url + "/reports", headers={"Authorization": f"Bearer {lacking}"}
        )
    assert forbidden.status_code == 403
    assert forbidden.json()["code"] == "insufficient_scope"


async def test_a_revoked_token_is_refused_once_its_cached_result_expires(healthy: Stack) -> None:
    stack = healthy
    token = stack.opaque(TOOLS_SCOPE)
    assert (await whoami(stack, token))["subject"] == "opal"
    stack.issuer.revoke(token)
    await asyncio.sleep(CACHE_TTL + 0.2)
    refused = await refusal(stack, token)
    assert refused.status_code == 401
    assert refused.json()["code"] == "inactive_token"
    params = challenge(refused)
    assert params["error"] == "invalid_token"
    assert params["resource_metadata"].endswith("/.well-known/oauth-protected-resource/mcp")


async def test_a_flood_of_unknown_tokens(healthy: Stack) -> None:
    """Random tokens, each sent several times, concurrently: never a 200, one call per token at a
    time and none again while its refusal is cached, and a real user keeps being served from
    the cache meanwhile."""
    stack = healthy
    stack.issuer.introspection_delay = 0.05
    user_token = stack.opaque(TOOLS_SCOPE, REPORTS_SCOPE)
    flood = ["opq_" + secrets.token_urlsafe(24) for _ in range(40)]
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=50)) as http:

        async def get(token: str) -> int:
            response = await http.get(
                stack.url + "/reports", headers={"Authorization": f"Bearer {token}"}
            )
            return response.status_code

        assert await get(user_token) == 200
        statuses = await asyncio.gather(*(get(token) for token in flood * 5))
        assert await get(user_token) == 200
    assert set(statuses) <= {401, 503}
    assert 401 in statuses
    # Times the endpoint was asked about each token: a second call only once the first answer
    # (a refusal, kept for the negative lifetime) has expired, however slow the machine is.
    negative_ttl = IntrospectionSettings("issuer", "client", SecretStr("secret")).negative_ttl
    for token in flood:
        asked = stack.issuer.introspected.get(token, [])
        for earlier, later in itertools.pairwise(asked):
            assert later - earlier >= negative_ttl, (token[:8], asked)


async def test_a_slow_endpoint_within_the_deadline(healthy: Stack) -> None:
    stack = healthy
    stack.issuer.introspection_delay = 0.5  # the deadline is 5 s
    assert (await whoami(stack, stack.opaque(TOOLS_SCOPE)))["subject"] == "opal"


@pytest.mark.parametrize("fault", ["status:503", "hang"])
async def test_never_accepts_while_the_endpoint_is_down(healthy: Stack, fault: str) -> None:
    stack = healthy
    stack.issuer.introspection_fault = fault
    async with httpx.AsyncClient(timeout=10) as http:
        for _ in range(3):
            token = stack.opaque(TOOLS_SCOPE, REPORTS_SCOPE)
            down = await http.get(
                stack.url + "/reports", headers={"Authorization": f"Bearer {token}"}
            )
            assert down.status_code == 503
            assert down.json()["code"] == "introspection_unavailable"
            assert int(down.headers["retry-after"]) >= 1
            assert "www-authenticate" not in down.headers
        # JWTs are verified locally: the outage does not touch them.
        jwt = stack.jwt(TOOLS_SCOPE, REPORTS_SCOPE)
        ok = await http.get(stack.url + "/reports", headers={"Authorization": f"Bearer {jwt}"})
        assert ok.status_code == 200
    refused = await refusal(stack, stack.opaque(TOOLS_SCOPE))
    assert refused.status_code == 503


# -- the SDK's own auth with MCPTokenVerifier ------------------------------------------------------


@dataclass
class SDKStack:
    issuer: LocalIssuer
    url: str

    @property
    def mcp_url(self) -> str:
        return self.url + "/mcp"


@contextlib.asynccontextmanager
async def sdk_stack() -> AsyncIterator[SDKStack]:
    issuer = LocalIssuer()
    async with issuer.serve_async():
        sock = bind_loopback()
        mcp_url = url_of(sock) + "/mcp"

        def configure(config: OAuth2Config) -> OAuth2Config:
            return introspecting(
                config, issuer, token_format="opaque", introspection_cache_ttl=CACHE_TTL
            )

        app: Starlette = sdk_auth_app(issuer, mcp_url, configure=configure)
        async with AppServer(app, sock) as url:
            yield SDKStack(issuer, url)


async def test_mcp_token_verifier_with_opaque_tokens() -> None:
    async with sdk_stack() as stack:
        token = stack.issuer.mint_opaque(
            subject="bob", audience=stack.mcp_url, scopes=[TOOLS_SCOPE]
        )
        client = RecordingClient(stack.mcp_url, token)
        async with client.session() as session:
            await session.initialize()
            result = await session.call_tool("whoami", {})
        assert result.structured_content == {
            "subject": "bob",
            "scopes": [TOOLS_SCOPE],
            "resource": stack.mcp_url,
        }
        stack.issuer.revoke(token)
        await asyncio.sleep(CACHE_TTL + 0.2)
        refused = RecordingClient(stack.mcp_url, token)
        async with refused.session() as session:
            with pytest.raises(MCPError):
                await session.initialize()
        assert refused.last(401).json()["error"] == "invalid_token"
        # The endpoint down: the SDK can only say 401, and never lets the token through.
        stack.issuer.introspection_fault = "status:500"
        fresh = stack.issuer.mint_opaque(audience=stack.mcp_url, scopes=[TOOLS_SCOPE])
        down = RecordingClient(stack.mcp_url, fresh)
        async with down.session() as session:
            with pytest.raises(MCPError):
                await session.initialize()
        assert down.last(401)


def test_the_required_scopes_hold_for_opaque_tokens_as_for_jwts(healthy: Stack) -> None:
    # The middleware's one decision: a token without a required scope is refused (403) with
    # the same challenge and body whether it was verified locally or introspected.
    answers = []
    for token in (healthy.opaque(REPORTS_SCOPE), healthy.jwt(REPORTS_SCOPE)):
        response = httpx.get(healthy.url + "/reports", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 403
        answers.append((response.json(), response.headers["www-authenticate"]))
    opaque, jwt = answers
    assert opaque == jwt
    assert opaque[0]["code"] == "insufficient_scope"
    assert f'scope="{TOOLS_SCOPE}' in opaque[1]
    granted = healthy.opaque(TOOLS_SCOPE, REPORTS_SCOPE)
    allowed = httpx.get(healthy.url + "/reports", headers={"Authorization": f"Bearer {granted}"})
    assert allowed.status_code == 200
    assert allowed.json()["scopes"] == sorted([TOOLS_SCOPE, REPORTS_SCOPE])
