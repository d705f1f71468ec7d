"""The one exception hierarchy of mcp-oauth2.

The classes are defined here, in Python, and the native core raises them (so they pickle and
subclass like any Python exception). Every error that reaches an HTTP client carries:

- ``code``: a stable machine-readable code (``docs/answers.md`` lists them all);
- ``description``: plain words safe to show a client: never key material, never token contents,
  never internal URLs or long attacker-controlled strings;
- ``status_code`` and ``error``: its HTTP meaning (RFC 6750 section 3.1).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar, Final

from mcp_oauth2._rust import token_error_descriptions

__all__ = [
    "AlgorithmNotAllowedError",
    "AuthorizationError",
    "AuthorizationServerUnavailableError",
    "ConfigurationError",
    "DPoPReplayUnavailableError",
    "DPoPRequiredError",
    "DiscoveryError",
    "ExpiredTokenError",
    "InactiveTokenError",
    "InsufficientScopeError",
    "IntrospectionUnavailableError",
    "InvalidAudienceError",
    "InvalidClaimError",
    "InvalidDPoPProofError",
    "InvalidIssuerError",
    "InvalidRequestError",
    "InvalidSignatureError",
    "InvalidTokenTypeError",
    "IssuedInFutureError",
    "IssuerMismatchError",
    "JWKSError",
    "JWKSUnavailableError",
    "KeyNotFoundError",
    "MCPOAuth2Error",
    "MalformedTokenError",
    "MissingClaimError",
    "NotYetValidError",
    "TokenExchangeError",
    "TokenExchangeUnavailableError",
    "TokenTooLargeError",
    "TokenValidationError",
    "UnsupportedAlgorithmError",
    "UseDPoPNonceError",
]


# code -> the fixed, client-safe words of the native core (``TokenError::fixed_description``).
_FIXED_DESCRIPTIONS: Final[dict[str, str]] = token_error_descriptions()


class MCPOAuth2Error(Exception):
    """Base class of every error raised by mcp-oauth2."""


class ConfigurationError(MCPOAuth2Error, ValueError):
    """The configuration cannot work; the message says what to change."""


class AuthorizationError(MCPOAuth2Error):
    """A request cannot be authorized. Carries its RFC 6750 HTTP meaning."""

    code: ClassVar[str] = "invalid_token"
    status_code: ClassVar[int] = 401
    error: ClassVar[str] = "invalid_token"
    default_description: ClassVar[str] = "the access token is invalid"

    def __init__(self, description: str | None = None) -> None:
        self.description: str = description or self.default_description
        super().__init__(self.description)

    def __str__(self) -> str:
        return f"{self.code}: {self.description}"


class InvalidRequestError(AuthorizationError):
    """The request itself is malformed (for example two credentials, or a broken header)."""

    code = "invalid_request"
    status_code = 400
    error = "invalid_request"
    default_description = "the Authorization header is malformed"


class TokenValidationError(AuthorizationError):
    """The bearer token was rejected. Subclasses name the reason through ``code``.

    The native core raises these classes, and its words are theirs: each subclass defined here
    takes its ``default_description`` from the core's table for its ``code``, so an error raised
    here without a description (``InvalidIssuerError()``) says what the core says.
    """

    # After a key miss (``KeyNotFoundError``, ``InvalidSignatureError``) the native core says
    # which keys missed, so that they can be refreshed without reading the token again: the
    # issuer whose keys were tried (when each issuer has its own) and the token's ``kid``.
    issuer: str | None = None
    kid: str | None = None

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__module__ == __name__:
            cls.default_description = _FIXED_DESCRIPTIONS[cls.code]


class MalformedTokenError(TokenValidationError):
    code = "malformed"


class TokenTooLargeError(TokenValidationError):
    code = "token_too_large"


class UnsupportedAlgorithmError(TokenValidationError):
    code = "unsupported_algorithm"


class AlgorithmNotAllowedError(TokenValidationError):
    code = "algorithm_not_allowed"


class KeyNotFoundError(TokenValidationError):
    code = "key_not_found"


class InvalidSignatureError(TokenValidationError):
    code = "invalid_signature"


class ExpiredTokenError(TokenValidationError):
    code = "expired"


class NotYetValidError(TokenValidationError):
    code = "not_yet_valid"


class IssuedInFutureError(TokenValidationError):
    code = "issued_in_future"


class InvalidIssuerError(TokenValidationError):
    code = "invalid_issuer"


class InvalidAudienceError(TokenValidationError):
    code = "invalid_audience"


class MissingClaimError(TokenValidationError):
    code = "missing_claim"


class InvalidClaimError(TokenValidationError):
    code = "invalid_claim"


class InvalidTokenTypeError(TokenValidationError):
    code = "invalid_type"


class InactiveTokenError(TokenValidationError):
    """The authorization server's introspection endpoint (RFC 7662) answered that the token is
    not active: revoked, expired, unknown, or not an access token it would vouch for."""

    code = "inactive_token"


class InvalidDPoPProofError(TokenValidationError):
    """The request's DPoP proof (RFC 9449) fails a check of section 4.3, was used before, or
    does not prove possession of the key the token is bound to (``cnf.jkt``). 401 with a
    ``DPoP`` challenge naming ``invalid_dpop_proof``."""

    code = "invalid_dpop_proof"
    error = "invalid_dpop_proof"


class UseDPoPNonceError(TokenValidationError):
    """The DPoP proof lacks this server's current nonce (RFC 9449 section 9). 401 with
    ``error="use_dpop_nonce"`` and the nonce to use in the ``DPoP-Nonce`` header."""

    code = "use_dpop_nonce"
    error = "use_dpop_nonce"

    def __init__(self, description: str | None = None, nonce: str | None = None) -> None:
        super().__init__(description)
        self.nonce: str | None = nonce
        """The nonce the client is to put in its next proof."""
        self.args = (self.description, self.nonce)


class DPoPRequiredError(TokenValidationError):
    """A token came as a bearer token where DPoP is needed: it is bound to a key (``cnf.jkt``,
    RFC 9449 section 7.2), or this resource accepts DPoP only (``dpop="required"``)."""

    code = "dpop_required"


class InsufficientScopeError(TokenValidationError):
    """The token is valid but lacks scopes. ``required_scopes`` lists every scope needed."""

    code = "insufficient_scope"
    status_code = 403
    error = "insufficient_scope"

    def __init__(
        self, description: str | None = None, required_scopes: tuple[str, ...] = ()
    ) -> None:
        super().__init__(description)
        self.required_scopes: tuple[str, ...] = tuple(required_scopes)
        # Keep both arguments in args so the exception pickles faithfully.
        self.args = (self.description, self.required_scopes)

    @classmethod
    def lacking(
        cls, missing: Iterable[str], required_scopes: Iterable[str]
    ) -> InsufficientScopeError:
        """The error for a token without ``missing``, worded as the core words it, challenging
        for ``required_scopes`` (every scope the request needs)."""
        return cls(
            f"token lacks the required scope(s): {' '.join(missing)}", tuple(required_scopes)
        )


class AuthorizationServerUnavailableError(MCPOAuth2Error):
    """The authorization server cannot be asked right now (its keys, its metadata, its
    introspection endpoint): nothing can be verified, so nothing is accepted. The middleware
    answers 503 with ``Retry-After: retry_after`` and no challenge; the client can fix nothing.

    The base of every "unavailable" error, whichever endpoint failed.
    """

    code: ClassVar[str] = "authorization_server_unavailable"
    status_code: ClassVar[int] = 503
    error: ClassVar[str] = "temporarily_unavailable"
    default_description: ClassVar[str] = "the authorization server is temporarily unavailable"

    def __init__(
        self, detail: str | None = None, reasons: tuple[str, ...] = (), retry_after: int = 30
    ) -> None:
        # ``detail`` and ``reasons`` are for logs and operators: they may name key ids and URLs.
        # ``description`` is what a client may see.
        self.detail: str = detail or self.default_description
        self.reasons: tuple[str, ...] = tuple(reasons)
        self.description: str = self.default_description
        self.retry_after: int = max(1, int(retry_after))
        MCPOAuth2Error.__init__(self, self.detail, self.reasons, self.retry_after)

    def __str__(self) -> str:
        return f"{self.code}: {self.detail}"


class JWKSError(MCPOAuth2Error):
    """A key set cannot be used: every key was unusable, or the document is not a JWKS."""

    code: ClassVar[str] = "jwks_invalid"
    status_code: ClassVar[int] = 503
    error: ClassVar[str] = "temporarily_unavailable"
    default_description: ClassVar[str] = "the authorization server's keys are unusable"

    def __init__(self, detail: str | None = None, reasons: tuple[str, ...] = ()) -> None:
        # ``detail`` and ``reasons`` are for logs and operators: they may name key ids and URLs.
        # ``description`` is what a client may see.
        self.detail: str = detail or self.default_description
        self.reasons: tuple[str, ...] = tuple(reasons)
        self.description: str = self.default_description
        super().__init__(self.detail, self.reasons)

    def __str__(self) -> str:
        return f"{self.code}: {self.detail}"


class JWKSUnavailableError(AuthorizationServerUnavailableError, JWKSError):
    """No usable keys: the key server failed and nothing fresh enough is cached.

    The middleware answers 503 with ``Retry-After: retry_after``.
    """

    code = "jwks_unavailable"
    default_description = "the authorization server's signing keys are temporarily unavailable"


class DiscoveryError(JWKSUnavailableError):
    """Authorization-server metadata could not be fetched or does not name a usable ``jwks_uri``."""

    code = "discovery_failed"


class IssuerMismatchError(DiscoveryError):
    """The discovery document names another issuer (RFC 8414 section 3.3): it is refused."""

    code = "issuer_mismatch"


class DPoPReplayUnavailableError(AuthorizationServerUnavailableError):
    """The DPoP replay check cannot be made (its Redis store does not answer, or the
    in-process one is full): no proof is accepted unchecked; 503 with ``Retry-After``."""

    code = "dpop_replay_unavailable"
    default_description = "the DPoP replay check is temporarily unavailable"


class IntrospectionUnavailableError(AuthorizationServerUnavailableError):
    """The token could not be introspected (RFC 7662): the endpoint failed, answered something
    that is not an introspection response, is backing off after failures, or has more calls in
    flight than allowed. The token is never accepted; the middleware answers 503 with
    ``Retry-After: retry_after``.
    """

    code = "introspection_unavailable"
    default_description = (
        "the authorization server's token introspection is temporarily unavailable"
    )


class TokenExchangeUnavailableError(AuthorizationServerUnavailableError):
    """The caller's token could not be exchanged for a downstream one (RFC 8693, or Entra ID's
    on-behalf-of): the token endpoint failed (no answer in time, a 5xx, an answer that is not a
    token response), is backing off after failures, or has more calls admitted than allowed.
    ``retry_after`` says when to try again. No downstream call was made, least of all with the
    caller's own token.
    """

    code = "token_exchange_unavailable"
    default_description = "the authorization server's token exchange is temporarily unavailable"


# What each RFC 6749 / RFC 8693 error code of a refused exchange asks the operator to check.
_EXCHANGE_HINTS: Final[dict[str, str]] = {
    "invalid_grant": "the authorization server would not take the caller's token as the subject "
    "token (expired, revoked, or not issued to a client this server's client may act for)",
    "invalid_target": "the audience or resource asked for is unknown to the authorization server "
    "or not allowed for this server's client",
    "unauthorized_client": "this server's client (client_id) may not exchange tokens: enable "
    "token exchange (or on-behalf-of) for it at the authorization server",
    "invalid_client": "the authorization server did not accept this server's client credentials "
    "(client_id, client_secret, client_auth_method)",
    "invalid_scope": "a scope asked for is unknown, or not allowed for this server's client",
    "invalid_request": "the authorization server found the request incomplete or not allowed "
    "as made (Keycloak: an audience that no client scope of this server's client names)",
    "unsupported_grant_type": "the authorization server does not offer this grant (token exchange "
    "or on-behalf-of) at this token endpoint",
    "interaction_required": "the user must sign in again or consent (multi-factor "
    "authentication or consent for the downstream API)",
    "consent_required": "the user (or an administrator) has not consented to the downstream API",
    "access_denied": "the authorization server will not let this server's client act for the "
    "caller (Keycloak: the caller's token does not name this server's client in aud)",
}


class TokenExchangeError(MCPOAuth2Error):
    """The authorization server refused to exchange the caller's token (RFC 8693 section 2.2.2,
    RFC 6749 section 5.2). ``error`` is its code (``invalid_grant``, ``invalid_target``,
    ``unauthorized_client``, ...), ``description`` its ``error_description`` when it gave a
    usable one, ``status`` the HTTP status of its answer. The message says what to check; it
    never holds a token or a secret. No downstream call was made.
    """

    code: ClassVar[str] = "token_exchange_refused"

    def __init__(
        self, error: str, description: str | None = None, status: int | None = None
    ) -> None:
        self.error: str = error
        self.description: str | None = description
        self.status: int | None = status
        MCPOAuth2Error.__init__(self, error, description, status)

    def __str__(self) -> str:
        words = f"token exchange refused: {self.error}"
        if self.description:
            words += f" ({self.description})"
        hint = _EXCHANGE_HINTS.get(self.error)
        return f"{words}: {hint}" if hint else words
