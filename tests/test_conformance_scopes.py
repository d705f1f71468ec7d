"""The MCP conformance suite's scope scenarios and SEP-2243 header scenario, reproduced.

The suite (``modelcontextprotocol/conformance``) tests scope handling from the client's side: in
``auth/scope-from-www-authenticate``, ``auth/scope-from-scopes-supported``,
``auth/scope-omitted-when-undefined``, ``auth/scope-step-up``, ``auth/scope-retry-limit`` and
``auth/offline-access-scope`` it plays the MCP server itself and checks what the client asks its
authorization server for. Here mcp-oauth2 plays that server, configured as each scenario's server
is, and raw HTTP requests check the answers a conforming client acts on: the 401's ``scope`` (or
its absence), the protected resource metadata's ``scopes_supported``, the 403
``insufficient_scope`` challenge of a step-up, and that the same refused call is answered the
same way every time (so a client's retry limit is what ends a loop, and every scope is named in
one challenge). ``http-header-validation`` is a server scenario: its cases are sent as it sends
them (2026-07-28 requests without a session), and the answers must be the ones it requires.

Where mcp-oauth2 answers differently from the scenario's own server, the test says so: a 401
always names ``required_scopes`` (so the scenario whose server challenges without a scope while
requiring some is played with no required scopes), and a 403 names every scope the operation
needs, the ones the token holds included (SEP-2350 allows it; the scenario's server names only
the missing one to see whether the client keeps its earlier scopes).
"""

from __future__ import annotations

import contextlib
import http.client
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from mcp.server import MCPServer
from mcp_types.version import LATEST_HANDSHAKE_VERSION
from starlette.applications import Starlette
from starlette.routing import Mount

from mcp_oauth2 import (
    MCPPolicy,
    OAuth2Config,
    OAuth2Middleware,
    require_scopes,
)
from mcp_oauth2.testing import AppServer, LocalIssuer, bind_loopback, url_of
from policy_server import build_policy_app, policy_config
from test_conformance_setup import ACCEPT, INITIALIZE, challenge

pytestmark = pytest.mark.timeout(60)

MODERN = "2026-07-28"


@dataclass
class Scenario:
    issuer: LocalIssuer
    url: str
    http: httpx.Client

    @property
    def mcp_url(self) -> str:
        return self.url + "/mcp"

    def token(self, *scopes: str) -> str:
        return self.issuer.mint(audience=self.mcp_url, scopes=scopes)

    def post(
        self, message: dict[str, Any], token: str | None = None, **headers: str
    ) -> httpx.Response:
        sent = {"Accept": ACCEPT, **headers}
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        return self.http.post(self.mcp_url, json=message, headers=sent)

    def raw_post(self, message: dict[str, Any], headers: dict[str, str]) -> tuple[int, Any]:
        """POST as the suite does (node's ``http.request``): header names and values exactly as
        given, leading and trailing spaces included (httpx refuses to send those)."""
        url = httpx.URL(self.mcp_url)
        connection = http.client.HTTPConnection(url.host, url.port, timeout=20)
        try:
            body = json.dumps(message).encode()
            sent = {"Content-Type": "application/json", "Accept": ACCEPT, **headers}
            connection.request("POST", url.path, body=body, headers=sent)
            response = connection.getresponse()
            return response.status, json.loads(response.read())
        finally:
            connection.close()

    def session(self, token: str) -> dict[str, str]:
        """Initialize a handshake-era session with ``token``: its request headers."""
        response = self.post(INITIALIZE, token)
        assert response.status_code == 200, response.text
        headers = {
            "Mcp-Session-Id": response.headers["mcp-session-id"],
            "Mcp-Protocol-Version": LATEST_HANDSHAKE_VERSION,
        }
        initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        assert self.post(initialized, token, **headers).status_code == 202
        return headers

    def metadata(self) -> dict[str, Any]:
        document: dict[str, Any] = (
            self.http.get(self.url + "/.well-known/oauth-protected-resource/mcp")
            .raise_for_status()
            .json()
        )
        return document


def scenario_app(config: OAuth2Config, tools: dict[str, Any] | None = None) -> Starlette:
    """The scenarios' MCP server: one tool, ``test-tool``, behind the middleware and a policy."""
    server: MCPServer[Any] = MCPServer("conformance scopes", log_level="WARNING")

    @server.tool(name="test-tool")
    def test_tool() -> str:
        return "done"

    mcp_app = server.streamable_http_app(streamable_http_path="/mcp", json_response=True)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> Any:
        async with server.session_manager.run():
            yield

    app = Starlette(routes=[Mount("/", app=MCPPolicy(mcp_app, tools=tools))], lifespan=lifespan)
    app.add_middleware(OAuth2Middleware, config=config)
    return app


@contextlib.contextmanager
def running(settings: dict[str, Any], tools: dict[str, Any] | None = None) -> Iterator[Scenario]:
    issuer = LocalIssuer()
    with issuer.serve():
        sock = bind_loopback()
        config = OAuth2Config.model_validate(
            {"issuer": [issuer.issuer], "audience": [url_of(sock) + "/mcp"], **settings}
        )
        with AppServer(scenario_app(config, tools), sock) as url, httpx.Client() as http:
            yield Scenario(issuer, url, http)


def tool_call(name: str = "test-tool") -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": name}}


def test_scope_from_www_authenticate() -> None:
    """``auth/scope-from-www-authenticate``: the 401 names the scope to ask for."""
    with running({"required_scopes": ["mcp:basic"]}) as s:
        refused = s.post(INITIALIZE)
        assert refused.status_code == 401
        params = challenge(refused)
        assert params["scope"] == "mcp:basic"
        assert params["resource_metadata"] == s.url + "/.well-known/oauth-protected-resource/mcp"
        assert s.metadata()["resource"] == s.mcp_url
        assert s.post(INITIALIZE, s.token("mcp:basic")).status_code == 200


def test_scope_from_scopes_supported() -> None:
    """``auth/scope-from-scopes-supported``: no ``scope`` in the 401, so the client takes the
    metadata's ``scopes_supported``. (mcp-oauth2 names ``required_scopes`` in every 401; a
    server that challenges without a scope requires none globally and names them per tool.)"""
    supported = ["mcp:basic", "mcp:read", "mcp:write"]
    tools = {"test-tool": require_scopes(*supported)}
    with running({"scopes_supported": supported}, tools) as s:
        refused = s.post(INITIALIZE)
        assert refused.status_code == 401
        assert "scope" not in challenge(refused)
        assert s.metadata()["scopes_supported"] == supported
        headers = s.session(s.token(*supported))
        done = s.post(tool_call(), s.token(*supported), **headers)
        assert done.status_code == 200 and "error" not in done.json()


def test_scope_omitted_when_undefined() -> None:
    """``auth/scope-omitted-when-undefined``: neither a challenged scope nor
    ``scopes_supported``."""
    with running({}) as s:
        refused = s.post(INITIALIZE)
        assert refused.status_code == 401
        assert "scope" not in challenge(refused)
        assert "scopes_supported" not in s.metadata()


def test_scope_step_up() -> None:
    """``auth/scope-step-up``: the first 401 names ``mcp:basic``; a tool call that needs
    ``mcp:write`` is a 403 ``insufficient_scope`` naming it (with ``mcp:basic``, which the
    operation needs as well); with both it runs."""
    tools = {"test-tool": require_scopes("mcp:write")}
    with running({"required_scopes": ["mcp:basic"]}, tools) as s:
        assert challenge(s.post(INITIALIZE))["scope"] == "mcp:basic"
        basic = s.token("mcp:basic")
        headers = s.session(basic)
        listing = s.post({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, basic, **headers)
        assert listing.status_code == 200
        refused = s.post(tool_call(), basic, **headers)
        assert refused.status_code == 403
        params = challenge(refused)
        assert params["error"] == "insufficient_scope"
        assert params["scope"].split() == ["mcp:basic", "mcp:write"]
        assert params["resource_metadata"].endswith("/.well-known/oauth-protected-resource/mcp")
        both = s.token("mcp:basic", "mcp:write")
        headers = s.session(both)
        assert s.post(tool_call(), both, **headers).json()["result"]["isError"] is False


def test_scope_retry_limit() -> None:
    """``auth/scope-retry-limit``: a call that the client's token can never pass gets the same
    403 each time, naming every scope it needs at once (never one more per retry), so the
    client's own retry limit ends the loop."""
    tools = {"test-tool": require_scopes("mcp:admin", "mcp:audit")}
    with running({}, tools) as s:
        for token in (s.token(), s.token("mcp:admin")):
            headers = s.session(token)
            answers = [s.post(tool_call(), token, **headers) for _ in range(4)]
            assert {a.status_code for a in answers} == {403}
            assert {a.headers["www-authenticate"] for a in answers} == {
                answers[0].headers["www-authenticate"]
            }
            assert challenge(answers[0])["scope"] == "mcp:admin mcp:audit"


def test_offline_access_is_never_challenged_nor_advertised() -> None:
    """``auth/offline-access-scope`` (SEP-2207): the metadata's ``scopes_supported`` and every
    challenge leave ``offline_access`` out; a configuration that names it is refused."""
    with running({"scopes_supported": ["mcp:basic"], "required_scopes": ["mcp:basic"]}) as s:
        assert s.metadata()["scopes_supported"] == ["mcp:basic"]
        assert challenge(s.post(INITIALIZE))["scope"] == "mcp:basic"
    for setting in ("scopes_supported", "required_scopes"):
        with pytest.raises(ValueError, match="offline_access"):
            OAuth2Config.model_validate(
                {
                    "issuer": "https://auth.example.com",
                    "audience": "https://mcp.example.com/mcp",
                    setting: ["mcp:basic", "offline_access"],
                }
            )
    with pytest.raises(ValueError, match="offline_access"):
        require_scopes("offline_access")


# -- http-header-validation (SEP-2243), a server scenario -----------------------------------------


@pytest.fixture(scope="module")
def headers_server() -> Iterator[Scenario]:
    issuer = LocalIssuer()
    with issuer.serve():
        sock = bind_loopback()
        config = policy_config(issuer.issuer, url_of(sock) + "/mcp")
        app = build_policy_app(config, json_response=True)
        with AppServer(app, sock) as url, httpx.Client() as http:
            yield Scenario(issuer, url, http)


def modern(method: str, **params: Any) -> dict[str, Any]:
    """A 2026-07-28 request: no session, the protocol version and capabilities in ``_meta``."""
    meta = {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "conformance", "version": "0"},
    }
    return {"jsonrpc": "2.0", "id": 100, "method": method, "params": {**params, "_meta": meta}}


CALL = modern("tools/call", name="weather", arguments={})
HEADER_CASES: list[tuple[str, dict[str, Any], dict[str, str], str | None]] = [
    (
        "ServerRejectsMismatchedMethodHeader",
        modern("tools/list"),
        {"Mcp-Method": "prompts/list"},
        "the Mcp-Method header does not match the body's method",
    ),
    (
        "ServerRejectsMissingMethodHeader",
        modern("tools/list"),
        {},
        "the Mcp-Method header is missing",
    ),
    (
        "ServerRejectsMismatchedNameHeader",
        CALL,
        {"Mcp-Method": "tools/call", "Mcp-Name": "wrong_tool_name"},
        "the Mcp-Name header does not match the body's name or uri",
    ),
    (
        "ServerAcceptsWhitespaceHeaderValue",
        CALL,
        {"Mcp-Method": "tools/call", "Mcp-Name": "  weather  "},
        None,
    ),
    (
        "ServerRejectsMissingNameHeader",
        CALL,
        {"Mcp-Method": "tools/call"},
        "the Mcp-Name header is missing",
    ),
    ("ServerAcceptsLowercaseHeaderName", modern("tools/list"), {"mcp-method": "tools/list"}, None),
    ("ServerAcceptsUppercaseHeaderName", modern("tools/list"), {"MCP-METHOD": "tools/list"}, None),
    (
        "ServerRejectsCaseMismatchValue",
        modern("tools/list"),
        {"Mcp-Method": "TOOLS/LIST"},
        "the Mcp-Method header does not match the body's method",
    ),
    (
        "AcceptsBase64Name",
        CALL,
        {"Mcp-Method": "tools/call", "Mcp-Name": "=?base64?d2VhdGhlcg==?="},
        None,
    ),
    (
        "RejectsNonCanonicalBase64Name",
        CALL,
        {"Mcp-Method": "tools/call", "Mcp-Name": "=?base64?d2VhdGhlcg?="},
        "the Mcp-Name header is not canonical base64 of UTF-8 text",
    ),
]


@pytest.mark.parametrize(
    ("case", "body", "headers", "problem"), HEADER_CASES, ids=[c[0] for c in HEADER_CASES]
)
def test_http_header_validation(
    headers_server: Scenario,
    case: str,
    body: dict[str, Any],
    headers: dict[str, str],
    problem: str | None,
) -> None:
    status, answer = headers_server.raw_post(body, {"MCP-Protocol-Version": MODERN, **headers})
    if problem is None:
        assert status == 200, answer
        assert "error" not in answer, answer
        return
    # The policy refuses it before the SDK reads it (its own words, not the SDK's).
    assert status == 400
    assert answer == {
        "jsonrpc": "2.0",
        "id": 100,
        "error": {"code": -32020, "message": f"Header mismatch: {problem}"},
    }


def test_older_protocol_versions_need_no_headers(headers_server: Scenario) -> None:
    """Only 2026-07-28 requires the headers: a handshake-era session works without them, and a
    header it does send must still match."""
    s = headers_server
    headers = s.session(s.issuer.mint(audience=s.mcp_url))
    token = s.issuer.mint(audience=s.mcp_url)
    call = {"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "weather"}}
    assert s.post(call, token, **headers).status_code == 200
    mismatched = s.post(call, token, **headers, **{"Mcp-Name": "deploy"})
    assert mismatched.status_code == 400
    assert mismatched.json()["error"]["code"] == -32020
