"""The protected MCP servers of the interop run, the downstream API a tool may call, and the MCP
SDK client that drives them.

The wiring is the demo's (``examples/demo.py``): FastAPI with an exempt ``/health``, the official
``mcp`` SDK's ``MCPServer`` over streamable HTTP at exactly ``/mcp``, ``ToolScopes`` for the
``admin_reset`` tool and ``OAuth2Middleware`` in front. Given a ``TokenExchanger`` and an API's
URL, the server has one more tool, ``downstream_whoami``, which calls that API as the caller
(``build_api``: its own audience, behind its own ``OAuth2Middleware``). Only the public API of
``mcp_oauth2`` is used. ``SDKClient`` (the demo's) is the SDK's own client over an HTTP client
that records every answer, so a refusal's status and ``WWW-Authenticate`` can be read after the
SDK turned it into an exception; ``make interop`` puts ``examples/`` on the import path.

``build_roles_app`` is the same server with ``MCPPolicy`` instead of ``ToolScopes``: ``deploy``
needs the realm role ``deployer``, ``operate`` the client role ``operator`` of the client
``mcp-server``, read from Keycloak's ``realm_access`` and ``resource_access`` claims
(``ROLES_CLAIMS``).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, Final, TypedDict

import httpx
from fastapi import FastAPI
from mcp.server import MCPServer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from demo import Exchange, SDKClient, challenge_params
from mcp_oauth2 import (
    AuthenticatedUser,
    MCPPolicy,
    OAuth2Config,
    OAuth2Middleware,
    TokenExchanger,
    ToolScopes,
    current_user,
    require_roles,
    require_scopes,
)
from mcp_oauth2.lowlevel import KeySource
from mcp_oauth2.mcp_sdk import downstream_errors

__all__ = [
    "ADMIN_SCOPE",
    "MCP_PATH",
    "ROLES_CLAIMS",
    "TOOLS_SCOPE",
    "Exchange",
    "SDKClient",
    "build_api",
    "build_app",
    "build_roles_app",
    "challenge_params",
]

MCP_PATH: Final = "/mcp"
HEALTH: Final = "/health"
TOOLS_SCOPE: Final = "mcp:tools"
ADMIN_SCOPE: Final = "mcp:admin"
TOOL_SCOPES: Final[Mapping[str, tuple[str, ...]]] = {"admin_reset": (ADMIN_SCOPE,)}
ROLES_CLAIMS: Final = ("realm_access.roles", "resource_access.mcp-server.roles")
"""Where Keycloak puts realm roles, and the roles of the client ``mcp-server``."""


class Identity(TypedDict):
    """What ``whoami`` answers: the caller as the middleware authenticated it."""

    subject: str | None
    client_id: str | None
    scopes: list[str]
    roles: list[str]
    audience: list[str]
    claims: dict[str, Any]


def _user() -> AuthenticatedUser:
    user = current_user()
    if user is None:
        raise RuntimeError("no authenticated user: is OAuth2Middleware installed?")
    return user


def _mcp_server(downstream: tuple[TokenExchanger, httpx.AsyncClient] | None) -> MCPServer[Any]:
    server: MCPServer[Any] = MCPServer("mcp-oauth2 interop", log_level="WARNING")

    @server.tool()
    def whoami() -> Identity:
        """Who is calling: the token's subject, client, scopes, audience and claims."""
        user = _user()
        return Identity(
            subject=user.subject,
            client_id=user.client_id,
            scopes=sorted(user.scopes),
            roles=sorted(user.roles),
            audience=list(user.audience),
            claims=dict(user.claims),
        )

    @server.tool()
    def echo(text: str) -> str:
        """Answer ``text`` unchanged."""
        return text

    @server.tool()
    def admin_reset() -> str:
        """A privileged operation (needs mcp:admin); resets nothing."""
        return f"reset done by {_user().subject}"

    @server.tool()
    def deploy() -> str:
        """Needs the realm role deployer (with MCPPolicy)."""
        return f"deployed by {_user().claims.get('preferred_username', _user().subject)}"

    @server.tool()
    def operate() -> str:
        """Needs the client role operator of mcp-server (with MCPPolicy)."""
        return f"operated by {_user().claims.get('preferred_username', _user().subject)}"

    if downstream is not None:
        exchanger, api = downstream

        @server.tool()
        async def downstream_whoami(audience: str = "") -> dict[str, Any]:
            """Who the downstream API says is calling, with a token exchanged for it (for
            ``audience``, by default the API's URL)."""
            with downstream_errors():
                auth = exchanger.auth(audience=audience or str(api.base_url).rstrip("/"))
                answer: dict[str, Any] = (await api.get("/whoami", auth=auth)).json()
            return answer

    return server


def build_app(
    config: OAuth2Config,
    key_sources: KeySource | None = None,
    *,
    at_shutdown: Sequence[Callable[[], Awaitable[None]]] = (),
    downstream: tuple[TokenExchanger, str] | None = None,
) -> FastAPI:
    """FastAPI with ``/health`` (exempt in ``config``) and the MCP endpoint at ``/mcp``.

    ``at_shutdown`` runs in the server's event loop when it stops (to close an HTTP client
    given to ``key_sources``, which belongs to that loop). ``downstream`` (an exchanger and the
    API's URL) adds the tool ``downstream_whoami``, which calls the API through one client; the
    exchanger and the client are closed at shutdown.
    """
    calls = None
    if downstream is not None:
        exchanger, api_url = downstream
        api = httpx.AsyncClient(base_url=api_url, timeout=10)
        calls = (exchanger, api)
        at_shutdown = (*at_shutdown, exchanger.aclose, api.aclose)
    server = _mcp_server(calls)
    mcp_app = server.streamable_http_app(streamable_http_path=MCP_PATH)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with server.session_manager.run():
            yield
        for close in at_shutdown:
            await close()

    app = FastAPI(lifespan=lifespan)

    @app.get(HEALTH)
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    app.mount("/", ToolScopes(mcp_app, TOOL_SCOPES))
    app.add_middleware(OAuth2Middleware, config=config, key_sources=key_sources)
    return app


def build_api(config: OAuth2Config) -> OAuth2Middleware:
    """The downstream API: ``/whoami`` answers the caller as its own middleware admitted it."""

    async def whoami(request: Request) -> JSONResponse:
        user = request.user
        return JSONResponse(
            {
                "subject": user.subject,
                "client_id": user.client_id,
                "audience": list(user.audience),
                "scopes": sorted(user.scopes),
                "claims": user.claims,
            }
        )

    return OAuth2Middleware(Starlette(routes=[Route("/whoami", whoami)]), config)


def build_roles_app(config: OAuth2Config) -> FastAPI:
    """The server with ``MCPPolicy``: ``deploy`` and ``operate`` need roles (``config`` should
    read ``ROLES_CLAIMS``), ``admin_reset`` its scope, everything else any valid token."""
    server = _mcp_server(None)
    mcp_app = server.streamable_http_app(streamable_http_path=MCP_PATH)
    policy = MCPPolicy(
        mcp_app,
        tools={
            "deploy": require_roles("deployer"),
            "operate": require_roles("operator"),
            "admin_reset": require_scopes(ADMIN_SCOPE),
        },
    )

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with server.session_manager.run():
            yield

    app = FastAPI(lifespan=lifespan)
    app.mount("/", policy)
    app.add_middleware(OAuth2Middleware, config=config)
    return app
