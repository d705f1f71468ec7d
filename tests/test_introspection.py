"""Opaque tokens: RFC 7662 introspection against the local issuer's real endpoint on loopback.

Each test runs a ``LocalIssuer`` in the test's event loop and an ``Authenticator`` built from an
``OAuth2Config``, as the middleware builds it; the issuer counts the calls its endpoint receives.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from mcp_oauth2 import AuthenticatedUser, OAuth2Config
from mcp_oauth2._introspection import IntrospectionSettings, Introspector
from mcp_oauth2.errors import (
    AuthorizationServerUnavailableError,
    DPoPRequiredError,
    InactiveTokenError,
    InsufficientScopeError,
    IntrospectionUnavailableError,
    InvalidAudienceError,
    InvalidClaimError,
    InvalidIssuerError,
    InvalidSignatureError,
    JWKSError,
    MalformedTokenError,
    MissingClaimError,
    TokenTooLargeError,
)
from mcp_oauth2.lowlevel import Authenticator, ScopeRules, TokenValidator
from mcp_oauth2.testing import DPoPKey, LocalIssuer

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

AUDIENCE = "https://mcp.example.com/mcp"


@pytest.fixture
async def issuer() -> AsyncIterator[LocalIssuer]:
    issuer = LocalIssuer(default_audience=AUDIENCE)
    async with issuer.serve_async():
        yield issuer


def authenticator_with(issuer: LocalIssuer, **knobs: Any) -> Authenticator:
    """An authenticator for ``config(issuer)`` whose introspector has ``knobs``
    (``IntrospectionSettings`` fields the configuration leaves at their defaults)."""
    configured = config(issuer)
    settings = dataclasses.replace(IntrospectionSettings.from_config(configured), **knobs)
    introspector = Introspector(configured.token_validator(), settings)
    return Authenticator.from_config(configured, introspector=introspector)


def config(issuer: LocalIssuer, **settings: Any) -> OAuth2Config:
    given: dict[str, Any] = {
        "issuer": [issuer.issuer],
        "audience": [AUDIENCE],
        "token_format": "opaque",
        "client_id": issuer.introspection_client_id,
        "client_secret": issuer.introspection_client_secret,
        **settings,
    }
    return OAuth2Config.model_validate(given)


@pytest.fixture
async def authenticator(issuer: LocalIssuer) -> AsyncIterator[Authenticator]:
    authenticator = Authenticator.from_config(config(issuer))
    yield authenticator
    await authenticator.aclose()


async def refused(authenticator: Authenticator, token: str) -> Exception:
    with pytest.raises(Exception) as caught:  # noqa: PT011 - the type is the subject
        await authenticator.authenticate(token)
    return caught.value


# -- the call and its answers ----------------------------------------------------------------------


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
async def test_an_active_token_maps_onto_the_user(issuer: LocalIssuer, method: str) -> None:
    authenticator = Authenticator.from_config(config(issuer, client_auth_method=method))
    try:
        token = issuer.mint_opaque(
            subject="ann", scopes=["mcp:tools", "read"], claims={"username": "ann.l"}
        )
        user = await authenticator.authenticate(token)
    finally:
        await authenticator.aclose()
    assert isinstance(user, AuthenticatedUser)
    assert (user.subject, user.username, user.display_name) == ("ann", "ann.l", "ann")
    assert user.scopes == {"mcp:tools", "read"}
    assert user.issuer == issuer.issuer
    assert user.audience == (AUDIENCE,)
    assert user.client_id == "local-client"
    assert user.claims["active"] is True
    # The endpoint was discovered from the metadata, then asked once.
    assert authenticator.introspector is not None
    assert authenticator.introspector.endpoint == issuer.introspection_endpoint
    assert issuer.introspection_requests == 1


async def test_the_request_is_rfc_7662(issuer: LocalIssuer) -> None:
    """POST, form-encoded ``token`` and ``token_type_hint=access_token``, client authenticated
    with the form-urlencoded id and secret (RFC 6749 section 2.3.1)."""
    seen: list[httpx.Request] = []

    async def record(request: httpx.Request) -> None:
        seen.append(request)

    issuer.introspection_client_id = "rs one"
    issuer.introspection_client_secret = "s3cr:t+/="
    client = httpx.AsyncClient(event_hooks={"request": [record]})
    introspector = Introspector(
        config(issuer).token_validator(),
        IntrospectionSettings.from_config(
            config(issuer, introspection_endpoint=issuer.introspection_endpoint)
        ),
        client=client,
    )
    token = issuer.mint_opaque()
    try:
        await introspector.introspect(token)
    finally:
        await client.aclose()
    (request,) = seen
    assert request.method == "POST"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert request.headers["authorization"] == "Basic cnMrb25lOnMzY3IlM0F0JTJCJTJGJTNE"
    assert request.content == f"token={token}&token_type_hint=access_token".encode()


async def test_a_wrong_client_secret_is_never_an_accept(issuer: LocalIssuer) -> None:
    authenticator = Authenticator.from_config(config(issuer, client_secret="not-the-secret"))
    try:
        error = await refused(authenticator, issuer.mint_opaque())
    finally:
        await authenticator.aclose()
    assert isinstance(error, IntrospectionUnavailableError)
    assert "HTTP 401" in error.detail
    assert "not-the-secret" not in error.detail


@pytest.mark.parametrize(
    ("claims", "error"),
    [
        ({"active": False}, InactiveTokenError),
        ({"active": "true"}, InactiveTokenError),
        ({"active": 1}, InactiveTokenError),
        ({"active": None}, InactiveTokenError),
        ({"aud": None}, MissingClaimError),
        ({"aud": "https://other.example.com/mcp"}, InvalidAudienceError),
        ({"iss": "https://evil.example.com"}, InvalidIssuerError),
        ({"token_use": "refresh_token"}, InvalidClaimError),
        ({"token_type": "refresh_token"}, InvalidClaimError),
        ({"typ": "Refresh"}, InvalidClaimError),
        ({"scope": ["read"]}, InvalidClaimError),
        ({"sub": 42}, InvalidClaimError),
        ({"exp": "tomorrow"}, InvalidClaimError),
        ({"nbf": int(time.time()) + 3600}, Exception),
    ],
    ids=lambda value: str(value),
)
async def test_answers_are_read_strictly(
    issuer: LocalIssuer, authenticator: Authenticator, claims: dict[str, Any], error: type
) -> None:
    error_seen = await refused(authenticator, issuer.mint_opaque(claims=claims))
    assert isinstance(error_seen, error)
    assert not isinstance(error_seen, IntrospectionUnavailableError)
    assert error_seen.status_code == 401  # type: ignore[attr-defined]


async def test_a_validators_required_scopes_hold_from_the_cache_too(issuer: LocalIssuer) -> None:
    validator = TokenValidator(issuer.issuer, AUDIENCE, required_scopes=["mcp:admin"])
    settings = IntrospectionSettings.from_config(config(issuer))
    introspector = Introspector(validator, settings)
    token = issuer.mint_opaque(scopes=["mcp:tools"])
    try:
        for _ in range(2):  # the call, then the cached refusal
            with pytest.raises(InsufficientScopeError) as caught:
                await introspector.introspect(token)
            assert caught.value.required_scopes == ("mcp:admin",)
    finally:
        await introspector.aclose()
    assert issuer.introspection_requests == 1


async def test_unknown_and_revoked_tokens_are_inactive(
    issuer: LocalIssuer, authenticator: Authenticator
) -> None:
    error = await refused(authenticator, "opq_" + secrets.token_urlsafe(32))
    assert isinstance(error, InactiveTokenError)
    assert (error.code, error.status_code, error.error) == ("inactive_token", 401, "invalid_token")


async def test_a_response_without_audience_passes_only_when_configured(
    issuer: LocalIssuer,
) -> None:
    authenticator = Authenticator.from_config(config(issuer, introspection_require_audience=False))
    try:
        user = await authenticator.authenticate(issuer.mint_opaque(claims={"aud": None}))
        # An audience that is present must still name this server.
        other = issuer.mint_opaque(claims={"aud": "https://other.example.com/mcp"})
        assert isinstance(await refused(authenticator, other), InvalidAudienceError)
    finally:
        await authenticator.aclose()
    assert user.audience == ()


async def test_a_token_over_the_size_limit_is_not_sent(
    issuer: LocalIssuer, authenticator: Authenticator
) -> None:
    error = await refused(authenticator, "x" * 9000)
    assert isinstance(error, TokenTooLargeError)
    assert issuer.introspection_requests == 0


# -- the cache -------------------------------------------------------------------------------------


async def test_results_are_cached_and_revocation_shows_after_the_lifetime(
    issuer: LocalIssuer,
) -> None:
    authenticator = Authenticator.from_config(config(issuer, introspection_cache_ttl=0.5))
    token = issuer.mint_opaque()
    try:
        for _ in range(5):
            await authenticator.authenticate(token)
        assert issuer.introspection_requests == 1
        issuer.revoke(token)
        await authenticator.authenticate(token)  # still within the cached lifetime
        await asyncio.sleep(0.6)
        error = await refused(authenticator, token)
    finally:
        await authenticator.aclose()
    assert isinstance(error, InactiveTokenError)
    assert issuer.introspection_requests == 2


async def test_an_active_result_is_kept_no_longer_than_exp(issuer: LocalIssuer) -> None:
    authenticator = Authenticator.from_config(config(issuer, introspection_cache_ttl=600))
    # Three seconds: the first call must see the token active even on a loaded machine.
    token = issuer.mint_opaque(expires_in=3)
    try:
        await authenticator.authenticate(token)
        await asyncio.sleep(3.1)
        # exp has passed: the result is not reused; the endpoint now says inactive.
        error = await refused(authenticator, token)
    finally:
        await authenticator.aclose()
    assert isinstance(error, InactiveTokenError)
    assert issuer.introspection_requests == 2


async def test_refusals_are_cached_briefly(issuer: LocalIssuer) -> None:
    authenticator = authenticator_with(issuer, negative_ttl=0.5)
    unknown = "opq_" + secrets.token_urlsafe(32)
    try:
        for _ in range(20):
            assert isinstance(await refused(authenticator, unknown), InactiveTokenError)
        assert issuer.introspection_requests == 1
        await asyncio.sleep(0.6)
        await refused(authenticator, unknown)
    finally:
        await authenticator.aclose()
    assert issuer.introspection_requests == 2


async def test_the_cache_is_bounded_least_recently_used_out(issuer: LocalIssuer) -> None:
    authenticator = authenticator_with(issuer, cache_size=3)
    tokens = [issuer.mint_opaque(subject=f"u{n}") for n in range(4)]
    introspector = authenticator.introspector
    assert introspector is not None
    try:
        for token in tokens[:3]:
            await authenticator.authenticate(token)
        await authenticator.authenticate(tokens[0])  # now the most recently used
        await authenticator.authenticate(tokens[3])  # evicts tokens[1], the least recent
        assert issuer.introspection_requests == 4
        await authenticator.authenticate(tokens[0])
        await authenticator.authenticate(tokens[2])
        assert issuer.introspection_requests == 4
        await authenticator.authenticate(tokens[1])
        assert issuer.introspection_requests == 5
        # A flood of unknown tokens fills the refusals' table only: users stay cached.
        for _ in range(50):
            await refused(authenticator, "opq_" + secrets.token_urlsafe(16))
        calls = issuer.introspection_requests
        await authenticator.authenticate(tokens[1])
        assert issuer.introspection_requests == calls
        assert len(introspector.cache) == 6
        assert introspector.stats().evictions >= 48
    finally:
        await authenticator.aclose()


async def test_cache_keys_are_keyed_hashes(issuer: LocalIssuer) -> None:
    first = Authenticator.from_config(config(issuer))
    second = Authenticator.from_config(config(issuer))
    token = issuer.mint_opaque()
    try:
        await first.authenticate(token)
        assert first.introspector is not None and second.introspector is not None
        keys = list(first.introspector.cache._active._entries)
        assert len(keys) == 1
        assert token.encode() not in keys[0] and len(keys[0]) == 32
        # Another cache, another key: a digest says nothing outside its own process.
        assert second.introspector.cache.key(token) != keys[0]
    finally:
        await first.aclose()
        await second.aclose()


async def test_one_call_per_token_shared_by_every_waiter(issuer: LocalIssuer) -> None:
    issuer.introspection_delay = 0.3
    authenticator = Authenticator.from_config(config(issuer))
    token = issuer.mint_opaque(subject="shared")
    try:
        users = await asyncio.gather(*(authenticator.authenticate(token) for _ in range(50)))
    finally:
        await authenticator.aclose()
    assert {user.subject for user in users} == {"shared"}
    assert issuer.introspection_requests == 1


async def test_a_waiter_that_gives_up_does_not_cancel_the_call(issuer: LocalIssuer) -> None:
    issuer.introspection_delay = 0.3
    authenticator = Authenticator.from_config(config(issuer))
    token = issuer.mint_opaque()
    try:
        impatient = asyncio.create_task(authenticator.authenticate(token))
        patient = asyncio.create_task(authenticator.authenticate(token))
        await asyncio.sleep(0.1)
        impatient.cancel()
        user = await patient
    finally:
        await authenticator.aclose()
    assert user.subject == "user-1"
    assert issuer.introspection_requests == 1


# -- floods and failures ---------------------------------------------------------------------------


async def test_a_flood_of_unknown_tokens_is_bounded(issuer: LocalIssuer) -> None:
    """At most ``max_pending`` calls at once; the rest are refused (503) without
    a call, and nothing is ever accepted."""
    issuer.introspection_delay = 0.2
    authenticator = authenticator_with(issuer, max_pending=4)
    flood = ["opq_" + secrets.token_urlsafe(24) for _ in range(100)]
    try:
        outcomes = await asyncio.gather(
            *(authenticator.authenticate(token) for token in flood), return_exceptions=True
        )
    finally:
        await authenticator.aclose()
    kinds = {type(outcome) for outcome in outcomes}
    assert kinds == {InactiveTokenError, IntrospectionUnavailableError}
    assert sum(isinstance(o, InactiveTokenError) for o in outcomes) == 4
    assert issuer.introspection_requests == 4
    unavailable = next(o for o in outcomes if isinstance(o, IntrospectionUnavailableError))
    assert unavailable.retry_after == 1


async def test_a_flood_leaves_a_healthy_endpoint_usable(issuer: LocalIssuer) -> None:
    """Sixty-four random tokens at once against an endpoint that takes 0.2 s, with a 1 s
    deadline: waiting for a connection is not the endpoint's failure, so no call of the burst
    counts as one, and the next real token is asked about at once (it used to be 503 for up to
    a minute: every queued call timed out and counted)."""
    issuer.introspection_delay = 0.2
    authenticator = authenticator_with(issuer, timeout=1.0)
    introspector = authenticator.introspector
    assert introspector is not None
    flood = ["opq_" + secrets.token_urlsafe(24) for _ in range(64)]
    try:
        outcomes = await asyncio.gather(
            *(authenticator.authenticate(token) for token in flood), return_exceptions=True
        )
        # Refused as unknown, or (on a machine too busy to get through the queue in time)
        # "try again": never accepted, and never an endpoint failure.
        assert {type(outcome) for outcome in outcomes} <= {
            InactiveTokenError,
            IntrospectionUnavailableError,
        }
        assert introspector.stats().failures == 0
        assert introspector.stats().consecutive_failures == 0
        user = await authenticator.authenticate(issuer.mint_opaque(subject="real"))
    finally:
        await authenticator.aclose()
    assert user.subject == "real"


async def test_failures_of_one_burst_count_once(issuer: LocalIssuer) -> None:
    """Twenty calls that time out together are one failure: the pause reflects how long the
    endpoint has been failing (1 s after one failure), not how many callers noticed."""
    issuer.introspection_fault = "hang"
    authenticator = authenticator_with(issuer, timeout=0.5)
    introspector = authenticator.introspector
    assert introspector is not None
    tokens = [issuer.mint_opaque() for _ in range(20)]
    try:
        outcomes = await asyncio.gather(
            *(authenticator.authenticate(token) for token in tokens), return_exceptions=True
        )
    finally:
        await authenticator.aclose()
    assert all(isinstance(o, IntrospectionUnavailableError) for o in outcomes)
    stats = introspector.stats()
    # Every call that was made failed and counts as a failed call (on a busy machine a request
    # may arrive after the first failure: refused at once, without a call)...
    assert stats.calls == stats.failures >= 2
    assert stats.calls + stats.unavailable == 20
    assert (
        introspector.stats().consecutive_failures == 1
    )  # ...but the burst is one failure of the endpoint
    assert max(o.retry_after for o in outcomes if isinstance(o, IntrospectionUnavailableError)) <= 2


@pytest.mark.parametrize("status", [400, 413, 422])
async def test_a_400_class_answer_refuses_the_token_not_the_endpoint(
    issuer: LocalIssuer, status: int
) -> None:
    authenticator = Authenticator.from_config(config(issuer))
    introspector = authenticator.introspector
    assert introspector is not None
    try:
        issuer.introspection_fault = f"status:{status}"
        error = await refused(authenticator, issuer.mint_opaque())
        assert isinstance(error, InactiveTokenError)
        assert error.status_code == 401
        issuer.introspection_fault = None
        assert introspector.stats().consecutive_failures == 0
        assert (await authenticator.authenticate(issuer.mint_opaque(subject="next"))).subject == (
            "next"
        )
    finally:
        await authenticator.aclose()


FAULT_CASES = [
    "status:500",
    "status:503",
    "status:404",
    "html",
    "invalid_json",
    "huge",
    "redirect",
    "hang",
    "gzip_bomb",
    "bad_encoding",
    "nested_json",
    "wrong_content_type",
]


@pytest.mark.parametrize("fault", FAULT_CASES)
async def test_a_failing_endpoint_never_accepts(
    issuer: LocalIssuer, fault: str, caplog: pytest.LogCaptureFixture
) -> None:
    authenticator = authenticator_with(issuer, timeout=0.5)
    token = issuer.mint_opaque()
    issuer.introspection_fault = fault
    try:
        with caplog.at_level(logging.DEBUG, logger="mcp_oauth2"):
            error = await refused(authenticator, token)
    finally:
        await authenticator.aclose()
    assert isinstance(error, IntrospectionUnavailableError)
    assert isinstance(error, AuthorizationServerUnavailableError)  # as every outage is
    assert not isinstance(error, JWKSError)  # not a key problem
    assert (error.code, error.status_code) == ("introspection_unavailable", 503)
    assert error.retry_after >= 1
    assert token not in caplog.text
    assert issuer.introspection_client_secret not in caplog.text + error.detail


async def test_an_empty_answer_is_inactive(
    issuer: LocalIssuer, authenticator: Authenticator
) -> None:
    issuer.introspection_fault = "empty"  # {} has no "active": true
    assert isinstance(await refused(authenticator, issuer.mint_opaque()), InactiveTokenError)


async def test_backoff_after_a_failure_then_recovery(issuer: LocalIssuer) -> None:
    authenticator = Authenticator.from_config(config(issuer))
    token = issuer.mint_opaque()
    issuer.introspection_fault = "status:500"
    try:
        first = await refused(authenticator, token)
        calls = issuer.introspection_requests
        assert calls == 2  # one retry within the call, as for keys
        # During the backoff: refused without a call, for any token.
        again = await refused(authenticator, issuer.mint_opaque())
        assert isinstance(again, IntrospectionUnavailableError)
        assert issuer.introspection_requests == calls
        issuer.introspection_fault = None
        await asyncio.sleep(first.retry_after)  # type: ignore[attr-defined]
        user = await authenticator.authenticate(token)
    finally:
        await authenticator.aclose()
    assert user.subject == "user-1"


async def test_a_slow_endpoint_within_the_deadline_answers(issuer: LocalIssuer) -> None:
    issuer.introspection_delay = 0.4
    authenticator = authenticator_with(issuer, timeout=2)
    try:
        user = await authenticator.authenticate(issuer.mint_opaque())
    finally:
        await authenticator.aclose()
    assert user.subject == "user-1"


async def test_a_slower_endpoint_is_cut_off_at_the_deadline(issuer: LocalIssuer) -> None:
    issuer.introspection_delay = 5
    authenticator = authenticator_with(issuer, timeout=0.5)
    started = time.monotonic()
    try:
        error = await refused(authenticator, issuer.mint_opaque())
    finally:
        await authenticator.aclose()
    assert isinstance(error, IntrospectionUnavailableError)
    assert "within 0.5 s" in error.detail
    assert time.monotonic() - started < 3


async def test_discovery_failure_is_unavailable(issuer: LocalIssuer) -> None:
    issuer.metadata_fault = "status:500"
    authenticator = Authenticator.from_config(config(issuer))
    try:
        error = await refused(authenticator, issuer.mint_opaque())
    finally:
        await authenticator.aclose()
    assert isinstance(error, IntrospectionUnavailableError)


# -- token_format="auto" ---------------------------------------------------------------------------


async def test_auto_verifies_jwts_locally_and_introspects_the_rest(issuer: LocalIssuer) -> None:
    authenticator = Authenticator.from_config(config(issuer, token_format="auto"))
    try:
        jwt_user = await authenticator.authenticate(issuer.mint(subject="jay"))
        opaque_user = await authenticator.authenticate(issuer.mint_opaque(subject="opal"))
        assert issuer.introspection_requests == 1
        # A JWT that fails is refused as a JWT: never handed to the introspection endpoint.
        forged = await refused(authenticator, issuer.mint_untrusted())
        assert isinstance(forged, InvalidSignatureError)
        assert issuer.introspection_requests == 1
        # Three dot-separated segments are a JWT by shape: refused locally when they do not
        # parse, never introspected.
        odd = await refused(authenticator, "a.b.c")
        assert isinstance(odd, MalformedTokenError)
        assert issuer.introspection_requests == 1
    finally:
        await authenticator.aclose()
    assert (jwt_user.subject, opaque_user.subject) == ("jay", "opal")


# -- configuration ---------------------------------------------------------------------------------


def test_configuration_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "ISSUER": "https://auth.example.com",
        "AUDIENCE": AUDIENCE,
        "TOKEN_FORMAT": "auto",
        "INTROSPECTION_ENDPOINT": "https://auth.example.com/introspect",
        "CLIENT_ID": "rs",
        "CLIENT_SECRET": "hunter2-secret",
        "CLIENT_AUTH_METHOD": "client_secret_post",
        "INTROSPECTION_CACHE_TTL": "30",
        "INTROSPECTION_REQUIRE_AUDIENCE": "false",
    }.items():
        monkeypatch.setenv("MCP_OAUTH2_" + name, value)
    loaded = OAuth2Config()
    assert loaded.token_format == "auto"
    assert loaded.client_auth_method == "client_secret_post"
    assert loaded.introspection_cache_ttl == 30
    assert loaded.introspection_require_audience is False
    assert loaded.client_secret is not None
    assert loaded.client_secret.get_secret_value() == "hunter2-secret"
    assert "hunter2" not in repr(loaded) + str(loaded.model_dump())


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"token_format": "opaque"}, "MCP_OAUTH2_CLIENT_ID"),
        (
            {"token_format": "opaque", "client_id": "rs"},
            "MCP_OAUTH2_CLIENT_SECRET",
        ),
        (
            {"introspection_endpoint": "https://auth.example.com/introspect"},
            "MCP_OAUTH2_TOKEN_FORMAT",
        ),
        ({"token_format": "opaque-ish"}, "token_format"),
        (
            {
                "token_format": "opaque",
                "client_id": "rs",
                "client_secret": "hunter2-secret",
                "introspection_endpoint": "http://auth.example.com/introspect",
            },
            "plain http",
        ),
        (
            {
                "token_format": "auto",
                "issuer": ["https://a.example.com", "https://b.example.com"],
                "client_id": "rs",
                "client_secret": "hunter2-secret",
            },
            "MCP_OAUTH2_INTROSPECTION_ENDPOINT",
        ),
    ],
)
def test_configuration_errors(settings: dict[str, Any], message: str) -> None:
    given = {"issuer": ["https://auth.example.com"], "audience": [AUDIENCE], **settings}
    with pytest.raises(ValidationError) as caught:
        OAuth2Config.model_validate(given)
    assert message in str(caught.value)
    assert "hunter2" not in str(caught.value)


async def test_a_refused_admission_still_leaves_the_answer_for_others(
    issuer: LocalIssuer, authenticator: Authenticator
) -> None:
    """The request whose call fetched the answer is admitted in the same native call as the
    answer is checked; when that admission refuses it (a scope it lacks, a DPoP-bound token sent
    as a bearer token), the answer is still the token's, kept for the next request."""
    scoped = issuer.mint_opaque(scopes=["read"])
    needs_write = ScopeRules({}, ["write"])
    with pytest.raises(InsufficientScopeError):
        await authenticator.authorize(b"Bearer " + scoped.encode(), needs_write)
    admitted = await authenticator.authorize(b"Bearer " + scoped.encode(), ScopeRules({}, []))
    assert admitted is not None and admitted[1] == ("read",)
    bound = issuer.mint_opaque(jkt=DPoPKey().thumbprint)
    for _ in range(2):
        with pytest.raises(DPoPRequiredError):
            await authenticator.authorize(b"Bearer " + bound.encode(), ScopeRules({}, []))
    assert issuer.introspection_requests == 2  # one per token
