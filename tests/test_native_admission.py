"""The middleware admits a request in one native call, under the one owner of the scope rules.

``OAuth2Middleware`` hands the ``Authorization`` header's bytes to ``TokenValidator.authorize``
with the ``ScopeRules`` of its ``AccessControl`` (``access.rules``), and ``AccessControl``
computes effective and missing scopes with those same rules: whether a request is admitted
natively or a tool or endpoint asks ``AccessControl``, one object decides. Keys are a
``StaticKeys`` over the test JWKS (or a key server that refuses connections), requests go through
``httpx.ASGITransport``.
"""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import mcp_oauth2
import mcp_oauth2.testing
from mcp_oauth2 import AuthenticatedUser, OAuth2Config, OAuth2Middleware, _rust
from mcp_oauth2._access import AccessControl
from mcp_oauth2._rust import ScopeRules
from mcp_oauth2.lowlevel import JWKSCache, KeySource, StaticKeys, TokenValidator
from mcp_oauth2.testing import DPoPKey, LocalIssuer
from token_factory import AUDIENCE, ISSUER, b64u, jwks_for, make_claims, mint

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


# -- native calls per request ----------------------------------------------------------------------
# Counted with sys.setprofile: each C-call event on this thread whose function belongs to the
# native module (a module function, or a method of one of its classes) and whose caller is the
# library's own code (not the test, nor the local issuer of mcp_oauth2.testing). Reading an
# attribute of a result (``user.issuer``) is no call.

NATIVE_TYPES = (
    _rust.AuthenticatedUser,
    _rust.KeySet,
    _rust.Referral,
    _rust.ScopeRules,
    _rust.TokenValidator,
)
PACKAGE = str(Path(mcp_oauth2.__file__).parent)
TESTING = str(Path(mcp_oauth2.testing.__file__).parent)
SECOND, THIRD = "https://second.example.com", "https://third.example.com"


def native(function: object) -> bool:
    if getattr(function, "__module__", None) == "mcp_oauth2._rust":
        return True
    owner = getattr(function, "__self__", None)
    return isinstance(owner, NATIVE_TYPES) or owner in NATIVE_TYPES


@contextlib.contextmanager
def native_calls() -> Iterator[list[str]]:
    """The native calls the library makes meanwhile, by name."""
    calls: list[str] = []

    def profile(frame: FrameType, event: str, function: object) -> None:
        if event == "c_call" and native(function):
            caller = frame.f_code.co_filename
            if caller.startswith(PACKAGE) and not caller.startswith(TESTING):
                calls.append(getattr(function, "__qualname__", repr(function)))

    before = sys.getprofile()
    sys.setprofile(profile)
    try:
        yield calls
    finally:
        sys.setprofile(before)


async def calls_of(client: httpx.AsyncClient, headers: dict[str, str]) -> list[str]:
    with native_calls() as calls:
        response = await client.get("/mcp", headers=headers)
    assert response.status_code == 200, response.text
    return calls


def signed_for(issuer: str, kid: str, scope: str = "mcp:tools") -> dict[str, str]:
    now = int(time.time())
    claims = make_claims(iss=issuer, scope=scope, iat=now - 5, nbf=now - 5, exp=now + 600)
    alg = {"rsa-1": "RS256", "ec-256": "ES256", "ed25519": "EdDSA"}[kid]
    return {"Authorization": f"Bearer {mint(alg, claims, key=kid)}"}


@pytest.mark.anyio
async def test_a_jwt_costs_one_native_call_with_one_issuer() -> None:
    _, client = protected(StaticKeys(jwks_for(["ec-256"])), required_scopes=["mcp:tools"])
    headers = bearer("mcp:root")
    async with client:
        first = await calls_of(client, headers)  # validated
        again = await calls_of(client, headers)  # from the verified-token cache
    assert first == again == ["TokenValidator.authorize"]


@pytest.mark.anyio
async def test_a_dpop_request_costs_one_native_call() -> None:
    """The proof is checked in the same call as the token (which the verified-token cache
    serves the second time); the replay check reads the proof's attributes, no call."""
    _, client = protected(StaticKeys(jwks_for(["ec-256"])), dpop="required")
    key = DPoPKey()
    now = int(time.time())
    claims = make_claims(scope="mcp:tools", iat=now - 5, nbf=now - 5, exp=now + 600)
    token = mint("ES256", {**claims, "cnf": {"jkt": key.thumbprint}}, key="ec-256")
    async with client:
        for _ in range(2):
            proof = key.proof("GET", AUDIENCE, access_token=token)
            headers = {"Authorization": f"DPoP {token}", "DPoP": proof}
            assert await calls_of(client, headers) == ["TokenValidator.authorize"]


@pytest.mark.anyio
async def test_a_jwt_costs_one_native_call_with_three_issuers() -> None:
    """Each issuer has its own keys; the call routes by the token's unverified ``iss``. The first
    token of an issuer costs one more call (its keys were not at hand); a forged ``iss`` meets
    the keys of the issuer it names and is refused."""
    sources = {
        ISSUER: StaticKeys(jwks_for(["rsa-1"])),
        SECOND: StaticKeys(jwks_for(["ec-256"])),
        THIRD: StaticKeys(jwks_for(["ed25519"])),
    }
    config = OAuth2Config(
        issuer=[ISSUER, SECOND, THIRD],
        audience=AUDIENCE,
        algorithms=["RS256", "ES256", "EdDSA"],
        required_scopes=["mcp:tools"],
        scope_implications=IMPLICATIONS,
    )
    app = OAuth2Middleware(Starlette(routes=[Route("/mcp", whoami)]), config, key_sources=sources)
    tokens = [
        signed_for(ISSUER, "rsa-1"),
        signed_for(SECOND, "ec-256"),
        signed_for(THIRD, "ed25519"),
    ]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        firsts = [await calls_of(client, headers) for headers in tokens]
        agains = [await calls_of(client, headers) for headers in tokens]
        fresh = await calls_of(client, signed_for(SECOND, "ec-256", scope="mcp:admin"))
        forged = await client.get("/mcp", headers=signed_for(ISSUER, "ec-256"))
        unknown = await client.get("/mcp", headers=signed_for("https://evil.example", "ec-256"))
    assert firsts == [["TokenValidator.authorize"] * 2] * 3
    assert agains == [["TokenValidator.authorize"]] * 3
    assert fresh == ["TokenValidator.authorize"]  # not cached, its issuer's keys at hand
    assert (forged.status_code, forged.json()["code"]) == (401, "key_not_found")
    assert (unknown.status_code, unknown.json()["code"]) == (401, "invalid_issuer")
    # Each source was asked for its keys once per request that reached them: admitted, or (the
    # forged token) missing a key.
    assert [source.stats().hits for source in sources.values()] == [3, 3, 2]


@contextlib.asynccontextmanager
async def introspecting(
    issuer: LocalIssuer, token_format: str, **settings: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the middleware (in process) over ``issuer``, whose introspection endpoint it
    may call."""
    config = OAuth2Config.model_validate(
        {
            "issuer": issuer.issuer,
            "audience": AUDIENCE,
            "token_format": token_format,
            "client_id": issuer.introspection_client_id,
            "client_secret": issuer.introspection_client_secret,
            **settings,
        }
    )
    app = OAuth2Middleware(Starlette(routes=[Route("/mcp", whoami)]), config)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            yield client
    finally:
        await app.authenticator.aclose()


@pytest.mark.anyio
@pytest.mark.timeout(60)
async def test_an_opaque_token_costs_at_most_two_native_calls() -> None:
    """The call that classifies the token, then one more: for the first request, the check of
    the endpoint's answer together with the request's admission (the DPoP binding and the scope
    rules: ``admit_introspection``); for later ones, answered from the introspector's cache, the
    admission of the cached user (``Referral.admit``)."""
    issuer = LocalIssuer(default_audience=AUDIENCE)
    rules = {"required_scopes": ["mcp:tools"], "scope_implications": IMPLICATIONS}
    async with issuer.serve_async(), introspecting(issuer, "opaque", **rules) as client:
        headers = {"Authorization": f"Bearer {issuer.mint_opaque(scopes=['mcp:admin'])}"}
        first = await calls_of(client, headers)
        again = await calls_of(client, headers)
    assert first == ["TokenValidator.authorize", "TokenValidator.admit_introspection"]
    assert again == ["TokenValidator.authorize", "Referral.admit"]
    assert issuer.introspection_requests == 1


# -- token_format="auto": a token shaped as a JWS is never introspected ---------------------------


def unsigned(header: bytes, signature: str = "c2ln") -> str:
    payload = json.dumps(make_claims()).encode()
    return f"{b64u(header)}.{b64u(payload)}.{signature}"


@pytest.mark.anyio
@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("token", "code"),
    [
        (unsigned(b'{"alg":"none"}', signature=""), "malformed"),
        (unsigned(b'{"alg":"none"}'), "algorithm_not_allowed"),
        (unsigned(b'{"alg":"ES256","alg":"ES256"}'), "malformed"),
        (unsigned('\ufeff{"alg":"ES256"}'.encode()), "malformed"),
        (unsigned(b'["ES256"]'), "malformed"),
        ("a.b.c", "malformed"),
        ("..", "malformed"),
    ],
    ids=["none-empty-signature", "none", "duplicate-member", "bom", "array", "abc", "dots"],
)
async def test_auto_refuses_a_jws_shaped_token_locally(token: str, code: str) -> None:
    issuer = LocalIssuer(default_audience=AUDIENCE)
    async with issuer.serve_async(), introspecting(issuer, "auto") as client:
        refused = await client.get("/mcp", headers={"Authorization": f"Bearer {token}"})
        opaque = await client.get(
            "/mcp", headers={"Authorization": f"Bearer {issuer.mint_opaque()}"}
        )
    assert (refused.status_code, refused.json()["code"]) == (401, code)
    assert opaque.status_code == 200  # and an opaque token is introspected, once
    assert issuer.introspection_requests == 1


@pytest.mark.anyio
@pytest.mark.timeout(60)
async def test_a_key_miss_refreshes_the_keys_of_the_issuer_the_call_named() -> None:
    """Two issuers, each with its key cache: a rotation at the second is found by refreshing
    the second's keys (the error of the native call names the issuer and the key id); the
    first's are not asked for again."""
    first, second = LocalIssuer(default_audience=AUDIENCE), LocalIssuer(default_audience=AUDIENCE)
    async with first.serve_async(), second.serve_async():
        config = OAuth2Config(issuer=[first.issuer, second.issuer], audience=AUDIENCE)
        app = OAuth2Middleware(Starlette(routes=[Route("/mcp", whoami)]), config)
        transport = httpx.ASGITransport(app=app)
        try:
            async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:

                async def status(issuer: LocalIssuer) -> int:
                    token = issuer.mint(scopes=["mcp:tools"])
                    answer = await client.get("/mcp", headers={"Authorization": f"Bearer {token}"})
                    return answer.status_code

                assert [await status(first), await status(second)] == [200, 200]
                fetched = (first.jwks_requests, second.jwks_requests)
                second.rotate(keep_old=False)
                with native_calls() as calls:
                    rotated = await status(second)
                assert rotated == 200
                assert (first.jwks_requests, second.jwks_requests) == (
                    fetched[0],
                    fetched[1] + 1,
                )
                # The miss, then the token checked again with the fetched keys.
                assert calls == ["TokenValidator.authorize"] * 2
                assert await status(first) == 200
        finally:
            await app.authenticator.aclose()
