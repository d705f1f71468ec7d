"""``MCPTokenVerifier`` against a real key server: outages are logged, not only refused.

The SDK's ``TokenVerifier`` contract answers None for every failure, which the SDK turns into 401;
so a key-server outage would look like a run of bad tokens. The verifier logs it at WARNING, rate
limited per verifier.
"""

from __future__ import annotations

import logging

import pytest

from mcp_oauth2 import OAuth2Config
from mcp_oauth2.lowlevel import CacheSettings, JWKSCache, StaticKeys
from mcp_oauth2.mcp_sdk import OUTAGE_LOG_INTERVAL, MCPTokenVerifier
from mcp_oauth2.testing import LocalIssuer

pytestmark = pytest.mark.anyio

AUDIENCE = "https://mcp.example.com/mcp"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def outage_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r for r in caplog.records if r.name == "mcp_oauth2.mcp" and r.levelno == logging.WARNING
    ]


async def test_key_server_outage_is_logged_at_warning_rate_limited(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="mcp_oauth2")
    issuer = LocalIssuer(default_audience=AUDIENCE)
    clock = FakeClock()
    async with issuer.serve_async():
        config = OAuth2Config.model_validate({"issuer": [issuer.issuer], "audience": [AUDIENCE]})
        # Keys never fetched: every token meets an empty cache and a key server answering 503.
        issuer.fault = "status:503"
        cache = JWKSCache(
            jwks_uri=issuer.metadata()["jwks_uri"],
            settings=CacheSettings(timeout=1.0, retries=0),
            clock=clock,
        )
        verifier = MCPTokenVerifier(config, key_sources=cache, clock=clock)
        try:
            for _ in range(10):
                assert await verifier.verify_token(issuer.mint()) is None
            lines = outage_lines(caplog)
            assert len(lines) == 1
            assert "keys are unavailable" in lines[0].message and "401" in lines[0].message
            clock.now += OUTAGE_LOG_INTERVAL + 1
            assert await verifier.verify_token(issuer.mint()) is None
            lines = outage_lines(caplog)
            assert len(lines) == 2
            assert "9 more since the last line" in lines[1].message
            # Bad tokens with keys at hand are not an outage: no WARNING for them.
            issuer.fault = None
            clock.now += 120  # past any backoff
            assert await verifier.verify_token(issuer.mint(audience="https://other")) is None
            assert await verifier.verify_token(issuer.mint_expired()) is None
            assert len(outage_lines(caplog)) == 2
            assert await verifier.verify_token(issuer.mint()) is not None
        finally:
            await verifier.aclose()
        for record in caplog.records:  # and a log line never carries a token
            assert "eyJ" not in record.getMessage()


@pytest.mark.parametrize(
    "client_id",
    ["8f5c1a2b-3d4e-4f60-9a7b-0c1d2e3f4a5b", "api://8f5c1a2b-3d4e-4f60-9a7b-0c1d2e3f4a5b"],
)
async def test_an_entra_client_id_audience_gives_the_resource_url(client_id: str) -> None:
    issuer = LocalIssuer(issuer="https://login.example.com/tenant/v2.0")
    config = OAuth2Config(
        issuer=issuer.issuer, audience=client_id, resource="https://mcp.example.com/mcp"
    )
    verifier = MCPTokenVerifier(config, key_sources=StaticKeys(issuer.jwks()))
    accepted = await verifier.verify_token(issuer.mint(audience=client_id))
    assert accepted is not None
    # The SDK's validate_token_resource compares this with its resource_server_url.
    assert accepted.resource == "https://mcp.example.com/mcp"


async def test_an_introspection_outage_is_logged_as_one(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="mcp_oauth2")
    issuer = LocalIssuer(default_audience=AUDIENCE)
    async with issuer.serve_async():
        config = OAuth2Config.model_validate(
            {
                "issuer": [issuer.issuer],
                "audience": [AUDIENCE],
                "token_format": "opaque",
                "client_id": issuer.introspection_client_id,
                "client_secret": issuer.introspection_client_secret,
            }
        )
        issuer.introspection_fault = "status:503"
        verifier = MCPTokenVerifier(config)
        token = issuer.mint_opaque()
        try:
            assert await verifier.verify_token(token) is None
        finally:
            await verifier.aclose()
    (line,) = outage_lines(caplog)
    assert "introspection is unavailable" in line.message
    assert "introspection_unavailable" in line.message
    assert all(token not in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize(
    "token", ["a b", "tok\u00e9n", "two\nlines", "", "=abc", "x" * 9000, "a,b", 'q"uote']
)
async def test_a_token_not_shaped_as_a_bearer_token_is_never_introspected(token: str) -> None:
    """The middleware's shape rule (RFC 6750 b64token) holds here too: such a token is refused
    without a call to the introspection endpoint."""
    issuer = LocalIssuer(default_audience=AUDIENCE)
    async with issuer.serve_async():
        config = OAuth2Config.model_validate(
            {
                "issuer": [issuer.issuer],
                "audience": [AUDIENCE],
                "token_format": "opaque",
                "introspection_endpoint": issuer.introspection_endpoint,
                "client_id": issuer.introspection_client_id,
                "client_secret": issuer.introspection_client_secret,
            }
        )
        verifier = MCPTokenVerifier(config)
        try:
            assert await verifier.verify_token(token) is None
            assert await verifier.verify_token(issuer.mint_opaque(subject="ok")) is not None
        finally:
            await verifier.aclose()
        assert issuer.introspection_requests == 1  # only the well-formed token was asked about
