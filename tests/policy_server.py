"""An MCP server with public and protected operations behind ``OAuth2Middleware`` and
``MCPPolicy``, for the end-to-end tests (Python and TypeScript clients) and the conformance
scenarios.

The real SDK (``MCPServer`` over streamable HTTP, JSON or SSE answers) serves at ``/mcp``, an
anonymous route: a caller without a token may use what is ``PUBLIC`` and sees only that in the
lists. Each tool counts its runs, so "refused" means it really did not run.

- ``weather``: public;
- ``search_notes``: needs the scope ``notes:read``;
- ``deploy``: needs the scope ``ops`` and the role ``deployer``;
- ``tenant_report``: its ``tenant`` argument must be the caller's ``tenant`` claim;
- resources ``docs://readme`` (public) and ``notes://{note_id}`` (``notes:read``);
- the prompt ``summarize_notes`` (``notes:read``).
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any, Final

from mcp.server import MCPServer
from starlette.applications import Starlette
from starlette.routing import Mount

from mcp_oauth2 import (
    PUBLIC,
    AuthenticatedUser,
    Call,
    MCPPolicy,
    OAuth2Config,
    OAuth2Middleware,
    current_user,
    require,
    require_claim,
    require_roles,
    require_scopes,
)

NOTES: Final = "notes:read"
OPS: Final = "ops"
DEPLOYER: Final = "deployer"
PUBLIC_TOOLS: Final = ["weather"]
EVERY_TOOL: Final = ["deploy", "search_notes", "tenant_report", "weather"]


def same_tenant(user: AuthenticatedUser, call: Call) -> bool:
    """The call's ``tenant`` argument is the caller's ``tenant`` claim."""
    return call.arguments.get("tenant") == user.claims.get("tenant")


def policy_config(issuer: str, mcp_url: str, **settings: Any) -> OAuth2Config:
    return OAuth2Config.model_validate(
        {
            "issuer": [issuer],
            "audience": [mcp_url],
            "anonymous_routes": ["/mcp"],
            "scopes_supported": [NOTES, OPS],
            **settings,
        }
    )


def build_policy_app(
    config: OAuth2Config, *, json_response: bool, runs: Counter[str] | None = None
) -> Starlette:
    runs = Counter() if runs is None else runs
    server: MCPServer[Any] = MCPServer("policy", log_level="WARNING")

    @server.tool()
    def weather(city: str = "Paris") -> str:
        """Public: the weather anywhere."""
        runs["weather"] += 1
        return f"sunny in {city}"

    @server.tool()
    def search_notes(query: str = "") -> str:
        """Needs notes:read."""
        runs["search_notes"] += 1
        return f"notes about {query!r}"

    @server.tool()
    def deploy(service: str = "api") -> str:
        """Needs the ops scope and the deployer role."""
        runs["deploy"] += 1
        user = current_user()
        return f"{service} deployed by {user.subject if user else None}"

    @server.tool()
    def tenant_report(tenant: str = "") -> str:
        """Only for the caller's own tenant."""
        runs["tenant_report"] += 1
        return f"report for {tenant}"

    @server.resource("docs://readme")
    def readme() -> str:
        return "public readme"

    @server.resource("notes://{note_id}")
    def note(note_id: str) -> str:
        runs["note"] += 1
        return f"note {note_id}"

    @server.prompt()
    def summarize_notes(topic: str) -> str:
        """Needs notes:read."""
        runs["summarize_notes"] += 1
        return f"Summarize the notes about {topic}."

    mcp_app = server.streamable_http_app(streamable_http_path="/mcp", json_response=json_response)
    policy = MCPPolicy(
        mcp_app,
        tools={
            "weather": PUBLIC,
            "search_notes": require_scopes(NOTES),
            "deploy": require_scopes(OPS) & require_roles(DEPLOYER),
            "tenant_report": require(same_tenant) & require_claim("tenant", "acme", "globex"),
        },
        resources={"docs://readme": PUBLIC, "notes://{note_id}": require_scopes(NOTES)},
        prompts={"summarize_notes": require_scopes(NOTES)},
    )

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with server.session_manager.run():
            yield

    app = Starlette(routes=[Mount("/", app=policy)], lifespan=lifespan)
    app.add_middleware(OAuth2Middleware, config=config)
    app.state.runs = runs
    return app
