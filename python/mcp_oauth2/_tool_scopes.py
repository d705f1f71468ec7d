"""``ToolScopes``: per-tool scopes for an MCP endpoint, the shorthand of ``MCPPolicy``.

``ToolScopes(app, {"admin_reset": ["mcp:admin"]})`` is
``MCPPolicy(app, tools={"admin_reset": require_scopes("mcp:admin")}, default=PUBLIC,
filter_lists=False)``, the same object underneath: a ``tools/call`` of a listed tool needs its
scopes (403 ``insufficient_scope`` challenging for every scope needed, or 401 for a caller without
a token), and nothing else needs anything beyond what the middleware admits, as ``ToolScopes``
always did; lists are not filtered. Every rule of ``MCPPolicy`` for reading the body, its headers
and the middleware in front holds (``_mcp_policy``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from starlette.types import ASGIApp

from mcp_oauth2._mcp_policy import DEFAULT_MAX_BODY_BYTES, MCPPolicy, tool_requirements
from mcp_oauth2._requirements import PUBLIC

__all__ = ["ToolScopes"]


class ToolScopes(MCPPolicy):
    def __init__(
        self,
        app: ASGIApp,
        tool_scopes: Mapping[str, Iterable[str]],
        *,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        self.tool_scopes = {tool: tuple(scopes) for tool, scopes in tool_scopes.items()}
        super().__init__(
            app,
            tools=tool_requirements(self.tool_scopes),
            default=PUBLIC,
            filter_lists=False,
            max_body_bytes=max_body_bytes,
        )
