"""``OAuth2Config``: everything the middleware needs, from arguments or ``MCP_OAUTH2_*`` variables.

List settings accept, from the environment, either a JSON array or a comma-separated string
(``MCP_OAUTH2_ISSUER=https://a.example,https://b.example``); ``scope_implications`` is a JSON
object. Every error names the field, its environment variable, and a valid example, a missing
required setting included. Only the process environment is read, never a ``.env`` file (the
``mcp-oauth2`` command reads one only when given ``--env-file``, as ``uvicorn --env-file`` does).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from dotenv import dotenv_values
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from mcp_oauth2._cache_settings import CacheSettings
from mcp_oauth2._rust import TokenValidator
from mcp_oauth2._url_rules import (
    require_audience,
    require_fetchable_url,
    require_identifier_url,
)

__all__ = ["OAuth2Config"]

ENV_PREFIX = "MCP_OAUTH2_"
StringList = Annotated[tuple[str, ...], NoDecode]
# RFC 6749 section 3.3 scope-token: also keeps WWW-Authenticate values free of quotes.
SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+$")
METHOD = re.compile(r"^[A-Z]+$")
# A readiness route: an absolute path of printable ASCII, no wildcard, query or fragment.
PROBE_PATH = re.compile(r"^/[\x21-\x22\x24-\x29\x2b-\x3e\x40-\x7e]+$")
WELL_KNOWN = "/.well-known/"


def _env(field: str) -> str:
    return ENV_PREFIX + field.upper()


# Each URL setting: its rule (keys are fetched from some; the others only name something) and a
# valid example for the error message.
_URL_SETTINGS: dict[str, tuple[Callable[[str, str], str], str]] = {
    "issuer": (require_fetchable_url, "https://auth.example.com"),
    "jwks_uri": (require_fetchable_url, "https://auth.example.com/jwks"),
    "audience": (require_audience, "https://mcp.example.com/mcp"),
    "resource": (require_identifier_url, "https://mcp.example.com/mcp"),
    "resource_documentation": (require_identifier_url, "https://mcp.example.com/docs"),
    "introspection_endpoint": (require_fetchable_url, "https://auth.example.com/introspect"),
}
# The introspection settings that name a client, and the token formats that introspect.
_INTROSPECTING = ("opaque", "auto")
_REQUIRED = ("issuer", "audience")
_ENV_FILE = Path(".env")


def _unread_env_file_note(variable: str) -> str:
    """When ``./.env`` sets ``variable``: a note that no ``.env`` file is read (the process
    environment is, as loaded by ``uvicorn --env-file``, ``docker run --env-file``, ...)."""
    try:
        names = {name.upper() for name in dotenv_values(_ENV_FILE)} if _ENV_FILE.is_file() else ()
    except (OSError, UnicodeDecodeError):
        return ""
    if variable not in names:
        return ""
    return (
        f"; ./.env sets {variable}, but mcp-oauth2 reads the process environment only: "
        "start the server with `uvicorn --env-file .env ...` (or export the variables)"
    )


def _check_url(name: str, url: str) -> None:
    rule, example = _URL_SETTINGS[name]
    try:
        rule(url, name)
    except ValueError as error:
        raise ValueError(f"{error} ({_env(name)}), e.g. {_env(name)}={example}") from None


def _split(value: Any) -> Any:
    """A JSON array, a comma-separated string, or a sequence: as a tuple of stripped strings."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            value = json.loads(text)
        else:
            return tuple(part.strip() for part in text.split(",") if part.strip())
    if isinstance(value, list | tuple | set | frozenset):
        return tuple(value)
    return value


class OAuth2Config(BaseSettings):
    """Configuration of ``OAuth2Middleware``.

    Required: ``issuer`` and ``audience`` (this server's canonical resource URI, which the MCP
    specification requires tokens to be issued for; audience checking cannot be switched off).
    """

    # hide_input_in_errors: a model-level error would otherwise echo every setting given, the
    # client secret included; each message names its setting and variable instead.
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        frozen=True,
        extra="forbid",
        validate_default=True,
        hide_input_in_errors=True,
    )

    issuer: StringList = Field(description="Trusted issuer(s); `iss` must equal one exactly.")
    audience: StringList = Field(
        description="This server's canonical resource URI(s), or an application ID (an Entra ID "
        "client ID as a GUID, an `api://` application ID URI); `aud` must contain one."
    )
    jwks_uri: str | None = Field(
        None, description="Where the keys are; discovered from the issuer's metadata if unset."
    )
    algorithms: StringList = Field(("RS256", "ES256"), description="Accepted JWS algorithms.")
    leeway: int = Field(60, description="Clock skew allowed for exp, nbf and iat, in seconds.")
    required_claims: StringList = Field(
        ("exp", "iss", "aud", "sub"),
        description="Claims every token must carry (`iss` and `aud` always are).",
    )
    required_scopes: StringList = Field((), description="Scopes every request needs.")
    scope_implications: Annotated[dict[str, tuple[str, ...]], NoDecode] = Field(
        default_factory=dict,
        description='A broader scope grants narrower ones: {"mcp:admin": ["mcp:tools"]}.',
    )
    exempt_routes: StringList = Field(
        (),
        description="Paths served without a token: exact ('/health'), prefix globs "
        "('/public/*'), optionally per method ('OPTIONS /mcp', 'OPTIONS *').",
    )
    accepted_types: StringList | None = Field(
        None, description="If set, the token header `typ` must be one of these (e.g. at+jwt)."
    )
    max_token_bytes: int = Field(8192, description="Longer tokens are refused unread.")
    jwks_max_age: float = Field(600.0, description="Key freshness without Cache-Control.")
    jwks_min_max_age: float = Field(60.0, description="Lower bound for Cache-Control max-age.")
    jwks_max_max_age: float = Field(86_400.0, description="Upper bound for Cache-Control max-age.")
    jwks_max_stale: float = Field(3_600.0, description="Serve expired keys this long in outages.")
    jwks_cooldown: float = Field(
        30.0, description="How long a key id a fetch showed absent is refused without a refetch."
    )
    jwks_timeout: float = Field(5.0, description="Total deadline of one key refresh.")
    jwks_max_bytes: int = Field(65_536, description="Largest JWKS or metadata document.")
    jwks_retries: int = Field(2, description="Retries within a refresh (connection errors, 5xx).")
    jwks_prefetch: bool = Field(True, description="Fetch keys when the application starts.")
    telemetry: bool = Field(
        False,
        description="Record OpenTelemetry metrics and spans (the `opentelemetry` extra).",
    )
    readiness_path: str | None = Field(
        None,
        description="If set, the middleware answers a readiness probe there without a token: "
        "200 while usable keys are cached for every issuer, else 503.",
    )
    resource: str | None = Field(
        None, description="RFC 9728 `resource`; defaults to the first audience."
    )
    authorization_servers: StringList | None = Field(
        None, description="RFC 9728 `authorization_servers`; defaults to the issuer(s)."
    )
    scopes_supported: StringList | None = Field(
        None, description="RFC 9728 `scopes_supported` (also used for `scope` on a 401)."
    )
    resource_name: str | None = Field(None, description="RFC 9728 `resource_name`.")
    resource_documentation: str | None = Field(
        None, description="RFC 9728 `resource_documentation` (a URL)."
    )
    token_format: Literal["jwt", "opaque", "auto"] = Field(
        "jwt",
        description="`jwt`: verify JWTs locally; `opaque`: introspect every token (RFC 7662); "
        "`auto`: verify JWTs locally, introspect every other token.",
    )
    introspection_endpoint: str | None = Field(
        None,
        description="RFC 7662 endpoint; discovered from the issuer's metadata "
        "(`introspection_endpoint`) if unset.",
    )
    introspection_client_id: str | None = Field(
        None, description="This server's client id at the introspection endpoint."
    )
    introspection_client_secret: SecretStr | None = Field(
        None, description="Its client secret (never logged nor shown in errors)."
    )
    introspection_auth_method: Literal["client_secret_basic", "client_secret_post"] = Field(
        "client_secret_basic", description="How the client authenticates to the endpoint."
    )
    introspection_require_audience: bool = Field(
        True,
        description="Refuse an introspection response without `aud` (one with an `aud` must "
        "always name this server).",
    )
    introspection_cache_ttl: float = Field(
        60.0,
        ge=0,
        le=3_600,
        description="Longest reuse of an active result (never past the token's `exp`).",
    )
    introspection_negative_ttl: float = Field(
        10.0, ge=0, le=3_600, description="Reuse of an inactive (or refused) result."
    )
    introspection_cache_size: int = Field(
        10_000, ge=0, le=10_000_000, description="Results kept in memory (least recently used out)."
    )
    introspection_timeout: float = Field(
        5.0, ge=0.1, le=120, description="Total deadline of one introspection call."
    )
    introspection_max_bytes: int = Field(
        16_384, ge=1_024, le=1_048_576, description="Largest introspection response."
    )
    introspection_max_pending: int = Field(
        128,
        ge=1,
        le=100_000,
        description="Distinct tokens admitted for introspection at once (16 in flight, the rest "
        "waiting for a connection); beyond that, 503 without a call.",
    )

    @model_validator(mode="before")
    @classmethod
    def _required_given(cls, data: Any) -> Any:
        # A missing required setting is validated as an empty one, so that its error teaches
        # like every other (the field, its variable, an example) instead of pydantic's bare
        # "Field required".
        if isinstance(data, dict):
            missing = [name for name in _REQUIRED if data.get(name) is None]
            if missing:
                data = {**data, **dict.fromkeys(missing, ())}
        return data

    @field_validator(
        "issuer",
        "audience",
        "algorithms",
        "required_claims",
        "required_scopes",
        "exempt_routes",
        "accepted_types",
        "authorization_servers",
        "scopes_supported",
        mode="before",
    )
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _split(value)

    @field_validator("scope_implications", mode="before")
    @classmethod
    def _implications_json(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                raise ValueError(
                    f"scope_implications ({_env('scope_implications')}) must be a JSON object, "
                    f'e.g. {_env("scope_implications")}=\'{{"mcp:admin": ["mcp:tools"]}}\''
                ) from None
        return value

    @field_validator("issuer", "audience")
    @classmethod
    def _required_urls(cls, value: tuple[str, ...], info: Any) -> tuple[str, ...]:
        name = info.field_name
        if not value:
            example = _URL_SETTINGS[name][1]
            raise ValueError(
                f"{name} ({_env(name)}) is required, e.g. {_env(name)}={example}"
                + _unread_env_file_note(_env(name))
            )
        for url in value:
            _check_url(name, url)
        return value

    @field_validator("jwks_uri", "resource", "resource_documentation", "introspection_endpoint")
    @classmethod
    def _optional_url(cls, value: str | None, info: Any) -> str | None:
        if value is not None:
            _check_url(info.field_name, value)
        return value

    @field_validator("required_claims")
    @classmethod
    def _claim_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        env = _env("required_claims")
        if any(not name for name in value):
            raise ValueError(
                f"required_claims ({env}) holds an empty name; list claim names, "
                f"e.g. {env}=exp,iss,aud,sub"
            )
        return value

    @field_validator("required_scopes", "scopes_supported")
    @classmethod
    def _scopes(cls, value: tuple[str, ...] | None, info: Any) -> tuple[str, ...] | None:
        for listed in value or ():
            if not SCOPE_TOKEN.match(listed):
                name = info.field_name
                raise ValueError(
                    f"{name} ({_env(name)}) holds {listed[:60]!r}, which is not a scope token "
                    f"(printable ASCII, no spaces, quotes or backslashes), e.g. "
                    f"{_env(name)}=mcp:tools,mcp:read"
                )
        return value

    @field_validator("scope_implications")
    @classmethod
    def _implied(cls, value: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        for broad, narrow in value.items():
            for named in (broad, *narrow):
                if not SCOPE_TOKEN.match(named):
                    raise ValueError(
                        f"scope_implications ({_env('scope_implications')}) holds "
                        f"{named[:60]!r}, which is not a scope token"
                    )
        return value

    @field_validator("exempt_routes")
    @classmethod
    def _routes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        env = _env("exempt_routes")
        for route in value:
            method, _, path = route.rpartition(" ")
            method = method.strip()
            if method and not METHOD.match(method):
                raise ValueError(
                    f"exempt_routes ({env}): {route!r} has an invalid method; "
                    f"use e.g. {env}='/health,OPTIONS /mcp'"
                )
            if path == "*":
                if method == "OPTIONS":
                    continue  # every CORS preflight: OPTIONS never reaches a protected handler
                raise ValueError(
                    f"exempt_routes ({env}): {route!r} would exempt every path"
                    f"{' for ' + method if method else ''}, the MCP endpoint included; only "
                    f"'OPTIONS *' may use '*', e.g. {env}='/health,OPTIONS *'"
                )
            if not path.startswith("/") or "*" in path[:-1] or path.endswith("**"):
                raise ValueError(
                    f"exempt_routes ({env}): {route!r} must be a path starting with '/', "
                    f"optionally ending in '/*', e.g. {env}='/health,/public/*'"
                )
            if path == "/*":
                raise ValueError(
                    f"exempt_routes ({env}): {route!r} would exempt every path; list the "
                    f"public paths instead, e.g. {env}='/health,/public/*'"
                )
        return value

    @field_validator("readiness_path")
    @classmethod
    def _probe_path(cls, value: str | None) -> str | None:
        if value is not None and (not PROBE_PATH.match(value) or value.startswith(WELL_KNOWN)):
            env = _env("readiness_path")
            raise ValueError(
                f"readiness_path ({env}) must be a path below '/' without '*', '?' or '#', "
                f"outside /.well-known/, e.g. {env}=/ready"
            )
        return value

    @model_validator(mode="after")
    def _resource_is_a_url(self) -> OAuth2Config:
        # The RFC 9728 resource defaults to the first audience, which may be a GUID (Entra ID).
        if self.resource is None:
            try:
                require_identifier_url(self.audience[0], "the first audience")
            except ValueError as error:
                env = _env("resource")
                raise ValueError(
                    f"resource ({env}) is required when the first audience is not a URL "
                    f"({error}): it is this server's public URL for RFC 9728, "
                    f"e.g. {env}=https://mcp.example.com/mcp"
                ) from None
        return self

    @model_validator(mode="after")
    def _introspection_client(self) -> OAuth2Config:
        if self.token_format not in _INTROSPECTING:
            given = [
                name
                for name in ("introspection_endpoint", "introspection_client_id")
                if getattr(self, name) is not None
            ]
            if given:
                raise ValueError(
                    f"{', '.join(given)} set but token_format ({_env('token_format')}) is 'jwt', "
                    f"which never introspects; e.g. {_env('token_format')}=auto"
                )
            return self
        for name, example in (
            ("introspection_client_id", "mcp-server"),
            ("introspection_client_secret", "..."),
        ):
            value = getattr(self, name)
            text = value.get_secret_value() if isinstance(value, SecretStr) else value
            if not text:
                raise ValueError(
                    f"{name} ({_env(name)}) is required with token_format="
                    f"{self.token_format!r}: introspection (RFC 7662) needs an authenticated "
                    f"client, e.g. {_env(name)}={example}"
                )
        if self.introspection_endpoint is None and len(self.issuer) > 1:
            env = _env("introspection_endpoint")
            raise ValueError(
                f"introspection_endpoint ({env}) is required with several issuers (which one's "
                f"metadata would name it?), e.g. {env}=https://auth.example.com/introspect"
            )
        return self

    @model_validator(mode="after")
    def _checked_by_the_native_validator(self) -> OAuth2Config:
        # The native validator checks algorithms, leeway, sizes and scopes once more, with the
        # same rules it applies at runtime; name the environment variables in its message.
        try:
            self.token_validator()
        except ValueError as error:
            raise ValueError(f"{error} (see the {ENV_PREFIX}* variables)") from None
        try:
            self.cache_settings()
        except ValueError as error:
            raise ValueError(f"{error} (the {ENV_PREFIX}JWKS_* variables)") from None
        return self

    def token_validator(self) -> TokenValidator:
        """The native validator for this configuration (global scopes are checked separately,
        so that ``scope_implications`` apply)."""
        return TokenValidator(
            self.issuer,
            self.audience,
            algorithms=self.algorithms,
            leeway=self.leeway,
            required_claims=self.required_claims,
            accepted_types=self.accepted_types,
            max_token_bytes=self.max_token_bytes,
        )

    def cache_settings(self) -> CacheSettings:
        """The key caches' settings: each ``jwks_<name>`` setting is ``CacheSettings.<name>``."""
        given = {
            knob.name: getattr(self, "jwks_" + knob.name)
            for knob in dataclasses.fields(CacheSettings)
            if "jwks_" + knob.name in type(self).model_fields
        }
        return CacheSettings(**given)

    @property
    def resource_uri(self) -> str:
        return self.resource or self.audience[0]
