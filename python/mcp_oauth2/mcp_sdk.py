"""The official ``mcp`` SDK's ``TokenVerifier`` backed by mcp-oauth2.

    from mcp.server import MCPServer
    from mcp.server.auth.settings import AuthSettings

    server = MCPServer(
        "demo",
        token_verifier=MCPTokenVerifier(config),
        auth=AuthSettings(issuer_url=..., resource_server_url=..., validate_token_resource=True),
    )

``verify_token`` never raises: any failure is None, and logged as the middleware logs its refusals
(one INFO line on ``mcp_oauth2.refusals``, rate-limited), since the SDK's answer does not say
why. ``mcp_oauth2.current_user()`` returns the request's ``AuthenticatedUser`` here too: each
``AccessToken`` the verifier returns carries the user it was made from, and the SDK keeps the
request's ``AccessToken`` in its auth context. The audience has been checked already;
``AccessToken.resource`` is the configured audience the token was issued for (the configured
``resource`` when that audience is an Entra ID client ID, a GUID), so the SDK's own resource
check (``validate_token_resource``) agrees. Which token passes, and with which scopes
(``AccessToken.scopes`` are the effective ones, ``scope_implications`` applied), is decided by
the same ``AccessControl`` the middleware uses; the answers are the SDK's own. For every None
the SDK's ``RequireAuthMiddleware`` answers 401 with the body ``{"error": "invalid_token",
"error_description": "Authentication required"}`` and ``WWW-Authenticate: Bearer
error="invalid_token", error_description="Authentication required", resource_metadata="..."``,
also for a token without a ``required_scopes`` scope, where the middleware answers 403
``insufficient_scope``.

The SDK's contract has no way to say "cannot check right now": where ``OAuth2Middleware`` answers
503 with ``Retry-After`` while the key server is unreachable, the SDK answers 401, as for a bad
token. So that an outage is not mistaken for bad tokens, each refusal caused by unavailable keys
(``JWKSError``) or an authorization server that cannot be asked
(``AuthorizationServerUnavailableError``: keys, discovery or introspection) is logged at
WARNING, at most one line per ``OUTAGE_LOG_INTERVAL`` seconds per verifier, counting the refusals
in between.

``downstream_errors()`` turns a failed token exchange inside a tool into the SDK's ``ToolError``,
the one kind of exception whose words the SDK shows the client (it hides any other's text).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import PrivateAttr

from mcp_oauth2._access import AccessControl
from mcp_oauth2._authenticator import Authenticator
from mcp_oauth2._config import OAuth2Config
from mcp_oauth2._current_user import read_sdk_auth_with
from mcp_oauth2._jwks import KeySource
from mcp_oauth2._rust import AuthenticatedUser, bearer_token
from mcp_oauth2._url_rules import is_application_id
from mcp_oauth2.errors import (
    AuthorizationError,
    AuthorizationServerUnavailableError,
    ConfigurationError,
    InsufficientScopeError,
    IntrospectionUnavailableError,
    JWKSError,
    TokenExchangeError,
    TokenExchangeUnavailableError,
)

__all__ = ["MCPTokenVerifier", "downstream_errors"]

logger = logging.getLogger("mcp_oauth2.mcp")

OUTAGE_LOG_INTERVAL = 60.0
"""Seconds between two WARNING lines about tokens refused because keys are unavailable."""
_SDK_ANSWER = "the MCP SDK answers 401 invalid_token"


class _VerifiedAccessToken(AccessToken):
    """The SDK's ``AccessToken``, carrying the ``AuthenticatedUser`` it was made from (``user``),
    which ``current_user()`` returns."""

    _user: AuthenticatedUser = PrivateAttr()

    @property
    def user(self) -> AuthenticatedUser:
        return self._user


def _sdk_request_user() -> AuthenticatedUser | None:
    """The user of the SDK's current ``AccessToken``, when this verifier made it."""
    token = get_access_token()
    return token.user if isinstance(token, _VerifiedAccessToken) else None


read_sdk_auth_with(_sdk_request_user)


class MCPTokenVerifier:
    """Implements ``mcp.server.auth.provider.TokenVerifier``."""

    def __init__(
        self,
        config: OAuth2Config | None = None,
        *,
        key_sources: KeySource | dict[str, KeySource] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``clock`` (monotonic seconds) paces the outage log lines; injectable for tests.

        Raises ``ConfigurationError`` for ``dpop="required"``: the SDK hands a verifier the
        token alone, never the request's ``DPoP`` proof, so no token could be accepted here as
        that setting means (``OAuth2Middleware`` checks proofs). Under ``dpop="allowed"`` the
        verifier accepts bearer tokens and refuses DPoP-bound ones."""
        self.config = config if config is not None else OAuth2Config()
        config = self.config
        if config.dpop == "required":
            raise ConfigurationError(
                "dpop (MCP_OAUTH2_DPOP): 'required' cannot be enforced by MCPTokenVerifier, "
                "which the MCP SDK hands the token without the request's DPoP proof; protect "
                "the app with OAuth2Middleware instead, or set dpop='allowed' or 'off'"
            )
        self.authenticator = Authenticator.from_config(config, key_sources)
        self.access = AccessControl.from_config(config)
        self._clock = clock
        self._outage_logged_at: float | None = None
        self._outages_unlogged = 0

    async def verify_token(self, token: str) -> AccessToken | None:
        try:
            # The middleware's shape rule first (RFC 6750 b64token), so that nothing else is
            # ever sent to an introspection endpoint or parsed.
            if bearer_token(b"Bearer " + token.encode()) is None:
                return None
            user = await self.authenticator.authenticate(token)
        except (JWKSError, AuthorizationServerUnavailableError) as error:  # the SDK says 401
            self._log_outage(error)
            return None
        except Exception as error:  # the protocol says: None for any invalid token, never raise
            if isinstance(error, AuthorizationError):
                self.access.log.record_token(error.code, error.description, _SDK_ANSWER)
            else:  # as the middleware: never an accidental accept, and said loudly
                logger.error("unexpected error while verifying a token", exc_info=error)
            return None
        granted = self.access.effective_scopes(user.scopes)
        if missing := self.access.missing_scopes(granted, self.access.required_scopes):
            # The SDK answers 401 (its own body); the middleware would say 403.
            lacking = InsufficientScopeError.lacking(missing, self.access.required_scopes)
            self.access.log.record_token(lacking.code, lacking.description, _SDK_ANSWER)
            return None
        audiences = self.config.audience
        resource = next((aud for aud in audiences if aud in user.audience), None)
        if resource is not None and is_application_id(resource):
            # An application ID names this server too; the SDK compares a URL.
            resource = self.config.resource_uri
        verified = _VerifiedAccessToken(
            token=token,
            client_id=user.client_id or "",
            scopes=sorted(granted),
            expires_at=user.expires_at,
            resource=resource,
            subject=user.subject,
            claims=dict(user.claims),
        )
        verified._user = user
        return verified

    async def aclose(self) -> None:
        await self.authenticator.aclose()

    def _log_outage(self, error: JWKSError | AuthorizationServerUnavailableError) -> None:
        now = self._clock()
        last = self._outage_logged_at
        if last is not None and now - last < OUTAGE_LOG_INTERVAL:
            self._outages_unlogged += 1
            return
        unlogged, self._outages_unlogged = self._outages_unlogged, 0
        self._outage_logged_at = now
        unavailable = (
            "introspection is"
            if isinstance(error, IntrospectionUnavailableError)
            else "the keys are"
        )
        logger.warning(
            "token refused because %s unavailable (%s; the MCP SDK answers 401, not 503)%s: %s",
            unavailable,
            error.code,
            f", {unlogged} more since the last line" if unlogged else "",
            error.detail,
        )


@contextlib.contextmanager
def downstream_errors() -> Iterator[None]:
    """Inside a tool: a token exchange that fails (``TokenExchanger``) ends the call as a
    ``ToolError`` that says why, instead of the SDK's bare "Error executing tool". A refusal
    gives its code and what to check (``TokenExchangeError``); an outage says it is temporary
    and when to retry, without the endpoint's URL (``TokenExchangeUnavailableError``). Neither
    holds a token.

        with downstream_errors():
            async with httpx.AsyncClient(auth=exchanger.auth(audience=API)) as api:
                return (await api.get(API + "/files")).json()
    """
    try:
        yield
    except TokenExchangeError as refused:
        raise ToolError(str(refused)) from None
    except TokenExchangeUnavailableError as down:
        words = f"{down.code}: {down.description}; retry in {down.retry_after} s"
        raise ToolError(words) from None
