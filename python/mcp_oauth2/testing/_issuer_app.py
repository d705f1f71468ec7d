"""The local issuer's ASGI application: RFC 8414 and OpenID Connect discovery documents and the
JWKS, each answered normally or with the fault set on the issuer, every request counted."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from mcp_oauth2.testing._faults import MOVED, fault_answer

if TYPE_CHECKING:
    from mcp_oauth2.testing._local_issuer import LocalIssuer

__all__ = ["JWKS_MEDIA_TYPE", "OAUTH_METADATA", "OIDC_METADATA", "issuer_app"]

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
        Route(issuer.jwks_path, endpoint(jwks=True, faulty=True)),
        Route(MOVED + issuer.jwks_path, endpoint(jwks=True, faulty=False)),
    ]
    for metadata_path in metadata_paths:
        routes.append(Route(metadata_path, endpoint(jwks=False, faulty=True)))
        routes.append(Route(MOVED + metadata_path, endpoint(jwks=False, faulty=False)))
    return Starlette(routes=routes, middleware=[Middleware(_CountRequests, count=count)])
