"""Tokens minted by PyJWT validate, and the core decodes the same claims PyJWT does.

Time claims are chosen so both libraries accept the token: ``nbf``/``iat`` lie before the fixed
``NOW`` and before the real clock, ``exp`` lies far after both.
"""

from __future__ import annotations

from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from mcp_oauth2 import AuthenticatedUser
from mcp_oauth2.errors import TokenValidationError
from mcp_oauth2.lowlevel import KeySet, TokenValidator
from token_factory import (
    ALGORITHMS,
    AUDIENCE,
    DEFAULT_KID,
    ISSUER,
    NOW,
    json_equal,
    mint,
    plain_json,
    public_key,
)

OTHER_AUDIENCE = "https://other.example.com/api"
PAST = 1_700_000_000  # before NOW and before any plausible real clock
FAR_FUTURE = 4_000_000_000  # after NOW and after any plausible real clock


def rich_claims(aud: str | list[str]) -> dict[str, Any]:
    """Registered claims plus every kind of JSON value a token can carry."""
    return {
        "iss": ISSUER,
        "aud": aud,
        "sub": "user-123",
        "exp": FAR_FUTURE,
        "nbf": PAST,
        "iat": PAST,
        "jti": "8f14e45f-ceea-467f-a0e6-0a1b2c3d4e5f",
        "scope": "a b c",
        "client_id": "client-42",
        "profile": {
            "name": "Zoë Ångström",
            "languages": ["fr", "日本語", "العربية"],
            "address": {"city": "Zürich", "postcode": None, "geo": {"lat": 47.3769, "lon": 8.5417}},
        },
        "emoji": "key 🔑, lock 🔐",
        "escapes": 'quote " backslash \\ slash / newline \n tab \t nul \x00 del \x7f',
        "empty_string": "",
        "ratio": 0.1,
        "sum": 0.1 + 0.2,
        "pi": 3.141592653589793,
        "negative": -2.5,
        "large_float": 1.5e300,
        "small_float": 2.5e-8,
        "max_int": 2**53,
        "min_int": -(2**53),
        "zero": 0,
        "yes": True,
        "no": False,
        "nothing": None,
        "empty_list": [],
        "empty_object": {},
        "mixed": [1, "two", 3.5, None, True, False, {"k": [[], {}]}],
    }


def _validate(alg: str, token: str, keyset: KeySet, **options: Any) -> AuthenticatedUser:
    validator = TokenValidator(ISSUER, AUDIENCE, algorithms=[alg], **options)
    return validator.validate(token, keyset, now=NOW)


def _pyjwt_decode(alg: str, token: str) -> dict[str, Any]:
    decoded: dict[str, Any] = jwt.decode(
        token,
        public_key(DEFAULT_KID[alg]),
        algorithms=[alg],
        audience=AUDIENCE,
        issuer=ISSUER,
        options={"require": ["exp", "iss", "aud"]},
    )
    return decoded


@pytest.mark.parametrize(
    "aud",
    [AUDIENCE, [AUDIENCE], [OTHER_AUDIENCE, AUDIENCE]],
    ids=["string", "list-of-one", "list-of-two"],
)
@pytest.mark.parametrize("alg", ALGORITHMS)
def test_pyjwt_token_validates_with_identical_claims(
    alg: str, aud: str | list[str], keyset: KeySet
) -> None:
    claims = rich_claims(aud)
    token = mint(alg, claims)
    user = _validate(alg, token, keyset)

    decoded = _pyjwt_decode(alg, token)
    assert json_equal(decoded, claims)  # PyJWT itself round-trips the claims
    assert json_equal(plain_json(user.claims), decoded)
    assert plain_json(user.claims) == claims

    assert user.subject == "user-123"
    assert user.issuer == ISSUER
    assert user.audience == ((aud,) if isinstance(aud, str) else tuple(aud))
    assert user.scopes == frozenset({"a", "b", "c"})
    assert isinstance(user.scopes, frozenset)
    assert user.client_id == "client-42"
    assert user.expires_at == FAR_FUTURE
    assert user.issued_at == PAST
    assert user.token_id == "8f14e45f-ceea-467f-a0e6-0a1b2c3d4e5f"
    assert user.is_authenticated is True
    assert user.display_name == "user-123"
    assert user.identity == "user-123"
    assert user.has_scopes("a", "c")
    assert user.has_scopes()
    assert not user.has_scopes("a", "d")


@pytest.mark.parametrize("alg", ALGORITHMS)
def test_scp_list_and_azp(alg: str, keyset: KeySet) -> None:
    """No ``sub``, no ``client_id``: scopes come from ``scp`` and the client from ``azp``."""
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "exp": FAR_FUTURE,
        "iat": PAST,
        "scp": ["mcp:read", "mcp:write"],
        "azp": "spa-client",
    }
    token = mint(alg, claims)
    user = _validate(alg, token, keyset, required_claims=["exp"])
    assert plain_json(user.claims) == _pyjwt_decode(alg, token) == claims
    assert user.subject is None
    assert user.scopes == frozenset({"mcp:read", "mcp:write"})
    assert user.client_id == "spa-client"
    assert user.display_name == "spa-client"
    assert user.identity == "spa-client"
    assert user.token_id is None
    assert user.has_scopes("mcp:read")
    assert not user.has_scopes("a")


def test_scope_and_scp_are_combined(keyset: KeySet) -> None:
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "user-123",
        "exp": FAR_FUTURE,
        "scope": "a b",
        "scp": ["c"],
    }
    user = _validate("ES256", mint("ES256", claims), keyset)
    assert user.scopes == frozenset({"a", "b", "c"})
    claims["scp"] = "d"
    user = _validate("ES256", mint("ES256", claims), keyset)
    assert user.scopes == frozenset({"a", "b", "d"})


def test_no_scope_claims_means_no_scopes(keyset: KeySet) -> None:
    claims = {"iss": ISSUER, "aud": AUDIENCE, "exp": FAR_FUTURE}
    user = _validate("RS256", mint("RS256", claims), keyset, required_claims=["exp"])
    assert user.scopes == frozenset()
    assert user.subject is None
    assert user.client_id is None
    assert user.issued_at is None
    assert user.display_name == ""
    assert user.identity == ""


def test_client_id_wins_over_azp(keyset: KeySet) -> None:
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "exp": FAR_FUTURE,
        "client_id": "the-client",
        "azp": "the-party",
    }
    user = _validate("EdDSA", mint("EdDSA", claims), keyset, required_claims=["exp"])
    assert user.client_id == "the-client"
    assert user.display_name == "the-client"


def test_fractional_times_are_rounded_down(keyset: KeySet) -> None:
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "user-123",
        "exp": FAR_FUTURE + 0.9,
        "iat": NOW - 10.5,
        "nbf": NOW - 10.5,
    }
    user = _validate("ES384", mint("ES384", claims), keyset)
    assert user.expires_at == FAR_FUTURE
    assert user.issued_at == NOW - 11
    assert json_equal(plain_json(user.claims), claims)


def test_claims_are_read_only_and_users_compare_by_value(keyset: KeySet) -> None:
    token = mint("PS256", rich_claims(AUDIENCE))
    first = _validate("PS256", token, keyset)
    second = _validate("PS256", token, keyset)
    with pytest.raises(TypeError):
        first.claims["sub"] = "someone-else"
    assert first.claims["sub"] == "user-123"
    assert first == second
    assert hash(first) == hash(second)
    other = _validate("PS256", mint("PS256", rich_claims(AUDIENCE) | {"sub": "x"}), keyset)
    assert first != other


@pytest.mark.parametrize("alg", ALGORITHMS)
def test_pyjwt_token_from_untrusted_key_is_rejected(alg: str, keyset: KeySet) -> None:
    """Sanity check that the tests above are not vacuous: the keys really matter."""
    untrusted: Any
    if alg.startswith(("RS", "PS")):
        untrusted = "rsa-2"
    elif alg == "EdDSA":
        untrusted = ed25519.Ed25519PrivateKey.generate()
    else:
        curve = {"ES256": ec.SECP256R1(), "ES384": ec.SECP384R1(), "ES512": ec.SECP521R1()}[alg]
        untrusted = ec.generate_private_key(curve)
    # Same kid as the trusted key, different key material.
    token = mint(alg, rich_claims(AUDIENCE), key=untrusted, headers={"kid": DEFAULT_KID[alg]})
    with pytest.raises(TokenValidationError) as info:
        _validate(alg, token, keyset)
    assert info.value.code == "invalid_signature"
