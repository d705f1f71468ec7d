"""The local issuer's token endpoint: RFC 8693 token exchange, and Microsoft Entra ID-style
on-behalf-of (the JWT-bearer grant with ``requested_token_use=on_behalf_of``), answering as the
specification and that service do, with the refusals a test needs.

A subject token (or on-behalf-of assertion) must be one this issuer made: a JWT its published
keys verify, naming it as ``iss`` and not expired, or a live opaque token of ``mint_opaque``.
The token issued in exchange is a JWT of the same subject for the audience or resource asked for,
with the requesting client as ``client_id`` and, for a token exchange, as the actor (RFC 8693
section 4.1: ``act``, with the subject token's own ``act`` nested inside).
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from mcp_oauth2._rust import KeySet
from mcp_oauth2.errors import TokenValidationError
from mcp_oauth2.testing._keys import MintOptions

if TYPE_CHECKING:
    from mcp_oauth2.testing._local_issuer import LocalIssuer

__all__ = ["ACCESS_TOKEN_TYPE", "GRANT_TYPES", "token_answer"]

# Names of grants and token types (RFC 8693 section 3), not secrets.
TOKEN_EXCHANGE: Final = "urn:ietf:params:oauth:grant-type:token-exchange"  # noqa: S105
JWT_BEARER: Final = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ACCESS_TOKEN_TYPE: Final = "urn:ietf:params:oauth:token-type:access_token"  # noqa: S105
JWT_TOKEN_TYPE: Final = "urn:ietf:params:oauth:token-type:jwt"  # noqa: S105
GRANT_TYPES: Final = (TOKEN_EXCHANGE, JWT_BEARER)
"""The grants the endpoint serves (the metadata lists them)."""
_DEFAULT_SCOPE: Final = "/.default"

# (status, JSON body) of an answer.
Answer = tuple[int, dict[str, Any]]


def token_answer(issuer: LocalIssuer, client_id: str, form: Mapping[str, str]) -> Answer:
    """The answer to an authenticated client's token request ``form``."""
    grant = form.get("grant_type")
    if grant == TOKEN_EXCHANGE:
        return _exchange(issuer, client_id, form)
    if grant == JWT_BEARER and form.get("requested_token_use") == "on_behalf_of":
        return _on_behalf_of(issuer, client_id, form)
    return _error("unsupported_grant_type", f"grant_type {str(grant)[:80]!r} is not served here")


def subject_claims(issuer: LocalIssuer, token: str) -> dict[str, Any] | None:
    """The claims of ``token`` if this issuer made it and it is still good, else None."""
    answer = issuer.introspection_answer(token)
    if answer.get("active") is True:
        return answer
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        header = json.loads(_unbase64(parts[0]))
        claims = json.loads(_unbase64(parts[1]))
        signature = _unbase64(parts[2])
        keys = KeySet.from_jwks(issuer.jwks())
        verified = keys.verify_signature(
            str(header.get("alg")),
            f"{parts[0]}.{parts[1]}".encode(),
            signature,
            kid=header.get("kid") if isinstance(header.get("kid"), str) else None,
        )
    except (ValueError, binascii.Error, TokenValidationError, AttributeError):
        return None
    if not verified or not isinstance(claims, dict) or claims.get("iss") != issuer.issuer:
        return None
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or exp <= time.time():
        return None
    return claims


def _exchange(issuer: LocalIssuer, client_id: str, form: Mapping[str, str]) -> Answer:
    """RFC 8693 section 2: the subject token for a token of the audience and resource asked."""
    if not issuer.token_exchange_enabled:
        return _error("unauthorized_client", "this client may not exchange tokens")
    token, token_type = form.get("subject_token"), form.get("subject_token_type")
    if not token or not token_type:
        return _error("invalid_request", "subject_token and subject_token_type are required")
    if token_type != ACCESS_TOKEN_TYPE:
        return _error("invalid_request", "only access tokens are exchanged here")
    requested = form.get("requested_token_type")
    if requested is not None and requested not in (ACCESS_TOKEN_TYPE, JWT_TOKEN_TYPE):
        return _error("invalid_request", "only access tokens are issued here")
    claims = subject_claims(issuer, token)
    if claims is None:
        return _error("invalid_grant", "the subject token is invalid, expired or revoked")
    targets = [form[name] for name in ("audience", "resource") if form.get(name)]
    refused = _unknown_targets(issuer, targets)
    if refused:
        return _error("invalid_target", f"no exchange for {refused[0][:100]!r}")
    scopes = _scopes(form.get("scope"), claims)
    actor: dict[str, Any] = {"sub": client_id}
    if isinstance(claims.get("act"), dict):
        actor["act"] = claims["act"]  # section 4.1: the earlier actors, nested
    exchanged = _mint(issuer, claims, targets or [client_id], scopes, {"act": actor}, client_id)
    answer: dict[str, Any] = {
        "access_token": exchanged,
        "issued_token_type": requested or ACCESS_TOKEN_TYPE,
        "token_type": "Bearer",
        "expires_in": issuer.exchange_lifetime,
    }
    if scopes:
        answer["scope"] = " ".join(scopes)
    return 200, answer


def _on_behalf_of(issuer: LocalIssuer, client_id: str, form: Mapping[str, str]) -> Answer:
    """Entra ID's on-behalf-of: the assertion for a token of the resource its scopes name
    (``<resource>/.default``, or ``<resource>/<scope>`` each)."""
    if not issuer.token_exchange_enabled:
        return _error("unauthorized_client", "AADSTS700016: this client may not act on behalf")
    assertion, scope = form.get("assertion"), form.get("scope")
    if not assertion or not scope:
        return _error("invalid_request", "AADSTS900144: assertion and scope are required")
    claims = subject_claims(issuer, assertion)
    if claims is None:
        return _error("invalid_grant", "AADSTS50013: Assertion failed signature validation")
    resources = {entry.rpartition("/")[0] for entry in scope.split()}
    if len(resources) != 1 or "" in resources:
        return _error("invalid_scope", "AADSTS70011: the scopes must name one resource")
    (resource,) = resources
    if _unknown_targets(issuer, [resource]):
        return _error("invalid_resource", f"AADSTS500011: no resource named {resource[:100]!r}")
    named = [entry.rpartition("/")[2] for entry in scope.split()]
    scopes = _scopes(None, claims) if named == [_DEFAULT_SCOPE[1:]] else sorted(set(named))
    token = _mint(issuer, claims, [resource], scopes, {"azp": client_id}, client_id)
    lifetime = issuer.exchange_lifetime
    answer = {
        "token_type": "Bearer",
        "scope": " ".join(f"{resource}/{name}" for name in scopes),
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": token,
    }
    return 200, answer


def _mint(
    issuer: LocalIssuer,
    claims: Mapping[str, Any],
    audience: list[str],
    scopes: list[str],
    extra: dict[str, Any],
    client_id: str,
) -> str:
    options = MintOptions(
        subject=claims.get("sub"),
        audience=audience[0] if len(audience) == 1 else audience,
        scopes=scopes,
        expires_in=issuer.exchange_lifetime,
        claims={**extra, "client_id": client_id},
    )
    return issuer.mint(**options)


def _unknown_targets(issuer: LocalIssuer, targets: list[str]) -> list[str]:
    allowed = issuer.exchange_audiences
    return [] if allowed is None else [target for target in targets if target not in allowed]


def _scopes(asked: str | None, claims: Mapping[str, Any]) -> list[str]:
    """The scopes asked for, else the subject token's."""
    if asked:
        return sorted(set(asked.split()))
    held = claims.get("scope")
    return sorted(set(held.split())) if isinstance(held, str) else []


def _error(code: str, description: str) -> Answer:
    return 400, {"error": code, "error_description": description}


def _unbase64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
