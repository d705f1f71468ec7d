"""OAuth2Config from arguments and MCP_OAUTH2_* environment variables."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from mcp_oauth2 import KeySet, MissingClaimError, OAuth2Config
from token_factory import AUDIENCE, ISSUER, NOW, jwks_for, make_claims, mint


def test_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_OAUTH2_ISSUER", f"{ISSUER}, https://second.example.com")
    monkeypatch.setenv("MCP_OAUTH2_AUDIENCE", AUDIENCE)
    monkeypatch.setenv("MCP_OAUTH2_ALGORITHMS", '["ES256", "EdDSA"]')
    monkeypatch.setenv("MCP_OAUTH2_LEEWAY", "30")
    monkeypatch.setenv("MCP_OAUTH2_REQUIRED_SCOPES", "mcp:tools")
    monkeypatch.setenv("MCP_OAUTH2_SCOPE_IMPLICATIONS", '{"mcp:admin": ["mcp:tools"]}')
    monkeypatch.setenv("MCP_OAUTH2_EXEMPT_ROUTES", "/health,/public/*,OPTIONS *")
    monkeypatch.setenv("MCP_OAUTH2_JWKS_MAX_AGE", "300")
    monkeypatch.setenv("MCP_OAUTH2_JWKS_PREFETCH", "false")
    monkeypatch.setenv("MCP_OAUTH2_RESOURCE_NAME", "Demo")
    config = OAuth2Config()
    assert config.issuer == (ISSUER, "https://second.example.com")
    assert config.audience == (AUDIENCE,)
    assert config.algorithms == ("ES256", "EdDSA")
    assert config.leeway == 30
    assert config.required_scopes == ("mcp:tools",)
    assert config.scope_implications == {"mcp:admin": ("mcp:tools",)}
    assert config.exempt_routes == ("/health", "/public/*", "OPTIONS *")
    assert config.cache_settings().max_age == 300
    assert config.jwks_prefetch is False
    assert config.resource_uri == AUDIENCE
    assert config.token_validator().leeway == 30


def test_defaults() -> None:
    config = OAuth2Config(issuer=ISSUER, audience=AUDIENCE)
    assert config.algorithms == ("RS256", "ES256")
    assert config.leeway == 60
    assert config.required_claims == ("exp", "iss", "aud", "sub")
    assert config.token_validator().required_claims == ("exp", "iss", "aud", "sub")
    assert config.jwks_uri is None
    assert config.jwks_prefetch is True
    assert config.cache_settings().cooldown == 30


def test_every_jwks_setting_reaches_the_key_cache() -> None:
    values = {
        "jwks_max_age": 301.0,
        "jwks_min_max_age": 61.0,
        "jwks_max_max_age": 86_401.0,
        "jwks_max_stale": 3_601.0,
        "jwks_cooldown": 31.0,
        "jwks_timeout": 6.0,
        "jwks_max_bytes": 65_537,
        "jwks_retries": 3,
    }
    config = OAuth2Config.model_validate({"issuer": ISSUER, "audience": AUDIENCE, **values})
    settings = config.cache_settings()
    assert {name: getattr(settings, name.removeprefix("jwks_")) for name in values} == values
    # Every jwks_* field but the prefetch switch is a CacheSettings knob of the same name.
    knobs = {name for name in OAuth2Config.model_fields if name.startswith("jwks_")}
    assert knobs - {"jwks_uri", "jwks_prefetch"} == set(values)


@pytest.mark.parametrize(
    ("env", "value", "needles"),
    [
        ("MCP_OAUTH2_ISSUER", "http://auth.example.com", ["issuer", "MCP_OAUTH2_ISSUER", "https"]),
        ("MCP_OAUTH2_AUDIENCE", "", ["audience", "MCP_OAUTH2_AUDIENCE", "e.g."]),
        ("MCP_OAUTH2_JWKS_URI", "http://10.0.0.1/jwks", ["jwks_uri", "MCP_OAUTH2_JWKS_URI"]),
        ("MCP_OAUTH2_REQUIRED_SCOPES", 'a"b', ["required_scopes", "MCP_OAUTH2_REQUIRED_SCOPES"]),
        ("MCP_OAUTH2_EXEMPT_ROUTES", "/*", ["exempt_routes", "every path"]),
        ("MCP_OAUTH2_SCOPE_IMPLICATIONS", "{not json", ["MCP_OAUTH2_SCOPE_IMPLICATIONS"]),
        ("MCP_OAUTH2_ALGORITHMS", "HS256", ["never accepted", "MCP_OAUTH2_"]),
        ("MCP_OAUTH2_LEEWAY", "-5", ["leeway"]),
        ("MCP_OAUTH2_REQUIRED_CLAIMS", '["exp", ""]', ["required_claims", "MCP_OAUTH2_REQUIRED"]),
        ("MCP_OAUTH2_JWKS_TIMEOUT", "0", ["timeout", "MCP_OAUTH2_JWKS_"]),
    ],
)
def test_errors_name_the_field_and_variable(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, needles: list[str]
) -> None:
    monkeypatch.setenv("MCP_OAUTH2_ISSUER", ISSUER)
    monkeypatch.setenv("MCP_OAUTH2_AUDIENCE", AUDIENCE)
    monkeypatch.setenv(env, value)
    with pytest.raises(ValidationError) as caught:
        OAuth2Config()
    message = str(caught.value)
    for needle in needles:
        assert needle in message, (needle, message)


def test_issuer_and_audience_are_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MCP_OAUTH2_ISSUER", raising=False)
    monkeypatch.delenv("MCP_OAUTH2_AUDIENCE", raising=False)
    with pytest.raises(ValidationError) as caught:
        OAuth2Config()
    assert {e["loc"][0] for e in caught.value.errors()} == {"issuer", "audience"}


def test_loopback_http_is_allowed() -> None:
    config = OAuth2Config(issuer="http://127.0.0.1:9000", audience="http://localhost:8000/mcp")
    assert config.issuer == ("http://127.0.0.1:9000",)


def test_unknown_settings_are_refused() -> None:
    with pytest.raises(ValidationError):
        OAuth2Config(issuer=ISSUER, audience=AUDIENCE, audience_check=False)  # type: ignore[call-arg]


def test_frozen() -> None:
    config = OAuth2Config(issuer=ISSUER, audience=AUDIENCE)
    with pytest.raises(ValidationError):
        config.leeway = 5  # type: ignore[misc]


@pytest.mark.parametrize("route", ["GET *", "POST *", "*", "DELETE *"])
def test_star_exempts_only_options(monkeypatch: pytest.MonkeyPatch, route: str) -> None:
    monkeypatch.setenv("MCP_OAUTH2_ISSUER", ISSUER)
    monkeypatch.setenv("MCP_OAUTH2_AUDIENCE", AUDIENCE)
    monkeypatch.setenv("MCP_OAUTH2_EXEMPT_ROUTES", f"/health,{route}")
    with pytest.raises(ValidationError) as caught:
        OAuth2Config()
    message = str(caught.value)
    assert "MCP_OAUTH2_EXEMPT_ROUTES" in message
    assert "only 'OPTIONS *'" in message
    config = OAuth2Config(issuer=ISSUER, audience=AUDIENCE, exempt_routes=["OPTIONS *"])
    assert config.exempt_routes == ("OPTIONS *",)


@pytest.mark.parametrize(
    "url",
    [
        "http://auth.localhost:9000",
        "http://localhost.:9000",
        "http://evil.example.com.localhost",
        "http://localhost.example.com",
    ],
)
def test_plain_http_only_to_literal_loopback_or_localhost(url: str) -> None:
    with pytest.raises(ValidationError, match="plain http"):
        OAuth2Config(issuer=url, audience=AUDIENCE)
    with pytest.raises(ValidationError, match="plain http"):
        OAuth2Config(issuer=ISSUER, audience=AUDIENCE, jwks_uri=url + "/jwks")
    for allowed in ("http://localhost:9000", "http://127.0.0.2:9000", "http://[::1]:9000"):
        assert OAuth2Config(issuer=allowed, audience=AUDIENCE).issuer == (allowed,)


def test_required_claims_reach_the_validator(monkeypatch: pytest.MonkeyPatch) -> None:
    # `sub` is required by default (RFC 9068); a deployment whose issuer omits it can say so.
    keys = KeySet.from_jwks(jwks_for(["ec-256"]))
    without_sub = mint("ES256", make_claims(drop=["sub"]))
    default = OAuth2Config(issuer=ISSUER, audience=AUDIENCE, algorithms=["ES256"])
    with pytest.raises(MissingClaimError, match="'sub'"):
        default.token_validator().validate(without_sub, keys, now=NOW)
    monkeypatch.setenv("MCP_OAUTH2_ISSUER", ISSUER)
    monkeypatch.setenv("MCP_OAUTH2_AUDIENCE", AUDIENCE)
    monkeypatch.setenv("MCP_OAUTH2_ALGORITHMS", "ES256")
    monkeypatch.setenv("MCP_OAUTH2_REQUIRED_CLAIMS", "exp,jti")
    config = OAuth2Config()
    assert config.required_claims == ("exp", "jti")
    validator = config.token_validator()
    assert validator.required_claims == ("exp", "jti")
    assert validator.validate(without_sub, keys, now=NOW).subject is None
    # `iss` and `aud` stay required whatever the list says.
    with pytest.raises(MissingClaimError, match="'aud'"):
        validator.validate(mint("ES256", make_claims(drop=["aud"])), keys, now=NOW)


@pytest.mark.parametrize(
    ("field", "example"),
    [
        ("issuer", "https://auth.example.com"),
        ("jwks_uri", "https://auth.example.com/jwks"),
        ("audience", "https://mcp.example.com/mcp"),
        ("resource", "https://mcp.example.com/mcp"),
        ("resource_documentation", "https://mcp.example.com/docs"),
    ],
)
def test_each_url_setting_is_refused_with_an_example_of_its_own(field: str, example: str) -> None:
    settings = {"issuer": ISSUER, "audience": AUDIENCE, field: "http://10.0.0.1/x"}
    with pytest.raises(ValidationError) as caught:
        OAuth2Config.model_validate(settings)
    message = str(caught.value)
    assert "plain http:// for a non-loopback host" in message
    assert f"e.g. MCP_OAUTH2_{field.upper()}={example}" in message
