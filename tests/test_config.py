"""OAuth2Config from arguments and MCP_OAUTH2_* environment variables."""

from __future__ import annotations

import os
from pathlib import Path

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


REQUIRED_MESSAGES = {
    "issuer": "issuer (MCP_OAUTH2_ISSUER) is required, e.g. "
    "MCP_OAUTH2_ISSUER=https://auth.example.com",
    "audience": "audience (MCP_OAUTH2_AUDIENCE) is required, e.g. "
    "MCP_OAUTH2_AUDIENCE=https://mcp.example.com/mcp",
}


def required_problems(error: ValidationError) -> dict[str, str]:
    return {str(e["loc"][0]): str(e["msg"]).removeprefix("Value error, ") for e in error.errors()}


@pytest.fixture
def no_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No MCP_OAUTH2_* variable, in an empty working directory (returned)."""
    for name in list(os.environ):
        if name.upper().startswith("MCP_OAUTH2_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.usefixtures("no_settings")
def test_issuer_and_audience_are_required_and_the_error_teaches() -> None:
    """A missing required setting names the field, its variable and a valid example, like
    every other error (not pydantic's bare "Field required")."""
    with pytest.raises(ValidationError) as caught:
        OAuth2Config()
    assert required_problems(caught.value) == REQUIRED_MESSAGES
    assert "Field required" not in str(caught.value)
    with pytest.raises(ValidationError) as caught:
        OAuth2Config(issuer=ISSUER)
    assert required_problems(caught.value) == {"audience": REQUIRED_MESSAGES["audience"]}
    for given in ({}, {"issuer": None, "audience": None}):
        with pytest.raises(ValidationError) as caught:
            OAuth2Config.model_validate(given)
        assert required_problems(caught.value) == REQUIRED_MESSAGES
    assert OAuth2Config.model_fields["issuer"].is_required()


def test_a_dot_env_file_is_not_read_and_the_error_says_so(no_settings: Path) -> None:
    """The library reads the process environment only; a ./.env with the missing setting gets
    a note saying how to load it."""
    (no_settings / ".env").write_text(
        f"MCP_OAUTH2_ISSUER={ISSUER}\nMCP_OAUTH2_AUDIENCE={AUDIENCE}\n"
    )
    with pytest.raises(ValidationError) as caught:
        OAuth2Config()
    note = (
        "; ./.env sets {}, but mcp-oauth2 reads the process environment only: start the "
        "server with `uvicorn --env-file .env ...` (or export the variables)"
    )
    assert required_problems(caught.value) == {
        field: message + note.format(f"MCP_OAUTH2_{field.upper()}")
        for field, message in REQUIRED_MESSAGES.items()
    }


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


ENTRA_CLIENT_ID = "8f5c1a2b-3d4e-4f60-9a7b-0c1d2e3f4a5b"


def test_an_entra_client_id_guid_is_an_audience_and_the_resource_stays_a_url() -> None:
    config = OAuth2Config(
        issuer=ISSUER, audience=ENTRA_CLIENT_ID, resource="https://mcp.example.com/mcp"
    )
    assert config.audience == (ENTRA_CLIENT_ID,)
    assert config.resource_uri == "https://mcp.example.com/mcp"
    assert config.token_validator().audiences == (ENTRA_CLIENT_ID,)
    # The RFC 9728 resource defaults to the first audience: a GUID cannot be it.
    with pytest.raises(ValidationError) as caught:
        OAuth2Config(issuer=ISSUER, audience=ENTRA_CLIENT_ID)
    assert "MCP_OAUTH2_RESOURCE" in str(caught.value)
    with pytest.raises(ValidationError):
        OAuth2Config(issuer=ISSUER, audience=AUDIENCE, resource=ENTRA_CLIENT_ID)
    mixed = OAuth2Config(issuer=ISSUER, audience=[AUDIENCE, ENTRA_CLIENT_ID.upper()])
    assert mixed.resource_uri == AUDIENCE


@pytest.mark.parametrize("audience", ["api://mcp-server", "api://" + ENTRA_CLIENT_ID])
def test_an_application_id_uri_is_an_audience_and_the_resource_stays_a_url(audience: str) -> None:
    # Entra ID v1.0 tokens carry the application ID URI, by default api://...
    config = OAuth2Config(issuer=ISSUER, audience=audience, resource="https://mcp.example.com/mcp")
    assert config.token_validator().audiences == (audience,)
    assert config.resource_uri == "https://mcp.example.com/mcp"
    with pytest.raises(ValidationError) as caught:
        OAuth2Config(issuer=ISSUER, audience=audience)
    assert "MCP_OAUTH2_RESOURCE" in str(caught.value)


@pytest.mark.parametrize(
    "audience",
    [
        "api://",  # no name
        "api://mcp server",  # white space
        "api://mcp#x",  # a fragment
        "1example23456789abcdefghij",  # a Cognito app client ID
        "123-abc.apps.googleusercontent.com",  # a Google client ID
        "mcp.example.com/mcp",  # a URL without its scheme
        "8f5c1a2b-3d4e-4f60-9a7b-0c1d2e3f4a5",  # one digit short of a GUID
        "{8f5c1a2b-3d4e-4f60-9a7b-0c1d2e3f4a5b}",
    ],
)
def test_other_bare_audiences_are_still_refused(audience: str) -> None:
    with pytest.raises(ValidationError) as caught:
        OAuth2Config(issuer=ISSUER, audience=audience, resource="https://mcp.example.com/mcp")
    assert "GUID" in str(caught.value) and "MCP_OAUTH2_AUDIENCE" in str(caught.value)
