"""mcp-oauth2: OAuth 2.1 resource-server authorization for Python MCP servers.

``app.add_middleware(OAuth2Middleware, config=OAuth2Config(issuer=..., audience=...))`` verifies
every request's access token (a JWT verified by the native core, or an opaque token asked about
at the authorization server) and answers failures as RFC 6750 and RFC 9728 say; ``MCPPolicy``
decides per MCP operation (tools, prompts, resources) with requirements over scopes, roles,
claims and custom checks (``require_scopes``, ``require_roles``, ``require_claim``, ``require``,
``PUBLIC``), and ``ToolScopes`` is its shorthand for per-tool scopes; ``current_user()`` is the
caller of the request being served, and ``TokenExchanger`` calls downstream APIs as that caller
(RFC 8693 token exchange, giving an ``ExchangedToken``). The errors are in
``mcp_oauth2.errors``, the parts the middleware is made of in ``mcp_oauth2.lowlevel``.
"""

from importlib.metadata import version as _distribution_version

from mcp_oauth2._config import OAuth2Config
from mcp_oauth2._current_user import current_user
from mcp_oauth2._mcp_policy import MCPPolicy
from mcp_oauth2._middleware import OAuth2Middleware
from mcp_oauth2._requirements import (
    PUBLIC,
    Call,
    Requirement,
    require,
    require_claim,
    require_roles,
    require_scopes,
)
from mcp_oauth2._rust import AuthenticatedUser
from mcp_oauth2._token_exchange import ExchangedToken, TokenExchanger
from mcp_oauth2._token_format import TokenFormat
from mcp_oauth2._tool_scopes import ToolScopes

# The installed distribution's version, which maturin takes from Cargo.toml (the one source).
__version__: str = _distribution_version("mcp-oauth2")

__all__ = [
    "PUBLIC",
    "AuthenticatedUser",
    "Call",
    "ExchangedToken",
    "MCPPolicy",
    "OAuth2Config",
    "OAuth2Middleware",
    "Requirement",
    "TokenExchanger",
    "TokenFormat",
    "ToolScopes",
    "__version__",
    "current_user",
    "require",
    "require_claim",
    "require_roles",
    "require_scopes",
]
