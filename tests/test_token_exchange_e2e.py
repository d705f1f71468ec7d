"""Downstream calls as the user, end to end: an MCP server whose tool calls a second API through
``TokenExchanger.auth``, over real HTTP on loopback with the official ``mcp`` SDK client.

Three servers: the ``LocalIssuer`` (keys, metadata, the token endpoint), the downstream API (its
own audience, behind ``OAuth2Middleware``, with a ``BearerRecorder`` keeping every bearer token
it receives before the middleware judges it), and the MCP server (behind ``OAuth2Middleware``,
with the server's own client credentials), in both streamable-HTTP answer modes (JSON and SSE).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import httpx2
import pytest
from mcp.client import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.server import MCPServer
from mcp_types import CallToolResult, TextContent
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from mcp_oauth2 import OAuth2Config, OAuth2Middleware, TokenExchanger, current_user
from mcp_oauth2.mcp_sdk import downstream_errors
from mcp_oauth2.testing import AppServer, BearerRecorder, LocalIssuer, bind_loopback, url_of

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

TOOLS = "mcp:tools"
FILES = "files:read"


def downstream_api(issuer: LocalIssuer, url: str) -> BearerRecorder:
    """The second API: its own audience (its URL), ``files:read`` required."""

    async def whoami(request: Request) -> JSONResponse:
        user = request.user
        return JSONResponse(
            {
                "subject": user.subject,
                "audience": list(user.audience),
                "scopes": sorted(user.scopes),
                "actor": json.loads(json.dumps(user.claims.get("act"), default=dict)),
            }
        )

    config = OAuth2Config.model_validate(
        {
            "issuer": [issuer.issuer],
            "audience": [url],
            "required_scopes": [FILES],
            "delegated_tokens": "required",  # only tokens someone acts with, as exchanged ones
        }
    )
    app = Starlette(routes=[Route("/whoami", whoami)])
    return BearerRecorder(OAuth2Middleware(app, config))


def mcp_app(
    issuer: LocalIssuer, mcp_url: str, api_url: str, *, json_response: bool
) -> tuple[OAuth2Middleware, TokenExchanger]:
    """The MCP server (and its exchanger): its tool ``files_whoami`` calls the API as the
    caller."""
    config = OAuth2Config.model_validate(
        {
            "issuer": [issuer.issuer],
            "audience": [mcp_url],
            "required_scopes": [TOOLS],
            "client_id": issuer.introspection_client_id,
            "client_secret": issuer.introspection_client_secret,
        }
    )
    exchanger = TokenExchanger(config)
    api = httpx.AsyncClient(base_url=api_url)  # one client; the auth per request
    server: MCPServer[Any] = MCPServer("exchange e2e", log_level="WARNING")

    @server.tool()
    async def files_whoami() -> dict[str, Any]:
        """Who the downstream API says is calling."""
        with downstream_errors():
            auth = exchanger.auth(audience=api_url, scopes=[FILES])
            answer: dict[str, Any] = (await api.get("/whoami", auth=auth)).json()
        answer["caller"] = repr(current_user())
        return answer

    sdk_app = server.streamable_http_app(streamable_http_path="/mcp", json_response=json_response)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with exchanger, api, server.session_manager.run():
            yield

    app = Starlette(routes=[Mount("/", app=sdk_app)], lifespan=lifespan)
    return OAuth2Middleware(app, config), exchanger


@dataclass
class Stack:
    issuer: LocalIssuer
    mcp_url: str
    api_url: str
    api: BearerRecorder
    exchanger: TokenExchanger
    tokens: list[str] = field(default_factory=list)

    def token(self, subject: str = "alice") -> str:
        token = self.issuer.mint(subject=subject, audience=self.mcp_url, scopes=[TOOLS, FILES])
        self.tokens.append(token)
        return token

    async def call(self, token: str, times: int = 1) -> list[CallToolResult]:
        headers = {"Authorization": f"Bearer {token}"}
        results = []
        async with (
            httpx2.AsyncClient(headers=headers, timeout=20) as http,
            streamable_http_client(self.mcp_url, http_client=http) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            for _ in range(times):
                results.append(await session.call_tool("files_whoami", {}))
        return results


@pytest.fixture(scope="module", params=[True, False], ids=["json", "sse"])
def stack(request: pytest.FixtureRequest) -> Iterator[Stack]:
    issuer = LocalIssuer()
    with issuer.serve():
        api_sock, mcp_sock = bind_loopback(), bind_loopback()
        api_url, mcp_url = url_of(api_sock), url_of(mcp_sock) + "/mcp"
        api = downstream_api(issuer, api_url)
        app, exchanger = mcp_app(issuer, mcp_url, api_url, json_response=request.param)
        with AppServer(api, api_sock), AppServer(app, mcp_sock):
            stack = Stack(issuer, mcp_url, api_url, api, exchanger)
            yield stack
            # Whatever happened, the API never saw a token the MCP client sent.
            assert not set(stack.api.tokens) & set(stack.tokens)


def text(result: CallToolResult) -> str:
    return "".join(block.text for block in result.content if isinstance(block, TextContent))


async def test_the_api_sees_a_token_for_itself_as_the_same_user(stack: Stack) -> None:
    token = stack.token("alice")
    calls = stack.issuer.token_requests
    (result,) = await stack.call(token)
    assert not result.is_error, text(result)
    answer = result.structured_content
    assert answer is not None
    assert answer["subject"] == "alice"
    assert answer["audience"] == [stack.api_url]
    assert answer["scopes"] == [FILES]
    assert answer["actor"] == {"sub": stack.issuer.introspection_client_id}
    assert token not in answer["caller"]  # current_user() shows no token
    assert stack.issuer.token_requests == calls + 1
    assert stack.issuer.exchanges[-1]["subject_token"] == token
    assert stack.api.tokens[-1] != token


async def test_a_second_call_uses_the_cache(stack: Stack) -> None:
    token = stack.token("bob")
    calls = stack.issuer.token_requests
    seen = len(stack.api.tokens)
    first, second = await stack.call(token, times=2)
    assert not first.is_error and not second.is_error
    assert stack.issuer.token_requests == calls + 1
    exchanged = stack.api.tokens[seen:]
    assert len(exchanged) == 2 and exchanged[0] == exchanged[1]
    assert stack.exchanger.stats().hits >= 1


async def test_a_refused_exchange_is_a_clear_tool_error(stack: Stack) -> None:
    token = stack.token("carol")
    seen = len(stack.api.tokens)
    stack.issuer.exchange_audiences = {"https://some-other-api.example.com"}
    try:
        (result,) = await stack.call(token)
    finally:
        stack.issuer.exchange_audiences = None
    assert result.is_error
    words = text(result)
    assert "token exchange refused: invalid_target" in words, words
    assert token not in words
    assert len(stack.api.tokens) == seen  # no downstream call at all


async def test_an_outage_never_falls_back_to_passthrough(stack: Stack) -> None:
    token = stack.token("dave")
    seen = len(stack.api.tokens)
    stack.issuer.token_fault = "status:503"
    backed_off = stack.exchanger.stats().unavailable
    try:
        results = await stack.call(token, times=2)
    finally:
        stack.issuer.token_fault = None
        stack.exchanger.backoff.succeeded()  # the next test starts with a healthy endpoint
    for result in results:
        assert result.is_error
        assert "token_exchange_unavailable" in text(result), text(result)
        assert token not in text(result)
    assert stack.exchanger.stats().unavailable == backed_off + 1  # the second: no call at all
    assert len(stack.api.tokens) == seen
    # Once the endpoint is back, the same caller gets through.
    (result,) = await stack.call(token)
    assert not result.is_error, text(result)
