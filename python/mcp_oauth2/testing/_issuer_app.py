"""The local issuer's ASGI application: RFC 8414 and OpenID Connect discovery documents, the
JWKS, the RFC 7662 introspection endpoint and the token endpoint (``_token_endpoint``), each
answered normally or with the fault set on the issuer, every request counted."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import unquote_plus

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from mcp_oauth2.testing._faults import MOVED, fault_answer
from mcp_oauth2.testing._token_endpoint import token_answer

if TYPE_CHECKING:
    from mcp_oauth2.testing._local_issuer import LocalIssuer

__all__ = [
    "JWKS_MEDIA_TYPE",
    "OAUTH_METADATA",
    "OIDC_METADATA",
    "introspection",
    "issuer_app",
    "token_endpoint",
]

JWKS_MEDIA_TYPE: Final = "application/jwk-set+json"
OAUTH_METADATA: Final = "/.well-known/oauth-authorization-server"
OIDC_METADATA: Final = "/.well-known/openid-configuration"


class _CountRequests:
    """Counts every HTTP request by path before routing, so faulted and unknown paths count too."""

    def __init__(self, app: ASGIApp, count: Callable[[str], None]) -> None:
        self.app = app
        self.count = count

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.count(scope["path"])
        await self.app(scope, receive, send)


def issuer_app(
    issuer: LocalIssuer,
    *,
    count: Callable[[str], None],
    released: Callable[[], asyncio.Event],
) -> Starlette:
    """The app serving ``issuer``'s documents, read at every request so that changes show at
    once. ``count`` is called with the path of every request; a ``"hang"`` fault answers once
    the event ``released()`` gives (at the request) is set."""

    async def answer(request: Request, *, jwks: bool, faulty: bool) -> Response:
        document = issuer.jwks() if jwks else issuer.metadata()
        media_type = JWKS_MEDIA_TYPE if jwks else "application/json"
        fault = (issuer.fault if jwks else issuer.metadata_fault) if faulty else None
        if fault is not None:
            empty: dict[str, Any] = {"keys": []} if jwks else {}
            return await fault_answer(
                fault, request, document, media_type=media_type, empty=empty, released=released()
            )
        headers = {}
        if jwks and issuer.cache_max_age is not None:
            headers["Cache-Control"] = f"max-age={issuer.cache_max_age}"
        if jwks and issuer.cache_control is not None:
            headers["Cache-Control"] = issuer.cache_control
        return JSONResponse(document, media_type=media_type, headers=headers)

    def endpoint(*, jwks: bool, faulty: bool) -> Callable[[Request], Awaitable[Response]]:
        async def serve(request: Request) -> Response:
            return await answer(request, jwks=jwks, faulty=faulty)

        return serve

    path = issuer.path
    metadata_paths = dict.fromkeys(
        [
            OAUTH_METADATA,
            OAUTH_METADATA + path,  # RFC 8414 section 3.1 path insertion
            OIDC_METADATA,
            OIDC_METADATA + path,
            path + OIDC_METADATA,  # OpenID Connect Discovery 1.0 section 4
        ]
    )
    routes = [
        Route(issuer.introspection_path, introspection(issuer, released), methods=["POST"]),
        Route(issuer.token_path, token_endpoint(issuer, released), methods=["POST"]),
        Route(issuer.jwks_path, endpoint(jwks=True, faulty=True)),
        Route(MOVED + issuer.jwks_path, endpoint(jwks=True, faulty=False)),
    ]
    for metadata_path in metadata_paths:
        routes.append(Route(metadata_path, endpoint(jwks=False, faulty=True)))
        routes.append(Route(MOVED + metadata_path, endpoint(jwks=False, faulty=False)))
    return Starlette(routes=routes, middleware=[Middleware(_CountRequests, count=count)])


def introspection(
    issuer: LocalIssuer, released: Callable[[], asyncio.Event]
) -> Callable[[Request], Awaitable[Response]]:
    """The RFC 7662 endpoint: after ``introspection_delay``, the ``introspection_fault`` if set;
    else 401 ``invalid_client`` without the client's credentials, 400 without a ``token``, and
    otherwise ``issuer.introspection_answer(token)``."""

    async def introspect(request: Request) -> Response:
        arrived = time.monotonic()
        if issuer.introspection_delay:
            await asyncio.sleep(issuer.introspection_delay)
        fault = issuer.introspection_fault
        if fault == "echo":
            form = await request.form()
            echoed = {name: str(value) for name, value in form.items()}
            echoed["authorization"] = request.headers.get("authorization", "")
            answer = issuer.introspection_answer(echoed.get("token", ""))
            return JSONResponse({**answer, **echoed})
        if fault is not None:
            return await fault_answer(
                fault,
                request,
                {"active": False},
                media_type="application/json",
                empty={},
                released=released(),
            )
        form = await request.form()
        fields = {name: value for name, value in form.items() if isinstance(value, str)}
        if not _client_authenticated(issuer, request.headers.get("authorization"), fields):
            return JSONResponse(
                {"error": "invalid_client"},
                status_code=401,
                headers={"WWW-Authenticate": 'Basic realm="introspection"'},
            )
        token = fields.get("token")
        if not token:
            return JSONResponse({"error": "invalid_request"}, status_code=400)
        issuer.introspected.setdefault(token, []).append(arrived)
        answer = issuer.introspection_answer(token)
        return JSONResponse(answer, headers={"Cache-Control": "no-store"})

    return introspect


def token_endpoint(
    issuer: LocalIssuer, released: Callable[[], asyncio.Event]
) -> Callable[[Request], Awaitable[Response]]:
    """The token endpoint: after ``token_delay``, the ``token_fault`` if set; else 401
    ``invalid_client`` without the client's credentials, and otherwise the answer of
    ``_token_endpoint`` (with ``token_answer_changes`` applied to a successful one)."""

    async def token(request: Request) -> Response:
        if issuer.token_delay:
            await asyncio.sleep(issuer.token_delay)
        fault = issuer.token_fault
        form = await request.form()
        fields = {name: value for name, value in form.items() if isinstance(value, str)}
        if fault == "echo":
            echoed = {**fields, "authorization": request.headers.get("authorization", "")}
            return JSONResponse(
                {"error": "invalid_grant", "error_description": f"cannot use {echoed}"},
                status_code=400,
            )
        if fault is not None:
            return await fault_answer(
                fault,
                request,
                {"error": "server_error"},
                media_type="application/json",
                empty={},
                released=released(),
            )
        if not _client_authenticated(issuer, request.headers.get("authorization"), fields):
            return JSONResponse(
                {"error": "invalid_client"},
                status_code=401,
                headers={"WWW-Authenticate": 'Basic realm="token"'},
            )
        issuer.exchanges.append({k: v for k, v in fields.items() if k != "client_secret"})
        status, answer = token_answer(issuer, issuer.introspection_client_id, fields)
        if status == 200:
            answer = {**answer, **issuer.token_answer_changes}
            answer = {name: value for name, value in answer.items() if value is not None}
        return JSONResponse(
            answer, status_code=status, headers={"Cache-Control": "no-store", "Pragma": "no-cache"}
        )

    return token


def _client_authenticated(
    issuer: LocalIssuer, authorization: str | None, form: dict[str, str]
) -> bool:
    """RFC 6749 section 2.3.1: ``client_secret_basic`` (each part form-urlencoded) or
    ``client_secret_post``, as ``issuer.introspection_auth_methods`` allows; exactly one."""
    methods = issuer.introspection_auth_methods
    given: tuple[str, str] | None = None
    if authorization is not None:
        scheme, _, encoded = authorization.partition(" ")
        if scheme.lower() != "basic" or "client_secret_basic" not in methods:
            return False
        try:
            pair = base64.b64decode(encoded.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return False
        client_id, colon, secret = pair.partition(":")
        if not colon or "client_secret" in form:
            return False
        given = (unquote_plus(client_id), unquote_plus(secret))
    elif "client_secret" in form and "client_secret_post" in methods:
        given = (form.get("client_id", ""), form["client_secret"])
    if given is None:
        return False
    expected = (issuer.introspection_client_id, issuer.introspection_client_secret)
    matches = [hmac.compare_digest(a.encode(), b.encode()) for a, b in zip(given, expected)]  # noqa: B905
    return all(matches)
