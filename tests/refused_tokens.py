"""Real tokens the validator refuses: at least one per kind of refusal the native core raises
(every error code, every way a key is missed, both ways an algorithm is not allowed), each with
the validator options and the keys under which it is refused at ``NOW``.

The tests that hold the Python error classes to the core's codes and words, and the tests that
hold ``TokenValidator.trace`` and ``mcp-oauth2 inspect`` to the middleware's verdict, take their
inputs from here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mcp_oauth2.lowlevel import KeySet, TokenValidator
from token_factory import (
    AUDIENCE,
    ISSUER,
    NOW,
    TRUSTED_KEY_IDS,
    b64u,
    jwks_for,
    make_claims,
    mint,
    private_key,
)

__all__ = ["APPLICATION_ID", "REFUSED", "RefusedToken", "accepted", "refused", "unsigned"]

# An audience that names an application by its ID (as Entra ID does).
APPLICATION_ID = "11111111-2222-3333-4444-55555555abcd"


def unsigned(header: Mapping[str, Any], claims: Mapping[str, Any]) -> str:
    """A compact token with this header and payload, and a signature that is no signature."""
    segments = (json.dumps(dict(header)).encode(), json.dumps(dict(claims)).encode())
    return ".".join(b64u(s) for s in segments) + ".c2lnbmF0dXJl"


def _swapped_payload(claims: Mapping[str, Any]) -> str:
    """A signed token whose payload was replaced by another (valid) one."""
    header, _, signature = mint("ES256", claims).split(".")
    other = mint("ES256", {**claims, "sub": "someone-else"}).split(".")[1]
    return f"{header}.{other}.{signature}"


@dataclass(frozen=True, slots=True)
class RefusedToken:
    label: str
    code: str
    token: str
    options: Mapping[str, Any] = field(default_factory=dict)
    """Options of the ``TokenValidator`` that refuses it (for ``ISSUER`` and ``audiences``)."""
    key_ids: tuple[str, ...] = TRUSTED_KEY_IDS
    audiences: tuple[str, ...] = (AUDIENCE,)

    def validator(self) -> TokenValidator:
        return TokenValidator(ISSUER, self.audiences, **self.options)

    def jwks(self) -> dict[str, Any]:
        return jwks_for(self.key_ids)

    def keys(self) -> KeySet:
        return KeySet.from_jwks(self.jwks())


ES = {"algorithms": ["ES256", "RS256"]}


def refused(now: int) -> tuple[RefusedToken, ...]:
    """The refused tokens, their times around ``now``."""

    def claims(**overrides: Any) -> dict[str, Any]:
        times: dict[str, Any] = {"iat": now - 60, "nbf": now - 60, "exp": now + 3600}
        return make_claims(**{**times, **overrides})

    return (
        RefusedToken("two segments", "malformed", "eyJhbGciOiJFUzI1NiJ9.e30"),
        RefusedToken("an encrypted token", "malformed", "a.b.c.d.e"),
        RefusedToken(
            "a repeated header member",
            "malformed",
            b64u(b'{"alg":"ES256","alg":"ES256"}') + ".e30.c2ln",
        ),
        RefusedToken("crit", "malformed", unsigned({"alg": "ES256", "crit": ["exp"]}, claims())),
        RefusedToken("too large", "token_too_large", "a" * 300, {"max_token_bytes": 256}),
        RefusedToken("unknown alg", "unsupported_algorithm", unsigned({"alg": "XX1"}, claims())),
        RefusedToken("alg none", "algorithm_not_allowed", unsigned({"alg": "none"}, claims())),
        RefusedToken("alg HS256", "algorithm_not_allowed", unsigned({"alg": "HS256"}, claims())),
        RefusedToken("alg not allowed", "algorithm_not_allowed", mint("RS384", claims()), ES),
        RefusedToken(
            "unknown kid",
            "key_not_found",
            mint("ES256", claims(), key="ec-256", headers={"kid": "rotated-away"}),
        ),
        RefusedToken(
            "kid of a key of another type",
            "key_not_found",
            mint("ES256", claims(), key=private_key("ec-256"), headers={"kid": "rsa-1"}),
        ),
        RefusedToken(
            "no kid, no key for the algorithm",
            "key_not_found",
            mint("ES256", claims(), key=private_key("ec-256")),
            key_ids=("rsa-1",),
        ),
        RefusedToken(
            "no kid, two keys fit",
            "key_not_found",
            mint("RS256", claims(), key=private_key("rsa-1")),
            key_ids=("rsa-1", "rsa-3072"),
        ),
        RefusedToken(
            "signed by another key under a trusted kid",
            "invalid_signature",
            mint("RS256", claims(), key=private_key("rsa-2"), headers={"kid": "rsa-1"}),
        ),
        RefusedToken("payload swapped", "invalid_signature", _swapped_payload(claims())),
        RefusedToken("expired", "expired", mint("ES256", claims(exp=now - 1000))),
        RefusedToken("not yet valid", "not_yet_valid", mint("ES256", claims(nbf=now + 500))),
        RefusedToken(
            "issued in the future", "issued_in_future", mint("ES256", claims(iat=now + 500))
        ),
        RefusedToken(
            "another issuer", "invalid_issuer", mint("ES256", claims(iss="https://elsewhere"))
        ),
        RefusedToken(
            "another audience", "invalid_audience", mint("ES256", claims(aud="https://other"))
        ),
        RefusedToken("no sub", "missing_claim", mint("ES256", claims(drop=["sub"]))),
        RefusedToken("exp a string", "invalid_claim", mint("ES256", claims(exp="soon"))),
        RefusedToken("sub null", "invalid_claim", mint("ES256", claims(sub=None))),
        RefusedToken(
            "a required scope missing",
            "insufficient_scope",
            mint("ES256", claims(scope="read")),
            {"required_scopes": ["read", "admin"]},
        ),
        RefusedToken(
            "typ not accepted",
            "invalid_type",
            mint("ES256", claims(), headers={"typ": "JWT"}),
            {"accepted_types": ["at+jwt"]},
        ),
        RefusedToken(
            "an ID token",
            "invalid_type",
            mint("ES256", claims(aud=APPLICATION_ID, nonce="n")),
            audiences=(AUDIENCE, APPLICATION_ID),
        ),
    )


def accepted(now: int) -> tuple[RefusedToken, ...]:
    """Tokens the same validators accept (``code`` "ok"), their times around ``now``."""
    times: dict[str, Any] = {"iat": now - 60, "nbf": now - 60, "exp": now + 3600}
    return (
        RefusedToken("valid ES256", "ok", mint("ES256", make_claims(**times))),
        RefusedToken("valid RS256", "ok", mint("RS256", make_claims(**times)), ES),
        RefusedToken(
            "expired within the leeway",
            "ok",
            mint("ES256", make_claims(**{**times, "exp": now - 30})),
        ),
        RefusedToken(
            "typ accepted",
            "ok",
            mint("ES256", make_claims(**times), headers={"typ": "at+jwt"}),
            {"accepted_types": ["at+jwt"]},
        ),
        RefusedToken(
            "the required scope",
            "ok",
            mint("ES256", make_claims(**{**times, "scope": "read admin"})),
            {"required_scopes": ["admin"]},
        ),
        RefusedToken(
            "delegated",
            "ok",
            mint("ES256", make_claims(**times, act={"sub": "agent-7"}, may_act={"sub": "agent-8"})),
        ),
    )


REFUSED = refused(NOW)
