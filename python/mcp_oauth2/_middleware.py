"""``OAuth2Middleware``: one line protects a Starlette or FastAPI app.

    app.add_middleware(OAuth2Middleware, config=OAuth2Config(issuer=..., audience=...))

Pure ASGI. For ``http`` and ``websocket`` scopes it reads the bearer token from the
``Authorization`` header only, authenticates it (signature, issuer, audience, lifetime, scopes)
and either answers as RFC 6750 and RFC 9728 prescribe or calls the application with
``scope["user"]`` (the ``AuthenticatedUser``) and ``scope["auth"]`` (Starlette
``AuthCredentials`` with the effective scopes). On success ``receive`` and ``send`` pass through
untouched, so streaming and SSE responses are unaffected. While the application serves the
request, ``current_user()`` returns the same user (``_current_user``), and the caller's token is
kept where only ``TokenExchanger`` reads it, until the request ends (``_subject_token``). On
``exempt_routes`` no token is read; on ``anonymous_routes`` a request without credentials (no
``Authorization`` header, no ``access_token`` in the query) passes as anonymous
(``scope["user"]`` unauthenticated), for ``MCPPolicy`` to decide per operation, while one with a
token is checked exactly as anywhere else. It serves the protected-resource metadata document
itself (and, when ``readiness_path`` is set, a readiness probe), and starts and stops the key
caches with the application's lifespan.

Which scopes suffice, how every refusal reads and how it is logged is ``AccessControl``'s
(``_access``): the middleware hands it to the app under ``ACCESS_SCOPE_KEY``, and answers through
it, the refusals that ``OAuth2Bearer`` raises from inside a FastAPI app included.

With DPoP on (``dpop`` ``allowed`` or ``required``), the request's ``DPoP`` headers, method and
path go to the same native call (``DPoPRequest``): the request's URL is the configured
resource's scheme and authority with the request's own path, never what its ``Host`` header
says. A proof that passed is then recorded once (``_dpop_replay.ReplayCheck``), and a replay
refused.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl
from urllib.parse import quote as percent_encode

from starlette.authentication import AuthCredentials, UnauthenticatedUser
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mcp_oauth2._access import ACCESS_SCOPE_KEY, AccessControl, Refusal, RefusalRaised
from mcp_oauth2._authenticator import Authenticator, DPoPRequest
from mcp_oauth2._config import ENV_PREFIX, OAuth2Config
from mcp_oauth2._current_user import enter_request, leave_request
from mcp_oauth2._dpop_replay import ReplayCheck
from mcp_oauth2._exemptions import Exemptions
from mcp_oauth2._health import ReadinessProbe
from mcp_oauth2._introspection import Introspector
from mcp_oauth2._jwks import KeySource
from mcp_oauth2._resource_metadata import ResourceMetadata
from mcp_oauth2._subject_token import SUBJECT_SCOPE_KEY, Subject, enter_subject, leave_subject
from mcp_oauth2.errors import (
    AuthorizationError,
    AuthorizationServerUnavailableError,
    ConfigurationError,
    InvalidRequestError,
    JWKSError,
)

if TYPE_CHECKING:
    from mcp_oauth2.telemetry import Admit, Telemetry

__all__ = ["OAuth2Middleware", "authorization_header", "dpop_request"]

logger = logging.getLogger("mcp_oauth2.middleware")

# How deep ``route_paths`` looks through middleware, mounts and routers.
_ROUTE_DEPTH = 16
# The characters a path keeps unescaped when it is written back from its decoded form.
_PATH_SAFE = "/:@!$&'()*+,;=-._~"
# Where ``_admit`` leaves the DPoP nonce to answer a request with, until ``__call__`` takes it.
_NONCE_SCOPE_KEY = "mcp_oauth2.dpop_nonce"


class OAuth2Middleware:
    def __init__(
        self,
        app: ASGIApp,
        config: OAuth2Config | None = None,
        *,
        key_sources: KeySource | Mapping[str, KeySource] | None = None,
        introspector: Introspector | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        """``config`` defaults to ``OAuth2Config()`` read from ``MCP_OAUTH2_*`` variables.

        ``key_sources`` replaces the key caches built from the configuration (for example a
        ``StaticKeys`` in tests, caches shared between several apps, or ``JWKSCache`` with
        ``CacheSettings`` other than the defaults), and ``introspector`` the introspector (an
        ``Introspector`` with its own ``IntrospectionSettings``). ``telemetry`` records
        metrics and spans (``mcp_oauth2.telemetry``); with ``config.telemetry`` and none given,
        one on the global OpenTelemetry providers. Without either, nothing is recorded.
        """
        self.app = app
        self.config = config if config is not None else OAuth2Config()
        config = self.config
        self.authenticator = Authenticator.from_config(config, key_sources, introspector)
        self.access = AccessControl.from_config(config)
        self.replay = ReplayCheck.from_config(config)
        """Each DPoP proof accepted once; None while DPoP is off."""
        dpop = self.authenticator.validator.dpop
        # With nonces on, a request that proved possession is answered with the current nonce
        # (RFC 9449 section 8.2), so a client follows the windows without a 401 for each.
        self._nonces = dpop if dpop is not None and dpop.nonce else None
        self.exemptions = Exemptions(config.exempt_routes)
        self.anonymous = Exemptions(config.anonymous_routes)
        self.metadata = ResourceMetadata(config)
        self.readiness_path = config.readiness_path
        self.readiness = ReadinessProbe()
        if telemetry is None and config.telemetry:
            telemetry = _global_telemetry()
        self.telemetry = telemetry
        """Where an addition (token introspection, say) records what it does; None when off."""
        # Off: the request path is the plain ``_admit``, with nothing recorded and nothing to check.
        self._admit_request: Admit = self._admit
        if telemetry is not None:
            self._admit_request = telemetry.observe(self.authenticator, self._admit)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            scope[ACCESS_SCOPE_KEY] = self.access  # what it wraps can tell it is protected
            await self.app(scope, self._lifespan_receive(receive), self._lifespan_send(send))
            return
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        scope[ACCESS_SCOPE_KEY] = self.access
        path = _app_path(scope)
        method = scope.get("method", "GET")
        if kind == "http" and path in self.metadata.paths:
            await self.metadata.send(method, send)
            return
        if kind == "http" and path == self.readiness_path:
            await self.readiness.send(method, await self.authenticator.readiness(), send)
            return
        if self.exemptions.match(method, path) is not None or (
            self.anonymous.match(method, path) is not None and not _presents_credentials(scope)
        ):
            scope["user"] = UnauthenticatedUser()
            scope["auth"] = AuthCredentials()
        elif (refusal := await self._admit_request(scope)) is not None:
            await self.access.refuse(refusal, scope, receive, send)
            return
        await self._serve(scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The application, for a request admitted (or exempt): its caller and token held for
        the request's time, and the DPoP nonce on the answer when ``_admit`` left one."""
        http = scope["type"] == "http"
        nonce = scope.pop(_NONCE_SCOPE_KEY, None)
        if nonce is not None and http:
            send = _with_header(send, b"dpop-nonce", nonce)
        caller = enter_request(scope.get("user"))
        subject = enter_subject(scope)
        try:
            await self.app(scope, receive, send)
        except RefusalRaised as raised:
            # A refusal from within the app (the FastAPI dependency), before any response.
            if not http:
                raise
            await self.access.refuse(raised.refusal, scope, receive, send)
        finally:
            leave_subject(scope, subject)
            leave_request(caller)

    async def _admit(self, scope: Scope) -> Refusal | None:
        """Authenticate the request into ``scope["user"]`` and ``scope["auth"]`` (with the
        effective scopes), or return the refusal.

        From the header's bytes to the user and its effective scopes is one native call
        (``TokenValidator.authorize``: the b64token check, the DPoP proof, the verified-token
        cache, validation, and ``AccessControl``'s scope rules, which refuse with
        ``InsufficientScopeError``); then the replay check of a DPoP proof."""
        try:
            header = authorization_header(scope)
            if header is None:
                return self.access.missing_token()
            dpop = None if self.replay is None else dpop_request(scope)
            admitted = await self.authenticator.authorize(header, self.access.rules, dpop)
            proof = admitted[2] if admitted is not None and len(admitted) == 3 else None
            if proof is not None and self.replay is not None:
                await self.replay.first_use(proof)
                if self._nonces is not None:
                    scope[_NONCE_SCOPE_KEY] = self._nonces.current_nonce()
        except Exception as error:
            return self._refusal_for(error)
        if admitted is None:
            return self.access.missing_token()
        scope["user"], effective = admitted[0], admitted[1]
        scope["auth"] = AuthCredentials(effective)
        # The token itself stays out of "user" and "auth": only the token exchanger reads it.
        scope[SUBJECT_SCOPE_KEY] = Subject(
            header, scope["user"], sender_constrained=proof is not None
        )
        return None

    def _refusal_for(self, error: Exception) -> Refusal:
        if isinstance(error, AuthorizationError):
            return self.access.invalid(error)
        if isinstance(error, AuthorizationServerUnavailableError):
            return self.access.unavailable(error)
        if isinstance(error, JWKSError):
            logger.error("key set unusable: %s", error.detail)
            return self.access.unavailable(AuthorizationServerUnavailableError(error.detail))
        # Never a 500, never an accidental accept: log it and fail closed.
        logger.error("unexpected error while authenticating a request", exc_info=error)
        return self.access.unavailable(AuthorizationServerUnavailableError("internal error"))

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
                if self.replay is not None:
                    await self.replay.aclose()
            return message

        return wrapped

    def _lifespan_send(self, send: Send) -> Send:
        """Turn the application's "started" into "startup failed" when the configuration
        cannot work with its routes (checked once they are all known, after its startup)."""

        async def wrapped(message: Message) -> None:
            if message["type"] == "lifespan.startup.complete":
                problem = self.route_problem()
                if problem is not None:
                    logger.error("%s", problem)
                    message = {"type": "lifespan.startup.failed", "message": problem}
            await send(message)

        return wrapped

    def route_problem(self) -> str | None:
        """Why the configuration cannot work with the application's routes: ``readiness_path``
        is also a route (the probe, answered before routing and without a token, would hide
        it: on the MCP endpoint, a protected route would answer a probe). None when it can."""
        path = self.readiness_path
        if path is not None and path in set(route_paths(self.app)):
            env = ENV_PREFIX + "READINESS_PATH"
            return (
                f"readiness_path ({env}) {path!r} is also a route of the application, which the "
                f"probe would hide; choose a path of its own, e.g. {env}=/ready"
            )
        return None


def route_paths(app: object, prefix: str = "", depth: int = 0) -> Iterator[str]:
    """The paths of the routes an ASGI application serves, as far as they can be read: through
    middleware (``.app``), routers (``.routes``) and mounts (the mount's path, then its app's)."""
    if depth > _ROUTE_DEPTH:
        return
    routes = getattr(app, "routes", None)
    if isinstance(routes, list):
        for route in routes:
            if isinstance(route, Mount):
                yield from route_paths(route.app, prefix + route.path, depth + 1)
            elif isinstance(route, Route | WebSocketRoute):
                yield prefix + route.path
        return
    inner = getattr(app, "app", None)
    if inner is not None and inner is not app:
        yield from route_paths(inner, prefix, depth + 1)


def _global_telemetry() -> Telemetry:
    try:
        from mcp_oauth2.telemetry import Telemetry  # only with the extra
    except ImportError as error:
        raise ConfigurationError(
            f"telemetry ({ENV_PREFIX}TELEMETRY) needs OpenTelemetry: "
            f'pip install "mcp-oauth2[opentelemetry]" ({error})'
        ) from None
    return Telemetry()


def _with_header(send: Send, name: bytes, value: str) -> Send:
    """``send`` with the header ``name: value`` added to the response's start."""

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [*message.get("headers", ()), (name, value.encode("ascii"))]
            message = {**message, "headers": headers}
        await send(message)

    return sending


def _app_path(scope: Scope) -> str:
    """The request path within the application (``root_path`` removed when present)."""
    path: str = scope.get("path") or "/"
    root: str = scope.get("root_path") or ""
    if root and path.startswith(root):
        path = path[len(root) :] or "/"
    return path


def _presents_credentials(scope: Scope) -> bool:
    """Whether the request offers any credentials, as ``authorization_header`` reads them: an
    ``Authorization`` header (of any scheme), or a malformed offer (two headers, a token in the
    query string), which are then judged as on every protected route."""
    try:
        return authorization_header(scope) is not None
    except InvalidRequestError:
        return True


def authorization_header(scope: Scope) -> bytes | None:
    """The one ``Authorization`` header's value, None if there is none, or
    ``InvalidRequestError`` if the request is malformed (RFC 6750 section 3.1): two such headers,
    or a token in the query string. The token in it is read natively (``bearer_token``)."""
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
    header: bytes = values[0]
    return header


def dpop_request(scope: Scope) -> DPoPRequest:
    """What a DPoP proof of this request is checked against: the values of every ``DPoP`` header
    (exactly one must be there; the check counts them), the method (``GET`` for a WebSocket
    handshake), and the path as the client sent it, below the application's ``root_path``."""
    proofs = tuple(value for name, value in scope["headers"] if name == b"dpop")
    method: str = scope.get("method", "GET") if scope["type"] == "http" else "GET"
    raw: bytes | None = scope.get("raw_path")
    path = (
        raw.decode("latin-1")
        if raw is not None
        else percent_encode(scope.get("path") or "/", safe=_PATH_SAFE)
    )
    root: str = scope.get("root_path") or ""
    if root and not path.startswith(root):
        path = root + path  # a proxy took the prefix off: the client's URL has it
    return DPoPRequest(proofs, method, path)
