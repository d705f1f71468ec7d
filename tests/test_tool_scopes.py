"""``ToolScopes`` fails closed: a body it cannot inspect never reaches the MCP app.

The MCP server here is the real SDK (``MCPServer`` over streamable HTTP, JSON answers) behind
``OAuth2Middleware`` and ``ToolScopes`` under uvicorn, driven by the SDK's own client; the admin
tool counts its runs, so "refused" means the tool really did not run. The last tests call
``ToolScopes`` in process with hand-made ASGI messages (a body cut off by a disconnect, a body in
thousands of pieces), which no HTTP client sends on purpose.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import httpx2
import pytest
from mcp.client import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.server import MCPServer
from mcp.shared.exceptions import MCPError
from mcp_types.version import LATEST_HANDSHAKE_VERSION
from starlette.applications import Starlette
from starlette.authentication import AuthCredentials, UnauthenticatedUser
from starlette.routing import Mount
from starlette.types import Message, Receive, Scope, Send

from mcp_oauth2 import OAuth2Config, OAuth2Middleware, ToolScopes
from mcp_oauth2._access import ACCESS_SCOPE_KEY
from mcp_oauth2.lowlevel import KeySet, StaticKeys
from mcp_oauth2.testing import AppServer, LocalIssuer, bind_loopback, url_of
from test_mcp_e2e import sdk_auth_app

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

TOOLS, ADMIN = "mcp:tools", "mcp:admin"
LIMIT = 64 * 1024  # ToolScopes' body limit here, far below the SDK's own (raised to 16 MiB)
ACCEPT = "application/json, text/event-stream"


@dataclass
class Stack:
    issuer: LocalIssuer
    url: str
    admin_runs: list[str] = field(default_factory=list)

    @property
    def mcp_url(self) -> str:
        return self.url + "/mcp"

    def token(self, *scopes: str) -> str:
        return self.issuer.mint(audience=self.mcp_url, scopes=scopes)


def build_app(config: OAuth2Config, admin_runs: list[str]) -> Starlette:
    server: MCPServer[Any] = MCPServer("tool scopes", log_level="WARNING")

    @server.tool()
    def echo(text: str) -> str:
        """Answer ``text``."""
        return text

    @server.tool()
    def admin_reset(note: str = "") -> str:
        """Privileged: needs mcp:admin."""
        admin_runs.append(note[:20])
        return "reset done"

    mcp_app = server.streamable_http_app(
        streamable_http_path="/mcp", json_response=True, max_request_body_size=16 * 1024 * 1024
    )

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with server.session_manager.run():
            yield

    guarded = ToolScopes(mcp_app, {"admin_reset": [ADMIN]}, max_body_bytes=LIMIT)
    app = Starlette(routes=[Mount("/", app=guarded)], lifespan=lifespan)
    app.add_middleware(OAuth2Middleware, config=config)
    return app


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    issuer = LocalIssuer()
    with issuer.serve():
        sock = bind_loopback()
        config = OAuth2Config.model_validate(
            {
                "issuer": [issuer.issuer],
                "audience": [url_of(sock) + "/mcp"],
                "required_scopes": [TOOLS],
            }
        )
        runs: list[str] = []
        with AppServer(build_app(config, runs), sock) as url:
            yield Stack(issuer, url, runs)


@contextlib.asynccontextmanager
async def sdk_session(
    url: str, token: str, responses: list[httpx2.Response]
) -> AsyncIterator[ClientSession]:
    async def record(response: httpx2.Response) -> None:
        responses.append(response)

    async with (
        httpx2.AsyncClient(
            headers={"Authorization": f"Bearer {token}"},
            timeout=20,
            event_hooks={"response": [record]},
        ) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        yield session


async def test_oversized_admin_call_without_admin_scope_is_413_and_never_runs(
    stack: Stack,
) -> None:
    responses: list[httpx2.Response] = []
    before = len(stack.admin_runs)
    async with sdk_session(stack.mcp_url, stack.token(TOOLS), responses) as session:
        await session.initialize()
        with pytest.raises(MCPError):
            await session.call_tool("admin_reset", {"note": "x" * (LIMIT + 1)})
        refused = [r for r in responses if r.status_code == 413]
        assert refused, [r.status_code for r in responses]
        await refused[-1].aread()
        assert refused[-1].json() == {
            "error": "invalid_request",
            "error_description": f"the request body exceeds the {LIMIT}-byte limit of the "
            "tool-scope check",
            "code": "body_too_large",
        }
        assert refused[-1].headers["content-type"] == "application/json"
        # Below the limit the same call is inspected and refused with the step-up challenge,
        # and the session still works.
        mark = len(responses)
        with pytest.raises(MCPError):
            await session.call_tool("admin_reset", {"note": "x" * 100})
        assert 403 in [r.status_code for r in responses[mark:]]
        assert (await session.call_tool("echo", {"text": "ok"})).content[0].text == "ok"  # type: ignore[union-attr]
    assert len(stack.admin_runs) == before


async def test_oversized_call_is_refused_even_with_the_scope(stack: Stack) -> None:
    responses: list[httpx2.Response] = []
    before = len(stack.admin_runs)
    async with sdk_session(stack.mcp_url, stack.token(TOOLS, ADMIN), responses) as session:
        await session.initialize()
        mark = len(responses)
        with pytest.raises(MCPError):
            await session.call_tool("echo", {"text": "x" * (LIMIT + 1)})
        assert 413 in [r.status_code for r in responses[mark:]]
        result = await session.call_tool("admin_reset", {"note": "small"})
        assert not result.is_error
    assert stack.admin_runs[before:] == ["small"]


def tool_call(name: str, arguments: Any) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "tools/call",
        "params": {"name": name, "arguments": arguments},
    }


async def raw_post(stack: Stack, body: bytes, token: str) -> httpx.Response:
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "Accept": ACCEPT,
        "MCP-Protocol-Version": LATEST_HANDSHAKE_VERSION,
    }
    async with httpx.AsyncClient(timeout=20) as http:
        return await http.post(stack.mcp_url, content=body, headers=headers)


async def test_deeply_nested_body_is_400_not_500(stack: Stack) -> None:
    depth = 30_000  # 60 KB: within the limit, far beyond any recursion limit
    prefix = json.dumps(tool_call("admin_reset", {"note": "__NEST__"}))
    body = prefix.replace('"__NEST__"', "[" * depth + "]" * depth).encode()
    response = await raw_post(stack, body, stack.token(TOOLS))
    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_request",
        "error_description": "the request body is nested too deeply to be checked",
        "code": "invalid_request",
    }


async def test_nesting_only_one_parser_accepts_is_still_checked(stack: Stack) -> None:
    # 300 levels: json.loads reads it, pydantic_core's parser (the SDK's) refuses it. The call is
    # checked all the same.
    prefix = json.dumps(tool_call("admin_reset", {"note": "__NEST__"}))
    body = prefix.replace('"__NEST__"', "[" * 300 + "]" * 300).encode()
    response = await raw_post(stack, body, stack.token(TOOLS))
    assert response.status_code == 403
    assert response.json()["code"] == "insufficient_scope"


async def test_invalid_json_gets_the_sdk_parse_error(stack: Stack) -> None:
    # Neither of the SDK's parsers can read it, so neither can find a tool call in it: the MCP
    # app answers with its own JSON-RPC parse error.
    response = await raw_post(stack, b'{"method": "tools/call", ', stack.token(TOOLS))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == -32700


# -- in process: bodies no ordinary client sends ---------------------------------------------


@dataclass
class Recorder:
    """The wrapped app: records what reaches it, and answers ``answer`` (else 200 ``ok``)."""

    answer: list[Message] = field(default_factory=list)
    calls: list[bytes] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        self.calls.append(body)
        for message in self.answer or [
            {"type": "http.response.start", "status": 200, "headers": []},
            {"type": "http.response.body", "body": b"ok"},
        ]:
            await send(message)


def authenticated_scope(issuer: LocalIssuer, scopes: tuple[str, ...]) -> Scope:
    config = OAuth2Config.model_validate(
        {"issuer": [issuer.issuer], "audience": ["https://mcp.example.com/mcp"]}
    )
    keys = KeySet.from_jwks(issuer.jwks())
    middleware = OAuth2Middleware(Recorder(), config)
    token = issuer.mint(audience="https://mcp.example.com/mcp", scopes=scopes)
    user = config.token_validator().validate(token, keys)
    return {
        "type": "http",
        "method": "POST",
        "path": "/mcp",
        "headers": [],
        ACCESS_SCOPE_KEY: middleware.access,
        "user": user,
        "auth": AuthCredentials(list(scopes)),
    }


async def call(app: ToolScopes, scope: Scope, messages: list[Message]) -> tuple[list[Message], int]:
    pending = list(reversed(messages))
    sent: list[Message] = []

    async def receive() -> Message:
        return pending.pop() if pending else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    status = sent[0]["status"] if sent else 0
    return sent, status


async def test_body_cut_off_by_a_disconnect_is_never_forwarded() -> None:
    issuer = LocalIssuer("https://issuer.example.com")
    recorder = Recorder()
    app = ToolScopes(recorder, {"admin_reset": [ADMIN]})
    body = json.dumps(tool_call("admin_reset", {})).encode()
    messages: list[Message] = [
        {"type": "http.request", "body": body[:10], "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent, _ = await call(app, authenticated_scope(issuer, (TOOLS,)), messages)
    assert recorder.calls == []
    assert sent == []


async def test_body_in_thousands_of_pieces_is_checked_and_replayed_whole() -> None:
    issuer = LocalIssuer("https://issuer.example.com")
    recorder = Recorder()
    app = ToolScopes(recorder, {"admin_reset": [ADMIN]})
    body = json.dumps(tool_call("admin_reset", {"note": "n" * 20_000})).encode()
    messages: list[Message] = [
        {"type": "http.request", "body": body[i : i + 1], "more_body": i + 1 < len(body)}
        for i in range(len(body))
    ]
    _, status = await call(app, authenticated_scope(issuer, (TOOLS,)), messages)
    assert status == 403 and recorder.calls == []
    _, status = await call(app, authenticated_scope(issuer, (TOOLS, ADMIN)), messages)
    assert status == 200 and recorder.calls == [body]


# -- never forwarding a request it could not judge -----------------------------------------------


async def test_with_the_sdks_own_auth_instead_of_the_middleware_it_refuses_everything(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``MCPTokenVerifier`` runs inside the MCP app, after ``ToolScopes``: without
    ``OAuth2Middleware`` in front, ``ToolScopes`` cannot see the caller's scopes, so it refuses
    (500 ``unprotected``) and says why, instead of letting a tool run that the token may not
    call (it used to forward the request unchecked)."""
    issuer = LocalIssuer()
    with issuer.serve():
        sock = bind_loopback()
        mcp_url = url_of(sock) + "/mcp"
        server_app = sdk_auth_app(issuer, mcp_url)
        guarded = ToolScopes(server_app, {"whoami": [ADMIN]})
        with caplog.at_level(logging.ERROR, logger="mcp_oauth2"), AppServer(guarded, sock):
            responses: list[httpx2.Response] = []
            token = issuer.mint(audience=mcp_url, scopes=[TOOLS])
            async with sdk_session(mcp_url, token, responses) as session:
                with pytest.raises(MCPError):
                    await session.initialize()
            assert {r.status_code for r in responses} == {500}
            await responses[0].aread()
            assert responses[0].json()["code"] == "unprotected"
    assert "OAuth2Middleware did not run before it" in caplog.text


async def test_the_missing_middleware_is_logged_at_startup(
    caplog: pytest.LogCaptureFixture,
) -> None:
    guarded = ToolScopes(Recorder(), {"admin_reset": [ADMIN]})
    messages: list[Message] = [{"type": "lifespan.startup"}]

    async def receive() -> Message:
        return messages.pop() if messages else {"type": "lifespan.shutdown"}

    async def send(message: Message) -> None:
        return None

    async def lifespan_app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()

    guarded.app = lifespan_app
    with caplog.at_level(logging.ERROR, logger="mcp_oauth2"):
        await guarded({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
    assert "ToolScopes refuses every request" in caplog.text
    caplog.clear()
    # Behind the middleware the lifespan scope says so, and nothing is logged.
    config = OAuth2Config.model_validate(
        {"issuer": ["https://issuer.example.com"], "audience": ["https://mcp.example.com/mcp"]}
    )
    keys = StaticKeys(LocalIssuer("https://issuer.example.com").jwks())
    protected = OAuth2Middleware(guarded, config, key_sources=keys)
    messages.append({"type": "lifespan.startup"})
    with caplog.at_level(logging.ERROR, logger="mcp_oauth2"):
        await protected({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
    assert "refuses every request" not in caplog.text


async def test_an_anonymous_caller_on_an_exempt_route_gets_a_challenge_for_a_scoped_tool() -> None:
    issuer = LocalIssuer("https://issuer.example.com")
    recorder = Recorder()
    app = ToolScopes(recorder, {"admin_reset": [ADMIN]})
    scope = authenticated_scope(issuer, ())
    scope["user"] = UnauthenticatedUser()  # as on an exempt route
    scope["auth"] = AuthCredentials()
    body = json.dumps(tool_call("admin_reset", {})).encode()
    sent, status = await call(app, scope, [{"type": "http.request", "body": body}])
    assert status == 401 and recorder.calls == []
    headers = dict(sent[0]["headers"])
    assert b'scope="mcp:admin"' in headers[b"www-authenticate"]
    echo = json.dumps(tool_call("echo", {"text": "hi"})).encode()
    _, status = await call(app, scope, [{"type": "http.request", "body": echo}])
    assert status == 200 and recorder.calls == [echo]
