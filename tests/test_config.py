"""OAuth2Config from arguments and MCP_OAUTH2_* environment variables."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from mcp_oauth2 import OAuth2Config
from mcp_oauth2._config import EXAMPLES
from mcp_oauth2.errors import MissingClaimError
from mcp_oauth2.lowlevel import CacheSettings, KeySet
from token_factory import AUDIENCE, ISSUER, NOW, jwks_for, make_claims, mint


def test_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_OAUTH2_ISSUER", f"{ISSUER}, https://second.example.com")
    monkeypatch.setenv("MCP_OAUTH2_AUDIENCE", AUDIENCE)
    monkeypatch.setenv("MCP_OAUTH2_ALGORITHMS", '["ES256", "EdDSA"]')
    monkeypatch.setenv("MCP_OAUTH2_LEEWAY", "30")
    monkeypatch.setenv("MCP_OAUTH2_REQUIRED_SCOPES", "mcp:tools")
    monkeypatch.setenv("MCP_OAUTH2_SCOPE_IMPLICATIONS", '{"mcp:admin": ["mcp:tools"]}')
    monkeypatch.setenv("MCP_OAUTH2_EXEMPT_ROUTES", "/health,/public/*,OPTIONS *")
    monkeypatch.setenv("MCP_OAUTH2_JWKS_MAX_STALE", "120")
    monkeypatch.setenv("MCP_OAUTH2_RESOURCE_NAME", "Demo")
    config = OAuth2Config()
    assert config.issuer == (ISSUER, "https://second.example.com")
    assert config.audience == (AUDIENCE,)
    assert config.algorithms == ("ES256", "EdDSA")
    assert config.leeway == 30
    assert config.required_scopes == ("mcp:tools",)
    assert config.scope_implications == {"mcp:admin": ("mcp:tools",)}
    assert config.exempt_routes == ("/health", "/public/*", "OPTIONS *")
    assert config.cache_settings().max_stale == 120
    assert config.resource_uri == AUDIENCE
    assert config.token_validator().leeway == 30


def test_defaults() -> None:
    config = OAuth2Config(issuer=ISSUER, audience=AUDIENCE)
    assert config.algorithms == ("RS256", "ES256")
    assert config.leeway == 60
    assert config.required_claims == ("exp", "iss", "aud", "sub")
    assert config.token_validator().required_claims == ("exp", "iss", "aud", "sub")
    assert config.jwks_uri is None
    assert config.token_format == "jwt"
    assert config.cache_settings() == CacheSettings()


def test_every_jwks_setting_reaches_the_key_cache() -> None:
    values = {"jwks_min_max_age": 61.0, "jwks_max_stale": 3_601.0}
    config = OAuth2Config.model_validate({"issuer": ISSUER, "audience": AUDIENCE, **values})
    settings = config.cache_settings()
    assert {name: getattr(settings, name.removeprefix("jwks_")) for name in values} == values
    # Every jwks_* field but the key URL is a CacheSettings knob of the same name.
    knobs = {name for name in OAuth2Config.model_fields if name.startswith("jwks_")}
    assert knobs - {"jwks_uri"} == set(values)


# One value each setting refuses (as Python values: a string may be valid for a text setting).
BAD_VALUES: dict[str, object] = {
    "issuer": "http://auth.example.com",
    "audience": "not a url",
    "jwks_uri": "http://10.0.0.1/jwks",
    "algorithms": "HS256",
    "leeway": -5,
    "required_claims": ["exp", ""],
    "required_scopes": 'a"b',
    "scope_implications": "{not json",
    "roles_claims": "realm_access..roles",
    "exempt_routes": "/*",
    "anonymous_routes": "/*",
    "accepted_types": [],
    "jwks_min_max_age": -1,
    "jwks_max_stale": "an hour",
    "telemetry": "maybe",
    "readiness_path": "ready",
    "resource": "ftp://mcp.example.com",
    "authorization_servers": [1],
    "scopes_supported": 'a"b',
    "resource_name": 5,
    "resource_documentation": "not a url",
    "token_format": "xml",
    "introspection_endpoint": "http://10.0.0.1/introspect",
    "client_id": 5,
    "client_secret": 12345678,
    "client_auth_method": "private_key_jwt",
    "introspection_require_audience": "maybe",
    "introspection_cache_ttl": 99_999,
    "dpop": "on",
    "dpop_algorithms": "HS256",
    "dpop_max_age": 0,
    "dpop_nonce": "maybe",
    "dpop_nonce_secret": "short",
    "dpop_replay_store": "http://:12345678@redis:6379",
    "token_endpoint": "http://10.0.0.1/token",
    "delegated_tokens": "sometimes",
}


def test_bad_values_cover_every_setting() -> None:
    assert set(BAD_VALUES) == set(OAuth2Config.model_fields) == set(EXAMPLES)


@pytest.mark.parametrize("field", sorted(BAD_VALUES))
def test_every_error_names_the_field_its_variable_and_an_example(field: str) -> None:
    """One style for every setting, whatever rule refuses it: the field, its exact variable,
    what is wrong, and a valid example of that variable."""
    given = {"issuer": ISSUER, "audience": AUDIENCE, field: BAD_VALUES[field]}
    if field in ("introspection_endpoint", "client_id", "client_secret", "client_auth_method"):
        given.update(token_format="opaque", client_id="rs", client_secret="s3cret-value")
        given[field] = BAD_VALUES[field]
    with pytest.raises(ValidationError) as caught:
        OAuth2Config.model_validate(given)
    variable = "MCP_OAUTH2_" + field.upper()
    lines = str(caught.value).splitlines()
    line = next((line for line in lines if f"{field} ({variable}): " in line), None)
    assert line is not None, lines
    assert f"; e.g. {variable}={EXAMPLES[field]}" in line
    assert "12345678" not in str(caught.value)  # a secret's value is never shown


@pytest.mark.parametrize(
    ("env", "value"),
    [
        ("MCP_OAUTH2_LEEWAY", "soon"),
        ("MCP_OAUTH2_TELEMETRY", "maybe"),
        ("MCP_OAUTH2_TOKEN_FORMAT", "xml"),
        ("MCP_OAUTH2_ALGORITHMS", "HS256"),
        ("MCP_OAUTH2_SCOPE_IMPLICATIONS", "{not json"),
    ],
)
def test_errors_from_the_environment_read_the_same(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str
) -> None:
    monkeypatch.setenv("MCP_OAUTH2_ISSUER", ISSUER)
    monkeypatch.setenv("MCP_OAUTH2_AUDIENCE", AUDIENCE)
    monkeypatch.setenv(env, value)
    with pytest.raises(ValidationError) as caught:
        OAuth2Config()
    assert f"({env}): " in str(caught.value) and f"e.g. {env}=" in str(caught.value)


REQUIRED_MESSAGES = {
    "issuer": "issuer (MCP_OAUTH2_ISSUER): required; e.g. "
    "MCP_OAUTH2_ISSUER=https://auth.example.com",
    "audience": "audience (MCP_OAUTH2_AUDIENCE): required; e.g. "
    "MCP_OAUTH2_AUDIENCE=https://mcp.example.com/mcp",
}


def required_problems(error: ValidationError) -> dict[str, str]:
    """Each line of the error, by the setting it names."""
    lines = str(error).splitlines()[1:]
    problems = [line.strip().removeprefix("Value error, ").split(" [type=", 1)[0] for line in lines]
    return {line.split(" ", 1)[0]: line for line in problems if " (MCP_OAUTH2_" in line}


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
        " (./.env sets {}, but mcp-oauth2 reads the process environment only: start the "
        "server with `uvicorn --env-file .env ...`, or export the variables)"
    )
    assert required_problems(caught.value) == {
        field: message.replace(
            "required;", "required" + note.format(f"MCP_OAUTH2_{field.upper()}") + ";"
        )
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
