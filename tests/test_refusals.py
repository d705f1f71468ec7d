"""One owner of refusals: the middleware, ``ToolScopes``, the FastAPI dependency and the MCP SDK
adapter decide with the same ``AccessControl``, and the three that answer themselves send the
same refusal, byte for byte, over real HTTP (uvicorn on loopback).

The MCP SDK builds its own 401 for every token ``MCPTokenVerifier`` refuses: that case checks the
adapter's decision (which comes from the same object) and the SDK's answer as documented.

No ``from __future__ import annotations``: FastAPI reads the route signatures at runtime.
"""

import json
import logging
import re
from collections.abc import Iterator
from typing import Annotated, Any
from urllib.parse import quote

import httpx
import pytest
from fastapi import FastAPI, Security
from mcp.server import MCPServer
from mcp.server.auth.settings import AuthSettings
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocketDisconnect

from mcp_oauth2 import AuthenticatedUser, OAuth2Config, OAuth2Middleware, ToolScopes
from mcp_oauth2._access import AccessControl, Refusal, RefusalLog
from mcp_oauth2.fastapi import OAuth2Bearer
from mcp_oauth2.lowlevel import StaticKeys
from mcp_oauth2.mcp_sdk import MCPTokenVerifier
from mcp_oauth2.testing import AppServer, LocalIssuer

pytestmark = pytest.mark.timeout(60)

AUDIENCE = "https://mcp.example.com/mcp"
TOOLS, ADMIN = "mcp:tools", "mcp:admin"
PATHS = ("middleware", "tool_scopes", "fastapi", "mcp_adapter")


def config_for(required_scopes: tuple[str, ...], issuer: LocalIssuer) -> OAuth2Config:
    return OAuth2Config.model_validate(
        {
            "issuer": [issuer.issuer],
            "audience": [AUDIENCE],
            "required_scopes": list(required_scopes),
            "exempt_routes": ["/public"],
            "scope_implications": {"mcp:root": [ADMIN]},
        }
    )


async def ok(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


async def tool(scope: Scope, receive: Receive, send: Send) -> None:
    await PlainTextResponse("the tool ran")(scope, receive, send)


def build(path: str, issuer: LocalIssuer) -> tuple[Any, OAuth2Config]:
    """An app that needs ``mcp:admin`` for one request, each way the library offers."""
    keys = StaticKeys(issuer.jwks())
    if path == "middleware":  # required_scopes
        config = config_for((ADMIN,), issuer)
        app = Starlette(routes=[Route("/call", ok, methods=["POST"]), Route("/public", ok)])
    elif path == "tool_scopes":  # the tool's scopes
        config = config_for((), issuer)
        app = Starlette(routes=[Mount("/", ToolScopes(tool, {"admin_reset": [ADMIN]}))])
    elif path == "fastapi":  # Security(bearer, scopes=...)
        config = config_for((), issuer)
        bearer = OAuth2Bearer()
        app = FastAPI()

        @app.post("/call")
        async def call(user: Annotated[AuthenticatedUser, Security(bearer, scopes=[ADMIN])]) -> str:
            return "ok"

        @app.get("/public")
        async def public(user: Annotated[AuthenticatedUser, Security(bearer)]) -> str:
            return "never"

    else:  # the MCP SDK's own auth over MCPTokenVerifier
        config = config_for((ADMIN,), issuer)
        verifier = MCPTokenVerifier(config, key_sources=keys)
        server: MCPServer[Any] = MCPServer(
            "refusals",
            token_verifier=verifier,
            auth=AuthSettings(
                issuer_url=issuer.issuer,
                resource_server_url=AUDIENCE,
                validate_token_resource=True,
            ),
        )
        return server.streamable_http_app(streamable_http_path="/call"), config
    app.add_middleware(OAuth2Middleware, config=config, key_sources=keys)
    return app, config


@pytest.fixture(scope="module")
def issuer() -> LocalIssuer:
    return LocalIssuer("https://issuer.example.com", default_audience=AUDIENCE)


@pytest.fixture(scope="module", params=PATHS)
def served(request: pytest.FixtureRequest, issuer: LocalIssuer) -> Iterator[tuple[str, str, Any]]:
    path: str = request.param
    app, config = build(path, issuer)
    with AppServer(app) as url:
        yield path, url, config


def call_tool(url: str, token: str | None) -> httpx.Response:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "admin_reset"}}
    headers = {"Accept": "application/json, text/event-stream"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.post(url + "/call", content=json.dumps(body), headers=headers, timeout=20)


def assert_sent(response: httpx.Response, refusal: Refusal) -> None:
    """The HTTP answer is exactly ``refusal``: status, body bytes, and every header it names."""
    assert response.status_code == refusal.status
    assert response.content == refusal.body
    for name, value in refusal.headers:
        assert response.headers.get_list(name.decode()) == [value.decode()], name


def test_a_missing_scope_is_answered_alike_by_every_path(
    served: tuple[str, str, OAuth2Config], issuer: LocalIssuer
) -> None:
    path, url, config = served
    access = AccessControl.from_config(config)
    response = call_tool(url, issuer.mint(scopes=[TOOLS]))
    if path == "mcp_adapter":
        # The adapter's decision is the AccessControl's; the answer is the SDK's (documented in
        # mcp_oauth2.mcp_sdk and docs/getting-started.md): a 401 with its own body and challenge.
        assert access.missing_scopes([TOOLS], access.required_scopes) == (ADMIN,)
        assert response.status_code == 401
        assert response.json() == {
            "error": "invalid_token",
            "error_description": "Authentication required",
        }
        assert response.headers["www-authenticate"].startswith(
            'Bearer error="invalid_token", error_description="Authentication required"'
        )
        return
    expected = access.scope_refusal([TOOLS], [ADMIN])
    assert expected is not None
    assert_sent(response, expected)
    assert response.json() == {
        "error": "insufficient_scope",
        "error_description": f"token lacks the required scope(s): {ADMIN}",
        "code": "insufficient_scope",
    }
    assert response.headers["www-authenticate"] == (
        'Bearer resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource'
        f'/mcp", scope="{ADMIN}", error="insufficient_scope", '
        f'error_description="token lacks the required scope(s): {ADMIN}"'
    )


def test_an_implied_scope_passes_every_path(
    served: tuple[str, str, OAuth2Config], issuer: LocalIssuer
) -> None:
    path, url, _ = served
    response = call_tool(url, issuer.mint(scopes=["mcp:root"]))
    # The MCP app answers the call itself (a JSON-RPC answer or error): past authorization.
    assert response.status_code not in (401, 403), response.text
    if path != "mcp_adapter":
        assert response.status_code == 200, response.text


def test_a_request_without_a_token_is_answered_alike(
    served: tuple[str, str, OAuth2Config],
) -> None:
    path, url, config = served
    access = AccessControl.from_config(config)
    if path == "mcp_adapter":
        response = call_tool(url, None)
        assert response.status_code == 401
        assert response.json()["error_description"] == "Authentication required"
        return
    # (Behind ToolScopes too: the middleware in front of it answers.)
    assert_sent(call_tool(url, None), access.missing_token())
    # An exempt route whose handler still asks for a user: the same answer from the dependency.
    if path == "fastapi":
        assert_sent(httpx.get(url + "/public", timeout=20), access.missing_token())


@pytest.mark.anyio
async def test_the_mcp_adapter_decides_with_the_access_control(issuer: LocalIssuer) -> None:
    config = config_for((ADMIN,), issuer)
    verifier = MCPTokenVerifier(config, key_sources=StaticKeys(issuer.jwks()))
    access = AccessControl.from_config(config)
    for granted in ([TOOLS], [ADMIN], ["mcp:root"], []):
        token = issuer.mint(scopes=granted)
        accepted = await verifier.verify_token(token)
        lacking = access.missing_scopes(granted, access.required_scopes)
        assert (accepted is None) == bool(lacking), granted
        if accepted is not None:
            assert accepted.scopes == sorted(access.effective_scopes(granted))


# -- the log line of each refusal ------------------------------------------------------------------


def refusal_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "mcp_oauth2.refusals"]


@pytest.mark.parametrize("path", PATHS)
def test_every_path_logs_one_line_per_refusal_without_the_token(
    path: str, issuer: LocalIssuer, caplog: pytest.LogCaptureFixture
) -> None:
    """Whichever part refuses, the server's log says what the client was told (status, code,
    path): one INFO line per request, never the token."""
    caplog.set_level(logging.INFO, logger="mcp_oauth2.refusals")
    app, _ = build(path, issuer)
    lacking = issuer.mint(scopes=[TOOLS])
    expired = issuer.mint_expired(scopes=[ADMIN])
    with AppServer(app) as url:
        call_tool(url, lacking)
        call_tool(url, expired)
    lines = refusal_lines(caplog)
    missing = re.escape(f"token lacks the required scope(s): {ADMIN}")
    expired_words = r"token expired \d+ s ago"  # the seconds depend on when it is checked
    if path == "mcp_adapter":  # the SDK answers; the verifier knows no request, only the token
        sdk = "; the MCP SDK answers 401 invalid_token"
        expected = [
            f"refused a bearer token: insufficient_scope \\({missing}\\){sdk}",
            f"refused a bearer token: expired \\({expired_words}\\){sdk}",
        ]
    else:
        expected = [
            f"refused POST /call: 403 insufficient_scope \\({missing}\\)",
            f"refused POST /call: 401 expired \\({expired_words}\\)",
        ]
    assert len(lines) == len(expected), lines
    for line, pattern in zip(lines, expected, strict=True):
        assert re.fullmatch(pattern, line), (line, pattern)
    assert lacking not in caplog.text and expired not in caplog.text
    assert {r.levelno for r in caplog.records if r.name == "mcp_oauth2.refusals"} == {logging.INFO}


def test_the_logged_path_cannot_forge_lines(
    issuer: LocalIssuer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mcp_oauth2.refusals")
    app, _ = build("middleware", issuer)
    forged = "/call\n\rrefused GET /x: 200 fine/\u00e9"
    with AppServer(app) as url:
        httpx.get(url + quote(forged) + "a" * 300, timeout=20)
    (line,) = refusal_lines(caplog)
    # Percent-encoded where not printable, cut at 200 characters of the path.
    expected_path = "/call%0A%0Drefused%20GET%20/x:%20200%20fine/%C3%A9" + "a" * (200 - len(forged))
    assert line == (
        f"refused GET {expected_path}: 401 missing_token (this resource needs a bearer token)"
    )


def test_a_refused_websocket_is_logged(
    issuer: LocalIssuer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mcp_oauth2.refusals")
    app = Starlette(routes=[WebSocketRoute("/ws", ok)])
    app.add_middleware(
        OAuth2Middleware, config=config_for((), issuer), key_sources=StaticKeys(issuer.jwks())
    )
    with (
        TestClient(app) as client,
        pytest.raises(WebSocketDisconnect),
        client.websocket_connect("/ws"),
    ):
        pass
    assert refusal_lines(caplog) == [
        "refused WEBSOCKET /ws: 401 missing_token (this resource needs a bearer token)"
    ]


def test_a_flood_of_refusals_is_logged_at_a_bounded_rate(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """At most ``per_second`` lines a second; the next line logged says how many were left out."""
    caplog.set_level(logging.INFO, logger="mcp_oauth2.refusals")
    now = [100.0]
    log = RefusalLog(per_second=10, clock=lambda: now[0])
    refusal = AccessControl("https://mcp.example.com/.well-known/x").missing_token()
    scope: Scope = {"type": "http", "method": "POST", "path": "/mcp"}
    for _ in range(25):
        log.record(refusal, scope)
        now[0] += 0.01
    line = "refused POST /mcp: 401 missing_token (this resource needs a bearer token)"
    assert refusal_lines(caplog) == [line] * 10
    now[0] += 1.0
    log.record(refusal, scope)
    log.record(refusal, scope)
    assert refusal_lines(caplog)[10:] == [f"{line}; 15 more refused, not logged", line]


def test_nothing_is_logged_while_the_logger_is_off(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="mcp_oauth2.refusals")
    log = RefusalLog(per_second=1, clock=lambda: 0.0)
    refusal = AccessControl("https://mcp.example.com/.well-known/x").missing_token()
    for _ in range(3):
        log.record(refusal, {"type": "http", "method": "GET", "path": "/"})
    caplog.set_level(logging.INFO, logger="mcp_oauth2.refusals")
    log.record(refusal, {"type": "http", "method": "GET", "path": "/"})
    # Refusals while the logger was off are not counted as left out.
    assert refusal_lines(caplog) == [
        "refused GET /: 401 missing_token (this resource needs a bearer token)"
    ]
