"""Token exchange (RFC 8693, and Entra ID's on-behalf-of) against the local issuer's real token
endpoint on loopback.

Each test runs a ``LocalIssuer`` in the test's event loop and an app behind ``OAuth2Middleware``
(called in-process) whose route hands its request to the test, as a tool would exchange the
caller's token; the issuer records every request its token endpoint gets.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import pickle
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from mcp_oauth2 import ExchangedToken, OAuth2Config, OAuth2Middleware, TokenExchanger
from mcp_oauth2._subject_token import SUBJECT_SCOPE_KEY, subject_of
from mcp_oauth2._token_exchange import ACCESS_TOKEN_TYPE, _json_object
from mcp_oauth2.errors import (
    AuthorizationServerUnavailableError,
    ConfigurationError,
    TokenExchangeError,
    TokenExchangeUnavailableError,
)
from mcp_oauth2.lowlevel import ExchangeSettings, KeySet, TokenValidator
from mcp_oauth2.testing import DPoPAuth, DPoPKey, LocalIssuer, bind_loopback, url_of

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

AUDIENCE = "https://mcp.example.com/mcp"
DOWNSTREAM = "https://api.example.com"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"


class Clock:
    """Wall-clock time plus an offset the test moves."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@dataclass
class Served:
    """An app behind ``OAuth2Middleware`` whose ``/call`` (and exempt ``/public``) route runs the
    test's ``action`` with its request."""

    issuer: LocalIssuer
    config: OAuth2Config
    exchanger: TokenExchanger
    middleware: OAuth2Middleware
    outcomes: list[object] = field(default_factory=list)
    action: Callable[[Request], Awaitable[object]] | None = None

    async def call(
        self, token: str | None, action: Callable[[Request], Awaitable[object]], path: str = "/call"
    ) -> Any:
        """``action(request)`` in a request carrying ``token``: its result, or the exception it
        raised (returned, not raised)."""
        self.action = action
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        transport = httpx.ASGITransport(app=self.middleware)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
            answer = await http.get(path, headers=headers)
        assert answer.status_code == 200, answer.text
        return self.outcomes.pop()

    async def exchange(self, token: str, **target: Any) -> Any:
        async def exchange(request: Request) -> ExchangedToken:
            return await self.exchanger.exchange(request, **target)

        return await self.call(token, exchange)


def serve(
    issuer: LocalIssuer,
    *,
    flavor: str = "rfc8693",
    settings: ExchangeSettings | None = None,
    clock: Callable[[], float] = time.time,
    **config: Any,
) -> Served:
    given: dict[str, Any] = {
        "issuer": [issuer.issuer],
        "audience": [AUDIENCE],
        "exempt_routes": ["/public"],
        "client_id": issuer.introspection_client_id,
        "client_secret": issuer.introspection_client_secret,
        **config,
    }
    configured = OAuth2Config.model_validate(given)
    exchanger = TokenExchanger(configured, flavor=flavor, settings=settings, clock=clock)  # type: ignore[arg-type]
    served: Served

    async def route(request: Request) -> PlainTextResponse:
        assert served.action is not None
        try:
            served.outcomes.append(await served.action(request))
        except Exception as error:  # handed to the test
            served.outcomes.append(error)
        return PlainTextResponse("done")

    app = Starlette(routes=[Route("/call", route), Route("/public", route)])
    served = Served(issuer, configured, exchanger, OAuth2Middleware(app, configured))
    return served


@pytest.fixture
async def issuer() -> AsyncIterator[LocalIssuer]:
    issuer = LocalIssuer(default_audience=AUDIENCE)
    async with issuer.serve_async():
        yield issuer


@pytest.fixture
async def served(issuer: LocalIssuer) -> AsyncIterator[Served]:
    served = serve(issuer)
    yield served
    await close(served)


async def close(served: Served) -> None:
    await served.exchanger.aclose()
    await served.middleware.authenticator.aclose()


def downstream_user(issuer: LocalIssuer, token: str, audience: str = DOWNSTREAM) -> Any:
    """The exchanged token as the downstream API's validator sees it."""
    validator = TokenValidator(issuer.issuer, audience)
    return validator.validate(token, KeySet.from_jwks(issuer.jwks()))


# -- the request and the answer -------------------------------------------------------------------


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
async def test_the_request_is_rfc_8693(issuer: LocalIssuer, method: str) -> None:
    served = serve(issuer, client_auth_method=method)
    try:
        token = issuer.mint(subject="alice", scopes=["mcp:tools", "files:read"])
        exchanged = await served.exchange(
            token, audience=DOWNSTREAM, resource=DOWNSTREAM + "/v1", scopes=["files:read"]
        )
    finally:
        await close(served)
    assert isinstance(exchanged, ExchangedToken), exchanged
    (form,) = issuer.exchanges
    expected = {
        "grant_type": TOKEN_EXCHANGE,
        "subject_token": token,
        "subject_token_type": ACCESS_TOKEN_TYPE,
        "audience": DOWNSTREAM,
        "resource": DOWNSTREAM + "/v1",
        "scope": "files:read",
    }
    if method == "client_secret_post":
        expected["client_id"] = issuer.introspection_client_id
    assert form == expected  # no requested_token_type unless asked for; the secret not recorded


async def test_the_exchanged_token_is_for_the_audience_with_the_same_subject(
    issuer: LocalIssuer, served: Served
) -> None:
    token = issuer.mint(subject="alice", scopes=["mcp:tools"])
    before = time.time()
    exchanged = await served.exchange(token, audience=DOWNSTREAM, scopes="files:read files:list")
    assert exchanged.token_type == "Bearer"
    assert exchanged.issued_token_type == ACCESS_TOKEN_TYPE
    assert exchanged.scopes == {"files:read", "files:list"}
    assert before + 299 <= exchanged.expires_at <= time.time() + 301
    value = exchanged.access_token.get_secret_value()
    assert value != token
    assert value not in repr(exchanged) and value not in str(exchanged)
    user = downstream_user(issuer, value)
    assert (user.subject, user.audience) == ("alice", (DOWNSTREAM,))
    assert user.claims["act"] == {"sub": issuer.introspection_client_id}  # RFC 8693 section 4.1
    assert user.client_id == issuer.introspection_client_id


async def test_requested_token_type_is_sent_and_must_be_issued(
    issuer: LocalIssuer, served: Served
) -> None:
    token = issuer.mint(subject="alice")
    jwt_type = "urn:ietf:params:oauth:token-type:jwt"
    exchanged = await served.exchange(token, audience=DOWNSTREAM, requested_token_type=jwt_type)
    assert exchanged.issued_token_type == jwt_type
    assert issuer.exchanges[-1]["requested_token_type"] == jwt_type
    issuer.token_answer_changes = {"issued_token_type": ACCESS_TOKEN_TYPE}
    served.exchanger.clear()
    error = await served.exchange(token, audience=DOWNSTREAM, requested_token_type=jwt_type)
    assert isinstance(error, TokenExchangeUnavailableError)
    assert "not the 'urn:ietf:params:oauth:token-type:jwt' asked for" in error.detail


BROKEN_ANSWERS: dict[str, dict[str, Any]] = {
    "no issued_token_type": {"issued_token_type": None},
    "an ID token": {"issued_token_type": "urn:ietf:params:oauth:token-type:id_token"},
    "no token_type": {"token_type": None},
    "DPoP": {"token_type": "DPoP"},
    "N_A for an access token": {"token_type": "N_A"},
    "no expires_in": {"expires_in": None},
    "expires_in as text": {"expires_in": "300"},
    "expires_in zero": {"expires_in": 0},
    "expires_in true": {"expires_in": True},
    "expires_in fractional": {"expires_in": 1.5},
    "no access_token": {"access_token": None},
    "access_token with a space": {"access_token": "a b"},
    "access_token a number": {"access_token": 7},
    "scope a list": {"scope": ["files:read"]},
}


@pytest.mark.parametrize("case", sorted(BROKEN_ANSWERS))
async def test_an_answer_that_breaks_rfc_8693_is_refused(
    issuer: LocalIssuer, served: Served, case: str
) -> None:
    token = issuer.mint(subject="alice")
    issuer.token_answer_changes = BROKEN_ANSWERS[case]
    error = await served.exchange(token, audience=DOWNSTREAM)
    assert isinstance(error, TokenExchangeUnavailableError), error
    assert issuer.token_endpoint in error.detail
    assert token not in str(error) and token not in repr(error.args)
    assert served.exchanger.stats().cached == 0


async def test_lenient_where_the_rfcs_allow(issuer: LocalIssuer, served: Served) -> None:
    token = issuer.mint(subject="alice")
    # token_type is case-insensitive (RFC 6749 section 7.1); scope may be left out when it is
    # what was asked for (section 5.1).
    issuer.token_answer_changes = {"token_type": "bearer", "scope": None}
    exchanged = await served.exchange(token, audience=DOWNSTREAM, scopes=["files:read"])
    assert (exchanged.token_type, exchanged.scopes) == ("Bearer", {"files:read"})
    # N_A is right for a token that is not an access token (here a JWT of another kind).
    served.exchanger.clear()
    issuer.token_answer_changes = {"token_type": "N_A"}
    jwt_type = "urn:ietf:params:oauth:token-type:jwt"
    exchanged = await served.exchange(token, audience=DOWNSTREAM, requested_token_type=jwt_type)
    assert (exchanged.token_type, exchanged.issued_token_type) == ("N_A", jwt_type)


def test_a_member_named_twice_or_a_nan_is_no_answer() -> None:
    assert _json_object(b'{"access_token": "a", "access_token": "b"}') is None
    assert _json_object(b'{"expires_in": NaN}') is None
    assert _json_object(b"[1]") is None
    assert _json_object(b"[" * 100_000) is None
    assert _json_object(b'{"a": 1}') == {"a": 1}


# -- refusals and outages -----------------------------------------------------------------------


async def test_refusals_carry_the_code_and_no_token(issuer: LocalIssuer, served: Served) -> None:
    token = issuer.mint(subject="alice")
    issuer.exchange_audiences = {DOWNSTREAM}
    error = await served.exchange(token, audience="https://elsewhere.example.com")
    assert isinstance(error, TokenExchangeError), error
    assert (error.error, error.status) == ("invalid_target", 400)
    assert str(error).startswith("token exchange refused: invalid_target (no exchange for")
    assert "not allowed for this server's client" in str(error)

    issuer.token_exchange_enabled = False
    error = await served.exchange(token, audience=DOWNSTREAM)
    assert isinstance(error, TokenExchangeError)
    assert error.error == "unauthorized_client"
    assert "enable token exchange" in str(error)
    for text in (str(error), repr(error), repr(error.args), str(pickle.loads(pickle.dumps(error)))):
        assert token not in text and issuer.introspection_client_secret not in text
    assert served.exchanger.stats().refused == 2
    assert served.exchanger.stats().consecutive_failures == 0  # refusals are answers


async def test_a_revoked_subject_token_is_invalid_grant(issuer: LocalIssuer) -> None:
    served = serve(issuer, token_format="auto")
    try:
        opaque = issuer.mint_opaque(subject="alice")

        async def revoke_then_exchange(request: Request) -> ExchangedToken:
            issuer.revoke(opaque)  # revoked after the middleware admitted it
            return await served.exchanger.exchange(request, audience=DOWNSTREAM)

        error = await served.call(opaque, revoke_then_exchange)
    finally:
        await close(served)
    assert isinstance(error, TokenExchangeError)
    assert error.error == "invalid_grant"
    assert "expired, revoked" in str(error)


async def test_a_wrong_client_secret_is_invalid_client(issuer: LocalIssuer) -> None:
    served = serve(issuer, client_secret="not-the-secret")
    try:
        error = await served.exchange(issuer.mint(subject="alice"), audience=DOWNSTREAM)
    finally:
        await close(served)
    assert isinstance(error, TokenExchangeError)
    assert (error.error, error.status) == ("invalid_client", 401)
    assert "client_id, client_secret, client_auth_method" in str(error)


async def test_a_description_that_repeats_credentials_is_withheld(
    issuer: LocalIssuer, served: Served
) -> None:
    token = issuer.mint(subject="alice")
    issuer.token_fault = "echo"
    error = await served.exchange(token, audience=DOWNSTREAM)
    assert isinstance(error, TokenExchangeError)
    assert error.description == "its description was withheld: it repeated a credential"
    assert token not in str(error)


@pytest.mark.parametrize(
    "fault",
    [
        "status:500",
        "status:503",
        "status:404",
        "status:400",
        "html",
        "invalid_json",
        "empty",
        "huge",
        "redirect",
        "gzip_bomb",
        "bad_encoding",
        "nested_json",
        "wrong_content_type",
    ],
)
async def test_an_endpoint_that_fails_is_unavailable(
    issuer: LocalIssuer, served: Served, fault: str
) -> None:
    token = issuer.mint(subject="alice")
    issuer.token_fault = fault
    error = await served.exchange(token, audience=DOWNSTREAM)
    assert isinstance(error, TokenExchangeUnavailableError), error
    assert isinstance(error, AuthorizationServerUnavailableError)
    assert (error.code, error.status_code) == ("token_exchange_unavailable", 503)
    assert error.retry_after >= 1
    assert token not in str(error)


async def test_an_unreachable_endpoint_is_unavailable(issuer: LocalIssuer) -> None:
    closed = bind_loopback()
    endpoint = url_of(closed) + "/token"
    closed.close()  # nothing listens there: the connection is refused
    served = serve(issuer, token_endpoint=endpoint)
    try:
        token = issuer.mint(subject="alice")
        error = await served.exchange(token, audience=DOWNSTREAM)
    finally:
        await close(served)
    assert isinstance(error, TokenExchangeUnavailableError), error
    assert (error.code, error.status_code) == ("token_exchange_unavailable", 503)
    assert endpoint in error.detail and error.retry_after >= 1
    assert token not in str(error) and token not in repr(error.args)
    assert served.exchanger.stats().failures == 1


async def test_a_hanging_endpoint_times_out(issuer: LocalIssuer) -> None:
    served = serve(issuer, settings=ExchangeSettings(timeout=0.5))
    issuer.token_fault = "hang"
    try:
        error = await served.exchange(issuer.mint(subject="alice"), audience=DOWNSTREAM)
    finally:
        await close(served)
    assert isinstance(error, TokenExchangeUnavailableError)
    assert "no complete answer within 0.5 s" in error.detail


async def test_failures_back_off_then_one_call_probes(issuer: LocalIssuer) -> None:
    clock = Clock()
    served = serve(issuer, clock=clock)
    try:
        token = issuer.mint(subject="alice")
        issuer.token_fault = "status:503"
        first = await served.exchange(token, audience=DOWNSTREAM)
        assert isinstance(first, TokenExchangeUnavailableError)
        calls = issuer.token_requests
        second = await served.exchange(token, audience=DOWNSTREAM)
        assert isinstance(second, TokenExchangeUnavailableError)
        assert "backing off" in second.detail
        assert issuer.token_requests == calls  # no call during the pause
        stats = served.exchanger.stats()
        assert (stats.failures, stats.unavailable, stats.consecutive_failures) == (1, 1, 1)
        issuer.token_fault = None
        clock.offset = served.exchanger.backoff.delay(time.time()) + 0.1
        exchanged = await served.exchange(token, audience=DOWNSTREAM)
        assert isinstance(exchanged, ExchangedToken), exchanged
        assert served.exchanger.stats().consecutive_failures == 0
    finally:
        await close(served)


async def test_too_many_calls_at_once_is_not_a_failure(issuer: LocalIssuer) -> None:
    served = serve(issuer, settings=ExchangeSettings(connections=1, max_pending=1))
    issuer.token_delay = 0.5
    try:
        token = issuer.mint(subject="alice")

        async def two_at_once(request: Request) -> list[object]:
            calls = [
                served.exchanger.exchange(request, audience=f"{DOWNSTREAM}/{n}") for n in (1, 2)
            ]
            return list(await asyncio.gather(*calls, return_exceptions=True))

        outcomes = await served.call(token, two_at_once)
    finally:
        await close(served)
    refused = [o for o in outcomes if isinstance(o, TokenExchangeUnavailableError)]
    assert len(refused) == 1 and refused[0].retry_after == 1, outcomes
    assert "admitted already" in refused[0].detail
    assert served.exchanger.backoff.failures == 0


# -- the cache ------------------------------------------------------------------------------------


async def test_a_second_exchange_comes_from_the_cache(issuer: LocalIssuer, served: Served) -> None:
    token = issuer.mint(subject="alice")
    first = await served.exchange(token, audience=DOWNSTREAM, scopes=["a", "b"])
    again = await served.exchange(token, audience=DOWNSTREAM, scopes=["b", "a"])
    assert again is first
    assert issuer.token_requests == 1
    # Every part of the key is the key: another audience, resource, scope set or subject token.
    for other in (
        {"audience": DOWNSTREAM + "/other", "scopes": ["a", "b"]},
        {"audience": DOWNSTREAM, "scopes": ["a"]},
        {"audience": DOWNSTREAM, "resource": DOWNSTREAM, "scopes": ["a", "b"]},
    ):
        assert await served.exchange(token, **other) is not first
    other_token = issuer.mint(subject="alice")
    assert await served.exchange(other_token, audience=DOWNSTREAM, scopes=["a", "b"]) is not first
    assert issuer.token_requests == 5
    stats = served.exchanger.stats()
    assert (stats.hits, stats.calls, stats.issued, stats.cached) == (1, 5, 5, 5)


@pytest.mark.parametrize(
    ("lifetime", "subject_lifetime", "kept_at", "renewed_at"),
    [
        # Until shortly before it expires: a quarter of 100 s (25 s) is less than 30 s.
        (100, 3600, 74, 76),
        # Never beyond the subject token's own exp, though the answer lives 300 s.
        (300, 40, 35, 41),
    ],
    ids=["shortly-before-it-expires", "never-beyond-the-subject-tokens-exp"],
)
async def test_kept_while_both_tokens_are_good(
    issuer: LocalIssuer, lifetime: int, subject_lifetime: int, kept_at: int, renewed_at: int
) -> None:
    clock = Clock()
    served = serve(issuer, clock=clock)
    issuer.exchange_lifetime = lifetime
    try:
        token = issuer.mint(subject="alice", expires_in=subject_lifetime)
        await served.exchange(token, audience=DOWNSTREAM)
        clock.offset = kept_at
        await served.exchange(token, audience=DOWNSTREAM)
        assert issuer.token_requests == 1
        clock.offset = renewed_at
        await served.exchange(token, audience=DOWNSTREAM)
        assert issuer.token_requests == 2
    finally:
        await close(served)


async def test_the_cache_is_bounded_least_recently_used_out(issuer: LocalIssuer) -> None:
    served = serve(issuer, settings=ExchangeSettings(cache_size=2))
    try:
        token = issuer.mint(subject="alice")
        for audience in ("a", "b", "a", "c"):  # "b" is the least recently used when "c" comes
            await served.exchange(token, audience=f"{DOWNSTREAM}/{audience}")
        assert issuer.token_requests == 3
        await served.exchange(token, audience=f"{DOWNSTREAM}/a")
        assert issuer.token_requests == 3
        await served.exchange(token, audience=f"{DOWNSTREAM}/b")
        assert issuer.token_requests == 4
        stats = served.exchanger.stats()
        assert (stats.cached, stats.evictions) == (2, 2)
    finally:
        await close(served)


async def test_one_exchange_in_flight_is_shared(issuer: LocalIssuer, served: Served) -> None:
    token = issuer.mint(subject="alice")
    issuer.token_delay = 0.3

    async def ten_at_once(request: Request) -> list[ExchangedToken]:
        calls = [served.exchanger.exchange(request, audience=DOWNSTREAM) for _ in range(10)]
        return list(await asyncio.gather(*calls))

    tokens = await served.call(token, ten_at_once)
    assert len({id(t) for t in tokens}) == 1
    assert issuer.token_requests == 1


# -- the subject token ----------------------------------------------------------------------------


async def test_the_subject_token_stays_out_of_reach(
    issuer: LocalIssuer, served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    token = issuer.mint(subject="alice")
    seen: dict[str, Any] = {}

    async def look(request: Request) -> None:
        subject = subject_of(request)
        assert subject is not None and subject_of() is subject  # the current request's
        seen["scope"] = request.scope
        seen["subject"] = subject
        # Nothing the middleware added shows the token: the user, the auth, the scope as printed
        # (but for the request's own headers, which carry it as the client sent it).
        added = {name: value for name, value in request.scope.items() if name != "headers"}
        for shown in (request.user, request.auth, added, subject):
            assert token not in repr(shown) and token not in str(shown)
        with pytest.raises(TypeError):
            pickle.dumps(subject)
        assert copy.deepcopy(subject) is subject
        await served.exchanger.exchange(request, audience=DOWNSTREAM)

    with caplog.at_level(logging.DEBUG):
        assert await served.call(token, look) is None
    assert token not in caplog.text
    # Dropped when the request ended: gone from the scope, and emptied.
    assert SUBJECT_SCOPE_KEY not in seen["scope"]
    assert seen["subject"].token() is None
    assert subject_of() is None


async def test_without_a_callers_token_there_is_no_exchange(
    issuer: LocalIssuer, served: Served
) -> None:
    with pytest.raises(ConfigurationError, match="OAuth2Middleware"):
        await served.exchanger.exchange(audience=DOWNSTREAM)  # no request being served

    async def exchange(request: Request) -> ExchangedToken:
        return await served.exchanger.exchange(request, audience=DOWNSTREAM)

    # An exempt route has no caller; an httpx.Auth kept past its request has none left.
    assert isinstance(await served.call(None, exchange, "/public"), ConfigurationError)
    kept: list[httpx.Auth] = []

    async def keep(request: Request) -> None:
        kept.append(served.exchanger.auth(request, audience=DOWNSTREAM))

    await served.call(issuer.mint(subject="alice"), keep)
    requests = issuer.token_requests
    async with httpx.AsyncClient(auth=kept[0]) as http:
        with pytest.raises(ConfigurationError, match="has ended"):
            await http.get("http://127.0.0.1:9/never-sent")
    assert issuer.token_requests == requests


async def test_a_dpop_bound_callers_token_is_never_exchanged(issuer: LocalIssuer) -> None:
    served = serve(issuer, dpop="allowed", resource=AUDIENCE)
    key = DPoPKey()
    token = issuer.mint(subject="alice", jkt=key.thumbprint)

    async def exchange(request: Request) -> ExchangedToken:
        return await served.exchanger.exchange(request, audience=DOWNSTREAM)

    served.action = exchange
    transport = httpx.ASGITransport(app=served.middleware)
    requests = issuer.token_requests
    async with httpx.AsyncClient(
        transport=transport, base_url="https://mcp.example.com", auth=DPoPAuth(key, token)
    ) as http:
        answer = await http.get("/call")
    await close(served)
    assert answer.status_code == 200, answer.text  # admitted with its proof
    (refused,) = served.outcomes
    assert isinstance(refused, ConfigurationError)
    assert "bound to its DPoP key" in str(refused) and token not in str(refused)
    assert issuer.token_requests == requests  # the endpoint was never asked


@pytest.mark.parametrize(
    ("target", "words"),
    [
        ({"audience": ""}, "non-empty printable"),
        ({"audience": "a\nb"}, "non-empty printable"),
        ({"resource": "/relative"}, "absolute URI"),
        ({"resource": "https://api.example.com/#frag"}, "absolute URI"),
        ({"scopes": ['a"b']}, "not a scope token"),
        ({"requested_token_type": "jwt"}, "token type URN"),
    ],
)
async def test_a_malformed_target_is_refused_before_any_call(
    issuer: LocalIssuer, served: Served, target: dict[str, Any], words: str
) -> None:
    error = await served.exchange(issuer.mint(subject="alice"), **target)
    assert isinstance(error, ConfigurationError) and words in str(error)
    assert issuer.token_requests == 0


def test_the_exchanger_needs_the_servers_client() -> None:
    config = OAuth2Config(issuer="https://auth.example.com", audience=AUDIENCE)
    with pytest.raises(ConfigurationError, match=r"client_id \(MCP_OAUTH2_CLIENT_ID\)"):
        TokenExchanger(config)
    with pytest.raises(ConfigurationError, match="flavor"):
        TokenExchanger(config, flavor="saml")  # type: ignore[arg-type]


# -- where the token endpoint is --------------------------------------------------------------


async def test_the_token_endpoint_is_discovered_or_configured(issuer: LocalIssuer) -> None:
    jwks_uri = issuer.base_url + issuer.jwks_path  # the key cache discovers nothing
    served = serve(issuer, jwks_uri=jwks_uri)
    try:
        await served.exchange(issuer.mint(subject="alice"), audience=DOWNSTREAM)
        assert served.exchanger.token_endpoint is None
        assert issuer.requests["/.well-known/oauth-authorization-server"] == 1
    finally:
        await close(served)
    issuer.metadata_fault = "status:500"
    served = serve(issuer, jwks_uri=jwks_uri)
    try:
        error = await served.exchange(issuer.mint(subject="alice"), audience=DOWNSTREAM)
        assert isinstance(error, TokenExchangeUnavailableError)
        assert "discovery for issuer" in error.detail
    finally:
        await close(served)
    served = serve(issuer, jwks_uri=jwks_uri, token_endpoint=issuer.token_endpoint)
    try:
        before = issuer.requests.copy()
        assert isinstance(
            await served.exchange(issuer.mint(subject="alice"), audience=DOWNSTREAM),
            ExchangedToken,
        )
        assert issuer.requests - before == {issuer.token_path: 1, issuer.jwks_path: 1}
        assert served.exchanger.token_endpoint == issuer.token_endpoint
    finally:
        await close(served)


def test_the_settings_come_from_the_environment_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    endpoint = "https://auth.example.com/oauth2/token"
    for name, value in {
        "ISSUER": "https://auth.example.com",
        "AUDIENCE": AUDIENCE,
        "CLIENT_ID": "mcp-server",
        "CLIENT_SECRET": "s3cret-value",
        "CLIENT_AUTH_METHOD": "client_secret_post",
        "TOKEN_ENDPOINT": endpoint,
    }.items():
        monkeypatch.setenv(f"MCP_OAUTH2_{name}", value)
    exchanger = TokenExchanger()
    assert exchanger.token_endpoint == endpoint


# -- Entra ID's on-behalf-of --------------------------------------------------------------------


async def test_on_behalf_of_asks_for_the_resources_default_scope(issuer: LocalIssuer) -> None:
    served = serve(issuer, flavor="entra_obo")
    api = "api://downstream-api"
    try:
        token = issuer.mint(subject="alice", scopes=["mcp:tools"])
        exchanged = await served.exchange(token, audience=api)
        named = await served.exchange(token, scopes=[f"{api}/Files.Read"])
        unknown = None
        issuer.exchange_audiences = {api}
        unknown = await served.exchange(token, audience="api://unknown")
    finally:
        await close(served)
    assert isinstance(exchanged, ExchangedToken), exchanged
    first, second, _ = issuer.exchanges
    assert first == {
        "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
        "requested_token_use": "on_behalf_of",
        "assertion": token,
        "scope": f"{api}/.default",
    }
    assert second["scope"] == f"{api}/Files.Read"
    assert exchanged.issued_token_type == ACCESS_TOKEN_TYPE  # Entra ID names none
    user = downstream_user(issuer, exchanged.access_token.get_secret_value(), api)
    assert (user.subject, user.audience) == ("alice", (api,))
    assert isinstance(named, ExchangedToken) and named.scopes == {f"{api}/Files.Read"}
    assert isinstance(unknown, TokenExchangeError) and unknown.error == "invalid_resource"
    assert "AADSTS500011" in str(unknown)


def test_on_behalf_of_needs_a_scope_or_a_resource() -> None:
    config = OAuth2Config(
        issuer="https://auth.example.com",
        audience=AUDIENCE,
        client_id="mcp",
        client_secret="s3cret",
    )
    exchanger = TokenExchanger(config, flavor="entra_obo")
    with pytest.raises(ConfigurationError, match=r"/\.default"):
        exchanger.auth({SUBJECT_SCOPE_KEY: None}, scopes=())
