"""Calling a downstream API as the caller without passing the caller's token on: the token is
exchanged at the authorization server for one whose audience is that API (RFC 8693 token
exchange, or Microsoft Entra ID's on-behalf-of flow), kept while it is good, and put on each
downstream request by an ``httpx.Auth``::

    exchanger = TokenExchanger(config)
    async with httpx.AsyncClient(auth=exchanger.auth(audience=API)) as http:
        answer = await http.get(API + "/items")

- **The subject token** is the request's own, kept by ``OAuth2Middleware`` where only this
  module reads it (``_subject_token``): a tool never handles it, and it goes nowhere but into the
  form of the exchange. When the exchange fails, the ``httpx.Auth`` raises before the downstream
  request is sent: a downstream API never receives the caller's token, not even as a fallback.
- **The request** (RFC 8693 section 2.1): ``grant_type=urn:ietf:params:oauth:grant-type:
  token-exchange``, ``subject_token``, ``subject_token_type=urn:ietf:params:oauth:token-type:
  access_token``, ``requested_token_type`` when asked for, ``audience`` and/or ``resource``,
  ``scope``; with ``flavor="entra_obo"``, Entra ID's on-behalf-of request instead:
  ``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer``, ``requested_token_use=
  on_behalf_of``, ``assertion``, and ``scope`` (the scopes asked for, else the resource's
  ``/.default``). Either way authenticated as this server's client (``_client_auth``), at the
  configured ``token_endpoint`` or the one the token's issuer's metadata names.
- **The answer**, checked strictly (section 2.2.1): one JSON object (a member named twice is
  refused) with ``access_token``, ``issued_token_type`` (the type asked for, else an access token
  or a JWT; Entra ID omits it), ``token_type`` ``Bearer`` (``N_A`` only for a token that is not
  an access token) and ``expires_in`` (a positive integer); ``scope`` when the scopes granted
  differ from those asked for. Any other answer is the endpoint failing:
  ``TokenExchangeUnavailableError``. An RFC 6749 error answer (a 4xx with ``error``:
  ``invalid_grant``, ``invalid_target``, ``unauthorized_client``, ...) is a
  ``TokenExchangeError`` carrying the code; its ``error_description`` is kept only when it
  repeats neither the subject token nor the client secret.
- **The cache** (``_keyed_cache``): keyed by an HMAC digest of the subject token together with
  the flavor, audience, resource, scopes and requested type; an exchanged token is kept until
  shortly before it expires (``EXPIRY_MARGIN``, at most a quarter of its lifetime), never beyond
  the subject token's own ``exp``; ``CACHE_SIZE`` tokens at most, the least recently used out
  first. One exchange per key is in flight at a time (``SingleFlight``), shared by every caller
  that asks meanwhile.
- **Failures** go through the owners every call to the authorization server goes through: an
  ``Upstream`` (``CONNECTIONS`` connections, ``MAX_PENDING`` calls admitted; ``Saturated`` is
  answered without a call and is not a failure) and a ``Backoff`` (the failures of one burst
  count once; during the pause, and beside the one call probing after it, exchanges fail at
  once with ``TokenExchangeUnavailableError`` and its ``retry_after``).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import AsyncGenerator, Callable, Generator, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal, NoReturn
from urllib.parse import urlsplit

import httpx
from pydantic import SecretStr

from mcp_oauth2._backoff import Backoff
from mcp_oauth2._client_auth import client_authentication
from mcp_oauth2._config import SCOPE_TOKEN, OAuth2Config, teach
from mcp_oauth2._discovery import discover_endpoint
from mcp_oauth2._http_fetch import FetchedDocument, FetchError, FetchLimits
from mcp_oauth2._keyed_cache import ExpiringLRU, TokenDigest
from mcp_oauth2._subject_token import Subject, subject_of
from mcp_oauth2._upstream import Saturated, SingleFlight, Upstream, UpstreamLimits
from mcp_oauth2._url_rules import require_fetchable_url
from mcp_oauth2.errors import (
    AuthorizationServerUnavailableError,
    ConfigurationError,
    TokenExchangeError,
    TokenExchangeUnavailableError,
)

if TYPE_CHECKING:
    from mcp_oauth2._rust import AuthenticatedUser

__all__ = [
    "ACCESS_TOKEN_TYPE",
    "JWT_TOKEN_TYPE",
    "ExchangeSettings",
    "ExchangeStats",
    "ExchangedToken",
    "TokenExchanger",
]

logger = logging.getLogger("mcp_oauth2.token_exchange")

Flavor = Literal["rfc8693", "entra_obo"]
# Names of grants, token types and token_type values (RFC 8693 section 3), not secrets.
TOKEN_EXCHANGE_GRANT: Final = "urn:ietf:params:oauth:grant-type:token-exchange"  # noqa: S105
JWT_BEARER_GRANT: Final = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ACCESS_TOKEN_TYPE: Final = "urn:ietf:params:oauth:token-type:access_token"  # noqa: S105
JWT_TOKEN_TYPE: Final = "urn:ietf:params:oauth:token-type:jwt"  # noqa: S105
BEARER: Final = "Bearer"
NOT_APPLICABLE: Final = "N_A"
# Issued token types a downstream API takes as a bearer access token (RFC 8693 section 3).
_BEARER_TYPES: Final = frozenset({ACCESS_TOKEN_TYPE, JWT_TOKEN_TYPE})
EXPIRY_MARGIN: Final = 30.0
"""Seconds before its expiry an exchanged token stops being reused (at most a quarter of its
lifetime): a downstream call made with it still arrives in time."""
CACHE_SIZE: Final = 4_096
CONNECTIONS: Final = 8
MAX_PENDING: Final = 64
FIRST_BACKOFF: Final = 1.0
# A token response carries the token and maybe a refresh token: a few KB, 32 KiB at most here.
MAX_ANSWER_BYTES: Final = 32_768
# RFC 6749 appendix A.7: an error code is printable ASCII without '"' and '\'.
_ERROR_CODE: Final = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]{1,64}")
# An access token goes into an Authorization header: printable ASCII, no spaces.
_TOKEN_TEXT: Final = re.compile(r"[\x21-\x7e]+")
# A longest error_description kept, and what looks like a JWT or another long credential in one.
_DESCRIPTION_CHARS: Final = 300
_CREDENTIAL_LIKE: Final = re.compile(r"[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}")
# Statuses of an RFC 6749 section 5.2 error answer (400; 401 for client authentication; some
# servers answer 403 for a client that may not use a grant).
_ERROR_STATUSES: Final = frozenset({400, 401, 403})
# The longest lifetime taken from expires_in: ten years (anything larger is not a lifetime).
_MAX_EXPIRES_IN: Final = 10 * 365 * 86_400
_NO_SUBJECT: Final = (
    "token exchange needs the caller's token, which OAuth2Middleware keeps for the request it "
    "admitted: call it while serving a request that came through OAuth2Middleware with a bearer "
    "token (not on an exempt route, nor behind the MCP SDK's own auth)"
)


@dataclass(frozen=True, slots=True)
class ExchangedToken:
    """A token the authorization server issued for a downstream API, in exchange for the
    caller's. ``access_token`` is a ``SecretStr``: it never prints (``get_secret_value()``
    gives it)."""

    access_token: SecretStr
    token_type: str
    """``Bearer``, or ``N_A`` for a token that is not an access token (RFC 8693 section 2.2.1)."""
    expires_at: float
    """Unix seconds: when the authorization server said the token expires."""
    scopes: frozenset[str]
    """The scopes granted (the ones asked for when the answer names none)."""
    issued_token_type: str
    """The RFC 8693 type of the token, e.g. ``urn:ietf:params:oauth:token-type:access_token``."""


@dataclass(frozen=True, slots=True)
class ExchangeSettings:
    """How the token endpoint is called and how much is kept; ``TokenExchanger`` uses these
    defaults unless given others."""

    timeout: float = 5.0
    max_bytes: int = MAX_ANSWER_BYTES
    retries: int = 1
    connections: int = CONNECTIONS
    max_pending: int = MAX_PENDING
    cache_size: int = CACHE_SIZE
    expiry_margin: float = EXPIRY_MARGIN
    max_backoff: float = 60.0

    @property
    def upstream_limits(self) -> UpstreamLimits:
        fetch = FetchLimits(deadline=self.timeout, max_bytes=self.max_bytes, retries=self.retries)
        return UpstreamLimits(fetch, connections=self.connections, max_pending=self.max_pending)


@dataclass(frozen=True, slots=True)
class ExchangeStats:
    """A snapshot for health checks and metrics (counts since the exchanger was made)."""

    cached: int
    hits: int
    calls: int
    issued: int
    refused: int
    failures: int
    unavailable: int
    """Exchanges failed without a call (backoff, or too many calls admitted)."""
    evictions: int
    consecutive_failures: int


@dataclass(frozen=True, slots=True)
class _Target:
    """What a downstream token is asked for (one cache key per distinct target)."""

    audience: str | None
    resource: str | None
    scopes: tuple[str, ...]
    requested_token_type: str | None


class TokenExchanger:
    """Exchanges the caller's token for downstream tokens at one authorization server; share one
    per application and ``aclose()`` it at shutdown (or use it as an async context manager).

    ``config`` (default: ``OAuth2Config()`` from ``MCP_OAUTH2_*`` variables) gives this server's
    client (``client_id``, ``client_secret``, ``client_auth_method``, the set introspection uses)
    and the ``token_endpoint`` (else discovered from the metadata of the token's issuer).
    ``flavor`` is ``"rfc8693"`` (token exchange) or ``"entra_obo"`` (Entra ID's on-behalf-of).
    ``clock`` (unix seconds) is injectable for tests.
    """

    def __init__(
        self,
        config: OAuth2Config | None = None,
        *,
        flavor: Flavor = "rfc8693",
        settings: ExchangeSettings | None = None,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        config = config if config is not None else OAuth2Config()
        if flavor not in ("rfc8693", "entra_obo"):
            raise ConfigurationError(f"flavor must be 'rfc8693' or 'entra_obo', not {flavor!r}")
        if not config.client_id or config.client_secret is None:
            missing = "client_id" if not config.client_id else "client_secret"
            raise ConfigurationError(
                teach(missing, "required by TokenExchanger: the exchange is a client's request")
            )
        if not config.client_secret.get_secret_value():
            raise ConfigurationError(teach("client_secret", "required by TokenExchanger"))
        if config.token_endpoint is not None:
            require_fetchable_url(config.token_endpoint, "token_endpoint")
        self.flavor: Flavor = flavor
        self.settings = settings if settings is not None else ExchangeSettings()
        self.token_endpoint: str | None = config.token_endpoint
        """The configured endpoint; None when each issuer's metadata names it."""
        self._client_secret = config.client_secret
        self._form_auth, self._headers = client_authentication(
            config.client_id, config.client_secret, config.client_auth_method
        )
        self.upstream = Upstream(self.settings.upstream_limits, client=client)
        self.backoff = Backoff(first=FIRST_BACKOFF, cap=self.settings.max_backoff)
        self._clock = clock
        self._digest = TokenDigest()
        self._cache: ExpiringLRU[ExchangedToken] = ExpiringLRU(self.settings.cache_size)
        self._calls: SingleFlight[bytes, ExchangedToken] = SingleFlight()
        self._discovery: SingleFlight[str, str] = SingleFlight()
        self._endpoints: dict[str, str] = {}
        self._counts = dict.fromkeys(
            ("hits", "calls", "issued", "refused", "failures", "unavailable"), 0
        )

    # -- the public calls -------------------------------------------------------------------

    async def exchange(
        self,
        request_or_scope: object = None,
        *,
        audience: str | None = None,
        resource: str | None = None,
        scopes: str | Iterable[str] = (),
        requested_token_type: str | None = None,
    ) -> ExchangedToken:
        """A token for ``audience`` (a client id or URI the authorization server knows) and/or
        ``resource`` (RFC 8707: the downstream API's URL), with ``scopes``, in exchange for the
        token of ``request_or_scope`` (a Starlette request, an ASGI scope, or None: the request
        being served). From the cache while it holds one.

        Raises ``TokenExchangeError`` when the authorization server refuses,
        ``TokenExchangeUnavailableError`` when it cannot be asked or answers something that is
        not a token response, and ``ConfigurationError`` when there is no caller's token (no
        request admitted by ``OAuth2Middleware``) or the target is malformed."""
        target = self._target(audience, resource, scopes, requested_token_type)
        return await self._exchange(_subject(request_or_scope), target)

    def auth(
        self,
        request_or_scope: object = None,
        *,
        audience: str | None = None,
        resource: str | None = None,
        scopes: str | Iterable[str] = (),
    ) -> httpx.Auth:
        """An ``httpx.Auth`` that puts a token exchanged for ``audience`` / ``resource`` and
        ``scopes`` on each request of an ``httpx.AsyncClient``, as the caller of
        ``request_or_scope`` (None: the request being served, bound now). When the exchange
        fails, its error is raised and the request is not sent."""
        target = self._target(audience, resource, scopes, None)
        return ExchangedTokenAuth(self, _subject(request_or_scope), target)

    # -- the exchange -----------------------------------------------------------------------

    async def _exchange(
        self, subject: Subject, target: _Target, key: bytes | None = None
    ) -> ExchangedToken:
        """The token for ``target`` in exchange for ``subject``'s; ``key`` is their cache key
        when the caller has it already (``cache_key``)."""
        token = _token_of(subject)
        if key is None:
            key = self.cache_key(token, target)
        now = self._clock()
        cached = self._cache.get(key, now)
        if cached is not None:
            self._counts["hits"] += 1
            return cached
        if not self._calls.running(key):
            self._admit_call(now)
        user = subject.user
        return await self._calls.join(key, lambda: self._call(token, user, target, key, now))

    def cache_key(self, token: str, target: _Target) -> bytes:
        """The digest an exchanged token is kept under: the subject token with the target."""
        return self._digest(
            token,
            self.flavor,
            target.audience or "",
            target.resource or "",
            " ".join(target.scopes),
            target.requested_token_type or "",
        )

    def _admit_call(self, now: float) -> None:
        """Fail at once during a backoff, and beside the one call probing after it."""
        if self.backoff.holds_back(now, len(self._calls)):
            self._counts["unavailable"] += 1
            raise TokenExchangeUnavailableError(
                "token exchange is backing off after failures",
                retry_after=self.backoff.retry_after(now),
            )

    async def _call(
        self, token: str, user: AuthenticatedUser, target: _Target, key: bytes, admitted: float
    ) -> ExchangedToken:
        """One exchange, admitted at ``admitted`` (which decides the burst of failures it
        belongs to); the token is kept as long as it may be."""
        try:
            exchanged = await self._ask(token, user.issuer, target)
        except Saturated as busy:
            self._counts["unavailable"] += 1
            raise TokenExchangeUnavailableError(str(busy), retry_after=1) from None
        except TokenExchangeUnavailableError as failure:
            self._counts["calls"] += 1
            raise self._failed(failure.detail, admitted) from None
        except TokenExchangeError as refusal:
            self._counts["calls"] += 1
            self._counts["refused"] += 1
            self.backoff.succeeded()  # the endpoint answered
            logger.info("%s", refusal)
            raise
        self._counts["calls"] += 1
        self._counts["issued"] += 1
        self.backoff.succeeded()
        now = self._clock()
        lifetime = exchanged.expires_at - now
        until = exchanged.expires_at - min(self.settings.expiry_margin, lifetime / 4)
        if user.expires_at is not None:
            until = min(until, float(user.expires_at))
        self._cache.put(key, exchanged, until, now)
        return exchanged

    async def _ask(self, token: str, issuer: str, target: _Target) -> ExchangedToken:
        """The exchanged token, or ``TokenExchangeError`` / ``TokenExchangeUnavailableError``;
        ``Saturated`` when the call could not be made now."""
        try:
            endpoint = await self._endpoint(issuer)
        except AuthorizationServerUnavailableError as error:  # discovery failed
            raise TokenExchangeUnavailableError(error.detail) from None
        form = {**self._form(token, target), **self._form_auth}
        try:
            document = await self.upstream.fetch(endpoint, form=form, headers=self._headers)
        except Saturated:
            raise
        except FetchError as error:
            refusal = self._refusal(error, token)
            if refusal is not None:
                raise refusal from None
            raise TokenExchangeUnavailableError(str(error)) from None
        return self._exchanged(endpoint, document, target)

    def _form(self, token: str, target: _Target) -> dict[str, str]:
        """The request's parameters (RFC 8693 section 2.1, or Entra ID's on-behalf-of)."""
        scope = " ".join(target.scopes)
        if self.flavor == "entra_obo":
            default = target.resource or target.audience or ""
            return {
                "grant_type": JWT_BEARER_GRANT,
                "requested_token_use": "on_behalf_of",
                "assertion": token,
                "scope": scope or default.rstrip("/") + "/.default",
            }
        form = {
            "grant_type": TOKEN_EXCHANGE_GRANT,
            "subject_token": token,
            "subject_token_type": ACCESS_TOKEN_TYPE,
        }
        for name, value in (
            ("requested_token_type", target.requested_token_type),
            ("audience", target.audience),
            ("resource", target.resource),
            ("scope", scope),
        ):
            if value:
                form[name] = value
        return form

    def _exchanged(
        self, endpoint: str, document: FetchedDocument, target: _Target
    ) -> ExchangedToken:
        """The token of a 200 answer, checked strictly (RFC 8693 section 2.2.1)."""
        try:
            media_type = document.headers.get("content-type", "").split(";")[0].strip().lower()
            if media_type != "application/json" and not media_type.endswith("+json"):
                raise ValueError(f"the answer's Content-Type is {media_type[:100]!r}, not JSON")
            answer = _json_object(document.body)
            if answer is None:
                raise ValueError("the answer is not one JSON object (or names a member twice)")
            access_token = answer.get("access_token")
            if not isinstance(access_token, str) or not _TOKEN_TEXT.fullmatch(access_token):
                raise ValueError("the answer has no access_token usable in a header")
            issued = _issued_type(answer, self.flavor, target.requested_token_type)
            token_type = _token_type(answer, issued)
            expires_in = _expires_in(answer)
            scope = answer.get("scope")
            if scope is not None and not isinstance(scope, str):
                raise ValueError("scope is not a string")
        except ValueError as problem:
            raise TokenExchangeUnavailableError(f"POST {endpoint}: {problem}") from None
        granted = frozenset(scope.split()) if scope is not None else frozenset(target.scopes)
        return ExchangedToken(
            access_token=SecretStr(access_token),
            token_type=token_type,
            expires_at=self._clock() + expires_in,
            scopes=granted,
            issued_token_type=issued,
        )

    def _refusal(self, error: FetchError, token: str) -> TokenExchangeError | None:
        """The RFC 6749 error answer in ``error`` (a 400, 401 or 403 with an ``error`` member),
        its description kept only when it repeats no credential; None when it holds none."""
        if error.status not in _ERROR_STATUSES:
            return None
        answer = _json_object(error.body)
        code = answer.get("error") if answer is not None else None
        if not isinstance(code, str) or not _ERROR_CODE.fullmatch(code):
            return None
        described = answer.get("error_description") if answer is not None else None
        description = None
        if isinstance(described, str) and described:
            text = "".join(c for c in described if " " <= c <= "~")[:_DESCRIPTION_CHARS]
            secret = self._client_secret.get_secret_value()
            repeats = token in described or secret in described
            if repeats or _CREDENTIAL_LIKE.search(described):
                text = "its description was withheld: it repeated a credential"
            description = text
        return TokenExchangeError(code, description, error.status)

    def _failed(self, detail: str, admitted: float) -> TokenExchangeUnavailableError:
        """Count and log a failed call (once per burst: ``Backoff``), and say when to retry."""
        self._counts["failures"] += 1
        retry_after, new_episode = self.backoff.episode(admitted, self._clock())
        if new_episode:
            logger.warning(
                "token exchange failed (%d in a row; next call in %d s): %s",
                self.backoff.failures,
                retry_after,
                detail,
            )
        return TokenExchangeUnavailableError(detail, retry_after=retry_after)

    async def _endpoint(self, issuer: str) -> str:
        if self.token_endpoint is not None:
            return self.token_endpoint
        endpoint = self._endpoints.get(issuer)
        if endpoint is None:
            endpoint = await self._discovery.join(issuer, lambda: self._discover(issuer))
            self._endpoints[issuer] = endpoint
        return endpoint

    async def _discover(self, issuer: str) -> str:
        return await discover_endpoint(self.upstream.fetch, issuer, "token_endpoint")

    def _target(
        self,
        audience: str | None,
        resource: str | None,
        scopes: str | Iterable[str],
        requested_token_type: str | None,
    ) -> _Target:
        """The validated target of an exchange (``ConfigurationError`` when malformed)."""
        for name, value in (("audience", audience), ("resource", resource)):
            if value is not None and (not value or not value.isprintable() or len(value) > 2048):
                raise ConfigurationError(f"{name} must be a non-empty printable string")
        if resource is not None:
            parts = urlsplit(resource)
            if not parts.scheme or not parts.netloc or parts.fragment:
                raise ConfigurationError(
                    f"resource must be an absolute URI without a fragment (RFC 8707), not "
                    f"{resource[:100]!r}"
                )
        listed = scopes.split() if isinstance(scopes, str) else list(scopes)
        for scope in listed:
            if not isinstance(scope, str) or not SCOPE_TOKEN.match(scope):
                raise ConfigurationError(f"{str(scope)[:60]!r} is not a scope token")
        if self.flavor == "entra_obo":
            if requested_token_type is not None:
                raise ConfigurationError("requested_token_type is not part of on-behalf-of")
            if not listed and resource is None and audience is None:
                raise ConfigurationError(
                    "an on-behalf-of exchange needs scopes, or the audience or resource whose "
                    "/.default scope is asked for"
                )
        elif requested_token_type is not None and not requested_token_type.startswith("urn:"):
            raise ConfigurationError("requested_token_type must be a token type URN (RFC 8693)")
        return _Target(audience, resource, tuple(sorted(set(listed))), requested_token_type)

    # -- lifecycle and observability ---------------------------------------------------------

    async def aclose(self) -> None:
        await self._calls.aclose()
        await self._discovery.aclose()
        await self.upstream.aclose()

    async def __aenter__(self) -> TokenExchanger:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def clear(self) -> None:
        """Forget every exchanged token."""
        self._cache.clear()

    def stats(self) -> ExchangeStats:
        counts = self._counts
        return ExchangeStats(
            cached=len(self._cache),
            hits=counts["hits"],
            calls=counts["calls"],
            issued=counts["issued"],
            refused=counts["refused"],
            failures=counts["failures"],
            unavailable=counts["unavailable"],
            evictions=self._cache.evictions,
            consecutive_failures=self.backoff.failures,
        )

    def __repr__(self) -> str:
        where = self.token_endpoint or "discovered"
        return f"TokenExchanger(flavor={self.flavor!r}, token_endpoint={where!r})"


class ExchangedTokenAuth(httpx.Auth):
    """Puts a token exchanged for the caller on each request (``TokenExchanger.auth``)."""

    def __init__(self, exchanger: TokenExchanger, subject: Subject, target: _Target) -> None:
        self._exchanger = exchanger
        self._subject = subject
        self._target = target
        self._key: bytes | None = None
        """The cache key (the same for every request: one subject, one target)."""

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        raise RuntimeError(
            "TokenExchanger.auth() works with httpx.AsyncClient: the exchange is asynchronous"
        )

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        exchanger = self._exchanger
        if self._key is None:
            self._key = exchanger.cache_key(_token_of(self._subject), self._target)
        exchanged = await exchanger._exchange(self._subject, self._target, self._key)
        if exchanged.token_type != BEARER:
            raise TokenExchangeUnavailableError(
                f"the authorization server issued a {exchanged.issued_token_type!r} with "
                f"token_type {exchanged.token_type!r}, which is not a bearer access token"
            )
        request.headers["Authorization"] = "Bearer " + exchanged.access_token.get_secret_value()
        yield request

    def __repr__(self) -> str:
        target = self._target
        return (
            f"ExchangedTokenAuth(audience={target.audience!r}, resource={target.resource!r}, "
            f"scopes={target.scopes!r})"
        )


def _issued_type(answer: dict[str, Any], flavor: Flavor, wanted: str | None) -> str:
    """``issued_token_type``: the type asked for, else one usable as a bearer access token."""
    issued = answer.get("issued_token_type")
    if issued is None and flavor == "entra_obo":
        return ACCESS_TOKEN_TYPE  # on-behalf-of answers are access tokens, unnamed
    if not isinstance(issued, str) or not issued:
        raise ValueError("the answer has no issued_token_type (RFC 8693 section 2.2.1)")
    if wanted is not None and issued != wanted:
        raise ValueError(f"it issued a {issued[:100]!r}, not the {wanted!r} asked for")
    if wanted is None and issued not in _BEARER_TYPES:
        raise ValueError(f"it issued a {issued[:100]!r}, which is not an access token")
    return issued


def _token_type(answer: dict[str, Any], issued: str) -> str:
    """``token_type``: ``Bearer`` (any case, RFC 6749 section 7.1), or ``N_A`` for a token that
    is not an access token (RFC 8693 section 2.2.1)."""
    token_type = answer.get("token_type")
    if isinstance(token_type, str) and token_type.lower() == "bearer":
        return BEARER
    if token_type == NOT_APPLICABLE and issued != ACCESS_TOKEN_TYPE:
        return NOT_APPLICABLE
    raise ValueError(
        f"token_type is {repr(token_type)[:60]}: Bearer (or N_A for a token that is not an "
        "access token) was expected"
    )


def _expires_in(answer: dict[str, Any]) -> int:
    expires_in = answer.get("expires_in")
    if type(expires_in) is not int or not 0 < expires_in <= _MAX_EXPIRES_IN:
        raise ValueError(
            f"expires_in is {repr(expires_in)[:60]}, not a positive whole number of seconds "
            "(needed to know how long the token may be used)"
        )
    return expires_in


def _token_of(subject: Subject) -> str:
    if subject.sender_constrained:
        # An authorization server asks for the caller's proof of its key with a DPoP-bound
        # subject token, and only the client holds that key: fail here, clearly, not there.
        raise ConfigurationError(
            "the caller's token is bound to its DPoP key (it came with the DPoP scheme): this "
            "server cannot prove possession of that key, so the token cannot be exchanged; "
            "exchange bearer tokens only (dpop 'off' or 'allowed' with bearer clients)"
        )
    token = subject.token()
    if token is None:
        raise ConfigurationError(
            "the request whose token was to be exchanged has ended (its token was dropped): "
            "exchange while serving it"
        )
    return token


def _subject(request_or_scope: object) -> Subject:
    subject = subject_of(request_or_scope)
    if subject is None:
        raise ConfigurationError(_NO_SUBJECT)
    return subject


def _json_object(body: bytes) -> dict[str, Any] | None:
    """``body`` as one JSON object, or None: not JSON, not an object, or a member named twice
    (which member would count?), or a number JSON does not have (NaN, Infinity)."""

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        members = dict(pairs)
        if len(members) != len(pairs):
            raise ValueError("a member named twice")
        return members

    def refuse(constant: str) -> NoReturn:
        raise ValueError(f"{constant} is not JSON")

    try:
        value = json.loads(body, object_pairs_hook=unique, parse_constant=refuse)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None
