"""End to end with the official ``mcp`` SDK client, over real HTTP on loopback.

A ``LocalIssuer`` serves its metadata and JWKS; the demo app (FastAPI + ``MCPServer`` behind
``OAuth2Middleware`` and ``ToolScopes``) runs under uvicorn, in both streamable-HTTP answer modes
(JSON and SSE). The SDK client turns every non-2xx answer into a generic JSON-RPC error, so the
HTTP answers themselves are recorded with a response hook on the client's ``httpx2`` client.
Last, the SDK's own auth (``AuthSettings`` + ``MCPTokenVerifier``, no middleware).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import httpx2
import pytest
from mcp.client import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.server import MCPServer
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.settings import AuthSettings
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolResult, TextContent
from starlette.applications import Starlette
from starlette.routing import Mount

from demo import ADMIN_SCOPE, TOOLS_SCOPE, build_demo_app, demo_config, run_demo
from mcp_oauth2 import OAuth2Config
from mcp_oauth2.mcp_sdk import MCPTokenVerifier
from mcp_oauth2.testing import DEFAULT_CLIENT_ID, AppServer, LocalIssuer, bind_loopback, url_of

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]

CHALLENGE_PARAM = re.compile(r'([A-Za-z_]+)="((?:[^"\\]|\\.)*)"')


@dataclass
class Stack:
    issuer: LocalIssuer
    url: str
    json_response: bool

    @property
    def mcp_url(self) -> str:
        return self.url + "/mcp"

    def token(self, *scopes: str, subject: str = "alice") -> str:
        return self.issuer.mint(subject=subject, audience=self.mcp_url, scopes=scopes)


@pytest.fixture(scope="module", params=[True, False], ids=["json", "sse"])
def stack(request: pytest.FixtureRequest) -> Iterator[Stack]:
    """The local issuer and the demo server (JSON or SSE answers), for the whole module."""
    issuer = LocalIssuer()
    with issuer.serve():
        sock = bind_loopback()
        config = demo_config(issuer.issuer, url_of(sock))
        app = build_demo_app(config, json_response=request.param)
        with AppServer(app, sock) as url:
            yield Stack(issuer, url, request.param)


class RecordingClient:
    """The SDK's streamable-HTTP client and ``ClientSession``, keeping every HTTP response."""

    def __init__(self, url: str, token: str | None = None) -> None:
        self.url = url
        self.token = token
        self.responses: list[httpx2.Response] = []

    async def _record(self, response: httpx2.Response) -> None:
        self.responses.append(response)

    def last(self, status: int) -> httpx2.Response:
        found = [r for r in self.responses if r.status_code == status]
        assert found, f"no HTTP {status}; got {[r.status_code for r in self.responses]}"
        return found[-1]

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[ClientSession]:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token is not None else None
        async with (
            httpx2.AsyncClient(
                headers=headers, timeout=10, event_hooks={"response": [self._record]}
            ) as http,
            streamable_http_client(self.url, http_client=http) as (read, write),
            ClientSession(read, write) as session,
        ):
            yield session


def challenge(response: httpx2.Response | httpx.Response) -> dict[str, str]:
    header = response.headers.get("www-authenticate", "")
    assert header.startswith("Bearer "), header
    return {name: re.sub(r"\\(.)", r"\1", value) for name, value in CHALLENGE_PARAM.findall(header)}


def text(result: CallToolResult) -> str:
    return "".join(block.text for block in result.content if isinstance(block, TextContent))


async def test_health_is_exempt(stack: Stack) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.get(stack.url + "/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_no_token_401_then_discovery(stack: Stack) -> None:
    client = RecordingClient(stack.mcp_url)
    async with client.session() as session:
        with pytest.raises(MCPError):
            await session.initialize()
    refusal = client.last(401)
    assert refusal.request.method == "POST"
    assert refusal.headers["content-type"] == "application/json"
    assert refusal.json()["code"] == "missing_token"
    params = challenge(refusal)
    assert "error" not in params  # RFC 6750 section 3.1: no error code without a token
    # The scopes this request needs (required_scopes), not every supported one: the SDK asks
    # the authorization server for exactly these.
    assert params["scope"] == TOOLS_SCOPE
    metadata_url = params["resource_metadata"]
    assert metadata_url == stack.url + "/.well-known/oauth-protected-resource/mcp"

    async with httpx.AsyncClient() as http:
        metadata = (await http.get(metadata_url)).raise_for_status().json()
        assert metadata["resource"] == stack.mcp_url
        assert metadata["authorization_servers"] == [stack.issuer.issuer]
        assert metadata["scopes_supported"] == [TOOLS_SCOPE, ADMIN_SCOPE]
        as_url = metadata["authorization_servers"][0] + "/.well-known/oauth-authorization-server"
        as_metadata = (await http.get(as_url)).raise_for_status().json()
        assert as_metadata["issuer"] == stack.issuer.issuer
        jwks = (await http.get(as_metadata["jwks_uri"])).raise_for_status().json()
    assert {key["kid"] for key in jwks["keys"]} == set(stack.issuer.key_ids)


async def test_valid_token_initialize_list_and_whoami(stack: Stack) -> None:
    client = RecordingClient(stack.mcp_url, stack.token(TOOLS_SCOPE, subject="alice"))
    async with client.session() as session:
        init = await session.initialize()
        assert init.server_info.name == "mcp-oauth2 demo"
        tools = await session.list_tools()
        assert sorted(tool.name for tool in tools.tools) == ["admin_reset", "echo", "whoami"]
        whoami = await session.call_tool("whoami", {})
        assert not whoami.is_error
        identity = whoami.structured_content
        assert identity is not None
        claims = identity.pop("claims")
        assert identity == {
            "subject": "alice",
            "client_id": DEFAULT_CLIENT_ID,
            "scopes": [TOOLS_SCOPE],
        }
        assert (claims["sub"], claims["aud"], claims["scope"]) == (
            "alice",
            stack.mcp_url,
            TOOLS_SCOPE,
        )
        echo = await session.call_tool("echo", {"text": "héllo"})
        assert text(echo) == "héllo"
    # Both answer modes really were exercised.
    posts = [r for r in client.responses if r.request.method == "POST" and r.status_code == 200]
    kinds = {r.headers["content-type"].split(";")[0] for r in posts}
    assert kinds == ({"application/json"} if stack.json_response else {"text/event-stream"})


async def test_admin_tool_without_admin_scope_is_403(stack: Stack) -> None:
    client = RecordingClient(stack.mcp_url, stack.token(TOOLS_SCOPE))
    async with client.session() as session:
        await session.initialize()
        with pytest.raises(MCPError):
            await session.call_tool("admin_reset", {})
        refusal = client.last(403)
        params = challenge(refusal)
        assert params["error"] == "insufficient_scope"
        assert params["scope"] == f"{TOOLS_SCOPE} {ADMIN_SCOPE}"
        assert params["resource_metadata"].endswith("/.well-known/oauth-protected-resource/mcp")
        assert refusal.json()["code"] == "insufficient_scope"
        # The session is unharmed: other tools still work.
        assert text(await session.call_tool("echo", {"text": "still here"})) == "still here"


async def test_admin_tool_with_admin_scope(stack: Stack) -> None:
    client = RecordingClient(stack.mcp_url, stack.token(TOOLS_SCOPE, ADMIN_SCOPE, subject="root"))
    async with client.session() as session:
        await session.initialize()
        result = await session.call_tool("admin_reset", {})
        assert not result.is_error
        assert text(result) == "reset done by root"
        whoami = await session.call_tool("whoami", {})
        assert whoami.structured_content is not None
        assert whoami.structured_content["scopes"] == [ADMIN_SCOPE, TOOLS_SCOPE]


async def test_token_without_required_scope_is_403(stack: Stack) -> None:
    client = RecordingClient(stack.mcp_url, stack.token("profile"))
    async with client.session() as session:
        with pytest.raises(MCPError):
            await session.initialize()
    params = challenge(client.last(403))
    assert params["error"] == "insufficient_scope"
    assert params["scope"] == TOOLS_SCOPE


def _expired(stack: Stack) -> str:
    return stack.issuer.mint_expired(audience=stack.mcp_url, scopes=[TOOLS_SCOPE])


def _wrong_audience(stack: Stack) -> str:
    # The server's base URL, not its MCP endpoint: a token for another resource.
    return stack.issuer.mint_for_audience(stack.url, scopes=[TOOLS_SCOPE])


def _untrusted(stack: Stack) -> str:
    return stack.issuer.mint_untrusted(audience=stack.mcp_url, scopes=[TOOLS_SCOPE])


def _no_audience(stack: Stack) -> str:
    return stack.issuer.mint_without_audience(scopes=[TOOLS_SCOPE])


def _other_issuer(stack: Stack) -> str:
    # Another authorization server's token: its key is not in the trusted JWKS (same kid, other
    # key material, so the signature check is what refuses it).
    return LocalIssuer("http://127.0.0.1:9/other").mint(
        audience=stack.mcp_url, scopes=[TOOLS_SCOPE]
    )


def _wrong_iss(stack: Stack) -> str:
    # Signed by the trusted key, but naming another issuer.
    return stack.issuer.mint(
        audience=stack.mcp_url, scopes=[TOOLS_SCOPE], claims={"iss": "http://127.0.0.1:9/other"}
    )


BAD_TOKENS: dict[str, tuple[Callable[[Stack], str], str]] = {
    "expired": (_expired, "expired"),
    "wrong_audience": (_wrong_audience, "invalid_audience"),
    "untrusted_signature": (_untrusted, "invalid_signature"),
    "no_audience": (_no_audience, "missing_claim"),
    "other_issuer": (_other_issuer, "invalid_signature"),
    "wrong_iss": (_wrong_iss, "invalid_issuer"),
}


@pytest.mark.parametrize("case", sorted(BAD_TOKENS))
async def test_invalid_tokens_are_401(stack: Stack, case: str) -> None:
    mint, code = BAD_TOKENS[case]
    token = mint(stack)
    client = RecordingClient(stack.mcp_url, token)
    async with client.session() as session:
        with pytest.raises(MCPError):
            await session.initialize()
    refusal = client.last(401)
    assert challenge(refusal)["error"] == "invalid_token"
    assert refusal.json()["code"] == code
    assert not [r for r in client.responses if r.status_code < 400]


# -- the SDK's own auth, with MCPTokenVerifier ----------------------------------------------------


@dataclass
class SDKAuthStack:
    issuer: LocalIssuer
    url: str

    @property
    def mcp_url(self) -> str:
        return self.url + "/mcp"


def sdk_auth_app(
    issuer: LocalIssuer,
    mcp_url: str,
    *,
    configure: Callable[[OAuth2Config], OAuth2Config] | None = None,
    extend: Callable[[MCPServer[Any]], None] | None = None,
) -> Starlette:
    """``MCPServer`` protected by the SDK's ``AuthSettings`` with ``MCPTokenVerifier``
    (``configure`` may change the verifier's configuration; ``extend`` may add tools)."""
    config = OAuth2Config.model_validate(
        {"issuer": [issuer.issuer], "audience": [mcp_url], "required_scopes": [TOOLS_SCOPE]}
    )
    if configure is not None:
        config = configure(config)
    verifier = MCPTokenVerifier(config)
    server: MCPServer[Any] = MCPServer(
        "sdk auth",
        token_verifier=verifier,
        auth=AuthSettings(
            issuer_url=issuer.issuer,
            resource_server_url=mcp_url,
            validate_token_resource=True,
            required_scopes=[TOOLS_SCOPE],
        ),
    )

    @server.tool()
    def whoami() -> dict[str, Any]:
        token = get_access_token()
        assert token is not None
        return {"subject": token.subject, "scopes": token.scopes, "resource": token.resource}

    if extend is not None:
        extend(server)
    sdk_app = server.streamable_http_app(json_response=True)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        # The verifier's key cache lives in the server's event loop: close it there.
        try:
            async with server.session_manager.run():
                yield
        finally:
            await verifier.aclose()

    return Starlette(routes=[Mount("/", app=sdk_app)], lifespan=lifespan)


@pytest.fixture(scope="module")
async def sdk_auth() -> AsyncIterator[SDKAuthStack]:
    # The issuer runs in the tests' event loop here (the demo stack above uses threads).
    issuer = LocalIssuer()
    async with issuer.serve_async():
        sock = bind_loopback()
        app = sdk_auth_app(issuer, url_of(sock) + "/mcp")
        async with AppServer(app, sock) as url:
            yield SDKAuthStack(issuer, url)


async def test_sdk_auth_accepts_a_valid_token(sdk_auth: SDKAuthStack) -> None:
    token = sdk_auth.issuer.mint(subject="bob", audience=sdk_auth.mcp_url, scopes=[TOOLS_SCOPE])
    client = RecordingClient(sdk_auth.mcp_url, token)
    async with client.session() as session:
        await session.initialize()
        whoami = await session.call_tool("whoami", {})
    assert whoami.structured_content == {
        "subject": "bob",
        "scopes": [TOOLS_SCOPE],
        "resource": sdk_auth.mcp_url,
    }


@pytest.mark.parametrize("case", ["none", "expired", "wrong_audience", "untrusted_signature"])
async def test_sdk_auth_refuses_an_invalid_token(sdk_auth: SDKAuthStack, case: str) -> None:
    issuer, mcp_url = sdk_auth.issuer, sdk_auth.mcp_url
    token = {
        "none": None,
        "expired": issuer.mint_expired(audience=mcp_url, scopes=[TOOLS_SCOPE]),
        "wrong_audience": issuer.mint_for_audience(sdk_auth.url, scopes=[TOOLS_SCOPE]),
        "untrusted_signature": issuer.mint_untrusted(audience=mcp_url, scopes=[TOOLS_SCOPE]),
    }[case]
    client = RecordingClient(mcp_url, token)
    async with client.session() as session:
        with pytest.raises(MCPError):
            await session.initialize()
    params = challenge(client.last(401))
    assert params["resource_metadata"] == sdk_auth.url + "/.well-known/oauth-protected-resource/mcp"
    async with httpx.AsyncClient() as http:
        metadata = (await http.get(params["resource_metadata"])).raise_for_status().json()
    assert metadata["authorization_servers"] == [issuer.issuer]


# -- the demo --------------------------------------------------------------------------------------


@pytest.mark.parametrize("json_response", [True, False], ids=["json", "sse"])
def test_demo_transcript(json_response: bool, capsys: pytest.CaptureFixture[str]) -> None:
    """``python examples/demo.py`` checks its own expectations; every one must hold."""
    assert run_demo(json_response=json_response) == 0
    transcript = capsys.readouterr().out
    assert "FAIL" not in transcript
    assert "every expectation held" in transcript
    assert "HTTP 401 on POST /mcp" in transcript
    assert "HTTP 403 on POST /mcp" in transcript
