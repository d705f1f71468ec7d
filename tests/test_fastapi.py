"""FastAPI dependencies: the user, per-route scopes, and the OpenAPI security blocks.

No ``from __future__ import annotations`` here: FastAPI reads the route signatures at runtime,
and they refer to a dependency local to ``build_app``.
"""

import time
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI, Security

from mcp_oauth2 import AuthenticatedUser, OAuth2Config, OAuth2Middleware
from mcp_oauth2.fastapi import OAuth2Bearer
from mcp_oauth2.lowlevel import StaticKeys
from mcp_oauth2.testing import AppServer
from token_factory import AUDIENCE, ISSUER, jwks_for, make_claims, mint

pytestmark = pytest.mark.anyio

bearer = OAuth2Bearer()
CurrentUser = Annotated[AuthenticatedUser, Depends(bearer)]


def token(scope: str) -> str:
    now = int(time.time())
    return mint("ES256", make_claims(scope=scope, iat=now, nbf=now, exp=now + 600))


def build_app(oauth: OAuth2Bearer = bearer) -> FastAPI:
    app = FastAPI()

    @app.get("/me")
    async def me(user: Annotated[AuthenticatedUser, Depends(oauth)]) -> dict[str, Any]:
        return {"subject": user.subject, "scopes": sorted(user.scopes)}

    @app.get("/reports")
    async def reports(
        user: Annotated[AuthenticatedUser, Security(oauth, scopes=["reports:read"])],
    ) -> dict[str, str | None]:
        return {"subject": user.subject}

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/public/me")
    async def public_me(user: Annotated[AuthenticatedUser, Depends(oauth)]) -> dict[str, str]:
        return {"never": "reached"}

    config = OAuth2Config(
        issuer=ISSUER,
        audience=AUDIENCE,
        exempt_routes=["/health", "/docs", "/openapi.json", "/public/*"],
        scope_implications={"reports:admin": ["reports:read"]},
    )
    app.add_middleware(
        OAuth2Middleware, config=config, key_sources=StaticKeys(jwks_for(["ec-256"]))
    )
    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=build_app())
    async with httpx.AsyncClient(transport=transport, base_url="https://mcp.example.com") as c:
        yield c


def auth(scope: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(scope)}"}


async def test_dependency_gives_the_user(client: httpx.AsyncClient) -> None:
    response = await client.get("/me", headers=auth("a b"))
    assert response.status_code == 200
    assert response.json() == {"subject": "user-1", "scopes": ["a", "b"]}


async def test_route_scopes_are_checked(client: httpx.AsyncClient) -> None:
    assert (await client.get("/reports", headers=auth("reports:read"))).status_code == 200
    assert (await client.get("/reports", headers=auth("reports:admin"))).status_code == 200
    refused = await client.get("/reports", headers=auth("other"))
    assert refused.status_code == 403
    header = refused.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in header
    assert 'scope="reports:read"' in header
    assert "resource_metadata=" in header
    # The middleware's flat body, not FastAPI's {"detail": ...}.
    assert refused.json() == {
        "error": "insufficient_scope",
        "error_description": "token lacks the required scope(s): reports:read",
        "code": "insufficient_scope",
    }
    assert refused.headers["content-type"] == "application/json"
    assert refused.headers["cache-control"] == "no-store"


async def test_exempt_route_asking_for_a_user_gets_401(client: httpx.AsyncClient) -> None:
    response = await client.get("/public/me")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer resource_metadata=")
    # The middleware's missing-token body (no `error`), flat as the middleware sends it.
    assert response.json() == {
        "error_description": "this resource needs a bearer token",
        "code": "missing_token",
    }
    assert (await client.get("/health")).status_code == 200


async def test_without_middleware_the_dependency_explains() -> None:
    app = FastAPI()

    @app.get("/me")
    async def me(user: Annotated[AuthenticatedUser, Depends(bearer)]) -> str:
        return "no"

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=True)
    async with httpx.AsyncClient(transport=transport, base_url="https://x") as http:
        with pytest.raises(RuntimeError, match="OAuth2Middleware"):
            await http.get("/me")


async def test_openapi_shows_the_bearer_scheme(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    assert document["components"]["securitySchemes"] == {
        "OAuth2Bearer": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "A JWT access token from the authorization server.",
        }
    }
    assert document["paths"]["/me"]["get"]["security"] == [{"OAuth2Bearer": []}]
    assert document["paths"]["/reports"]["get"]["security"] == [{"OAuth2Bearer": ["reports:read"]}]
    assert "security" not in document["paths"]["/health"]["get"]
    docs = await client.get("/docs")
    assert docs.status_code == 200


def test_openapi_oauth2_flow() -> None:
    oauth = OAuth2Bearer(
        authorization_url="https://auth.example.com/authorize",
        token_url="https://auth.example.com/token",
        scopes={"reports:read": "Read reports"},
    )
    document = build_app(oauth).openapi()
    scheme = document["components"]["securitySchemes"]["OAuth2Bearer"]
    assert scheme["type"] == "oauth2"
    flow = scheme["flows"]["authorizationCode"]
    assert flow["authorizationUrl"] == "https://auth.example.com/authorize"
    assert flow["scopes"] == {"reports:read": "Read reports"}
    assert document["paths"]["/reports"]["get"]["security"] == [{"OAuth2Bearer": ["reports:read"]}]


# -- the refusal travels through FastAPI's dependency machinery, over uvicorn --------------------


def machinery_app() -> FastAPI:
    """Every way a route can reach the dependency: sync and async endpoints and dependencies,
    dependencies with ``yield`` (one that re-raises what reaches it), router-level ones."""
    app = FastAPI()

    def sync_user(
        user: Annotated[AuthenticatedUser, Security(bearer, scopes=["reports:read"])],
    ) -> str:
        return user.subject or ""

    async def yielding_user(
        user: Annotated[AuthenticatedUser, Security(bearer, scopes=["reports:read"])],
    ) -> AsyncIterator[str]:
        yield user.subject or ""

    def sync_yielding_user(
        user: Annotated[AuthenticatedUser, Security(bearer, scopes=["reports:read"])],
    ) -> Iterator[str]:
        yield user.subject or ""

    async def transaction() -> AsyncIterator[None]:
        try:
            yield
        except Exception:
            raise  # a session that rolls back on errors and lets them through

    @app.get("/async-endpoint")
    async def async_endpoint(
        user: Annotated[AuthenticatedUser, Security(bearer, scopes=["reports:read"])],
    ) -> str:
        return user.subject or ""

    @app.get("/sync-endpoint")
    def sync_endpoint(
        user: Annotated[AuthenticatedUser, Security(bearer, scopes=["reports:read"])],
    ) -> str:
        return user.subject or ""

    @app.get("/sync-dependency")
    def via_sync(subject: Annotated[str, Depends(sync_user)]) -> str:
        return subject

    @app.get("/yield-dependency")
    async def via_yield(subject: Annotated[str, Depends(yielding_user)]) -> str:
        return subject

    @app.get("/sync-yield-dependency")
    def via_sync_yield(subject: Annotated[str, Depends(sync_yielding_user)]) -> str:
        return subject

    @app.get("/after-a-yield-dependency")
    async def after_transaction(
        _: Annotated[None, Depends(transaction)],
        user: Annotated[AuthenticatedUser, Security(bearer, scopes=["reports:read"])],
    ) -> str:
        return user.subject or ""

    @app.get("/router-level", dependencies=[Security(bearer, scopes=["reports:read"])])
    async def router_level() -> str:
        return "user-1"

    config = OAuth2Config(issuer=ISSUER, audience=AUDIENCE)
    app.add_middleware(
        OAuth2Middleware, config=config, key_sources=StaticKeys(jwks_for(["ec-256"]))
    )
    return app


MACHINERY_ROUTES = [
    "/async-endpoint",
    "/sync-endpoint",
    "/sync-dependency",
    "/yield-dependency",
    "/sync-yield-dependency",
    "/after-a-yield-dependency",
    "/router-level",
]


@pytest.fixture(scope="module")
def machinery_url() -> Iterator[str]:
    with AppServer(machinery_app()) as url:
        yield url


@pytest.mark.parametrize("route", MACHINERY_ROUTES)
def test_the_refusal_passes_through_every_kind_of_dependency(
    machinery_url: str, route: str
) -> None:
    url = machinery_url + route
    allowed = httpx.get(url, headers=auth("reports:read"), timeout=20)
    assert allowed.status_code == 200 and allowed.json() == "user-1"
    refused = httpx.get(url, headers=auth("other"), timeout=20)
    assert refused.status_code == 403
    assert refused.json() == {
        "error": "insufficient_scope",
        "error_description": "token lacks the required scope(s): reports:read",
        "code": "insufficient_scope",
    }
    assert 'error="insufficient_scope"' in refused.headers["www-authenticate"]
    assert refused.headers["cache-control"] == "no-store"
    anonymous = httpx.get(url, timeout=20)
    assert anonymous.status_code == 401
    assert anonymous.json()["code"] == "missing_token"
