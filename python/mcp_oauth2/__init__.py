"""mcp-oauth2: OAuth 2.1 resource-server authorization for Python MCP servers.

Bearer JWT access tokens are verified by a native core (Rust, aws-lc-rs): parse the
authorization server's keys once with :class:`KeySet`, describe what you accept with
:class:`TokenValidator`, and call :meth:`TokenValidator.validate` per request.
"""

from mcp_oauth2._rust import (
    AuthenticatedUser,
    KeySet,
    TokenValidator,
    __version__,
    peek_header,
    peek_issuer,
)
from mcp_oauth2.errors import (
    AlgorithmNotAllowedError,
    AuthorizationError,
    ConfigurationError,
    ExpiredTokenError,
    InsufficientScopeError,
    InvalidAudienceError,
    InvalidClaimError,
    InvalidIssuerError,
    InvalidRequestError,
    InvalidSignatureError,
    InvalidTokenTypeError,
    IssuedInFutureError,
    JWKSError,
    KeyNotFoundError,
    MalformedTokenError,
    MCPOAuth2Error,
    MissingClaimError,
    NotYetValidError,
    TokenTooLargeError,
    TokenValidationError,
    UnsupportedAlgorithmError,
)

__all__ = [
    "AlgorithmNotAllowedError",
    "AuthenticatedUser",
    "AuthorizationError",
    "ConfigurationError",
    "ExpiredTokenError",
    "InsufficientScopeError",
    "InvalidAudienceError",
    "InvalidClaimError",
    "InvalidIssuerError",
    "InvalidRequestError",
    "InvalidSignatureError",
    "InvalidTokenTypeError",
    "IssuedInFutureError",
    "JWKSError",
    "KeyNotFoundError",
    "KeySet",
    "MCPOAuth2Error",
    "MalformedTokenError",
    "MissingClaimError",
    "NotYetValidError",
    "TokenTooLargeError",
    "TokenValidationError",
    "TokenValidator",
    "UnsupportedAlgorithmError",
    "__version__",
    "peek_header",
    "peek_issuer",
]
