"""``current_user()`` from inside MCP tools, resources and prompts, over real HTTP with the
official ``mcp`` SDK client, in every way the SDK serves a request.

The SDK's streamable-HTTP server runs each JSON-RPC message's handler in a task group of its own:
with sessions (stateful, JSON or SSE answers) in the session's task, started by the request that
opened the session; without (stateless) in a task per request; on the 2026-07-28 protocol
(``mcp.Client``'s default) in a task of the request. ``current_user()`` must be the caller of
the request that carried the message in each of them, also when two callers are inside the same
tool at once, and when a session opened with one token goes on with another. Last, the SDK's own
auth with ``MCPTokenVerifier``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.lowlevel
import anyio.to_thread
import httpx
import httpx2
import pytest
from fastapi import FastAPI
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server import MCPServer
from mcp_types import TextContent, TextResourceContents

from mcp_oauth2 import AuthenticatedUser, OAuth2Config, OAuth2Middleware, ToolScopes, current_user
from mcp_oauth2.testing import AppServer, LocalIssuer, bind_loopback, url_of
from test_mcp_e2e import sdk_auth_app

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

TOOLS = "mcp:tools"
RENDEZVOUS_TIMEOUT = 20.0


@dataclass
class Rendezvous:
    """Holds every caller of the ``rendezvous`` tool until ``expected`` callers are inside it,
    so that their requests are served at the same time."""

    expected: int = 2
    arrived: int = 0
    all_in: anyio.Event | None = None

    async def wait(self) -> None:
        if self.all_in is None:  # created in the server's event loop, at the first call
            self.all_in = anyio.Event()
        self.arrived += 1
        if self.arrived >= self.expected:
            self.all_in.set()
        with anyio.fail_after(RENDEZVOUS_TIMEOUT):
            await self.all_in.wait()


@dataclass
class Served:
    rendezvous: Rendezvous = field(default_factory=Rendezvous)


def subject() -> str | None:
    """Code a tool calls, which knows nothing of MCP: it asks ``current_user()`` itself."""
    user = current_user()
    return user.subject if user is not None else None


def caller_server(served: Served) -> MCPServer[Any]:
    server: MCPServer[Any] = MCPServer("callers", log_level="WARNING")

    @server.tool()
    def whoami() -> dict[str, Any]:
        """A sync tool (the SDK may run it anywhere): the caller's subject and scopes."""
        user = current_user()
        assert isinstance(user, AuthenticatedUser)
        return {"subject": user.subject, "scopes": sorted(user.scopes)}

    @server.tool()
    async def rendezvous() -> dict[str, Any]:
        """Waits inside the tool until every expected caller is inside it too, then reports who
        it is serving: before and after waiting, from a helper, a child task and a thread."""
        before = subject()
        await served.rendezvous.wait()
        from_task: list[str | None] = []
        async with anyio.create_task_group() as group:
            group.start_soon(lambda: _append_subject(from_task))
        from_thread = await anyio.to_thread.run_sync(subject)
        return {
            "before": before,
            "after": subject(),
            "task": from_task[0],
            "thread": from_thread,
        }

    @server.resource("caller://me")
    def me() -> str:
        return f"resource for {subject()}"

    @server.prompt()
    def greeting() -> str:
        return f"prompt for {subject()}"

    return server


async def _append_subject(into: list[str | None]) -> None:
    await anyio.lowlevel.checkpoint()
    into.append(subject())


def middleware_app(
    config: OAuth2Config, served: Served, *, json_response: bool, stateless: bool
) -> FastAPI:
    server = caller_server(served)
    mcp_app = server.streamable_http_app(
        streamable_http_path="/mcp", json_response=json_response, stateless_http=stateless
    )

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with server.session_manager.run():
            yield

    app = FastAPI(lifespan=lifespan)

    @app.get("/public")
    async def public() -> dict[str, str | None]:
        return {"subject": subject()}

    app.mount("/", ToolScopes(mcp_app, {}))
    app.add_middleware(OAuth2Middleware, config=config)
    return app


@dataclass
class Stack:
    issuer: LocalIssuer
    url: str
    served: Served

    @property
    def mcp_url(self) -> str:
        return self.url + "/mcp"

    def token(self, subject: str, *scopes: str) -> str:
        return self.issuer.mint(subject=subject, audience=self.mcp_url, scopes=(TOOLS, *scopes))


# How the SDK serves: the server's mode, and the client's (legacy: the initialize handshake and a
# session; 2026-07-28: one self-contained request per call).
MODES = {
    "stateful-sse": (False, False, "legacy"),
    "stateful-json": (True, False, "legacy"),
    "stateless-json": (True, True, "legacy"),
    "stateless-sse": (False, True, "legacy"),
    "2026-07-28": (False, False, "auto"),
}


@pytest.fixture(scope="module", params=sorted(MODES))
def stack(request: pytest.FixtureRequest) -> Iterator[tuple[Stack, str]]:
    json_response, stateless, client_mode = MODES[request.param]
    issuer = LocalIssuer()
    with issuer.serve():
        sock = bind_loopback()
        config = OAuth2Config.model_validate(
            {
                "issuer": [issuer.issuer],
                "audience": [url_of(sock) + "/mcp"],
                "required_scopes": [TOOLS],
                "exempt_routes": ["/public"],
            }
        )
        served = Served()
        app = middleware_app(config, served, json_response=json_response, stateless=stateless)
        with AppServer(app, sock) as url:
            yield Stack(issuer, url, served), client_mode


@contextlib.asynccontextmanager
async def connected(
    url: str, token: str, mode: str
) -> AsyncIterator[tuple[Client, httpx2.AsyncClient]]:
    """The SDK's ``Client`` over streamable HTTP with ``token``, and its HTTP client (whose
    ``Authorization`` header a test may change between calls)."""
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http,
        Client(streamable_http_client(url, http_client=http), mode=mode) as client,
    ):
        yield client, http


async def test_two_callers_inside_one_tool_each_see_themselves(stack: tuple[Stack, str]) -> None:
    served, mode = stack
    served.served.rendezvous = Rendezvous(expected=2)
    answers: dict[str, Any] = {}

    async def call(name: str) -> None:
        async with connected(served.mcp_url, served.token(name), mode) as (client, _):
            result = await client.call_tool("rendezvous", {})
            answers[name] = result.structured_content

    async with anyio.create_task_group() as group:
        group.start_soon(call, "alice")
        group.start_soon(call, "bob")
    for name in ("alice", "bob"):
        assert answers[name] == {"before": name, "after": name, "task": name, "thread": name}


async def test_a_session_that_goes_on_with_another_token(stack: tuple[Stack, str]) -> None:
    """The stateful session's task was started by the first request (and its token); a later
    request with another token (a step-up with more scopes) is served as that token's."""
    served, mode = stack
    first = served.token("carol")
    async with connected(served.mcp_url, first, mode) as (client, http):
        assert (await client.call_tool("whoami", {})).structured_content == {
            "subject": "carol",
            "scopes": [TOOLS],
        }
        http.headers["Authorization"] = f"Bearer {served.token('carol', 'mcp:admin')}"
        assert (await client.call_tool("whoami", {})).structured_content == {
            "subject": "carol",
            "scopes": ["mcp:admin", TOOLS],
        }
        http.headers["Authorization"] = f"Bearer {served.token('dave')}"
        after = (await client.call_tool("whoami", {})).structured_content
        assert after is not None and after["subject"] == "dave"


async def test_resources_and_prompts_see_the_caller(stack: tuple[Stack, str]) -> None:
    served, mode = stack
    async with connected(served.mcp_url, served.token("erin"), mode) as (client, _):
        resource = await client.read_resource("caller://me")
        contents = resource.contents[0]
        assert isinstance(contents, TextResourceContents)
        assert contents.text == "resource for erin"
        prompt = await client.get_prompt("greeting")
        content = prompt.messages[0].content
        assert isinstance(content, TextContent)
        assert content.text == "prompt for erin"


async def test_anonymous_and_outside_requests(stack: tuple[Stack, str]) -> None:
    served, _ = stack
    async with httpx.AsyncClient() as http:
        public = await http.get(served.url + "/public")
    assert public.json() == {"subject": None}  # an exempt route: no caller
    assert current_user() is None  # no request is being served here


# -- the SDK's own auth, with MCPTokenVerifier ----------------------------------------------------


def with_rendezvous(served: Served) -> Callable[[MCPServer[Any]], None]:
    """A ``rendezvous`` tool for the SDK-auth server of ``test_mcp_e2e``."""

    def extend(server: MCPServer[Any]) -> None:
        @server.tool()
        async def rendezvous() -> dict[str, Any]:
            before = subject()
            await served.rendezvous.wait()
            user = current_user()
            assert isinstance(user, AuthenticatedUser)
            return {"before": before, "after": user.subject, "scopes": sorted(user.scopes)}

    return extend


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_with_the_sdk_auth_each_caller_sees_itself(mode: str) -> None:
    issuer = LocalIssuer()
    served = Served()
    async with issuer.serve_async():
        sock = bind_loopback()
        mcp_url = url_of(sock) + "/mcp"
        async with AppServer(sdk_auth_app(issuer, mcp_url, extend=with_rendezvous(served)), sock):
            answers: dict[str, Any] = {}

            async def call(name: str) -> None:
                token = issuer.mint(subject=name, audience=mcp_url, scopes=[TOOLS])
                async with connected(mcp_url, token, mode) as (client, _):
                    answers[name] = (await client.call_tool("rendezvous", {})).structured_content

            async with anyio.create_task_group() as group:
                group.start_soon(call, "frank")
                group.start_soon(call, "grace")
    for name in ("frank", "grace"):
        assert answers[name] == {"before": name, "after": name, "scopes": [TOOLS]}
