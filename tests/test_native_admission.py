"""The middleware admits a request in one native call, under the one owner of the scope rules.

``OAuth2Middleware`` hands the ``Authorization`` header's bytes to ``TokenValidator.authorize``
with the ``ScopeRules`` of its ``AccessControl`` (``access.rules``), and ``AccessControl``
computes effective and missing scopes with those same rules: whether a request is admitted
natively or a tool or endpoint asks ``AccessControl``, one object decides. Keys are a
``StaticKeys`` over the test JWKS (or a key server that refuses connections), requests go through
``httpx.ASGITransport``.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from mcp_oauth2 import (
    AuthenticatedUser,
    JWKSCache,
    KeySource,
    OAuth2Config,
    OAuth2Middleware,
    StaticKeys,
    TokenValidator,
)
from mcp_oauth2._access import AccessControl
from mcp_oauth2._rust import ScopeRules
from token_factory import AUDIENCE, ISSUER, jwks_for, make_claims, mint

BASE = "https://mcp.example.com"
IMPLICATIONS = {"mcp:root": ["mcp:admin"], "mcp:admin": ["mcp:tools"]}


def bearer(scope: str) -> dict[str, str]:
    now = int(time.time())
    claims = make_claims(scope=scope, iat=now - 5, nbf=now - 5, exp=now + 600)
    return {"Authorization": f"Bearer {mint('ES256', claims)}"}


async def whoami(request: Request) -> JSONResponse:
    user = request.user
    assert isinstance(user, AuthenticatedUser)
    return JSONResponse({"subject": user.subject, "scopes": list(request.auth.scopes)})


class RecordingValidator:
    """The real ``TokenValidator`` with a record of which of its checks each request called."""

    def __init__(self, validator: TokenValidator) -> None:
        self.validator = validator
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def __getattr__(self, name: str) -> Any:
        value = getattr(self.validator, name)
        if name not in ("authorize", "validate"):
            return value

        def recorded(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, args))
            return value(*args, **kwargs)

        return recorded


def protected(keys: KeySource, **options: Any) -> tuple[OAuth2Middleware, httpx.AsyncClient]:
    config = OAuth2Config(
        issuer=ISSUER, audience=AUDIENCE, scope_implications=IMPLICATIONS, **options
    )
    middleware = OAuth2Middleware(
        Starlette(routes=[Route("/mcp", whoami)]), config=config, key_sources=keys
    )
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=middleware), base_url=BASE)
    return middleware, client


@pytest.mark.anyio
async def test_each_admission_is_one_authorize_call_with_the_access_controls_rules() -> None:
    middleware, client = protected(StaticKeys(jwks_for(["ec-256"])), required_scopes=["mcp:tools"])
    recorder = RecordingValidator(middleware.authenticator.validator)
    middleware.authenticator.validator = recorder  # type: ignore[assignment]
    async with client:
        admitted = await client.get("/mcp", headers=bearer("mcp:root"))
        lacking = await client.get("/mcp", headers=bearer("read"))
        other_scheme = await client.get("/mcp", headers={"Authorization": "Basic dXNlcjpwdw=="})
        broken = await client.get("/mcp", headers={"Authorization": "Bearer a b"})
        no_header = await client.get("/mcp")
    # The implied scopes come from the native call, sorted.
    assert admitted.status_code == 200, admitted.text
    assert admitted.json() == {
        "subject": "user-1",
        "scopes": ["mcp:admin", "mcp:root", "mcp:tools"],
    }
    assert lacking.status_code == 403
    assert lacking.json()["error_description"] == "token lacks the required scope(s): mcp:tools"
    assert 'scope="mcp:tools", error="insufficient_scope"' in lacking.headers["www-authenticate"]
    assert other_scheme.status_code == 401
    assert other_scheme.json()["code"] == "missing_token"
    assert broken.status_code == 400
    assert broken.json()["code"] == "invalid_request"
    assert no_header.status_code == 401
    # One native call per request that carried the header, always with the AccessControl's
    # rules; the token is never validated apart from them.
    assert [name for name, _ in recorder.calls] == ["authorize"] * 4
    for _, args in recorder.calls:
        assert args[2] is middleware.access.rules


@pytest.mark.anyio
async def test_without_keys_the_header_is_still_answered_for_itself() -> None:
    """A key server that refuses connections: the header decides first (401 for another scheme,
    400 for broken credentials); only a well-formed Bearer token meets the 503."""
    with socket.socket() as reserved:
        reserved.bind(("127.0.0.1", 0))
        port = reserved.getsockname()[1]
    cache = JWKSCache(jwks_uri=f"http://127.0.0.1:{port}/jwks.json", prefetch=False)
    _, client = protected(cache)
    async with client:
        other_scheme = await client.get("/mcp", headers={"Authorization": "Basic dXNlcjpwdw=="})
        broken = await client.get("/mcp", headers={"Authorization": "Bearer a b"})
        empty = await client.get("/mcp", headers={"Authorization": "Bearer "})
        valid = await client.get("/mcp", headers=bearer("read"))
    await cache.aclose()
    assert (other_scheme.status_code, other_scheme.json()["code"]) == (401, "missing_token")
    assert (broken.status_code, broken.json()["code"]) == (400, "invalid_request")
    assert (empty.status_code, empty.json()["code"]) == (400, "invalid_request")
    assert (valid.status_code, valid.json()["code"]) == (503, "jwks_unavailable")


SCOPES = st.sampled_from(["a", "b", "c", "d", "e"])


def reference_closure(implications: dict[str, list[str]]) -> Callable[[list[str]], set[str]]:
    def effective(granted: list[str]) -> set[str]:
        found, pending = set(), list(granted)
        while pending:
            name = pending.pop()
            if name not in found:
                found.add(name)
                pending.extend(implications.get(name, ()))
        return found

    return effective


@settings(max_examples=200, deadline=None)
@given(
    implications=st.dictionaries(SCOPES, st.lists(SCOPES, max_size=3), max_size=4),
    required=st.lists(SCOPES, max_size=3),
    granted=st.lists(SCOPES, max_size=4),
    needed=st.lists(SCOPES, max_size=5),
)
def test_access_control_decides_with_its_native_rules(
    implications: dict[str, list[str]],
    required: list[str],
    granted: list[str],
    needed: list[str],
) -> None:
    access = AccessControl(
        "https://mcp.example.com/.well-known/oauth-protected-resource",
        required_scopes=required,
        scope_implications=implications,
    )
    assert isinstance(access.rules, ScopeRules)
    assert access.required_scopes == access.rules.required == tuple(dict.fromkeys(required))
    effective = reference_closure(implications)(granted)
    assert access.effective_scopes(granted) == access.rules.effective(granted) == effective
    lacking = tuple(dict.fromkeys(name for name in needed if name not in effective))
    assert access.missing_scopes(granted, needed) == lacking
    assert access.rules.missing(granted, needed) == lacking
    assert access.rules.missing(granted) == tuple(
        name for name in dict.fromkeys(required) if name not in effective
    )
