"""``OAuth2Config``: everything the middleware needs, from arguments or ``MCP_OAUTH2_*`` variables.

List settings accept, from the environment, either a JSON array or a comma-separated string
(``MCP_OAUTH2_ISSUER=https://a.example,https://b.example``); ``scope_implications`` is a JSON
object. Only the process environment is read, never a ``.env`` file (the ``mcp-oauth2`` command
reads one only when given ``--env-file``, as ``uvicorn --env-file`` does).

Every error, whatever found it (a rule here, pydantic's types, the native validator), reads the
same way: ``<field> (<variable>): <what is wrong>; e.g. <variable>=<a valid value>``, one line per
problem, with the example of ``EXAMPLES``; a missing required setting included.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Final, Literal
from urllib.parse import urlsplit

from dotenv import dotenv_values
from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from mcp_oauth2._cache_settings import CacheSettings
from mcp_oauth2._client_auth import ClientAuthMethod
from mcp_oauth2._rust import DPoPPolicy, TokenValidator
from mcp_oauth2._token_format import TokenFormat
from mcp_oauth2._url_rules import (
    require_audience,
    require_fetchable_url,
    require_identifier_url,
)

__all__ = ["ENV_PREFIX", "EXAMPLES", "OAuth2Config", "env_variable"]

ENV_PREFIX: Final = "MCP_OAUTH2_"
StringList = Annotated[tuple[str, ...], NoDecode]
# RFC 6749 section 3.3 scope-token: also keeps WWW-Authenticate values free of quotes.
SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+$")
METHOD = re.compile(r"^[A-Z]+$")
# A readiness route: an absolute path of printable ASCII, no wildcard, query or fragment.
PROBE_PATH = re.compile(r"^/[\x21-\x22\x24-\x29\x2b-\x3e\x40-\x7e]+$")
WELL_KNOWN = "/.well-known/"

EXAMPLES: Final[dict[str, str]] = {
    "issuer": "https://auth.example.com",
    "audience": "https://mcp.example.com/mcp",
    "jwks_uri": "https://auth.example.com/jwks",
    "algorithms": "RS256,ES256",
    "leeway": "60",
    "required_claims": "exp,iss,aud,sub",
    "required_scopes": "mcp:tools",
    "scope_implications": '\'{"mcp:admin": ["mcp:tools"]}\'',
    "roles_claims": "realm_access.roles,resource_access.mcp-server.roles",
    "exempt_routes": "'/health,OPTIONS *'",
    "anonymous_routes": "/mcp",
    "accepted_types": "at+jwt",
    "jwks_min_max_age": "60",
    "jwks_max_stale": "3600",
    "telemetry": "true",
    "readiness_path": "/ready",
    "resource": "https://mcp.example.com/mcp",
    "authorization_servers": "https://auth.example.com",
    "scopes_supported": "mcp:tools,mcp:admin",
    "resource_name": "'Weather MCP server'",
    "resource_documentation": "https://mcp.example.com/docs",
    "token_format": "auto",
    "introspection_endpoint": "https://auth.example.com/introspect",
    "client_id": "mcp-server",
    "client_secret": "<the client's secret>",
    "client_auth_method": "client_secret_post",
    "introspection_require_audience": "false",
    "introspection_cache_ttl": "60",
    "dpop": "required",
    "dpop_algorithms": "ES256,EdDSA",
    "dpop_max_age": "300",
    "dpop_nonce": "true",
    "dpop_nonce_secret": "<32 or more random characters>",
    "dpop_replay_store": "redis://redis.internal:6379/0",
    "token_endpoint": "https://auth.example.com/token",
    "delegated_tokens": "forbidden",
}
"""A valid value of every setting, as its environment variable would hold it."""

# Each URL setting's rule: keys are fetched from some; the others only name something.
_URL_RULES: dict[str, Callable[[str, str], str]] = {
    "issuer": require_fetchable_url,
    "jwks_uri": require_fetchable_url,
    "audience": require_audience,
    "resource": require_identifier_url,
    "resource_documentation": require_identifier_url,
    "introspection_endpoint": require_fetchable_url,
    "token_endpoint": require_fetchable_url,
}
# Each number setting's range (seconds).
_RANGES: dict[str, tuple[float, float]] = {
    "jwks_min_max_age": (0, 86_400),
    "jwks_max_stale": (0, 30 * 86_400),
    "introspection_cache_ttl": (0, 3_600),
}
# Where a shared DPoP replay store may be (redis-py's URL schemes over the network).
_REPLAY_STORE_SCHEMES = ("redis", "rediss")
# The settings that need not be given, and the ones that matter only when tokens are introspected.
_REQUIRED = ("issuer", "audience")
_CLIENT = ("client_id", "client_secret")
# The first word of a native validator's error, and the setting it is about.
_NATIVE_SETTINGS = {
    "issuer": "issuer",
    "audience": "audience",
    "algorithm": "algorithms",
    "algorithms": "algorithms",
    "leeway": "leeway",
    "required_claims": "required_claims",
    "required_scopes": "required_scopes",
    "accepted_types": "accepted_types",
    "roles_claims": "roles_claims",
    "dpop": "dpop",
    "dpop_algorithms": "dpop_algorithms",
    "dpop_max_age": "dpop_max_age",
    "dpop_nonce": "dpop_nonce",
    "dpop_nonce_secret": "dpop_nonce_secret",
    "resource": "resource",
}
# RFC 6749 and OpenID Connect: a client asks for a refresh token with it. Never a resource's
# requirement, so never in a challenge nor in `scopes_supported` (MCP 2026-07-28, SEP-2207).
OFFLINE_ACCESS: Final = "offline_access"
_ENV_FILE = Path(".env")


def env_variable(field: str) -> str:
    """The environment variable of setting ``field``."""
    return ENV_PREFIX + field.upper()


class SettingError(ValueError):
    """What is wrong with one setting (``field``), found by a rule of the whole configuration."""

    def __init__(self, field: str, what: str) -> None:
        super().__init__(what)
        self.field = field
        self.what = what


def teach(field: str | None, what: str) -> str:
    """One line of an error: the setting, its variable, what is wrong, a valid example."""
    if field is None or field not in EXAMPLES:
        return what
    variable = env_variable(field)
    return f"{field} ({variable}): {what}; e.g. {variable}={EXAMPLES[field]}"


def _problem(error: Any) -> tuple[str | None, str]:
    """The setting and the words of one pydantic error entry."""
    location = error.get("loc") or ()
    field = str(location[0]) if location else None
    message = str(error.get("msg", ""))
    if error.get("type") == "extra_forbidden":
        return (
            None,
            f"{field!r} is not a setting of OAuth2Config (the configuration page lists them)",
        )
    return field, message.removeprefix("Value error, ")


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
        f" (./.env sets {variable}, but mcp-oauth2 reads the process environment only: "
        "start the server with `uvicorn --env-file .env ...`, or export the variables)"
    )


def _split(value: Any) -> Any:
    """A JSON array, a comma-separated string, or a sequence: as a tuple of stripped strings."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except ValueError:
                raise ValueError("not a JSON array; give one, or comma-separated values") from None
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

    # hide_input_in_errors: an error must never echo the settings given, the client secret
    # included; each message names its setting and variable instead.
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
    roles_claims: StringList = Field(
        ("roles",),
        description="Where `AuthenticatedUser.roles` are read: claim paths, dotted for nesting "
        "(`realm_access.roles`); each holds a string or a list of strings.",
    )
    exempt_routes: StringList = Field(
        (),
        description="Paths served without a token: exact ('/health'), prefix globs "
        "('/public/*'), optionally per method ('OPTIONS /mcp', 'OPTIONS *').",
    )
    anonymous_routes: StringList = Field(
        (),
        description="Paths (as in `exempt_routes`) where a request without a token passes as "
        "anonymous, for `MCPPolicy` to decide per operation; a token there is checked as "
        "anywhere.",
    )
    accepted_types: StringList | None = Field(
        None, description="If set, the token header `typ` must be one of these (e.g. at+jwt)."
    )
    jwks_min_max_age: float = Field(
        60.0,
        description="Shortest freshness of a key set: the floor for `Cache-Control: max-age` "
        "(and for `no-cache`/`no-store`); a key removed at the provider verifies this long.",
    )
    jwks_max_stale: float = Field(
        3_600.0, description="Serve expired keys this long while the key server fails."
    )
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
    token_format: TokenFormat = Field(
        TokenFormat.JWT,
        description="`jwt`: verify JWTs locally; `opaque`: introspect every token (RFC 7662); "
        "`auto`: verify JWTs locally, introspect every other token.",
    )
    introspection_endpoint: str | None = Field(
        None,
        description="RFC 7662 endpoint; discovered from the issuer's metadata "
        "(`introspection_endpoint`) if unset.",
    )
    client_id: str | None = Field(
        None,
        description="This server's own client id at the authorization server (introspection, "
        "token exchange).",
    )
    client_secret: SecretStr | None = Field(
        None, description="Its client secret (never logged nor shown in errors)."
    )
    client_auth_method: ClientAuthMethod = Field(
        "client_secret_basic",
        description="How this server authenticates as a client (RFC 6749 section 2.3.1).",
    )
    introspection_require_audience: bool = Field(
        True,
        description="Refuse an introspection response without `aud` (one with an `aud` must "
        "always name this server).",
    )
    introspection_cache_ttl: float = Field(
        60.0,
        description="Longest reuse of an active introspection result (never past the token's "
        "`exp`): the longest a revocation can go unseen.",
    )
    dpop: Literal["off", "allowed", "required"] = Field(
        "off",
        description="DPoP (RFC 9449): `off` (bearer tokens; a DPoP-bound one is refused), "
        "`allowed` (bearer and DPoP; a DPoP-bound token needs its proof), `required` (DPoP only).",
    )
    dpop_algorithms: StringList = Field(
        ("ES256", "ES384", "RS256", "PS256", "EdDSA"),
        description="Algorithms a DPoP proof may be signed with (asymmetric only).",
    )
    dpop_max_age: int = Field(
        300,
        description="How far a proof's `iat` may be from the server's clock, either way, in "
        "seconds (the leeway is not added).",
    )
    dpop_nonce: bool = Field(
        False,
        description="Require this server's nonce in every proof (RFC 9449 section 9; 401 "
        "`use_dpop_nonce` with a `DPoP-Nonce` header until a proof carries it).",
    )
    dpop_nonce_secret: SecretStr | None = Field(
        None,
        description="The nonces' secret (32 characters or more), the same in every process of "
        "the server; unset, each process draws its own, which works for one process only.",
    )
    dpop_replay_store: SecretStr | None = Field(
        None,
        description="`redis://...`: where every process records each proof's `jti` (the "
        "`redis` extra); unset, in this process's memory (one process only).",
    )
    token_endpoint: str | None = Field(
        None,
        description="Where `TokenExchanger` exchanges the caller's token (RFC 8693, Entra ID "
        "on-behalf-of); discovered from the token's issuer's metadata (`token_endpoint`) if unset.",
    )
    delegated_tokens: Literal["allowed", "required", "forbidden"] = Field(
        "allowed",
        description="Tokens with an `act` claim (RFC 8693 delegation: someone acts for the "
        "subject): `allowed`, `required` (every token must be one) or `forbidden`.",
    )

    @model_validator(mode="wrap")
    @classmethod
    def _taught(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> OAuth2Config:
        """Every problem found, by whatever rule, as ``teach`` words it."""
        try:
            config: OAuth2Config = handler(data)
        except ValidationError as error:
            lines = [teach(*_problem(entry)) for entry in error.errors()]
            raise ValueError("\n".join(dict.fromkeys(lines))) from None
        # The rules of the whole configuration, once each setting is valid on its own.
        checks = (
            config._resource_is_a_url,
            config._client,
            config._dpop_rules,
            config._native_rules,
        )
        for check in checks:
            try:
                check()
            except SettingError as problem:
                raise ValueError(teach(problem.field, problem.what)) from None
        return config

    @model_validator(mode="before")
    @classmethod
    def _required_given(cls, data: Any) -> Any:
        # A missing required setting is validated as an empty one, so that its error teaches
        # like every other (the field, its variable, an example) instead of "Field required".
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
        "roles_claims",
        "exempt_routes",
        "anonymous_routes",
        "accepted_types",
        "authorization_servers",
        "scopes_supported",
        "dpop_algorithms",
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
                raise ValueError("not a JSON object of scope to the scopes it grants") from None
        return value

    @field_validator("issuer", "audience")
    @classmethod
    def _required_urls(cls, value: tuple[str, ...], info: Any) -> tuple[str, ...]:
        if not value:
            raise ValueError("required" + _unread_env_file_note(env_variable(info.field_name)))
        for url in value:
            _URL_RULES[info.field_name](url, info.field_name)
        return value

    @field_validator(
        "jwks_uri", "resource", "resource_documentation", "introspection_endpoint", "token_endpoint"
    )
    @classmethod
    def _optional_url(cls, value: str | None, info: Any) -> str | None:
        if value is not None:
            _URL_RULES[info.field_name](value, info.field_name)
        return value

    @field_validator("jwks_min_max_age", "jwks_max_stale", "introspection_cache_ttl")
    @classmethod
    def _seconds(cls, value: float, info: Any) -> float:
        low, high = _RANGES[info.field_name]
        if math.isnan(value) or not low <= value <= high:
            raise ValueError(f"must be between {low:g} and {high:g} seconds")
        return value

    @field_validator("required_claims")
    @classmethod
    def _claim_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(not name for name in value):
            raise ValueError("holds an empty name; list claim names")
        return value

    @field_validator("required_scopes", "scopes_supported")
    @classmethod
    def _scopes(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for listed in value or ():
            if not SCOPE_TOKEN.match(listed):
                raise ValueError(
                    f"holds {listed[:60]!r}, which is not a scope token (printable ASCII, no "
                    "spaces, quotes or backslashes)"
                )
            if listed == OFFLINE_ACCESS:
                raise ValueError(
                    "holds 'offline_access', which a client asks for to get a refresh token: "
                    "never a resource's requirement, so a server neither requires nor "
                    "advertises it (MCP 2026-07-28, SEP-2207); remove it"
                )
        return value

    @field_validator("scope_implications")
    @classmethod
    def _implied(cls, value: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        for broad, narrow in value.items():
            for named in (broad, *narrow):
                if not SCOPE_TOKEN.match(named):
                    raise ValueError(f"holds {named[:60]!r}, which is not a scope token")
        return value

    @field_validator("exempt_routes", "anonymous_routes")
    @classmethod
    def _routes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for route in value:
            method, _, path = route.rpartition(" ")
            method = method.strip()
            if method and not METHOD.match(method):
                raise ValueError(f"{route[:100]!r} has an invalid method")
            if path == "*":
                if method == "OPTIONS":
                    continue  # every CORS preflight: OPTIONS never reaches a protected handler
                raise ValueError(
                    f"{route[:100]!r} would cover every path"
                    f"{' for ' + method if method else ''}, the MCP endpoint included; only "
                    "'OPTIONS *' may use '*'"
                )
            if not path.startswith("/") or "*" in path[:-1] or path.endswith("**"):
                raise ValueError(
                    f"{route[:100]!r} must be a path starting with '/', optionally ending in '/*'"
                )
            if path == "/*":
                raise ValueError(f"{route[:100]!r} would cover every path; list the public ones")
        return value

    @field_validator("dpop_replay_store")
    @classmethod
    def _replay_store(cls, value: SecretStr | None) -> SecretStr | None:
        # The URL may hold a password: the error never shows it.
        if value is not None:
            try:
                scheme = urlsplit(value.get_secret_value()).scheme
            except ValueError:
                scheme = ""
            if scheme not in _REPLAY_STORE_SCHEMES:
                raise ValueError("must be a redis:// or rediss:// URL")
        return value

    @field_validator("readiness_path")
    @classmethod
    def _probe_path(cls, value: str | None) -> str | None:
        if value is not None and (not PROBE_PATH.match(value) or value.startswith(WELL_KNOWN)):
            raise ValueError(
                "must be a path below '/' without '*', '?' or '#', outside /.well-known/"
            )
        return value

    def _resource_is_a_url(self) -> None:
        # The RFC 9728 resource defaults to the first audience, which may be a GUID (Entra ID).
        if self.resource is None:
            try:
                require_identifier_url(self.audience[0], "the first audience")
            except ValueError as error:
                raise SettingError(
                    "resource",
                    f"required when the first audience is not a URL ({error}): it is this "
                    "server's public URL for RFC 9728",
                ) from None

    def _client(self) -> None:
        if not self.token_format.introspects:
            if self.introspection_endpoint is not None:
                raise SettingError(
                    "token_format",
                    "'jwt' never introspects, but introspection_endpoint is set",
                )
            return
        for name in _CLIENT:
            value = getattr(self, name)
            text = value.get_secret_value() if isinstance(value, SecretStr) else value
            if not text:
                raise SettingError(
                    name,
                    f"required with token_format={self.token_format.value!r}: introspection "
                    "(RFC 7662) needs an authenticated client",
                )
        if self.introspection_endpoint is None and len(self.issuer) > 1:
            raise SettingError(
                "introspection_endpoint",
                "required with several issuers (which one's metadata would name it?)",
            )

    def _dpop_rules(self) -> None:
        if self.dpop == "off" and self.dpop_replay_store is not None:
            raise SettingError("dpop_replay_store", "set, but dpop is off")

    def _native_rules(self) -> None:
        # The native validator checks algorithms, leeway and the claim and scope names once
        # more, with the rules it applies at run time; its words name the argument.
        try:
            self.token_validator()
        except ValueError as error:
            words = str(error)
            setting = _NATIVE_SETTINGS.get(words.split(" ", 1)[0])
            raise SettingError(setting or "issuer", words) from None

    def token_validator(self) -> TokenValidator:
        """The native validator for this configuration (global scopes are checked separately,
        so that ``scope_implications`` apply), with its ``dpop_policy``."""
        return TokenValidator(
            self.issuer,
            self.audience,
            algorithms=self.algorithms,
            leeway=self.leeway,
            required_claims=self.required_claims,
            accepted_types=self.accepted_types,
            roles_claims=self.roles_claims,
            dpop=self.dpop_policy(),
        )

    def dpop_policy(self) -> DPoPPolicy:
        """What the resource accepts of DPoP. Each call without ``dpop_nonce_secret`` draws a
        new random nonce key: the validator holds the one that counts."""
        secret = self.dpop_nonce_secret
        return DPoPPolicy(
            self.dpop,
            self.resource_uri,
            algorithms=self.dpop_algorithms,
            max_age=self.dpop_max_age,
            nonce=self.dpop_nonce,
            nonce_secret=None if secret is None else secret.get_secret_value().encode(),
        )

    def cache_settings(self) -> CacheSettings:
        """The key caches' settings: ``jwks_min_max_age`` and ``jwks_max_stale``, the rest the
        defaults (``CacheSettings`` documents each)."""
        return CacheSettings(min_max_age=self.jwks_min_max_age, max_stale=self.jwks_max_stale)

    @property
    def resource_uri(self) -> str:
        return self.resource or self.audience[0]
