"""``TokenValidator.authorize``: the native one-call path from an ``Authorization`` header value
to the user and its effective scopes, and ``ScopeRules``.

The middleware answers every request from the same steps (bearer credentials, validation, scope
rules); ``authorize`` does them in one native call. The differential test below sends the same
header values through ``OAuth2Middleware`` and through ``authorize`` and requires the same
outcome, code and description for each.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import MutableMapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcp_oauth2 import OAuth2Config, OAuth2Middleware

# Internal: the middleware's AccessControl builds its ScopeRules from the configuration.
from mcp_oauth2._rust import ScopeRules, bearer_token
from mcp_oauth2.errors import (
    AuthorizationError,
    ExpiredTokenError,
    InsufficientScopeError,
    InvalidRequestError,
    InvalidSignatureError,
    TokenTooLargeError,
)
from mcp_oauth2.lowlevel import KeySet, StaticKeys, TokenValidator
from token_factory import AUDIENCE, ISSUER, NOW, jwks_for, make_claims, mint

IMPLICATIONS = {"admin": ["write"], "write": ["read"]}
REQUIRED = ["read"]


@pytest.fixture(scope="module")
def keys() -> KeySet:
    return KeySet.from_jwks(jwks_for(["ec-256", "rsa-1"]))


def token(scope: str = "read", **claims: Any) -> str:
    return mint("ES256", make_claims(scope=scope, **claims), key="ec-256")


def test_valid_header_gives_user_and_sorted_effective_scopes(keys: KeySet) -> None:
    validator = TokenValidator(ISSUER, AUDIENCE)
    rules = ScopeRules(IMPLICATIONS, REQUIRED)
    outcome = validator.authorize(b"Bearer " + token("admin z").encode(), keys, rules, now=NOW)
    assert outcome is not None
    user, effective = outcome
    assert user.subject == "user-1"
    assert user.scopes == frozenset({"admin", "z"})
    assert effective == ("admin", "read", "write", "z")
    # str works too, and without rules the effective scopes are the granted ones, sorted.
    same = validator.authorize("Bearer " + token("b a"), keys, now=NOW)
    assert same is not None and same[1] == ("a", "b")


def test_cache_hit_returns_the_same_user_and_memoized_scopes(keys: KeySet) -> None:
    validator = TokenValidator(ISSUER, AUDIENCE)
    rules = ScopeRules(IMPLICATIONS, REQUIRED)
    header = b"Bearer " + token("write").encode()
    first = validator.authorize(header, keys, rules, now=NOW)
    second = validator.authorize(header, keys, rules, now=NOW)
    assert first is not None and second is not None
    assert first[0] is second[0]
    assert first[1] is second[1]
    assert validator.cache_info()["hits"] == 1
    # Other rules for the same cached user get their own answer.
    other = validator.authorize(header, keys, ScopeRules({"write": ["x"]}), now=NOW)
    assert other is not None and other[1] == ("write", "x")
    again = validator.authorize(header, keys, rules, now=NOW)
    assert again is not None and again[1] == ("read", "write")


def test_other_scheme_is_no_token(keys: KeySet) -> None:
    validator = TokenValidator(ISSUER, AUDIENCE)
    for header in (b"Basic dXNlcjpwYXNz", b"Bearerx abc", b"", b"   ", b"Bearer"[:5]):
        assert validator.authorize(header, keys, now=NOW) is None


@pytest.mark.parametrize(
    ("header", "description"),
    [
        (b"Bearer", "the Bearer credentials are empty"),
        (b"Bearer    ", "the Bearer credentials are empty"),
        (b"Bearer a b", "must hold exactly one bearer token"),
        (b"Bearer abc\xc3\xa9", "must hold exactly one bearer token"),
        (b'Bearer "quoted"', "must hold exactly one bearer token"),
        (b"Bearer ==", "must hold exactly one bearer token"),
        (b"Bearer a=b", "must hold exactly one bearer token"),
    ],
)
def test_broken_credentials_are_invalid_request(
    keys: KeySet, header: bytes, description: str
) -> None:
    validator = TokenValidator(ISSUER, AUDIENCE)
    with pytest.raises(InvalidRequestError) as caught:
        validator.authorize(header, keys, now=NOW)
    assert description in caught.value.description
    assert caught.value.status_code == 400


def test_validation_and_scope_errors_are_the_validators(keys: KeySet) -> None:
    validator = TokenValidator(ISSUER, AUDIENCE, max_token_bytes=1024)
    rules = ScopeRules(IMPLICATIONS, ["read", "other"])
    with pytest.raises(InsufficientScopeError) as caught:
        validator.authorize(b"Bearer " + token("admin").encode(), keys, rules, now=NOW)
    assert caught.value.required_scopes == ("read", "other")
    assert caught.value.description == "token lacks the required scope(s): other"
    with pytest.raises(ExpiredTokenError):
        validator.authorize(b"Bearer " + token(exp=NOW - 3600).encode(), keys, now=NOW)
    forged = token()[:-4] + ("AAAA" if not token().endswith("AAAA") else "BBBB")
    with pytest.raises(InvalidSignatureError):
        validator.authorize(b"Bearer " + forged.encode(), keys, now=NOW)
    with pytest.raises(TokenTooLargeError):
        validator.authorize(b"Bearer " + b"a" * 2000, keys, now=NOW)
    with pytest.raises(TypeError):
        validator.authorize(42, keys)  # type: ignore[call-overload]


def test_scope_rules_admit_a_user_as_authorize_does(keys: KeySet) -> None:
    """The same verdict for a user already in hand (an introspected one, say): one engine."""
    validator = TokenValidator(ISSUER, AUDIENCE)
    rules = ScopeRules(IMPLICATIONS, REQUIRED)
    outcome = validator.authorize(b"Bearer " + token("admin z").encode(), keys, rules, now=NOW)
    assert outcome is not None
    user, effective = outcome
    assert rules.admit(user) == effective == ("admin", "read", "write", "z")
    narrow = validator.validate(token("z"), keys, now=NOW)
    with pytest.raises(InsufficientScopeError) as caught:
        rules.admit(narrow)
    assert caught.value.required_scopes == ("read",)
    assert ScopeRules().admit(narrow) == ("z",)


def test_an_introspection_answer_under_scope_rules() -> None:
    validator = TokenValidator(ISSUER, AUDIENCE)
    rules = ScopeRules(IMPLICATIONS, REQUIRED)

    def answer(scope: str) -> bytes:
        claims = {"active": True, "iss": ISSUER, "aud": AUDIENCE, "sub": "u", "exp": NOW + 60}
        return json.dumps({**claims, "scope": scope}).encode()

    user, effective = validator.validate_introspection(answer("admin"), now=NOW, scopes=rules)
    assert (user.subject, effective) == ("u", ("admin", "read", "write"))
    with pytest.raises(InsufficientScopeError):
        validator.validate_introspection(answer("z"), now=NOW, scopes=rules)
    plain = validator.validate_introspection(answer("z"), now=NOW)
    assert plain.scopes == {"z"}


def test_scope_rules() -> None:
    rules = ScopeRules({"a": ["b"], "b": ["c"], "c": ["a"], "x": "y"}, ["c"])
    assert rules.effective(["a"]) == frozenset({"a", "b", "c"})
    assert rules.effective(frozenset({"x"})) == frozenset({"x", "y"})
    assert rules.missing(["x"]) == ("c",)
    assert rules.missing(["b"], ["a", "q", "c"]) == ("q",)
    assert rules.required == ("c",)
    assert ScopeRules().effective(["q"]) == frozenset({"q"})
    assert "'a'" in repr(rules) or '"a"' in repr(rules)
    with pytest.raises(ValueError, match="scope token"):
        ScopeRules(required=["has space"])
    with pytest.raises(ValueError, match="mapping"):
        ScopeRules(["a"])  # type: ignore[arg-type]


# -- the same answers as the middleware ----------------------------------------------------------
# The middleware reads the system clock, so these tokens are minted for the present.

TOKENS: dict[str, str] = {}


def live_token(scope: str, lifetime: int = 3600) -> str:
    now = int(time.time())
    claims = make_claims(scope=scope, iat=now - 60, nbf=now - 60, exp=now + lifetime)
    return mint("ES256", claims, key="ec-256")


def tokens() -> dict[str, str]:
    """Valid, under-scoped, expired and forged tokens (minted once)."""
    if not TOKENS:
        good = live_token("admin")
        TOKENS.update(
            good=good,
            narrow=live_token("z"),
            expired=live_token("read", lifetime=-3600),
            forged=good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB"),
        )
    return TOKENS


SCHEMES = st.sampled_from(["Bearer", "bearer", "BEARER", "bEaReR", "Basic", "Bearer:", ""])
SPACES = st.sampled_from(["", " ", "  ", "\t", " \t", "\r\n", "\x0b"])


@st.composite
def header_values(draw: st.DrawFn) -> bytes:
    if draw(st.booleans()):
        return draw(st.binary(max_size=40))
    credentials = draw(
        st.one_of(
            st.sampled_from(["good", "narrow", "expired", "forged"]).map(lambda n: tokens()[n]),
            st.text(alphabet='abcAZ09-._~+/= "\u00e9,', max_size=12),
        )
    )
    if draw(st.booleans()):
        credentials += draw(st.sampled_from(["=", "==", " ", "a", "=a"]))
    text = (
        draw(SPACES)
        + draw(SCHEMES)
        + draw(st.sampled_from([" ", "  ", "", "\t"]))
        + credentials
        + draw(SPACES)
    )
    return text.encode("utf-8")


RULES = ScopeRules(IMPLICATIONS, REQUIRED)
SEEN: dict[str, Any] = {}


async def record_app(scope: Any, receive: Any, send: Any) -> None:
    SEEN["user"], SEEN["auth"] = scope["user"], scope["auth"]
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b""})


MIDDLEWARE = OAuth2Middleware(
    record_app,
    OAuth2Config(
        issuer=ISSUER,
        audience=AUDIENCE,
        algorithms=["ES256"],
        required_scopes=REQUIRED,
        scope_implications=IMPLICATIONS,
    ),
    key_sources=StaticKeys(jwks_for(["ec-256"])),
)


def middleware_answer(header: bytes) -> tuple[str, Any]:
    """What ``OAuth2Middleware`` makes of a request carrying ``header``."""
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/mcp",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"authorization", header)],
    }
    asyncio.run(MIDDLEWARE(scope, receive, send))
    if sent[0]["status"] == 200:
        return "ok", (SEEN["user"].subject, tuple(SEEN["auth"].scopes))
    answer = json.loads(b"".join(message.get("body", b"") for message in sent[1:]))
    if answer["code"] == "missing_token":
        return "no token", sent[0]["status"]
    return answer["error"], (answer["code"], timeless(answer["error_description"]))


def timeless(description: str) -> str:
    """A description with its durations as ``N s``: the two paths read the clock at different
    moments, and "expired 3600 s ago" may become "3601 s" across a second's boundary."""
    return re.sub(r"\b[0-9]+ s\b", "N s", description)


def authorize_answer(validator: TokenValidator, keys: KeySet, header: bytes) -> tuple[str, Any]:
    try:
        outcome = validator.authorize(header, keys, RULES)
    except AuthorizationError as error:
        return error.error, (error.code, timeless(error.description))
    if outcome is None:
        return "no token", 401
    user, effective = outcome
    return "ok", (user.subject, effective)


@settings(max_examples=300, deadline=None)
@given(header=header_values())
def test_same_answers_as_the_middleware(header: bytes) -> None:
    keys = KeySet.from_jwks(jwks_for(["ec-256"]))
    validator = TokenValidator(ISSUER, AUDIENCE, algorithms=["ES256"])
    assert authorize_answer(validator, keys, header) == middleware_answer(header)


def test_the_differential_reaches_every_answer() -> None:
    """The header values above reach each outcome (so the comparison means something)."""
    keys = KeySet.from_jwks(jwks_for(["ec-256"]))
    validator = TokenValidator(ISSUER, AUDIENCE, algorithms=["ES256"])
    seen = {
        authorize_answer(validator, keys, header)[0]
        for header in (
            b"Bearer " + tokens()["good"].encode(),
            b"Bearer " + tokens()["narrow"].encode(),
            b"Bearer " + tokens()["expired"].encode(),
            b"Basic abc",
            b"Bearer a b",
        )
    }
    assert seen == {"ok", "insufficient_scope", "invalid_token", "no token", "invalid_request"}


B64TOKEN_BYTES = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/")


@pytest.mark.parametrize("position", [1, 62, 63, 64, 65, 127, 128, 700])
def test_every_byte_outside_b64token_is_refused_anywhere_in_a_long_token(position: int) -> None:
    """The b64token check reads the credentials in blocks of 64 bytes: each of the 256 byte
    values, placed at each side of a block boundary, is accepted exactly when RFC 6750 allows it
    (space and tab end the token in the middle of the credentials, so they are refused too)."""
    for value in range(256):
        credentials = bytearray(b"a" * 720)
        credentials[position] = value
        header = b"Bearer " + bytes(credentials)
        if value in B64TOKEN_BYTES:
            assert bearer_token(header) == credentials.decode(), value
        else:
            with pytest.raises(InvalidRequestError):
                bearer_token(header)
