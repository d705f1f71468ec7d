"""mcp-oauth2: OAuth 2.1 resource-server authorization for Python MCP servers.

Bearer JWT access tokens are verified by a native core (Rust, aws-lc-rs): parse the
authorization server's keys once with :class:`KeySet`, describe what you accept with
:class:`TokenValidator`, and call :meth:`TokenValidator.validate` per request. Behind
:class:`OAuth2Middleware`, :func:`current_user` is the caller of the request being served, and
:class:`TokenExchanger` calls downstream APIs as that caller (RFC 8693 token exchange).
"""

from importlib.metadata import version as _distribution_version

from mcp_oauth2 import errors
from mcp_oauth2._authenticator import Authenticator
from mcp_oauth2._cache_settings import CacheSettings
from mcp_oauth2._config import OAuth2Config
from mcp_oauth2._current_user import current_user
from mcp_oauth2._health import AuthenticatorHealth
from mcp_oauth2._jwks import JWKSCache, KeySource, KeySourceStats, StaticKeys
from mcp_oauth2._middleware import OAuth2Middleware
from mcp_oauth2._rust import (
    AuthenticatedUser,
    KeySet,
    TokenValidator,
    peek_header,
    peek_issuer,
)
from mcp_oauth2._token_exchange import ExchangedToken, TokenExchanger
from mcp_oauth2._tool_scopes import ToolScopes
from mcp_oauth2.errors import *  # noqa: F403 - every error class, as errors.__all__ lists

# The installed distribution's version, which maturin takes from Cargo.toml (the one source).
__version__: str = _distribution_version("mcp-oauth2")

__all__ = [
    "AuthenticatedUser",
    "Authenticator",
    "AuthenticatorHealth",
    "CacheSettings",
    "ExchangedToken",
    "JWKSCache",
    "KeySet",
    "KeySource",
    "KeySourceStats",
    "OAuth2Config",
    "OAuth2Middleware",
    "StaticKeys",
    "TokenExchanger",
    "TokenValidator",
    "ToolScopes",
    "__version__",
    "current_user",
    "peek_header",
    "peek_issuer",
]
# Every error class is importable from here too.
__all__ += errors.__all__
