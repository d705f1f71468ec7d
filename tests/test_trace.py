"""``TokenValidator.trace`` and ``trace_introspection``: the checks the native validator made, in
its order and words, and the verdict of the very call the middleware makes."""

from __future__ import annotations

from typing import Any

import pytest

from mcp_oauth2._rust import Referral
from mcp_oauth2.errors import InsufficientScopeError, TokenValidationError
from mcp_oauth2.lowlevel import KeySet, ScopeRules, TokenValidator
from refused_tokens import REFUSED, RefusedToken, accepted
from token_factory import AUDIENCE, ISSUER, NOW, jwks_for, make_claims, mint

TOKEN_PLAN = [
    "size", "format", "segments", "header", "alg", "extensions", "typ", "encoding", "route",
    "key", "signature", "payload", "dates", "exp", "nbf", "iat", "required", "iss", "aud",
    "id_token", "types", "scopes", "roles", "scope_rules",
]  # fmt: skip
INTROSPECTION_PLAN = [
    "active", "token_use", "token_type", "payload", "dates", "exp", "nbf", "iat", "required",
    "iss", "aud", "id_token", "types", "scopes", "roles",
]  # fmt: skip
CASES = [*REFUSED, *accepted(NOW)]


def outcome_of(call: Any) -> Any:
    try:
        return call()
    except TokenValidationError as error:
        return error


def same(a: Any, b: Any) -> bool:
    """The same verdict: the same refusal (class and words), or the same user and scopes."""
    if isinstance(a, TokenValidationError) or isinstance(b, TokenValidationError):
        return type(a) is type(b) and a.description == b.description
    if isinstance(a, Referral):
        return isinstance(b, Referral) and a.issuer == b.issuer
    return bool(a[0] == b[0] and a[1] == b[1])


def check_shape(steps: list[tuple[str, str, str]], verdict: Any, plan: list[str]) -> None:
    """Every check of the plan once, in its order; at most one failure, the verdict's own words,
    and nothing reached after it."""
    assert [name for name, _, _ in steps] == plan
    statuses = [status for _, status, _ in steps]
    assert set(statuses) <= {"pass", "fail", "skip", "not_reached"}
    failed = [i for i, status in enumerate(statuses) if status == "fail"]
    if isinstance(verdict, TokenValidationError):
        (index,) = failed
        assert steps[index][2] == verdict.description
        assert set(statuses[index + 1 :]) <= {"not_reached"}
        assert "not_reached" not in statuses[:index]
    else:
        assert failed == []
        assert "not_reached" not in statuses


@pytest.mark.parametrize("case", CASES, ids=[case.label for case in CASES])
def test_the_trace_comes_to_the_verdict_of_the_call_it_explains(case: RefusedToken) -> None:
    rules = ScopeRules(required=["read"])
    validator = case.validator()
    keys = case.keys()
    steps, verdict = validator.trace(case.token, keys, rules, now=NOW)
    expected = outcome_of(lambda: validator.authorize_token(case.token, keys, rules, now=NOW))
    assert same(verdict, expected), (verdict, expected)
    code = verdict.code if isinstance(verdict, TokenValidationError) else "ok"
    assert code == case.code
    check_shape(steps, verdict, TOKEN_PLAN)
    # Each refusal fails the check that owns its rule.
    if case.code == "key_not_found":
        assert ("key", "fail") in [(n, s) for n, s, _ in steps]


def test_a_trace_goes_past_the_cache_and_leaves_it_as_it_was() -> None:
    validator = TokenValidator(ISSUER, AUDIENCE)
    keys = KeySet.from_jwks(jwks_for())
    token = mint("ES256", make_claims())
    cached = validator.validate(token, keys, now=NOW)
    before = validator.cache_info()
    steps, verdict = validator.trace(token, keys, now=NOW)
    assert isinstance(verdict, tuple)
    user, scopes = verdict
    assert validator.cache_info() == before
    assert user is not cached and user == cached
    assert scopes == ("read", "write")
    assert dict((name, status) for name, status, _ in steps)["signature"] == "pass"


def test_the_scope_rules_are_the_last_check() -> None:
    validator = TokenValidator(ISSUER, AUDIENCE)
    keys = KeySet.from_jwks(jwks_for())
    token = mint("ES256", make_claims(scope="read"))
    rules = ScopeRules({"admin": ["read"]}, required=["admin"])
    steps, verdict = validator.trace(token, keys, rules, now=NOW)
    assert isinstance(verdict, InsufficientScopeError)
    assert verdict.required_scopes == ("admin",)
    assert steps[-1] == ("scope_rules", "fail", "token lacks the required scope(s): admin")
    steps, verdict = validator.trace(
        mint("ES256", make_claims(scope="admin")), keys, rules, now=NOW
    )
    assert isinstance(verdict, tuple) and verdict[1] == ("admin", "read")
    assert steps[-1] == ("scope_rules", "pass", "effective scopes: admin read; required: admin")


def test_keys_per_issuer_are_chosen_by_the_unverified_issuer() -> None:
    other = "https://other.example.com"
    validator = TokenValidator([ISSUER, other], AUDIENCE)
    keys = KeySet.from_jwks(jwks_for())
    token = mint("ES256", make_claims())
    steps, verdict = validator.trace(token, {}, now=NOW)
    assert isinstance(verdict, Referral) and verdict.issuer == ISSUER
    route = dict((name, (status, detail)) for name, status, detail in steps)["route"]
    assert route[0] == "pass" and "no keys of it are at hand" in route[1]
    assert [s for _, s, _ in steps[steps.index(("route", *route)) + 1 :]] == ["not_reached"] * 15
    steps, verdict = validator.trace(token, {ISSUER: keys}, now=NOW)
    assert isinstance(verdict, tuple) and verdict[0].issuer == ISSUER
    untrusted = mint("ES256", make_claims(iss="https://elsewhere"))
    steps, verdict = validator.trace(untrusted, {ISSUER: keys}, now=NOW)
    assert isinstance(verdict, TokenValidationError) and verdict.code == "invalid_issuer"
    assert ("route", "fail", verdict.description) in steps


def test_a_token_to_introspect_is_traced_to_its_classification() -> None:
    validator = TokenValidator(ISSUER, AUDIENCE)
    steps, verdict = validator.trace("opaque-token", {}, token_format="auto", now=NOW)
    assert isinstance(verdict, Referral) and verdict.issuer is None
    assert [(name, status) for name, status, _ in steps] == [("size", "pass"), ("format", "pass")]
    assert "introspected" in steps[1][2]
    steps, verdict = validator.trace("a" * 9000, {}, token_format="auto", now=NOW)
    assert isinstance(verdict, TokenValidationError) and verdict.code == "token_too_large"
    assert steps[0] == ("size", "fail", verdict.description)


@pytest.mark.parametrize(
    ("answer", "code"),
    [
        (b'{"active": true, "aud": "%s", "scope": "read"}' % AUDIENCE.encode(), "ok"),
        (b'{"active": false}', "inactive_token"),
        (b'{"active": true, "token_use": "refresh_token"}', "invalid_claim"),
        (b'{"active": true, "token_type": "refresh_token"}', "invalid_claim"),
        (b'{"active": true, "aud": "%s", "exp": 1}' % AUDIENCE.encode(), "expired"),
        (b'{"active": true}', "missing_claim"),
        (
            b'{"active": true, "aud": "%s", "iss": "https://x"}' % AUDIENCE.encode(),
            "invalid_issuer",
        ),
        (
            b'{"active": true, "aud": "%s", "scope": "other"}' % AUDIENCE.encode(),
            "insufficient_scope",
        ),
    ],
)
def test_an_introspection_answer_is_traced_as_validate_introspection_checks_it(
    answer: bytes, code: str
) -> None:
    validator = TokenValidator(ISSUER, AUDIENCE)
    rules = ScopeRules(required=["read"])
    steps, verdict = validator.trace_introspection(answer, now=NOW, scopes=rules)
    expected = outcome_of(lambda: validator.validate_introspection(answer, now=NOW, scopes=rules))
    assert same(verdict, expected)
    assert (verdict.code if isinstance(verdict, TokenValidationError) else "ok") == code
    check_shape(steps, verdict, [*INTROSPECTION_PLAN, "scope_rules"])
    assert dict((n, s) for n, s, _ in steps)["id_token"] in ("skip", "not_reached")
    steps, verdict = validator.trace_introspection(answer, now=NOW)
    check_shape(steps, verdict, INTROSPECTION_PLAN)
    with pytest.raises(ValueError, match="not a JSON object"):
        validator.trace_introspection(b"[1]", now=NOW)
