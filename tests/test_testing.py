"""``mcp_oauth2.testing.LocalIssuer``: the tokens it mints are accepted by the native core (and
each deliberately broken one is refused with the expected code), key management changes the
JWKS as documented, and the HTTP server, its request counts and every injected fault behave as
described, over real loopback HTTP."""

from __future__ import annotations

import base64
import contextlib
import gzip
import json
import re
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import anyio
import httpx
import pytest
from starlette.applications import Starlette

from mcp_oauth2.errors import JWKSError, TokenValidationError
from mcp_oauth2.lowlevel import KeySet, TokenValidator
from mcp_oauth2.testing import (
    BOMB_DECODED_BYTES,
    HUGE_BODY_BYTES,
    NESTED_JSON_DEPTH,
    AppServer,
    LocalIssuer,
    bind_loopback,
)
from token_factory import ALGORITHMS

ISSUER = "https://auth.example.com"
AUDIENCE = "https://mcp.example.com/mcp"
BOTH = ["RS256", "ES256"]
EVERY_ALGORITHM = list(ALGORITHMS)
DISCOVERY_PATHS = [
    "/.well-known/oauth-authorization-server",
    "/.well-known/oauth-authorization-server/tenant1",
    "/.well-known/openid-configuration",
    "/.well-known/openid-configuration/tenant1",
    "/tenant1/.well-known/openid-configuration",
]


def b64u_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def decode(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The header and payload of a compact JWS, unverified."""
    header, payload, _ = token.split(".")
    return json.loads(b64u_decode(header)), json.loads(b64u_decode(payload))


def validate(issuer: LocalIssuer, token: str, **options: Any) -> Any:
    options.setdefault("algorithms", BOTH)
    validator = TokenValidator(issuer.issuer, AUDIENCE, **options)
    return validator.validate(token, KeySet.from_jwks(issuer.jwks()))


def failure_code(issuer: LocalIssuer, token: str) -> str:
    with pytest.raises(TokenValidationError) as caught:
        validate(issuer, token)
    return caught.value.code


@pytest.fixture(scope="module")
def shared() -> LocalIssuer:
    """An issuer with a fixed URL that no test changes (key generation costs time)."""
    return LocalIssuer(ISSUER, default_audience=AUDIENCE)


@pytest.fixture
def local() -> LocalIssuer:
    """A fresh issuer for tests that change keys."""
    return LocalIssuer(ISSUER, default_audience=AUDIENCE)


@pytest.fixture
def served() -> Iterator[LocalIssuer]:
    """A fresh issuer at ``/tenant1``, served from a background thread."""
    issuer = LocalIssuer(default_audience=AUDIENCE, path="/tenant1")
    with issuer.serve():
        yield issuer


# -- minting ------------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", BOTH)
def test_minted_tokens_validate(shared: LocalIssuer, algorithm: str) -> None:
    token = shared.mint(algorithm=algorithm, scopes=["read", "write"])
    user = validate(shared, token, accepted_types=["at+jwt"], required_scopes=["read"])
    assert user.subject == "user-1"
    assert user.issuer == ISSUER
    assert user.audience == (AUDIENCE,)
    assert user.scopes == {"read", "write"}
    assert user.client_id == "local-client"
    header, _ = decode(token)
    assert header == {"alg": algorithm, "typ": "at+jwt", "kid": shared.current_kid(algorithm)}


@pytest.mark.parametrize("algorithm", EVERY_ALGORITHM)
def test_every_supported_algorithm_validates(algorithm: str) -> None:
    issuer = LocalIssuer(ISSUER, default_audience=AUDIENCE, algorithms=[algorithm])
    assert issuer.key_ids == (f"{algorithm.lower()}-1",)
    token = issuer.mint(algorithm=algorithm)
    assert validate(issuer, token, algorithms=[algorithm]).subject == "user-1"


def test_claims_and_defaults(shared: LocalIssuer) -> None:
    before = int(time.time())
    token = shared.mint(scopes=["read", "write"])
    _, claims = decode(token)
    assert set(claims) == {"iss", "sub", "aud", "iat", "nbf", "exp", "jti", "client_id", "scope"}
    assert claims["iss"] == ISSUER
    assert claims["sub"] == "user-1"
    assert claims["aud"] == AUDIENCE
    assert before <= claims["iat"] <= int(time.time())
    assert claims["nbf"] == claims["iat"]
    assert claims["exp"] == claims["iat"] + 300
    assert claims["client_id"] == "local-client"
    assert claims["scope"] == "read write"
    assert re.fullmatch("[0-9a-f]{32}", claims["jti"])
    assert decode(shared.mint())[1]["jti"] != claims["jti"]


def test_mint_options(shared: LocalIssuer) -> None:
    _, claims = decode(
        shared.mint(
            subject=None,
            audience=[AUDIENCE, "https://other.example.com"],
            scopes="a b",
            expires_in=60,
            issued_at=1_800_000_000,
            claims={"client_id": "cli", "tenant": "t1", "jti": None},
        )
    )
    assert claims == {
        "iss": ISSUER,
        "aud": [AUDIENCE, "https://other.example.com"],
        "iat": 1_800_000_000,
        "nbf": 1_800_000_000,
        "exp": 1_800_000_060,
        "client_id": "cli",
        "scope": "a b",
        "tenant": "t1",
    }
    assert "scope" not in decode(shared.mint(scopes=()))[1]
    header, _ = decode(shared.mint(headers={"typ": None, "x-test": 1}))
    assert header == {"alg": "RS256", "kid": "rs256-1", "x-test": 1}


def test_unknown_mint_options_are_refused(shared: LocalIssuer) -> None:
    with pytest.raises(TypeError, match=r"unexpected keyword arguments: audiance, scope$"):
        shared.mint(audiance=AUDIENCE, scope=["mcp:tools"])  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected keyword arguments: subjet"):
        shared.mint_opaque(subjet="olive")  # type: ignore[call-arg]


def test_minting_with_an_algorithm_it_has_no_key_for_says_how_to_add_one(
    local: LocalIssuer,
) -> None:
    with pytest.raises(LookupError, match=r"no PS256 key: call issuer.rotate\('PS256'\)"):
        local.mint(algorithm="PS256")
    local.rotate("PS256")
    assert decode(local.mint(algorithm="PS256"))[0]["alg"] == "PS256"


def test_audience_is_required_without_a_default() -> None:
    issuer = LocalIssuer(ISSUER, algorithms=["ES256"])
    with pytest.raises(TypeError, match="audience"):
        issuer.mint(algorithm="ES256")
    assert decode(issuer.mint(algorithm="ES256", audience="a"))[1]["aud"] == "a"


def test_kid_selects_the_key(shared: LocalIssuer) -> None:
    header, _ = decode(shared.mint(kid="es256-1"))
    assert header["alg"] == "ES256"
    assert validate(shared, shared.mint(kid="es256-1")).subject == "user-1"
    unknown = shared.mint(kid="unknown")
    assert decode(unknown)[0]["kid"] == "unknown"
    assert failure_code(shared, unknown) == "key_not_found"
    with pytest.raises(ValueError, match="ES256 key"):
        shared.mint(kid="es256-1", algorithm="RS256")
    with pytest.raises(ValueError, match="unsupported algorithm"):
        shared.mint(algorithm="HS256")


BROKEN: list[tuple[Callable[[LocalIssuer, str], str], str]] = [
    (lambda issuer, alg: issuer.mint_expired(algorithm=alg), "expired"),
    (
        lambda issuer, alg: issuer.mint_for_audience("https://other.example.com", algorithm=alg),
        "invalid_audience",
    ),
    (lambda issuer, alg: issuer.mint_untrusted(algorithm=alg), "invalid_signature"),
    (lambda issuer, alg: issuer.mint_without_audience(algorithm=alg), "missing_claim"),
]


@pytest.mark.parametrize("algorithm", BOTH)
@pytest.mark.parametrize(("mint", "code"), BROKEN, ids=[code for _, code in BROKEN])
def test_broken_tokens_fail_with_their_code(
    shared: LocalIssuer, mint: Callable[[LocalIssuer, str], str], code: str, algorithm: str
) -> None:
    token = mint(shared, algorithm)
    assert decode(token)[0]["alg"] == algorithm
    assert failure_code(shared, token) == code


def test_expired_token_is_beyond_the_largest_leeway(shared: LocalIssuer) -> None:
    token = shared.mint_expired(scopes=["read"])
    _, claims = decode(token)
    assert claims["exp"] <= time.time() - 3600 - 60
    with pytest.raises(TokenValidationError) as caught:
        validate(shared, token, leeway=3600)
    assert caught.value.code == "expired"


def test_untrusted_token_names_a_published_key(shared: LocalIssuer) -> None:
    header, claims = decode(shared.mint_untrusted())
    assert header["kid"] in shared.key_ids
    assert claims["aud"] == AUDIENCE
    assert "aud" not in decode(shared.mint_without_audience(claims={"tenant": "t"}))[1]


# -- keys ---------------------------------------------------------------------------------------


def test_jwks_members(shared: LocalIssuer) -> None:
    rsa_key, ec_key = shared.jwks()["keys"]
    assert set(rsa_key) == {"kty", "kid", "use", "alg", "n", "e"}
    assert rsa_key["kty"] == "RSA" and rsa_key["kid"] == "rs256-1" and rsa_key["alg"] == "RS256"
    assert rsa_key["use"] == "sig" and rsa_key["e"] == "AQAB"
    assert len(b64u_decode(rsa_key["n"])) == 256
    assert set(ec_key) == {"kty", "kid", "use", "alg", "crv", "x", "y"}
    assert (ec_key["kty"], ec_key["kid"], ec_key["crv"]) == ("EC", "es256-1", "P-256")
    assert len(b64u_decode(ec_key["x"])) == len(b64u_decode(ec_key["y"])) == 32
    assert KeySet.from_jwks(shared.jwks()).skipped == ()


def test_rotate_keeps_the_old_key_published(local: LocalIssuer) -> None:
    old_token = local.mint()
    kid = local.rotate()
    assert kid == "rs256-2"
    assert local.key_ids == ("rs256-1", "es256-1", "rs256-2")
    assert local.current_kid("RS256") == kid
    new_token = local.mint()
    assert decode(new_token)[0]["kid"] == kid
    assert validate(local, old_token).subject == validate(local, new_token).subject == "user-1"

    newest = local.rotate(keep_old=False)
    published: tuple[str, ...] = local.key_ids
    assert published == ("es256-1", newest)
    assert failure_code(local, new_token) == "key_not_found"
    assert validate(local, local.mint()).subject == "user-1"


def test_replace_key_keeps_the_kid_with_new_material(local: LocalIssuer) -> None:
    before_jwk = local.jwks()["keys"][0]
    token = local.mint()
    local.replace_key("rs256-1")
    after_jwk = local.jwks()["keys"][0]
    assert after_jwk["kid"] == before_jwk["kid"] == "rs256-1"
    assert after_jwk["n"] != before_jwk["n"]
    assert failure_code(local, token) == "invalid_signature"
    assert validate(local, local.mint()).subject == "user-1"


def test_remove_key(local: LocalIssuer) -> None:
    token = local.mint(algorithm="ES256")
    local.remove_key("es256-1")
    assert local.key_ids == ("rs256-1",)
    assert failure_code(local, token) == "key_not_found"
    with pytest.raises(LookupError, match="rotate"):
        local.mint(algorithm="ES256")
    with pytest.raises(KeyError):
        local.remove_key("es256-1")
    with pytest.raises(KeyError):
        local.replace_key("es256-1")
    assert local.rotate("ES256") == "es256-2"
    assert validate(local, local.mint(algorithm="ES256")).subject == "user-1"


def test_removing_the_current_key_falls_back_to_an_older_one(local: LocalIssuer) -> None:
    newest = local.rotate()
    local.remove_key(newest)
    assert local.current_kid("RS256") == "rs256-1"
    assert decode(local.mint())[0]["kid"] == "rs256-1"


# -- identity and metadata ----------------------------------------------------------------------


def test_issuer_is_unknown_until_served() -> None:
    issuer = LocalIssuer(path="/tenant1", algorithms=["ES256"])
    with pytest.raises(RuntimeError, match="serve"):
        _ = issuer.issuer
    with pytest.raises(RuntimeError, match="has not been served yet"):
        _ = issuer.base_url
    with pytest.raises(RuntimeError, match="serve"):
        issuer.metadata()
    with issuer.serve() as base_url:
        assert base_url.startswith("http://127.0.0.1:")
        assert issuer.issuer == base_url + "/tenant1"
    # The port is kept: tokens minted earlier stay valid for a later serve().
    with issuer.serve() as again:
        assert again == base_url


def test_metadata_document() -> None:
    issuer = LocalIssuer(ISSUER, algorithms=["ES256"], scopes_supported=["read", "write"])
    assert issuer.metadata() == {
        "issuer": ISSUER,
        "jwks_uri": f"{ISSUER}/jwks.json",
        "introspection_endpoint": f"{ISSUER}/introspect",
        "introspection_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
        ],
        "authorization_endpoint": f"{ISSUER}/authorize",
        "token_endpoint": f"{ISSUER}/token",
        "response_types_supported": ["code"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "grant_types_supported": [
            "authorization_code",
            "refresh_token",
            "client_credentials",
            "urn:ietf:params:oauth:grant-type:token-exchange",
            "urn:ietf:params:oauth:grant-type:jwt-bearer",
        ],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": ["read", "write"],
    }
    issuer.metadata_issuer = "https://elsewhere.example.com"
    assert issuer.metadata()["issuer"] == "https://elsewhere.example.com"
    assert "scopes_supported" not in LocalIssuer(ISSUER, algorithms=[]).metadata()


@pytest.mark.parametrize("path", ["tenant1", "/tenant1/", "/", "/a b", "/{kid}"])
def test_path_must_be_well_formed(path: str) -> None:
    with pytest.raises(ValueError, match="path"):
        LocalIssuer(path=path, algorithms=[])


@pytest.mark.parametrize("value", ["status:99", "status:600", "status:5000", "status:", "nope"])
def test_unknown_faults_are_refused(value: str) -> None:
    issuer = LocalIssuer(ISSUER, algorithms=[])
    with pytest.raises(ValueError, match="status:NNN"):
        issuer.fault = value
    with pytest.raises(ValueError, match="status:NNN"):
        issuer.metadata_fault = value
    with pytest.raises(ValueError, match="no_usable_keys"):
        issuer.metadata_fault = "no_usable_keys"  # a JWKS-only fault
    assert issuer.fault is None and issuer.metadata_fault is None


# -- HTTP ---------------------------------------------------------------------------------------


def test_discovery_and_jwks_over_http(served: LocalIssuer) -> None:
    assert served.issuer == served.base_url + "/tenant1"
    for path in DISCOVERY_PATHS:
        response = httpx.get(served.base_url + path)
        assert response.status_code == 200, path
        assert response.headers["content-type"] == "application/json"
        assert response.json() == served.metadata()
    jwks_uri = served.metadata()["jwks_uri"]
    assert jwks_uri == served.issuer + "/jwks.json"
    response = httpx.get(jwks_uri)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/jwk-set+json"
    assert "cache-control" not in response.headers
    assert response.json() == served.jwks()
    token = served.mint()
    assert validate(served, token).issuer == served.issuer


def test_cache_control_follows_cache_max_age(served: LocalIssuer) -> None:
    url = served.base_url + served.jwks_path
    served.cache_max_age = 300
    assert httpx.get(url).headers["cache-control"] == "max-age=300"
    served.cache_max_age = 0
    assert httpx.get(url).headers["cache-control"] == "max-age=0"
    served.cache_max_age = None
    assert "cache-control" not in httpx.get(url).headers


def test_requests_are_counted_by_path(served: LocalIssuer) -> None:
    jwks_url = served.base_url + served.jwks_path
    httpx.get(jwks_url)
    served.fault = "status:500"
    httpx.get(jwks_url)
    httpx.get(served.base_url + DISCOVERY_PATHS[1])
    assert httpx.get(served.base_url + "/nowhere").status_code == 404
    assert served.jwks_requests == 2
    assert served.requests == {
        "/tenant1/jwks.json": 2,
        "/.well-known/oauth-authorization-server/tenant1": 1,
        "/nowhere": 1,
    }


@pytest.mark.parametrize("status", [500, 404, 503, 429])
def test_status_faults(served: LocalIssuer, status: int) -> None:
    served.fault = f"status:{status}"
    assert httpx.get(served.metadata()["jwks_uri"]).status_code == status
    served.metadata_fault = f"status:{status}"
    for path in DISCOVERY_PATHS:
        assert httpx.get(served.base_url + path).status_code == status
    served.fault = served.metadata_fault = None
    assert httpx.get(served.metadata()["jwks_uri"]).status_code == 200


def test_html_fault(served: LocalIssuer) -> None:
    served.fault = "html"
    response = httpx.get(served.metadata()["jwks_uri"])
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.text.startswith("<!doctype html>")


def test_invalid_json_fault(served: LocalIssuer) -> None:
    served.fault = "invalid_json"
    response = httpx.get(served.metadata()["jwks_uri"])
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/jwk-set+json"
    with pytest.raises(json.JSONDecodeError):
        response.json()
    with pytest.raises(JWKSError):
        KeySet.from_jwks(response.content)


@pytest.mark.parametrize("fault", ["empty", "no_usable_keys"])
def test_keyless_faults(served: LocalIssuer, fault: str) -> None:
    served.fault = fault
    response = httpx.get(served.metadata()["jwks_uri"])
    assert response.status_code == 200
    document = response.json()
    kinds = [key["kty"] for key in document["keys"]]
    assert kinds == ([] if fault == "empty" else ["oct", "RSA"])
    with pytest.raises(JWKSError):
        KeySet.from_jwks(document)


def test_huge_fault_streams_a_mebibyte(served: LocalIssuer) -> None:
    served.fault = "huge"
    with httpx.stream("GET", served.metadata()["jwks_uri"]) as response:
        assert response.status_code == 200
        assert "content-length" not in response.headers
        assert response.headers["transfer-encoding"] == "chunked"
        body = response.read()
    assert len(body) == HUGE_BODY_BYTES
    assert json.loads(body)["keys"] == served.jwks()["keys"]


def test_redirect_fault(served: LocalIssuer) -> None:
    served.fault = "redirect"
    jwks_uri = served.metadata()["jwks_uri"]
    response = httpx.get(jwks_uri)
    assert response.status_code == 302
    target = served.base_url + "/moved" + served.jwks_path
    assert response.headers["location"] == target
    followed = httpx.get(jwks_uri, follow_redirects=True)
    assert followed.status_code == 200
    assert followed.json() == served.jwks()
    assert served.jwks_requests == 2
    assert served.requests["/moved/tenant1/jwks.json"] == 1


def test_hang_fault_times_out(served: LocalIssuer) -> None:
    served.fault = "hang"
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(served.metadata()["jwks_uri"], timeout=0.5)
    assert time.monotonic() - started < 2
    assert served.jwks_requests == 1


def test_metadata_faults(served: LocalIssuer) -> None:
    url = served.base_url + DISCOVERY_PATHS[1]
    served.metadata_fault = "empty"
    assert httpx.get(url).json() == {}
    served.metadata_fault = "redirect"
    response = httpx.get(url, follow_redirects=True)
    assert response.json() == served.metadata()
    served.metadata_fault = "hang"
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(url, timeout=0.5)
    served.metadata_fault = None
    served.metadata_issuer = "https://elsewhere.example.com"
    assert httpx.get(url).json()["issuer"] == "https://elsewhere.example.com"
    assert httpx.get(served.metadata()["jwks_uri"]).status_code == 200  # JWKS unaffected


def test_encoding_faults_send_what_they_say(served: LocalIssuer) -> None:
    url = served.metadata()["jwks_uri"]
    served.fault = "gzip_bomb"
    with httpx.stream("GET", url) as response:
        assert response.headers["content-encoding"] == "gzip, gzip"
        wire = b"".join(response.iter_raw())
    assert len(wire) < 2048
    assert len(gzip.decompress(gzip.decompress(wire))) == BOMB_DECODED_BYTES
    served.fault = "bad_encoding"
    with httpx.stream("GET", url) as response:
        assert response.headers["content-encoding"] == "gzip"
        assert json.loads(b"".join(response.iter_raw())) == served.jwks()
    served.fault = "nested_json"
    body = httpx.get(url).content
    assert body == b"[" * NESTED_JSON_DEPTH + b"]" * NESTED_JSON_DEPTH


def test_cache_control_text_and_extra_keys(served: LocalIssuer) -> None:
    url = served.metadata()["jwks_uri"]
    served.cache_max_age = 300
    served.cache_control = "max-age=\u00b2"
    assert httpx.get(url).headers["cache-control"] == "max-age=\u00b2"
    served.cache_control = served.cache_max_age = None
    enc = {**served.jwks()["keys"][0], "kid": "enc-1", "use": "enc", "alg": "RSA-OAEP"}
    served.extra_keys = [enc]
    document = httpx.get(url).json()
    assert document["keys"][-1] == enc
    keys = KeySet.from_jwks(document)
    assert "enc-1" not in keys and len(keys.skipped) == 1
    served.extra_keys = []


def test_stop_listening_refuses_and_start_listening_restores_the_port(
    served: LocalIssuer,
) -> None:
    url = served.metadata()["jwks_uri"]
    assert httpx.get(url).status_code == 200
    served.stop_listening()
    with pytest.raises(httpx.ConnectError):
        httpx.get(url)
    served.stop_listening()  # already stopped: nothing to do
    served.start_listening()
    served.start_listening()  # already listening: nothing to do
    assert httpx.get(url).json() == served.jwks()
    assert served.jwks_requests == 2


def test_exit_releases_a_hanging_request_promptly() -> None:
    issuer = LocalIssuer(default_audience=AUDIENCE, algorithms=["ES256"])
    outcome: list[object] = []

    def fetch(url: str) -> None:
        try:
            outcome.append(httpx.get(url, timeout=30).status_code)
        except httpx.HTTPError as error:
            outcome.append(error)

    with issuer.serve():
        issuer.fault = "hang"
        client = threading.Thread(target=fetch, args=[issuer.metadata()["jwks_uri"]])
        client.start()
        deadline = time.monotonic() + 5
        while issuer.jwks_requests == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert issuer.jwks_requests == 1
        started = time.monotonic()
    assert time.monotonic() - started < 2
    client.join(5)
    assert outcome == [503]
    with pytest.raises(httpx.ConnectError):
        httpx.get(issuer.metadata()["jwks_uri"])


def test_serving_is_exclusive_and_listening_needs_serve() -> None:
    issuer = LocalIssuer(ISSUER, algorithms=[])
    with pytest.raises(RuntimeError, match="serve"):
        issuer.start_listening()
    with issuer.serve(), pytest.raises(RuntimeError, match="already"), issuer.serve():
        pass


@pytest.mark.anyio
async def test_app_in_process_without_a_server(shared: LocalIssuer) -> None:
    transport = httpx.ASGITransport(app=shared.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://issuer") as client:
        response = await client.get("/.well-known/oauth-authorization-server")
        assert response.json() == shared.metadata()
        assert (await client.get("/jwks.json")).json() == shared.jwks()


# -- the introspection endpoint's client authentication -------------------------------------------


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def test_introspection_client_authentication(served: LocalIssuer) -> None:
    """RFC 6749 section 2.3.1, as the library's introspection client must meet it: one method
    of ``introspection_auth_methods`` with the right credentials, else 401 ``invalid_client``
    before the token is even looked at."""
    token = served.mint_opaque(audience=AUDIENCE)
    url = served.introspection_endpoint
    client, secret = served.introspection_client_id, served.introspection_client_secret

    def ask(form: dict[str, str], authorization: str | None = None) -> httpx.Response:
        headers = {"Authorization": authorization} if authorization is not None else {}
        return httpx.post(url, data=form, headers=headers)

    assert ask({"token": token}, basic(client, secret)).json()["active"] is True
    post = {"token": token, "client_id": client, "client_secret": secret}
    assert ask(post).json()["active"] is True
    refused = [
        ask({"token": token}),  # no credentials
        ask({"token": token}, basic(client, "wrong")),
        ask({"token": token}, basic("someone-else", secret)),
        ask({"token": token}, "Basic %%%not-base64"),
        ask({"token": token}, "Basic " + base64.b64encode(b"\xff\xfe:x").decode()),
        ask({"token": token}, "Basic " + base64.b64encode(client.encode()).decode()),  # no colon
        ask({"token": token}, f"Bearer {secret}"),
        ask(post, basic(client, secret)),  # two methods at once
    ]
    for response in refused:
        assert response.status_code == 401, response.request.headers
        assert response.json() == {"error": "invalid_client"}
        assert response.headers["www-authenticate"] == 'Basic realm="introspection"'
    missing = ask({"token": ""}, basic(client, secret))
    assert (missing.status_code, missing.json()) == (400, {"error": "invalid_request"})
    served.introspection_auth_methods = ("client_secret_basic",)
    assert ask(post).status_code == 401  # a method the endpoint does not allow
    assert ask({"token": token}, basic(client, secret)).status_code == 200
    served.introspection_auth_methods = ("client_secret_post",)
    assert ask({"token": token}, basic(client, secret)).status_code == 401
    assert ask(post).status_code == 200


# -- AppServer ------------------------------------------------------------------------------------


def failing_at_startup() -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        raise RuntimeError("the database is not there")
        yield

    return Starlette(lifespan=lifespan)


def test_an_app_that_fails_at_startup_is_reported_and_its_socket_closed() -> None:
    server = AppServer(failing_at_startup())
    with pytest.raises(RuntimeError, match=f"the server at {server.url} did not start"), server:
        pass
    assert server.sock.fileno() == -1  # closed


@pytest.mark.anyio
async def test_an_app_that_fails_at_startup_is_reported_under_async_with() -> None:
    server = AppServer(failing_at_startup())
    with pytest.raises(RuntimeError, match="did not start"):
        async with server:
            pass
    assert server.sock.fileno() == -1


# -- async --------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_serve_async() -> None:
    issuer = LocalIssuer(default_audience=AUDIENCE, path="/tenant1")
    async with issuer.serve_async() as base_url:
        assert issuer.issuer == base_url + "/tenant1"
        async with httpx.AsyncClient() as client:
            metadata = (await client.get(base_url + DISCOVERY_PATHS[1])).json()
            assert metadata == issuer.metadata()
            keys = KeySet.from_jwks((await client.get(metadata["jwks_uri"])).content)
            token = issuer.mint(algorithm="ES256")
            validator = TokenValidator(issuer.issuer, AUDIENCE)
            assert validator.validate(token, keys).subject == "user-1"
            issuer.fault = "hang"
            with pytest.raises(httpx.ReadTimeout):
                await client.get(metadata["jwks_uri"], timeout=0.5)
        started = time.monotonic()
    assert time.monotonic() - started < 2
    assert issuer.jwks_requests == 2


@pytest.mark.anyio
async def test_serve_async_stop_and_start_listening() -> None:
    issuer = LocalIssuer(default_audience=AUDIENCE, algorithms=["ES256"])
    async with issuer.serve_async() as base_url:
        url = base_url + issuer.jwks_path
        async with httpx.AsyncClient() as client:
            assert (await client.get(url)).status_code == 200
        issuer.stop_listening()
        async with httpx.AsyncClient() as client:
            with pytest.raises(httpx.ConnectError):
                await client.get(url)
        issuer.start_listening()
        issuer.stop_listening()  # before the new server even ran: refused at once
        async with httpx.AsyncClient() as client:
            with pytest.raises(httpx.ConnectError):
                await client.get(url)
        issuer.start_listening()
        async with httpx.AsyncClient() as client:
            assert (await client.get(url)).json() == issuer.jwks()
    assert issuer.base_url == base_url
    assert issuer.jwks_requests == 2


@pytest.mark.anyio
async def test_serve_async_listening_changes_only_from_the_serving_loop() -> None:
    issuer = LocalIssuer(default_audience=AUDIENCE, algorithms=["ES256"])

    async def status(url: str) -> int:
        async with httpx.AsyncClient() as client:  # a new connection each time
            return (await client.get(url)).status_code

    async with issuer.serve_async() as base_url:
        url = base_url + issuer.jwks_path
        with pytest.raises(RuntimeError, match="call this from the serving event loop"):
            await anyio.to_thread.run_sync(issuer.stop_listening)
        # Refused before it changed anything: still listening, and still stoppable.
        assert await status(url) == 200
        issuer.stop_listening()
        with pytest.raises(httpx.ConnectError):
            await status(url)
        with pytest.raises(RuntimeError, match="call this from the serving event loop"):
            await anyio.to_thread.run_sync(issuer.start_listening)
        issuer.start_listening()
        assert await status(url) == 200


def test_issuer_with_a_port_listens_there() -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    issuer = LocalIssuer(issuer=f"http://127.0.0.1:{port}")
    with issuer.serve() as base:
        assert base == f"http://127.0.0.1:{port}"
        assert issuer.metadata()["jwks_uri"].startswith(base)


def test_loopback_sockets_say_tcp_so_answers_are_not_held_by_nagle() -> None:
    """asyncio sets TCP_NODELAY only on accepted sockets whose protocol is TCP: a socket made
    with protocol 0 answers each keep-alive request about 40 ms late (delayed ACK)."""
    sock = bind_loopback()
    try:
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()
