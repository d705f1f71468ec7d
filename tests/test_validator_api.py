"""TokenValidator configuration, AuthenticatedUser, and the error hierarchy."""

from __future__ import annotations

import asyncio
import json
import pickle
from collections.abc import Mapping
from typing import Any

import pytest
from mcp.server.auth.provider import AccessToken

from mcp_oauth2 import AuthenticatedUser, errors
from mcp_oauth2._rust import token_error_descriptions
from mcp_oauth2.errors import (
    ConfigurationError,
    ExpiredTokenError,
    InsufficientScopeError,
    InvalidRequestError,
    JWKSError,
    TokenValidationError,
)
from mcp_oauth2.lowlevel import Authenticator, KeySet, StaticKeys, TokenValidator
from refused_tokens import REFUSED
from token_factory import AUDIENCE, ISSUER, NOW, make_claims, mint, plain_json


def test_defaults() -> None:
    validator = TokenValidator(ISSUER, AUDIENCE)
    assert validator.issuers == (ISSUER,)
    assert validator.audiences == (AUDIENCE,)
    assert validator.algorithms == ("RS256", "ES256")
    assert validator.leeway == 60
    assert validator.required_claims == ("exp", "iss", "aud", "sub")
    assert validator.required_scopes == ()
    assert validator.accepted_types is None
    assert validator.max_token_bytes == 8192
    assert "TokenValidator(" in repr(validator)


def test_keyword_arguments_and_sequences() -> None:
    validator = TokenValidator(
        issuer=[ISSUER, "https://b"],
        audience=(AUDIENCE,),
        algorithms=["EdDSA"],
        leeway=0,
        required_claims=["exp", "sub"],
        required_scopes=["mcp:tools"],
        accepted_types=["at+jwt"],
        max_token_bytes=4096,
    )
    assert validator.issuers == (ISSUER, "https://b")
    assert validator.required_scopes == ("mcp:tools",)
    assert validator.accepted_types == ("at+jwt",)


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"issuer": ""}, "issuer"),
        ({"issuer": []}, "issuer"),
        ({"issuer": b"https://as"}, "issuer"),
        ({"issuer": [ISSUER, 3]}, "issuer"),
        ({"audience": ""}, "audience"),
        ({"audience": []}, "cannot be turned off"),
        ({"algorithms": []}, "algorithms is empty"),
        ({"algorithms": ["HS256"]}, "never accepted"),
        ({"algorithms": ["none"]}, "never accepted"),
        ({"algorithms": ["RS1"]}, "not supported"),
        ({"leeway": -1}, "leeway"),
        ({"leeway": 86_400}, "leeway"),
        ({"leeway": 1.5}, "leeway must be an integer"),
        ({"leeway": True}, "leeway must be an integer"),
        ({"max_token_bytes": 0}, "max_token_bytes"),
        ({"max_token_bytes": 10**30}, "max_token_bytes"),
        ({"required_scopes": ["has space"]}, "scope token"),
        ({"required_scopes": ['quote"']}, "scope token"),
        ({"accepted_types": []}, "accepted_types"),
        ({"required_claims": [""]}, "required_claims"),
    ],
)
def test_invalid_configuration_says_what_to_change(options: dict[str, Any], needle: str) -> None:
    arguments: dict[str, Any] = {"issuer": ISSUER, "audience": AUDIENCE, **options}
    with pytest.raises(ConfigurationError, match=needle):
        TokenValidator(**arguments)


def test_configuration_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="leeway"):
        TokenValidator(ISSUER, AUDIENCE, leeway=-5)


def test_authenticated_user_fields(keyset: KeySet, validator: TokenValidator) -> None:
    claims = make_claims(scp=["extra"], azp="azp-client", ctx={"tenant": "t1"})
    user = validator.validate(mint("ES256", claims), keyset, now=NOW)
    assert isinstance(user, AuthenticatedUser)
    assert user.subject == "user-1"
    assert user.issuer == ISSUER
    assert user.audience == (AUDIENCE,)
    assert user.scopes == frozenset({"read", "write", "extra"})
    assert user.client_id == "client-1"  # client_id wins over azp
    assert user.expires_at == NOW + 3600
    assert user.issued_at == NOW - 60
    assert user.token_id == "token-1"
    assert plain_json(user.claims) == claims
    assert user.is_authenticated is True
    assert user.display_name == user.identity == "user-1"
    assert user.has_scopes("read", "extra") and not user.has_scopes("read", "admin")
    assert user.has_scopes()
    assert repr(user) == (
        f'AuthenticatedUser(subject="user-1", client_id="client-1", issuer="{ISSUER}", '
        f'scopes=["extra", "read", "write"], expires_at={NOW + 3600})'
    )


def test_authenticated_user_optional_fields(keyset: KeySet) -> None:
    claims = make_claims(drop=["sub", "client_id", "scope", "jti", "iat"], azp="azp-client")
    validator = TokenValidator(ISSUER, AUDIENCE, algorithms=["ES256"], required_claims=["exp"])
    user = validator.validate(mint("ES256", claims), keyset, now=NOW)
    assert user.subject is None and user.token_id is None and user.issued_at is None
    assert user.client_id == "azp-client"
    assert user.scopes == frozenset()
    assert user.display_name == "azp-client"
    # Without `sub` there is no subject; the client id is shown as what it is.
    assert repr(user) == (
        f'AuthenticatedUser(subject=None, client_id="azp-client", issuer="{ISSUER}", '
        f"scopes=[], expires_at={NOW + 3600})"
    )


def test_authenticated_user_is_frozen(keyset: KeySet, validator: TokenValidator) -> None:
    user = validator.validate(mint("ES256", make_claims()), keyset, now=NOW)
    with pytest.raises(AttributeError):
        user.subject = "admin"  # type: ignore[misc]
    with pytest.raises(TypeError):
        user.claims["sub"] = "admin"
    assert user.claims["sub"] == "user-1"
    again = validator.validate(mint("ES256", make_claims()), keyset, now=NOW)
    assert user == again and hash(user) == hash(again)
    other = validator.validate(mint("ES256", make_claims(sub="u2")), keyset, now=NOW)
    assert user != other and user != "user-1"


def test_claims_are_deeply_read_only(keyset: KeySet, validator: TokenValidator) -> None:
    # The user object is cached and handed to every request with the same token: nothing one
    # request does to its claims may reach the next. Objects are read-only mappings at every
    # depth and arrays are tuples.
    claims = make_claims(
        roles=["reader"],
        realm_access={"roles": ["viewer"], "meta": {"path": [1, {"depth": 2}]}},
    )
    token = mint("ES256", claims)
    user = validator.validate(token, keyset, now=NOW)
    roles = user.claims["roles"]
    assert roles == ("reader",)
    with pytest.raises(AttributeError):
        roles.append("admin")
    realm = user.claims["realm_access"]
    assert isinstance(realm, Mapping)
    with pytest.raises(TypeError):
        realm["roles"] = ["admin"]  # type: ignore[index]  # read-only: the point of the test
    with pytest.raises(AttributeError):
        realm["roles"].append("admin")
    with pytest.raises(TypeError):
        realm["meta"]["path"][1]["depth"] = 3
    again = validator.validate(token, keyset, now=NOW)
    assert again is user  # the cached object
    assert plain_json(again.claims) == claims
    # Plain copies for JSON or for code that wants dicts and lists:
    assert json.loads(json.dumps(user.claims, default=dict)) == claims


def test_claims_fit_the_mcp_sdk_access_token(keyset: KeySet, validator: TokenValidator) -> None:
    # mcp_oauth2.mcp_sdk hands dict(user.claims) to the SDK's AccessToken (a pydantic model).
    claims = make_claims(realm_access={"roles": ["viewer"]}, groups=["a", "b"])
    user = validator.validate(mint("ES256", claims), keyset, now=NOW)
    access = AccessToken(token="t", client_id="c", scopes=[], claims=dict(user.claims))
    assert access.claims is not None and access.claims["realm_access"]["roles"] == ("viewer",)
    assert access.claims["iss"] == ISSUER


def test_required_scopes(keyset: KeySet) -> None:
    validator = TokenValidator(
        ISSUER, AUDIENCE, algorithms=["ES256"], required_scopes=["read", "admin"]
    )
    with pytest.raises(InsufficientScopeError) as caught:
        validator.validate(mint("ES256", make_claims()), keyset, now=NOW)
    error = caught.value
    assert error.code == "insufficient_scope"
    assert error.status_code == 403 and error.error == "insufficient_scope"
    assert error.required_scopes == ("read", "admin")
    assert "admin" in error.description and "read" not in error.description
    ok = validator.validate(mint("ES256", make_claims(scope="read admin")), keyset, now=NOW)
    assert ok.has_scopes("read", "admin")


CODES = {
    "MalformedTokenError": "malformed",
    "TokenTooLargeError": "token_too_large",
    "UnsupportedAlgorithmError": "unsupported_algorithm",
    "AlgorithmNotAllowedError": "algorithm_not_allowed",
    "KeyNotFoundError": "key_not_found",
    "InvalidSignatureError": "invalid_signature",
    "ExpiredTokenError": "expired",
    "NotYetValidError": "not_yet_valid",
    "IssuedInFutureError": "issued_in_future",
    "InvalidIssuerError": "invalid_issuer",
    "InvalidAudienceError": "invalid_audience",
    "MissingClaimError": "missing_claim",
    "InvalidClaimError": "invalid_claim",
    "InsufficientScopeError": "insufficient_scope",
    "InvalidTokenTypeError": "invalid_type",
    "InactiveTokenError": "inactive_token",
}


@pytest.mark.parametrize(("name", "code"), CODES.items())
def test_error_codes_and_http_meaning(name: str, code: str) -> None:
    cls = getattr(errors, name)
    assert issubclass(cls, TokenValidationError)
    assert cls.code == code
    expected = (
        (403, "insufficient_scope") if code == "insufficient_scope" else (401, "invalid_token")
    )
    assert (cls.status_code, cls.error) == expected
    error = cls()
    assert error.description == cls.default_description
    assert str(error) == f"{code}: {cls.default_description}"
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is cls and copy.description == error.description


def test_request_and_jwks_errors() -> None:
    assert (InvalidRequestError.status_code, InvalidRequestError.error) == (400, "invalid_request")
    jwks = JWKSError("fetch of https://internal/jwks failed", ("key 0: bad",))
    assert jwks.description == JWKSError.default_description
    assert "internal" not in jwks.description
    copy = pickle.loads(pickle.dumps(jwks))
    assert copy.reasons == ("key 0: bad",) and copy.detail == jwks.detail


def test_errors_raised_by_the_core_pickle(keyset: KeySet, validator: TokenValidator) -> None:
    with pytest.raises(ExpiredTokenError) as caught:
        validator.validate(mint("ES256", make_claims(exp=NOW - 500)), keyset, now=NOW)
    copy = pickle.loads(pickle.dumps(caught.value))
    assert copy.description == caught.value.description == "token expired 500 s ago"
    scoped = TokenValidator(ISSUER, AUDIENCE, algorithms=["ES256"], required_scopes=["x"])
    with pytest.raises(InsufficientScopeError) as scope_error:
        scoped.validate(mint("ES256", make_claims()), keyset, now=NOW)
    restored = pickle.loads(pickle.dumps(scope_error.value))
    assert restored.required_scopes == ("x",)


# -- one source for codes and words across the native core and Python -----------------------------


def _raised(case_index: int) -> TokenValidationError:
    """What the public validator raises for a real token refused in one of the core's ways."""
    case = REFUSED[case_index]
    with pytest.raises(TokenValidationError) as caught:
        case.validator().authorize_token(case.token, case.keys(), now=NOW)
    return caught.value


def _inactive() -> TokenValidationError:
    with pytest.raises(TokenValidationError) as caught:
        TokenValidator(ISSUER, AUDIENCE).validate_introspection(b'{"active": false}', now=NOW)
    return caught.value


NATIVE = [(case.label, case.code) for case in REFUSED] + [("inactive", "inactive_token")]


def native_errors() -> list[TokenValidationError]:
    return [_raised(i) for i in range(len(REFUSED))] + [_inactive()]


@pytest.mark.parametrize(("index", "label", "code"), [(i, *c) for i, c in enumerate(NATIVE)])
def test_every_native_error_reaches_python_as_the_class_of_its_code(
    index: int, label: str, code: str
) -> None:
    error = _raised(index) if index < len(REFUSED) else _inactive()
    cls = getattr(errors, next(name for name, c in CODES.items() if c == code))
    assert type(error) is cls, label
    assert isinstance(error, TokenValidationError)
    assert error.code == code
    assert str(error) == f"{code}: {error.description}"


def test_every_code_has_one_set_of_words_whichever_layer_raises_it() -> None:
    fixed = token_error_descriptions()
    raised = native_errors()
    assert set(fixed) == set(CODES.values()) == {error.code for error in raised}
    for name, code in CODES.items():
        cls = getattr(errors, name)
        assert cls.default_description == fixed[code], name
        assert cls().description == fixed[code], name
    # Every way a key is missed, and both ways an algorithm is refused, have their own words.
    words: dict[str, set[str]] = {}
    for error in raised:
        words.setdefault(error.code, set()).add(error.description)
    assert len(words["key_not_found"]) == 4
    assert len(words["algorithm_not_allowed"]) == 2
    # An error the core raises with nothing particular to say reads as the Python one.
    native: dict[type[Exception], set[str]] = {}
    for error in raised:
        native.setdefault(type(error), set()).add(error.description)
    for cls in (
        errors.InvalidIssuerError,
        errors.InvalidAudienceError,
        errors.InvalidTokenTypeError,
    ):
        assert cls().description in native[cls]


def test_a_python_insufficient_scope_error_is_worded_as_the_core_words_it() -> None:
    (native,) = [e for e in native_errors() if e.code == "insufficient_scope"]
    assert isinstance(native, InsufficientScopeError)
    assert native.required_scopes == ("read", "admin")
    missing = tuple(native.description.rpartition(": ")[2].split())
    ours = InsufficientScopeError.lacking(missing, native.required_scopes)
    assert (ours.description, ours.required_scopes) == (native.description, native.required_scopes)


def test_the_authenticator_and_the_core_say_the_same_for_an_untrusted_issuer(
    keyset: KeySet, jwks: dict[str, Any]
) -> None:
    token = mint("ES256", make_claims(iss="https://evil.example"))
    validator = TokenValidator(ISSUER, AUDIENCE, algorithms=["ES256"])
    with pytest.raises(errors.InvalidIssuerError) as native:
        validator.validate(token, keyset, now=NOW)
    # With several issuers the Authenticator refuses an unknown iss before asking for any key.
    issuers = [ISSUER, "https://b.example"]
    sources = {issuer: StaticKeys(jwks) for issuer in issuers}
    auth = Authenticator(TokenValidator(issuers, AUDIENCE), sources)
    with pytest.raises(errors.InvalidIssuerError) as python:
        asyncio.run(auth.authenticate(token))
    assert python.value.description == native.value.description
    assert [source.stats().hits for source in sources.values()] == [0, 0]
