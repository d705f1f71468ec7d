"""A protected MCP server, a local issuer, and a client that drives both: the runnable demo.

    python examples/demo.py          # transcript: no token, missing scope, valid token
    python examples/demo.py serve    # keep it running; prints a token and a curl line

``build_demo_app`` is also the reference for wiring mcp-oauth2 into a FastAPI app that serves the
official ``mcp`` SDK's ``MCPServer`` over streamable HTTP:

- ``OAuth2Middleware`` verifies the bearer token of every request (``/health`` is exempt) and
  serves the RFC 9728 metadata;
- ``ToolScopes`` refuses a ``tools/call`` of ``admin_reset`` with HTTP 403 ``insufficient_scope``
  unless the token has ``mcp:admin``;
- the tools read the caller with ``mcp_oauth2.current_user()``, which needs no ``Context``.

The MCP app is mounted at ``/`` with ``streamable_http_path="/mcp"``, so it serves exactly
``/mcp`` (a ``Mount("/mcp")`` would redirect ``/mcp`` to ``/mcp/``). A mounted app's own lifespan
does not run, so the FastAPI lifespan runs the SDK's session manager.

Needs the optional extras ``fastapi``, ``mcp`` and ``testing`` (uvicorn and cryptography):
``pip install 'mcp-oauth2[fastapi,mcp,testing]'``. The client side also imports ``httpx2`` and
``mcp_types``, which the ``mcp`` 2.x SDK itself depends on (its HTTP client and its protocol
types), so that install brings them; the library never imports them, which is why the demo lives
here and not in the package. Everything binds 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import re
import shlex
import signal
import sys
import threading
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypedDict

import httpx
import httpx2
from fastapi import FastAPI
from mcp.client import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.server import MCPServer
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolResult, TextContent
from mcp_types.version import LATEST_HANDSHAKE_VERSION

from mcp_oauth2 import AuthenticatedUser, OAuth2Config, OAuth2Middleware, ToolScopes, current_user
from mcp_oauth2.testing import AppServer, LocalIssuer, bind_loopback, url_of

__all__ = [
    "ADMIN_SCOPE",
    "MCP_PATH",
    "SERVER_NAME",
    "TOOLS_SCOPE",
    "TOOL_SCOPES",
    "Exchange",
    "SDKClient",
    "build_demo_app",
    "challenge_params",
    "demo_config",
    "main",
    "run_demo",
    "serve",
]

SERVER_NAME: Final = "mcp-oauth2 demo"
MCP_PATH: Final = "/mcp"
TOOLS_SCOPE: Final = "mcp:tools"
ADMIN_SCOPE: Final = "mcp:admin"
TOOL_SCOPES: Final[Mapping[str, tuple[str, ...]]] = {"admin_reset": (ADMIN_SCOPE,)}
"""Scopes a tool needs beyond ``required_scopes`` (enforced by ``ToolScopes``)."""

_HOST: Final = "127.0.0.1"
_HEALTH: Final = "/health"
_AS_METADATA: Final = "/.well-known/oauth-authorization-server"
_CLIENT_TIMEOUT: Final = 30.0
_CHALLENGE_PARAM: Final = re.compile(r'([A-Za-z_]+)="((?:[^"\\]|\\.)*)"')

# -- the server -----------------------------------------------------------------------------------


class Identity(TypedDict):
    """What ``whoami`` answers: the caller as the middleware authenticated it."""

    subject: str | None
    client_id: str | None
    scopes: list[str]
    claims: dict[str, Any]


def demo_config(issuer: str, server_url: str) -> OAuth2Config:
    """The demo's configuration: tokens of ``issuer`` for ``<server_url>/mcp``.

    Built from these values alone (``model_validate`` does not read ``MCP_OAUTH2_*``
    variables), so the demo behaves the same whatever the environment holds.
    """
    return OAuth2Config.model_validate(
        {
            "issuer": [issuer],
            "audience": [server_url.rstrip("/") + MCP_PATH],
            "scopes_supported": [TOOLS_SCOPE, ADMIN_SCOPE],
            "required_scopes": [TOOLS_SCOPE],
            "exempt_routes": [_HEALTH],
        }
    )


def _with_health_exempt(config: OAuth2Config) -> OAuth2Config:
    if _HEALTH in config.exempt_routes:
        return config
    # OAuth2Config is frozen: validate a copy with /health added.
    settings = config.model_dump()
    settings["exempt_routes"] = (*config.exempt_routes, _HEALTH)
    return OAuth2Config.model_validate(settings)


def _caller() -> AuthenticatedUser:
    """The authenticated caller of the current tool call."""
    user = current_user()
    if user is None:
        raise RuntimeError("no authenticated user: is OAuth2Middleware installed?")
    return user


def _mcp_server() -> MCPServer[Any]:
    server: MCPServer[Any] = MCPServer(SERVER_NAME, log_level="WARNING")

    @server.tool()
    def whoami() -> Identity:
        """Who is calling: the subject, client id, scopes and claims of the bearer token."""
        user = _caller()
        return Identity(
            subject=user.subject,
            client_id=user.client_id,
            scopes=sorted(user.scopes),
            claims=dict(user.claims),
        )

    @server.tool()
    def echo(text: str) -> str:
        """Answer ``text`` unchanged."""
        return text

    @server.tool()
    def admin_reset() -> str:
        """A privileged operation (needs the mcp:admin scope); resets nothing in the demo."""
        return f"reset done by {_caller().subject}"

    return server


def build_demo_app(config: OAuth2Config, *, json_response: bool = False) -> FastAPI:
    """The demo server: FastAPI with ``/health`` and the MCP endpoint at exactly ``/mcp``.

    ``config.audience`` should be ``<this server's base URL>/mcp``; ``/health`` is added to
    ``exempt_routes`` when missing. ``json_response`` makes the MCP endpoint answer POSTs with
    ``application/json`` instead of an SSE stream.
    """
    config = _with_health_exempt(config)
    server = _mcp_server()
    mcp_app = server.streamable_http_app(streamable_http_path=MCP_PATH, json_response=json_response)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # The mounted MCP app's own lifespan does not run; its session manager must.
        async with server.session_manager.run():
            yield

    app = FastAPI(title=SERVER_NAME, lifespan=lifespan)

    @app.get(_HEALTH)
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    # After the FastAPI routes: everything else goes to the MCP app, which serves /mcp only.
    app.mount("/", ToolScopes(mcp_app, TOOL_SCOPES))
    app.add_middleware(OAuth2Middleware, config=config)
    return app


# -- running servers on loopback ------------------------------------------------------------------


@dataclass
class _Demo:
    issuer: LocalIssuer
    server_url: str

    @property
    def mcp_url(self) -> str:
        return self.server_url + MCP_PATH

    def token(self, scopes: Sequence[str], *, expires_in: int = 300) -> str:
        return self.issuer.mint(
            subject="demo-user", audience=self.mcp_url, scopes=scopes, expires_in=expires_in
        )


@contextlib.contextmanager
def _running(*, port: int = 0, json_response: bool = False) -> Iterator[_Demo]:
    """A local issuer (on a free port) and the demo server, both listening on 127.0.0.1."""
    issuer = LocalIssuer()
    with issuer.serve():
        sock = bind_loopback(port)
        server_url = url_of(sock)
        app = build_demo_app(demo_config(issuer.issuer, server_url), json_response=json_response)
        with AppServer(app, sock):
            yield _Demo(issuer, server_url)


# -- the transcript -------------------------------------------------------------------------------


@dataclass
class _Transcript:
    failures: list[str] = field(default_factory=list)

    def part(self, title: str) -> None:
        print(f"\n== {title}")

    def step(self, text: str) -> None:
        print(f"   {text}")

    def check(self, ok: bool, expectation: str) -> bool:
        print(f"   {'ok  ' if ok else 'FAIL'} {expectation}")
        if not ok:
            self.failures.append(expectation)
        return ok


@dataclass
class Exchange:
    method: str
    url: str
    status: int
    headers: httpx2.Headers


class SDKClient:
    """The ``mcp`` SDK client over streamable HTTP, recording every HTTP answer it receives."""

    def __init__(self, url: str, token: str | None) -> None:
        self.url = url
        self.token = token
        self.exchanges: list[Exchange] = []

    async def _record(self, response: httpx2.Response) -> None:
        request = response.request
        self.exchanges.append(
            Exchange(request.method, str(request.url), response.status_code, response.headers)
        )

    def last_refusal(self) -> Exchange | None:
        return next((e for e in reversed(self.exchanges) if e.status >= 400), None)

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[ClientSession]:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else None
        timeout = httpx2.Timeout(_CLIENT_TIMEOUT)
        hooks = {"response": [self._record]}
        async with (
            httpx2.AsyncClient(headers=headers, timeout=timeout, event_hooks=hooks) as http,
            streamable_http_client(self.url, http_client=http) as (read, write),
            ClientSession(read, write) as session,
        ):
            yield session


def challenge_params(header: str) -> dict[str, str]:
    """The parameters of a ``Bearer`` challenge (quoted values unescaped)."""
    return {
        name: re.sub(r"\\(.)", r"\1", value) for name, value in _CHALLENGE_PARAM.findall(header)
    }


def _as_metadata_url(issuer: str) -> str:
    """RFC 8414 section 3.1: the well-known path goes before the issuer's path."""
    parsed = httpx.URL(issuer)
    path = parsed.path.rstrip("/")
    return str(parsed.copy_with(path=_AS_METADATA + path, query=None, fragment=None))


def _text(result: CallToolResult) -> str:
    return " ".join(c.text for c in result.content if isinstance(c, TextContent))


def _refusal_line(exchange: Exchange | None) -> str:
    if exchange is None:
        return "no HTTP refusal recorded"
    return (
        f"HTTP {exchange.status} on {exchange.method} {httpx.URL(exchange.url).path}, "
        f"WWW-Authenticate: {exchange.headers.get('www-authenticate')}"
    )


async def _part_no_token(demo: _Demo, out: _Transcript, http: httpx.AsyncClient) -> None:
    out.part("A. no token: the server answers 401 and points to its metadata")
    client = SDKClient(demo.mcp_url, None)
    async with client.session() as session:
        try:
            await session.initialize()
            out.check(False, "initialize without a token fails")
        except MCPError as error:
            out.step(f"SDK initialize raised MCPError({error.code}, {error.message!r})")
    refusal = client.last_refusal()
    out.step(_refusal_line(refusal))
    out.check(refusal is not None and refusal.status == 401, "HTTP 401 without a token")
    challenge = refusal.headers.get("www-authenticate", "") if refusal else ""
    params = challenge_params(challenge)
    out.check(
        challenge.startswith("Bearer ") and "resource_metadata" in params,
        "WWW-Authenticate is a Bearer challenge with resource_metadata",
    )
    metadata_url = params.get("resource_metadata")
    if metadata_url is None:
        return
    metadata = (await http.get(metadata_url)).json()
    out.step(f"GET {metadata_url}")
    out.step(f"  resource = {metadata.get('resource')}")
    out.step(f"  authorization_servers = {metadata.get('authorization_servers')}")
    out.step(f"  scopes_supported = {metadata.get('scopes_supported')}")
    out.check(metadata.get("resource") == demo.mcp_url, "resource is the MCP endpoint's URL")
    servers = metadata.get("authorization_servers") or []
    out.check(servers == [demo.issuer.issuer], "authorization_servers names the local issuer")
    if not servers:
        return
    as_url = _as_metadata_url(servers[0])
    as_metadata = (await http.get(as_url)).json()
    out.step(f"GET {as_url}")
    out.step(f"  issuer = {as_metadata.get('issuer')}")
    out.step(f"  jwks_uri = {as_metadata.get('jwks_uri')}")
    out.step(f"  token_endpoint = {as_metadata.get('token_endpoint')}")
    out.check(as_metadata.get("issuer") == servers[0], "the AS metadata's issuer matches")


async def _part_missing_scope(demo: _Demo, out: _Transcript, http: httpx.AsyncClient) -> None:
    out.part(f"B. token with {TOOLS_SCOPE} only: tools work, admin_reset needs {ADMIN_SCOPE}")
    token = demo.token([TOOLS_SCOPE])
    client = SDKClient(demo.mcp_url, token)
    async with client.session() as session:
        init = await session.initialize()
        out.step(f"initialize: server {init.server_info.name!r}, protocol {init.protocol_version}")
        tools = sorted(tool.name for tool in (await session.list_tools()).tools)
        out.step(f"tools/list: {', '.join(tools)}")
        out.check(tools == ["admin_reset", "echo", "whoami"], "three tools are listed")
        whoami = await session.call_tool("whoami", {})
        out.step(f"whoami: {json.dumps(whoami.structured_content)}")
        identity = whoami.structured_content or {}
        out.check(
            identity.get("subject") == "demo-user" and identity.get("scopes") == [TOOLS_SCOPE],
            "whoami reports the token's subject and scopes (current_user())",
        )
        claims = identity.get("claims") or {}
        out.check(
            claims.get("sub") == "demo-user" and claims.get("aud") == demo.mcp_url,
            "whoami returns the token's claims",
        )
        try:
            result = await session.call_tool("admin_reset", {})
            out.step(f"admin_reset answered: {_text(result)!r}")
            out.check(False, "admin_reset is refused")
        except MCPError as error:
            out.step(
                f"SDK call_tool('admin_reset') raised MCPError({error.code}, {error.message!r})"
            )
        refusal = client.last_refusal()
        out.step(_refusal_line(refusal))
        params = challenge_params(refusal.headers.get("www-authenticate", "") if refusal else "")
        out.check(
            refusal is not None
            and refusal.status == 403
            and params.get("error") == "insufficient_scope"
            and params.get("scope") == f"{TOOLS_SCOPE} {ADMIN_SCOPE}",
            f'HTTP 403 insufficient_scope, scope="{TOOLS_SCOPE} {ADMIN_SCOPE}"',
        )
    # The SDK turns the 403 into a generic JSON-RPC error; the same call as a raw POST shows the
    # answer a client sees (ToolScopes refuses it before the MCP app looks at the session).
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "admin_reset"}}
    raw = await http.post(
        demo.mcp_url,
        json=call,
        headers={
            "Authorization": f"Bearer {token}",
            "Accept": "application/json, text/event-stream",
        },
    )
    out.step(f"raw POST tools/call admin_reset: HTTP {raw.status_code} {raw.text}")
    out.check(
        raw.status_code == 403 and raw.json().get("error") == "insufficient_scope",
        "the raw POST gets 403 with an insufficient_scope JSON body",
    )


async def _part_admin(demo: _Demo, out: _Transcript) -> None:
    out.part(f"C. token with {TOOLS_SCOPE} and {ADMIN_SCOPE}: admin_reset works")
    client = SDKClient(demo.mcp_url, demo.token([TOOLS_SCOPE, ADMIN_SCOPE]))
    async with client.session() as session:
        await session.initialize()
        whoami = await session.call_tool("whoami", {})
        out.step(f"whoami: {json.dumps(whoami.structured_content)}")
        reset = await session.call_tool("admin_reset", {})
        out.step(f"admin_reset: {_text(reset)!r}")
        out.check(
            not reset.is_error and _text(reset) == "reset done by demo-user",
            "admin_reset succeeds",
        )
        echo = await session.call_tool("echo", {"text": "hello, MCP"})
        out.step(f"echo: {_text(echo)!r}")
        out.check(_text(echo) == "hello, MCP", "echo answers its text")


async def _drive(demo: _Demo, out: _Transcript) -> None:
    out.step(f"issuer      {demo.issuer.issuer}")
    out.step(f"MCP server  {demo.mcp_url} (audience of its tokens)")
    async with httpx.AsyncClient(timeout=10) as http:
        health = await http.get(demo.server_url + _HEALTH)
        out.check(health.status_code == 200, "GET /health without a token: 200 (exempt)")
        await _part_no_token(demo, out, http)
        await _part_missing_scope(demo, out, http)
        await _part_admin(demo, out)


def _configure_logging() -> None:
    # Before MCPServer runs logging.basicConfig(INFO): only warnings, and on stderr.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


def _leaves(error: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups, or ``error`` itself."""
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in _leaves(inner)]
    return [error]


def run_demo(*, json_response: bool = False) -> int:
    """Start everything, print the transcript; 0 when every expectation held, else 1."""
    out = _Transcript()
    print(f"mcp-oauth2 demo: local issuer + FastAPI/MCP server on {_HOST}, driven by the mcp SDK")
    with _running(json_response=json_response) as demo:
        try:
            asyncio.run(_drive(demo, out))
        except Exception as error:  # a transcript line rather than a task-group traceback
            for leaf in _leaves(error):
                out.check(False, f"no unexpected error (got {type(leaf).__name__}: {leaf})")
    if out.failures:
        print(f"\n{len(out.failures)} expectation(s) failed:")
        for failure in out.failures:
            print(f"   - {failure}")
        return 1
    print("\nevery expectation held")
    return 0


def serve(*, port: int = 0, json_response: bool = False) -> None:
    """Keep the issuer and the demo server running until Ctrl-C; print a token and a curl line.

    ``port`` is the MCP server's (0: a free one); the issuer always takes a free port.
    """
    with _running(port=port, json_response=json_response) as demo:
        token = demo.token([TOOLS_SCOPE, ADMIN_SCOPE], expires_in=3600)
        initialize = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": LATEST_HANDSHAKE_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "curl", "version": "0"},
            },
        }
        curl = [
            "curl",
            "-i",
            demo.mcp_url,
            "-H",
            f"Authorization: Bearer {token}",
            "-H",
            "Content-Type: application/json",
            "-H",
            "Accept: application/json, text/event-stream",
            "-d",
            json.dumps(initialize, separators=(",", ":")),
        ]
        print(f"issuer:            {demo.issuer.issuer}")
        print(f"AS metadata:       {_as_metadata_url(demo.issuer.issuer)}")
        print(f"MCP endpoint:      {demo.mcp_url}")
        print(f"resource metadata: {demo.server_url}/.well-known/oauth-protected-resource/mcp")
        print(f"token ({TOOLS_SCOPE} {ADMIN_SCOPE}, valid 1 h):\n{token}\n")
        print("try:\n" + shlex.join(curl) + "\n")
        print("Ctrl-C stops.", flush=True)
        _wait_for_interrupt()
    print("stopped")


def _wait_for_interrupt() -> None:
    """Block until Ctrl-C (SIGINT) or SIGTERM."""
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        with contextlib.suppress(KeyboardInterrupt):
            while not stop.wait(0.5):
                pass
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    """``python examples/demo.py [run|serve]``; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python examples/demo.py", description=__doc__.split("\n", 1)[0] if __doc__ else ""
    )
    parser.add_argument(
        "command", nargs="?", choices=["run", "serve"], default="run", help="default: run"
    )
    parser.add_argument("--port", type=int, default=0, help="serve: MCP server port (0: free)")
    parser.add_argument(
        "--json-response", action="store_true", help="answer MCP POSTs with JSON, not SSE"
    )
    args = parser.parse_args(argv)
    _configure_logging()
    if args.command == "serve":
        serve(port=args.port, json_response=args.json_response)
        return 0
    return run_demo(json_response=args.json_response)


if __name__ == "__main__":
    sys.exit(main())
