"""Delegation on the way in (RFC 8693 section 4): ``AuthenticatedUser.actor`` (the ``act`` chain),
``delegated_tokens`` (``allowed``, ``required``, ``forbidden``) through ``OAuth2Middleware`` and
the ``Authenticator``, and ``may_act`` and ``act`` in ``mcp-oauth2 inspect``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from mcp_oauth2 import AuthenticatedUser, OAuth2Config, OAuth2Middleware
from mcp_oauth2.errors import InvalidClaimError
from mcp_oauth2.lowlevel import Authenticator, KeySet, StaticKeys, TokenValidator
from mcp_oauth2.testing import LocalIssuer
from test_cli import run, run_json

AUDIENCE = "https://api.example.com"
ISSUER = "https://auth.example.com"
CHAIN = {"sub": "mcp-server", "act": {"sub": "agent", "act": {"sub": "first-hop"}}}


@pytest.fixture(scope="module")
def issuer() -> LocalIssuer:
    return LocalIssuer(ISSUER, default_audience=AUDIENCE)


def user_of(issuer: LocalIssuer, token: str) -> AuthenticatedUser:
    return TokenValidator(ISSUER, AUDIENCE).validate(token, KeySet.from_jwks(issuer.jwks()))


# -- AuthenticatedUser.actor ----------------------------------------------------------------------


def test_actor_is_the_act_claim_with_its_chain(issuer: LocalIssuer) -> None:
    user = user_of(issuer, issuer.mint(subject="alice", claims={"act": CHAIN}))
    actor = user.actor
    assert actor is not None
    assert actor == CHAIN
    assert actor["sub"] == "mcp-server"
    assert actor["act"]["act"]["sub"] == "first-hop"
    assert actor is user.claims["act"]  # read from the claims, not a second copy
    with pytest.raises(TypeError):
        actor["sub"] = "someone else"
    assert json.loads(json.dumps({"actor": actor})) == {"actor": CHAIN}


@pytest.mark.parametrize("act", [None, "mcp-server", ["mcp-server"], 7])
def test_no_actor_unless_act_is_an_object(issuer: LocalIssuer, act: Any) -> None:
    claims = {} if act is None else {"act": act}
    assert user_of(issuer, issuer.mint(subject="alice", claims=claims)).actor is None


def test_an_introspected_user_has_its_actor_too() -> None:
    validator = TokenValidator(ISSUER, AUDIENCE)
    answer = {"active": True, "sub": "alice", "aud": AUDIENCE, "exp": 4_000_000_000, "act": CHAIN}
    user = validator.validate_introspection(json.dumps(answer).encode(), now=1_000)
    assert user.actor == CHAIN


# -- delegated_tokens -----------------------------------------------------------------------------


def app_for(issuer: LocalIssuer, delegated_tokens: str) -> OAuth2Middleware:
    async def whoami(request: Request) -> JSONResponse:
        actor = request.user.actor
        return JSONResponse({"subject": request.user.subject, "actor": actor})

    config = OAuth2Config.model_validate(
        {"issuer": ISSUER, "audience": AUDIENCE, "delegated_tokens": delegated_tokens}
    )
    keys = StaticKeys(issuer.jwks())
    return OAuth2Middleware(Starlette(routes=[Route("/", whoami)]), config, key_sources=keys)


@pytest.fixture
async def client() -> AsyncIterator[Any]:
    opened: list[httpx.AsyncClient] = []

    def open_for(app: OAuth2Middleware) -> httpx.AsyncClient:
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")
        opened.append(http)
        return http

    yield open_for
    for http in opened:
        await http.aclose()


TOKENS: dict[str, dict[str, Any]] = {
    "plain": {},
    "delegated": {"act": CHAIN},
    "act without sub": {"act": {"iss": ISSUER}},
    "act not an object": {"act": "mcp-server"},
}
# (delegated_tokens, token) -> the answer's status (and the description of a 401).
EXPECTED: dict[tuple[str, str], int | str] = {
    ("allowed", "plain"): 200,
    ("allowed", "delegated"): 200,
    ("allowed", "act not an object"): 200,
    ("forbidden", "plain"): 200,
    ("forbidden", "delegated"): "delegated tokens (with an act claim) are not accepted",
    ("forbidden", "act without sub"): "delegated tokens (with an act claim) are not accepted",
    ("forbidden", "act not an object"): "delegated tokens (with an act claim) are not accepted",
    ("required", "delegated"): 200,
    ("required", "plain"): "the act claim must name an actor (sub)",
    ("required", "act without sub"): "the act claim must name an actor (sub)",
    ("required", "act not an object"): "the act claim must name an actor (sub)",
}


@pytest.mark.anyio
@pytest.mark.parametrize(("rule", "kind"), sorted(EXPECTED))
async def test_delegated_tokens_rule(
    issuer: LocalIssuer, client: Any, rule: str, kind: str
) -> None:
    http = client(app_for(issuer, rule))
    token = issuer.mint(subject="alice", claims=TOKENS[kind])
    answer = await http.get("/", headers={"Authorization": f"Bearer {token}"})
    expected = EXPECTED[(rule, kind)]
    if expected == 200:
        assert answer.status_code == 200, answer.text
        assert answer.json()["subject"] == "alice"
        return
    assert answer.status_code == 401
    body = answer.json()
    assert body["code"] == "invalid_claim"
    assert str(expected) in body["error_description"]
    assert 'error="invalid_token"' in answer.headers["www-authenticate"]


@pytest.mark.anyio
async def test_the_authenticator_applies_the_rule_to_every_kind_of_token() -> None:
    issuer = LocalIssuer(default_audience=AUDIENCE)
    async with issuer.serve_async():
        config = OAuth2Config.model_validate(
            {
                "issuer": issuer.issuer,
                "audience": AUDIENCE,
                "token_format": "auto",
                "client_id": issuer.introspection_client_id,
                "client_secret": issuer.introspection_client_secret,
                "delegated_tokens": "required",
            }
        )
        authenticator = Authenticator.from_config(config)
        try:
            delegated = issuer.mint_opaque(subject="alice", claims={"act": CHAIN})
            assert (await authenticator.authenticate(delegated)).actor == CHAIN
            for plain in (issuer.mint_opaque(subject="alice"), issuer.mint(subject="alice")):
                with pytest.raises(InvalidClaimError, match="must name an actor"):
                    await authenticator.authenticate(plain)
        finally:
            await authenticator.aclose()


def test_the_rule_must_be_one_of_three(issuer: LocalIssuer) -> None:
    validator = TokenValidator(ISSUER, AUDIENCE)
    with pytest.raises(ValueError, match="'allowed', 'required' or 'forbidden'"):
        Authenticator(validator, StaticKeys(issuer.jwks()), delegated_tokens="x")  # type: ignore[arg-type]


# -- mcp-oauth2 inspect ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served_issuer() -> Iterator[LocalIssuer]:
    local = LocalIssuer(default_audience=AUDIENCE)
    with local.serve():
        yield local


def test_inspect_shows_act_and_may_act(served_issuer: LocalIssuer, tmp_path: Path) -> None:
    token = served_issuer.mint(
        subject="alice", claims={"act": CHAIN, "may_act": {"sub": "mcp-server", "iss": ISSUER}}
    )
    code, document = run_json(
        "inspect", token, "--issuer", served_issuer.issuer, "--audience", AUDIENCE, cwd=tmp_path
    )
    assert code == 0, document
    may_act = {"sub": "mcp-server", "iss": ISSUER}
    assert document["delegation"] == {"act": CHAIN, "may_act": may_act}
    text = run(
        "inspect", token, "--issuer", served_issuer.issuer, "--audience", AUDIENCE, cwd=tmp_path
    ).stdout
    assert "Delegation (RFC 8693)\n" in text
    assert "acting for the subject: mcp-server; before it, agent; before it, first-hop" in text
    assert f"may act for the subject: mcp-server (iss {ISSUER})" in text
    unverified = run("inspect", token, cwd=tmp_path).stdout
    assert "Delegation (RFC 8693) (UNVERIFIED)" in unverified


def test_inspect_shows_no_delegation_for_a_plain_token(
    served_issuer: LocalIssuer, tmp_path: Path
) -> None:
    code, document = run_json("inspect", served_issuer.mint(subject="alice"), cwd=tmp_path)
    assert code == 0 and document["delegation"] is None
