"""``OAuth2Middleware``: one line protects a Starlette or FastAPI app.

    app.add_middleware(OAuth2Middleware, config=OAuth2Config(issuer=..., audience=...))

Pure ASGI. For ``http`` and ``websocket`` scopes it reads the bearer token from the
``Authorization`` header only, authenticates it (signature, issuer, audience, lifetime, scopes)
and either answers as RFC 6750 and RFC 9728 prescribe or calls the application with
``scope["user"]`` (the ``AuthenticatedUser``) and ``scope["auth"]`` (Starlette
``AuthCredentials`` with the effective scopes). On success ``receive`` and ``send`` pass through
untouched, so streaming and SSE responses are unaffected. It serves the protected-resource
metadata document itself, and starts and stops the key caches with the application's lifespan.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from urllib.parse import parse_qsl

from starlette.authentication import AuthCredentials, UnauthenticatedUser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mcp_oauth2._rust import AuthenticatedUser
from mcp_oauth2.authenticator import Authenticator
from mcp_oauth2.challenge import Challenge, Refusal, send_response
from mcp_oauth2.config import OAuth2Config
from mcp_oauth2.errors import (
    AuthorizationError,
    InsufficientScopeError,
    InvalidRequestError,
    JWKSError,
    JWKSUnavailableError,
)
from mcp_oauth2.exemptions import Exemptions
from mcp_oauth2.jwks import KeySource
from mcp_oauth2.resource_metadata import ResourceMetadata
from mcp_oauth2.scopes import ScopePolicy

__all__ = ["SCOPE_KEY", "OAuth2Middleware"]

logger = logging.getLogger("mcp_oauth2.middleware")

# RFC 6750 section 2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
# (checked with bytes.translate: several times faster than a regex over a 1 KB token).
B64TOKEN_CHARS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/"
# The ASGI scope key under which the middleware makes itself known to dependencies.
SCOPE_KEY = "mcp_oauth2"
# RFC 6455 section 7.4.1: the endpoint is terminating the connection for a policy violation.
WS_POLICY_VIOLATION = 1008


class OAuth2Middleware:
    def __init__(
        self,
        app: ASGIApp,
        config: OAuth2Config | None = None,
        *,
        key_sources: KeySource | Mapping[str, KeySource] | None = None,
    ) -> None:
        """``config`` defaults to ``OAuth2Config()`` read from ``MCP_OAUTH2_*`` variables.

        ``key_sources`` replaces the key caches built from the configuration (for example a
        ``StaticKeys`` in tests, or caches shared between several apps).
        """
        self.app = app
        self.config = config if config is not None else OAuth2Config()  # type: ignore[call-arg]
        config = self.config
        self.authenticator = Authenticator.from_config(config, key_sources)
        self.scope_policy = ScopePolicy(config.scope_implications)
        self.required_scopes = config.required_scopes
        self.exemptions = Exemptions(config.exempt_routes)
        self.metadata = ResourceMetadata(config)
        self.challenge = Challenge(self.metadata.url, config.required_scopes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind in ("http", "websocket"):
            scope[SCOPE_KEY] = self
        if kind == "lifespan":
            await self.app(scope, self._lifespan_receive(receive), send)
            return
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path = _app_path(scope)
        method = scope.get("method", "GET")
        if kind == "http" and path in self.metadata.paths:
            await self._serve_metadata(method, send)
            return
        if self.exemptions.match(method, path) is not None:
            scope["user"] = UnauthenticatedUser()
            scope["auth"] = AuthCredentials()
            await self.app(scope, receive, send)
            return
        outcome = await self._authenticate(scope)
        if isinstance(outcome, Refusal):
            if kind == "websocket":
                await _refuse_websocket(receive, send, outcome.status)
            else:
                await send_response(send, outcome.status, outcome.headers, outcome.body)
            return
        user, effective = outcome
        scope["user"] = user
        scope["auth"] = AuthCredentials(sorted(effective))
        await self.app(scope, receive, send)

    async def _authenticate(
        self, scope: Scope
    ) -> tuple[AuthenticatedUser, frozenset[str]] | Refusal:
        try:
            token = bearer_token(scope)
            if token is None:
                return self.challenge.missing_token()
            user = await self.authenticator.authenticate(token)
            effective = self.scope_policy.effective(user.scopes)
            if self.required_scopes:
                missing = [s for s in self.required_scopes if s not in effective]
                if missing:
                    raise InsufficientScopeError(
                        f"token lacks the required scope(s): {' '.join(missing)}",
                        self.required_scopes,
                    )
            return user, effective
        except InsufficientScopeError as error:
            logger.debug("refused %s: %s", scope.get("path", "")[:200], error.code)
            return self.challenge.for_error(error, scopes=error.required_scopes)
        except AuthorizationError as error:
            logger.debug("refused %s: %s", scope.get("path", "")[:200], error.code)
            return self.challenge.for_error(error)
        except JWKSUnavailableError as error:
            return self.challenge.unavailable(error)
        except JWKSError as error:
            logger.error("key set unusable: %s", error.detail)
            return self.challenge.unavailable(JWKSUnavailableError(error.detail))
        except Exception:
            # Never a 500, never an accidental accept: log it and fail closed.
            logger.exception("unexpected error while authenticating a request")
            return self.challenge.unavailable(JWKSUnavailableError("internal error"))

    async def _serve_metadata(self, method: str, send: Send) -> None:
        if method in ("GET", "HEAD"):
            body = self.metadata.body if method == "GET" else b""
            headers = self.metadata.headers(with_body=True)
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": body})
        elif method == "OPTIONS":
            await send_response(send, 204, self.metadata.headers(with_body=False), b"")
        else:
            headers = [(b"allow", b"GET, HEAD, OPTIONS")]
            await send_response(send, 405, headers, b"")

    def _lifespan_receive(self, receive: Receive) -> Receive:
        """Warm the key caches at startup and close them at shutdown, then pass the message on."""

        async def wrapped() -> Message:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.authenticator.start()
                except Exception:
                    # The application must start whatever the key server does: requests fail
                    # closed (503) until keys can be had, and exempt routes keep working.
                    logger.exception("key prefetch at startup failed; requests answer 503")
            elif message["type"] == "lifespan.shutdown":
                await self.authenticator.aclose()
            return message

        return wrapped


def _app_path(scope: Scope) -> str:
    """The request path within the application (``root_path`` removed when present)."""
    path: str = scope.get("path") or "/"
    root: str = scope.get("root_path") or ""
    if root and path.startswith(root):
        path = path[len(root) :] or "/"
    return path


def bearer_token(scope: Scope) -> str | None:
    """The bearer token, None if there is none, or ``InvalidRequestError`` if the request is
    malformed (RFC 6750 section 3.1)."""
    values = []
    for name, value in scope["headers"]:
        if name == b"authorization":
            values.append(value)
    if not values:
        query = scope.get("query_string", b"")
        if b"access_token" in query and any(
            name == "access_token" for name, _ in parse_qsl(query.decode("latin-1"))
        ):
            raise InvalidRequestError(
                "access tokens are accepted only in the Authorization header, not in the URL"
            )
        return None
    if len(values) > 1:
        raise InvalidRequestError("the request has more than one Authorization header")
    scheme, _, credentials = values[0].strip().partition(b" ")
    if scheme.lower() != b"bearer":
        return None  # another scheme: to this resource, no token was presented
    credentials = credentials.strip(b" ")
    if not credentials:
        raise InvalidRequestError("the Bearer credentials are empty")
    body = credentials.rstrip(b"=")
    if not body or body.translate(None, B64TOKEN_CHARS):
        raise InvalidRequestError(
            "the Authorization header must hold exactly one bearer token (RFC 6750 section 2.1)"
        )
    token: str = credentials.decode("ascii")
    return token


async def _refuse_websocket(receive: Receive, send: Send, status: int) -> None:
    """Close before accepting (the server answers the handshake with 403)."""
    message = await receive()
    if message["type"] == "websocket.connect":
        reason = "authentication required" if status == 401 else "not authorized"
        await send({"type": "websocket.close", "code": WS_POLICY_VIOLATION, "reason": reason})
