"""OAuth2Middleware in process (httpx.ASGITransport): headers, errors, exemptions, metadata.

Keys are a ``StaticKeys`` over the test JWKS, so every case here is about the HTTP layer; the
key cache and real servers have their own tests.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.authentication import requires
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket, WebSocketDisconnect

from mcp_oauth2 import AuthenticatedUser, OAuth2Config, OAuth2Middleware
from mcp_oauth2._access import quote
from mcp_oauth2.lowlevel import JWKSCache, StaticKeys
from token_factory import AUDIENCE, ISSUER, jwks_for, make_claims, mint

pytestmark = pytest.mark.anyio

BASE = "https://mcp.example.com"
METADATA_URL = f"{BASE}/.well-known/oauth-protected-resource/mcp"


def fresh_claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    values: dict[str, Any] = {"iat": now - 5, "nbf": now - 5, "exp": now + 600}
    values.update(overrides)
    return make_claims(**values)


def token(**overrides: Any) -> str:
    return mint("ES256", fresh_claims(**overrides))


async def whoami(request: Request) -> JSONResponse:
    user = request.user
    return JSONResponse(
        {
            "authenticated": user.is_authenticated,
            "subject": user.subject if isinstance(user, AuthenticatedUser) else None,
            "scopes": sorted(request.auth.scopes),
        }
    )


@requires("admin")
async def admin(request: Request) -> PlainTextResponse:
    return PlainTextResponse("admin")


async def socket(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text(websocket.scope["user"].subject)
    await websocket.close()


def build_app(**options: Any) -> Starlette:
    settings: dict[str, Any] = {"issuer": ISSUER, "audience": AUDIENCE}
    settings.update(options)
    app = Starlette(
        routes=[
            Route("/mcp", whoami, methods=["GET", "POST", "OPTIONS"]),
            Route("/health", whoami),
            Route("/admin", admin),
            Route("/public/{rest:path}", whoami),
            Route("/publicity", whoami),
            Mount("/api", routes=[Route("/items", whoami)]),
            WebSocketRoute("/ws", socket),
        ]
    )
    keys = StaticKeys(jwks_for(["ec-256", "rsa-1"]))
    app.add_middleware(OAuth2Middleware, config=OAuth2Config(**settings), key_sources=keys)
    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=build_app(required_scopes=["read"]))
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
        yield http


def challenge_params(header: str) -> dict[str, str]:
    assert header.startswith("Bearer ")
    return {
        name: value.replace('\\"', '"').replace("\\\\", "\\")
        for name, value in re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', header[7:])
    }


# -- the success path -----------------------------------------------------------------------


async def test_valid_token_reaches_the_app_as_request_user(client: httpx.AsyncClient) -> None:
    response = await client.get("/mcp", headers={"Authorization": f"Bearer {token()}"})
    assert response.status_code == 200
    assert response.json() == {
        "authenticated": True,
        "subject": "user-1",
        "scopes": ["read", "write"],
    }


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
async def test_scheme_is_case_insensitive(client: httpx.AsyncClient, scheme: str) -> None:
    response = await client.get("/mcp", headers={"Authorization": f"{scheme} {token()}"})
    assert response.status_code == 200


async def test_starlette_requires_sees_the_scopes() -> None:
    transport = httpx.ASGITransport(app=build_app())
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
        ok = await http.get("/admin", headers={"Authorization": f"Bearer {token(scope='admin')}"})
        assert ok.status_code == 200
        no = await http.get("/admin", headers={"Authorization": f"Bearer {token()}"})
        assert no.status_code == 403


async def test_scope_implications_satisfy_required_scopes() -> None:
    app = build_app(
        required_scopes=["mcp:read"],
        scope_implications={"mcp:admin": ["mcp:write"], "mcp:write": ["mcp:read"]},
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
        response = await http.get(
            "/mcp", headers={"Authorization": f"Bearer {token(scope='mcp:admin')}"}
        )
        assert response.status_code == 200
        assert response.json()["scopes"] == ["mcp:admin", "mcp:read", "mcp:write"]


# -- refusals ---------------------------------------------------------------------------------


async def test_missing_token_is_401_without_error(client: httpx.AsyncClient) -> None:
    response = await client.get("/mcp")
    assert response.status_code == 401
    params = challenge_params(response.headers["www-authenticate"])
    assert params == {"resource_metadata": METADATA_URL, "scope": "read"}
    # No token, no error: neither the header nor the body names one (RFC 6750 section 3.1).
    assert response.json() == {
        "error_description": "this resource needs a bearer token",
        "code": "missing_token",
    }
    assert response.headers["content-type"] == "application/json"


@pytest.mark.parametrize(
    ("required", "expected"),
    [(["mcp:tools"], {"scope": "mcp:tools"}), ([], {})],
    ids=["required", "none-required"],
)
async def test_401_challenge_names_the_required_scopes_not_every_supported_one(
    required: list[str], expected: dict[str, str]
) -> None:
    app = build_app(scopes_supported=["mcp:tools", "mcp:admin"], required_scopes=required)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as http:
        missing = await http.get("/mcp")
        invalid = await http.get("/mcp", headers={"Authorization": "Bearer a.b.c"})
        document = (await http.get("/.well-known/oauth-protected-resource/mcp")).json()
    assert missing.status_code == 401
    assert challenge_params(missing.headers["www-authenticate"]) == {
        "resource_metadata": METADATA_URL,
        **expected,
    }
    params = challenge_params(invalid.headers["www-authenticate"])
    assert params.get("scope") == expected.get("scope")
    # Every supported scope stays advertised where it belongs: in the RFC 9728 document.
    assert document["scopes_supported"] == ["mcp:tools", "mcp:admin"]


async def test_other_schemes_count_as_no_token(client: httpx.AsyncClient) -> None:
    response = await client.get("/mcp", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert response.status_code == 401
    assert "error" not in challenge_params(response.headers["www-authenticate"])


@pytest.mark.parametrize(
    ("claims", "code"),
    [
        ({"exp": int(time.time()) - 3600}, "expired"),
        ({"aud": "https://other.example.com"}, "invalid_audience"),
        ({"iss": "https://evil.example.com"}, "invalid_issuer"),
    ],
)
async def test_invalid_token_is_401_invalid_token(
    client: httpx.AsyncClient, claims: dict[str, Any], code: str
) -> None:
    response = await client.get("/mcp", headers={"Authorization": f"Bearer {token(**claims)}"})
    assert response.status_code == 401
    params = challenge_params(response.headers["www-authenticate"])
    assert params["error"] == "invalid_token"
    assert params["resource_metadata"] == METADATA_URL
    body = response.json()
    assert body["error"] == "invalid_token" and body["code"] == code
    assert body["error_description"] == params["error_description"]


async def test_untrusted_signature_is_401(client: httpx.AsyncClient) -> None:
    forged = mint("RS256", fresh_claims(), key="rsa-2", headers={"kid": "rsa-1"})
    response = await client.get("/mcp", headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_signature"


async def test_missing_scope_is_403_with_every_needed_scope(client: httpx.AsyncClient) -> None:
    response = await client.get("/mcp", headers={"Authorization": f"Bearer {token(scope='x')}"})
    assert response.status_code == 403
    params = challenge_params(response.headers["www-authenticate"])
    assert params["error"] == "insufficient_scope"
    assert params["scope"] == "read"
    assert params["resource_metadata"] == METADATA_URL
    assert response.json()["code"] == "insufficient_scope"


@pytest.mark.parametrize(
    "headers",
    [
        [("Authorization", "Bearer a.b.c d.e.f")],
        [("Authorization", "Bearer ")],
        [("Authorization", "Bearer")],
        [("Authorization", "Bearer abc\u00e9")],
        [("Authorization", 'Bearer "quoted"')],
        [("Authorization", "Bearer a"), ("Authorization", "Bearer b")],
    ],
)
async def test_malformed_authorization_is_400(
    client: httpx.AsyncClient, headers: list[tuple[str, str]]
) -> None:
    raw = [(name.encode(), value.encode("utf-8")) for name, value in headers]
    response = await client.get("/mcp", headers=raw)
    assert response.status_code in (400, 401)
    if headers[0][1].strip() == "Bearer":
        return  # "Bearer" alone carries no credentials: either answer is allowed by RFC 6750
    assert response.status_code == 400
    params = challenge_params(response.headers["www-authenticate"])
    assert params["error"] == "invalid_request"
    assert params["resource_metadata"] == METADATA_URL
    assert response.json()["error"] == "invalid_request"


async def test_token_in_query_string_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.get("/mcp", params={"access_token": token()})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


async def test_token_in_form_body_is_not_accepted(client: httpx.AsyncClient) -> None:
    response = await client.post("/mcp", data={"access_token": token()})
    assert response.status_code == 401


async def test_keys_unavailable_is_503_with_retry_after() -> None:
    # A key server that refuses connections: nothing cached, nothing verifiable.
    import socket

    with socket.socket() as reserved:
        reserved.bind(("127.0.0.1", 0))
        port = reserved.getsockname()[1]
    cache = JWKSCache(jwks_uri=f"http://127.0.0.1:{port}/jwks.json", prefetch=False)
    app = Starlette(routes=[Route("/mcp", whoami)])
    config = OAuth2Config(issuer=ISSUER, audience=AUDIENCE)
    app.add_middleware(OAuth2Middleware, config=config, key_sources=cache)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
        response = await http.get("/mcp", headers={"Authorization": f"Bearer {token()}"})
    await cache.aclose()
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) >= 1
    body = response.json()
    assert body["error"] == "temporarily_unavailable" and body["code"] == "jwks_unavailable"
    assert "127.0.0.1" not in response.text and str(port) not in response.text


# -- exemptions ---------------------------------------------------------------------------------


@pytest.fixture
async def exempting() -> AsyncIterator[httpx.AsyncClient]:
    app = build_app(exempt_routes=["/health", "/public/*", "OPTIONS /mcp"])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as http:
        yield http


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/health"),
        ("GET", "/health/"),
        ("GET", "/public/a"),
        ("GET", "/public/a/b"),
        ("OPTIONS", "/mcp"),
    ],
)
async def test_exempt_routes_need_no_token(
    exempting: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await exempting.request(method, path)
    if response.status_code == 307:  # the app's own trailing-slash redirect: it was reached
        return
    assert response.status_code == 200
    assert response.json()["authenticated"] is False


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/publicity"),
        ("GET", "/mcp"),
        ("POST", "/mcp"),
        ("GET", "//public/../mcp"),
        ("GET", "/public/../mcp"),
        ("GET", "/public/%2e%2e/mcp"),
        ("GET", "/health%2F..%2Fmcp"),
        ("GET", "/Health"),
        ("GET", "/api/items"),
    ],
)
async def test_lookalike_paths_are_not_exempt(
    exempting: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await exempting.request(method, path)
    assert response.status_code == 401


@pytest.mark.parametrize("routes", [["/*"], ["GET /*"], ["public/*"], ["/a*b"], ["get /x"]])
def test_exemptions_that_would_exempt_everything_or_are_invalid_are_refused(
    routes: list[str],
) -> None:
    with pytest.raises(ValueError, match="exempt_routes"):
        OAuth2Config(issuer=ISSUER, audience=AUDIENCE, exempt_routes=routes)


# -- anonymous routes ------------------------------------------------------------------------------


@pytest.fixture
async def anonymous() -> AsyncIterator[httpx.AsyncClient]:
    app = build_app(anonymous_routes=["/mcp"], required_scopes=["read"])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as http:
        yield http


async def test_an_anonymous_route_takes_a_request_without_credentials_as_anonymous(
    anonymous: httpx.AsyncClient,
) -> None:
    response = await anonymous.post("/mcp")
    assert response.status_code == 200
    assert response.json() == {"authenticated": False, "subject": None, "scopes": []}
    # Other routes are not anonymous.
    assert (await anonymous.get("/health")).status_code == 401


async def test_a_token_on_an_anonymous_route_is_checked_as_anywhere(
    anonymous: httpx.AsyncClient,
) -> None:
    good = await anonymous.post("/mcp", headers={"Authorization": f"Bearer {token()}"})
    assert good.json()["authenticated"] is True
    for headers, status, code in [
        (
            {"Authorization": f"Bearer {token(aud='https://other.example.com')}"},
            401,
            "invalid_audience",
        ),
        ({"Authorization": f"Bearer {token(scope='write')}"}, 403, "insufficient_scope"),
        ({"Authorization": "Bearer "}, 400, "invalid_request"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, 401, "missing_token"),  # another scheme
    ]:
        response = await anonymous.post("/mcp", headers=headers)
        assert (response.status_code, response.json()["code"]) == (status, code), headers
    query = await anonymous.post("/mcp", params={"access_token": token()})
    assert (query.status_code, query.json()["code"]) == (400, "invalid_request")
    # A query that only mentions the word offers no token: anonymous.
    other = await anonymous.post("/mcp", params={"next": "access_token"})
    assert other.json()["authenticated"] is False


def test_anonymous_routes_are_checked_as_exempt_routes_are() -> None:
    for routes in (["/*"], ["GET *"], ["mcp"]):
        with pytest.raises(ValueError, match="anonymous_routes"):
            OAuth2Config(issuer=ISSUER, audience=AUDIENCE, anonymous_routes=routes)


async def test_root_path_is_handled() -> None:
    app = build_app(exempt_routes=["/health"])
    transport = httpx.ASGITransport(app=app, root_path="/prefix")
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
        assert (await http.get("/prefix/health")).status_code == 200
        assert (await http.get("/prefix/mcp")).status_code == 401


# -- protected resource metadata ----------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"]
)
async def test_metadata_is_served_without_a_token(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 200
    assert response.json() == {
        "resource": AUDIENCE,
        "authorization_servers": [ISSUER],
        "bearer_methods_supported": ["header"],
        "scopes_supported": ["read"],
    }
    assert response.headers["access-control-allow-origin"] == "*"
    assert "max-age" in response.headers["cache-control"]
    options = await client.options(path)
    assert options.status_code == 204
    assert "GET" in options.headers["access-control-allow-methods"]
    head = await client.head(path)
    assert head.status_code == 200 and head.content == b""
    assert (await client.post(path)).status_code == 405


async def test_metadata_optional_fields() -> None:
    app = build_app(
        resource_name="Demo MCP",
        resource_documentation="https://docs.example.com/mcp",
        scopes_supported=["a", "b"],
        authorization_servers=["https://as.example.com"],
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as http:
        document = (await http.get("/.well-known/oauth-protected-resource/mcp")).json()
    assert document["resource_name"] == "Demo MCP"
    assert document["resource_documentation"] == "https://docs.example.com/mcp"
    assert document["scopes_supported"] == ["a", "b"]
    assert document["authorization_servers"] == ["https://as.example.com"]


# -- websockets, lifespan and hostile input ----------------------------------------------------


def test_websocket_without_token_is_closed_before_accept() -> None:
    with TestClient(build_app(), base_url=BASE) as test_client:
        with pytest.raises(WebSocketDisconnect) as caught, test_client.websocket_connect("/ws"):
            pass
        assert caught.value.code == 1008
        headers = {"Authorization": f"Bearer {token()}"}
        with test_client.websocket_connect("/ws", headers=headers) as ws:
            assert ws.receive_text() == "user-1"


def test_lifespan_passes_through() -> None:
    events: list[str] = []

    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        events.append("startup")
        yield
        events.append("shutdown")

    from contextlib import asynccontextmanager

    app = Starlette(routes=[Route("/mcp", whoami)], lifespan=asynccontextmanager(lifespan))
    app.add_middleware(
        OAuth2Middleware,
        config=OAuth2Config(issuer=ISSUER, audience=AUDIENCE),
        key_sources=StaticKeys(jwks_for(["ec-256"])),
    )
    with TestClient(app, base_url=BASE) as test_client:
        assert test_client.get("/mcp").status_code == 401
    assert events == ["startup", "shutdown"]


HOSTILE = [
    b"Bearer " + b"A" * 100_000,
    b"Bearer \xff\xfe\xfd",
    b"Bearer a\x00b",
    b"Bearer a.b.c\r\nX-Injected: 1",
    b"\xff" * 50,
    b"Bearer " + b".".join([b"eyJhbGciOiJub25lIn0"] * 3),
    b"Bearer " + b"eyJhbGciOiJFUzI1NiJ9." * 400,
]


@pytest.mark.parametrize("value", HOSTILE)
async def test_hostile_headers_never_cause_a_500(client: httpx.AsyncClient, value: bytes) -> None:
    transport = httpx.ASGITransport(app=build_app(), raise_app_exceptions=True)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
        response = await http.get("/mcp", headers=[(b"authorization", value)])
    assert response.status_code in (400, 401)
    for name, header in response.headers.raw:
        assert b"\r" not in header and b"\n" not in header
        assert name.lower() != b"x-injected"


def test_header_values_are_quoted_and_escaped() -> None:
    assert quote('a"b\\c') == '"a\\"b\\\\c"'
    assert quote("line\r\nX-Injected: 1") == '"lineX-Injected: 1"'
    assert quote("caf\u00e9") == '"caf"'


async def test_descriptions_in_headers_parse_back(client: httpx.AsyncClient) -> None:
    response = await client.get("/mcp", headers={"Authorization": "Bearer a.b.c"})
    params = challenge_params(response.headers["www-authenticate"])
    assert params["error_description"] == json.loads(response.text)["error_description"]


async def test_an_entra_v2_audience_guid_is_checked_and_the_metadata_names_the_resource() -> None:
    client_id = "8f5c1a2b-3d4e-4f60-9a7b-0c1d2e3f4a5b"
    app = build_app(audience=[client_id], resource=f"{BASE}/mcp")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as http:
        accepted = await http.get(
            "/mcp", headers={"Authorization": f"Bearer {token(aud=client_id)}"}
        )
        assert accepted.status_code == 200 and accepted.json()["subject"] == "user-1"
        other = await http.get("/mcp", headers={"Authorization": f"Bearer {token()}"})
        assert other.status_code == 401 and other.json()["code"] == "invalid_audience"
        assert f'resource_metadata="{METADATA_URL}"' in other.headers["www-authenticate"]
        metadata = (await http.get("/.well-known/oauth-protected-resource/mcp")).json()
        assert metadata["resource"] == f"{BASE}/mcp"
