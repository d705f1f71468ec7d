"""Opaque access tokens: asking the authorization server about them (RFC 7662), failing closed.

``Introspector.introspect(token)`` answers from the ``IntrospectionCache`` when it can, and
otherwise POSTs ``token`` and ``token_type_hint=access_token`` to the introspection endpoint,
authenticated as a client (``client_secret_basic`` or ``client_secret_post``), and has the native
core check the answer with the JWT claim rules (``TokenValidator.validate_introspection``).

- One call per token at a time (``SingleFlight``): concurrent requests with the same token share
  the call in flight (a caller that gives up does not cancel it).
- The calls go through an ``Upstream`` (``_upstream``) of ``CONNECTIONS`` connections: a call's
  deadline starts once it has a connection, so waiting behind other calls is never taken for a
  slow endpoint; at most ``max_pending`` distinct tokens are admitted at once (in flight or
  waiting), and beyond that a request is refused with 503 without a call. With the defaults
  (16 connections, 128 admitted, a 5 s deadline) every admitted call finishes within the
  deadline while the endpoint answers within 0.6 s (128 / 16 x 0.6 s = 4.8 s of queueing at
  worst), and a flood of random tokens costs the endpoint at most 16 calls at a time.
- The HTTP rules are the key fetches' (``_http_fetch``): HTTPS except loopback, one total
  deadline, a cap on the body as received, identity coding only, no redirects.
- When the endpoint fails (no answer in time, a 5xx or an authentication failure, an answer that
  is not a JSON object), the token is refused with ``IntrospectionUnavailableError`` (503 with
  ``Retry-After``) and never accepted; the endpoint then backs off (``_backoff.Backoff``, which
  counts the failures of one burst once), and after the pause one call at a time probes it until
  one succeeds. A 400-class answer about one token (400, 413, 414, 422) is a refusal of that
  token (``inactive_token``), not an outage.
- Neither the token nor the client secret appears in a log line, an error or a cache key.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import httpx
from pydantic import SecretStr

from mcp_oauth2._backoff import Backoff
from mcp_oauth2._client_auth import ClientAuthMethod, client_authentication
from mcp_oauth2._discovery import discover_endpoint
from mcp_oauth2._http_fetch import FetchedDocument, FetchError, FetchLimits
from mcp_oauth2._introspection_cache import CachedResult, IntrospectionCache, Refused
from mcp_oauth2._rust import AuthenticatedUser, Referral, ScopeRules, TokenValidator
from mcp_oauth2._upstream import Saturated, SingleFlight, Upstream, UpstreamLimits
from mcp_oauth2._url_rules import require_fetchable_url
from mcp_oauth2.errors import (
    AuthorizationServerUnavailableError,
    ConfigurationError,
    InactiveTokenError,
    IntrospectionUnavailableError,
    MalformedTokenError,
    TokenTooLargeError,
    TokenValidationError,
)

if TYPE_CHECKING:
    from mcp_oauth2._authenticator import Admitted
    from mcp_oauth2._config import OAuth2Config

__all__ = ["IntrospectionSettings", "IntrospectionStats", "Introspector"]

logger = logging.getLogger("mcp_oauth2.introspection")

# The first pause after a failure; it doubles with each failure in a row, up to max_backoff.
FIRST_BACKOFF: Final = 1.0
# Retries within one call, after a connection error or a 5xx answer (as for keys).
CALL_RETRIES: Final = 1
# Connections to the endpoint: calls in flight at once.
CONNECTIONS: Final = 16
# Answers about the token rather than the endpoint: the request named a token the endpoint
# would not take (RFC 7662 section 2.3 leaves errors to RFC 6749's 400 invalid_request).
REFUSING_STATUSES: Final = frozenset({400, 413, 414, 422})


@dataclass(frozen=True, slots=True)
class IntrospectionSettings:
    """Where and how to introspect; ``OAuth2Config`` documents each field."""

    issuer: str
    """Whose tokens these are: the metadata naming the endpoint, and the user's ``issuer`` when
    a response has no ``iss``."""
    client_id: str
    client_secret: SecretStr
    endpoint: str | None = None
    auth_method: ClientAuthMethod = "client_secret_basic"
    require_audience: bool = True
    cache_ttl: float = 60.0
    negative_ttl: float = 10.0
    cache_size: int = 10_000
    timeout: float = 5.0
    max_bytes: int = 16_384
    max_pending: int = 128
    max_backoff: float = 60.0
    connections: int = CONNECTIONS

    @classmethod
    def from_config(cls, config: OAuth2Config) -> IntrospectionSettings:
        if config.client_id is None or config.client_secret is None:
            raise ConfigurationError("introspection needs client_id and client_secret")
        return cls(
            issuer=config.issuer[0],
            client_id=config.client_id,
            client_secret=config.client_secret,
            endpoint=config.introspection_endpoint,
            auth_method=config.client_auth_method,
            require_audience=config.introspection_require_audience,
            cache_ttl=config.introspection_cache_ttl,
        )

    @property
    def fetch_limits(self) -> FetchLimits:
        return FetchLimits(deadline=self.timeout, max_bytes=self.max_bytes, retries=CALL_RETRIES)

    @property
    def upstream_limits(self) -> UpstreamLimits:
        return UpstreamLimits(
            self.fetch_limits, connections=self.connections, max_pending=self.max_pending
        )


@dataclass(frozen=True, slots=True)
class IntrospectionStats:
    """A snapshot for health checks and metrics (counts since the introspector was made)."""

    cached: int
    hits: int
    calls: int
    active: int
    refused: int
    failures: int
    unavailable: int
    """Requests refused with 503 without a call (backoff, or ``max_pending`` reached, or no
    connection free in time)."""
    evictions: int
    consecutive_failures: int


class Introspector:
    """Introspects opaque tokens for one authorization server; share one per application and
    ``aclose()`` it at shutdown. ``clock`` (unix seconds) is injectable for tests."""

    def __init__(
        self,
        validator: TokenValidator,
        settings: IntrospectionSettings,
        *,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if settings.endpoint is not None:
            try:
                require_fetchable_url(settings.endpoint, "introspection_endpoint")
            except ValueError as error:
                raise ConfigurationError(str(error)) from None
        self.validator = validator
        self.settings = settings
        self.endpoint: str | None = settings.endpoint
        """The configured or discovered endpoint (None until discovery succeeded)."""
        self.cache = IntrospectionCache(
            size=settings.cache_size, ttl=settings.cache_ttl, negative_ttl=settings.negative_ttl
        )
        self.upstream = Upstream(settings.upstream_limits, client=client)
        self.backoff = Backoff(first=FIRST_BACKOFF, cap=settings.max_backoff)
        self._clock = clock
        self._calls: SingleFlight[bytes, CachedResult] = SingleFlight()
        self._discovery: SingleFlight[None, str] = SingleFlight()
        self._counts = dict.fromkeys(
            ("hits", "calls", "active", "refused", "failures", "unavailable"), 0
        )
        self._form_auth, self._headers = client_authentication(
            settings.client_id, settings.client_secret, settings.auth_method
        )
        self._on_call: Callable[[str, float], None] | None = None

    # -- the request path -------------------------------------------------------------------

    async def introspect(self, token: str | bytes) -> AuthenticatedUser:
        """The user the authorization server vouches for; raises ``TokenValidationError``
        (``InactiveTokenError`` and the claim rules' errors) or
        ``IntrospectionUnavailableError``."""
        return _answer(await self._result(self._token_text(token), None))

    async def admit(self, referral: Referral, rules: ScopeRules | None) -> Admitted:
        """``introspect`` for the token the validator referred here, then its admission
        (``referral.admit``: the DPoP binding and the scope rules). The request whose call
        fetches the answer checks it and admits itself in one native call
        (``TokenValidator.admit_introspection``); a request answered from the cache or from
        another's call, in one (``Referral.admit``)."""
        leader = _Leader(referral, rules)
        result = await self._result(self._token_text(referral.token), leader)
        if leader.verdict is None:  # from the cache or another's call, or an answer refused
            return referral.admit(_answer(result), rules)
        if isinstance(leader.verdict, TokenValidationError):
            raise leader.verdict
        return leader.verdict

    async def _result(self, text: str, leader: _Leader | None) -> CachedResult:
        """The cached result for ``text``, or that of the call in flight for it, or of a new
        call (made for ``leader``, when given)."""
        key = self.cache.key(text)
        cached = self.cache.get(key, self._clock())
        if cached is not None:
            self._counts["hits"] += 1
            return cached
        if not self._calls.running(key):
            self._admit_call()
        admitted = self._clock()
        return await self._calls.join(key, lambda: self._call(text, key, admitted, leader))

    def _token_text(self, token: str | bytes) -> str:
        limit = self.validator.max_token_bytes
        if len(token) > limit:
            raise TokenTooLargeError(
                f"token is {len(token)} bytes, larger than the {limit}-byte limit"
            )
        if isinstance(token, bytes):
            try:
                return token.decode("ascii")
            except UnicodeDecodeError:
                raise MalformedTokenError("the token is not ASCII text") from None
        return token

    def _admit_call(self) -> None:
        """Refuse (503) a new call during a backoff, and beside the one probing call after it."""
        now = self._clock()
        backoff = self.backoff
        if backoff.holds_back(now, len(self._calls)):
            self._counts["unavailable"] += 1
            raise IntrospectionUnavailableError(
                "introspection is backing off after failures",
                retry_after=backoff.retry_after(now),
            )

    # -- the call ----------------------------------------------------------------------------

    async def _call(
        self, token: str, key: bytes, admitted: float, leader: _Leader | None = None
    ) -> CachedResult:
        """One call for ``token``, admitted at ``admitted`` (the time that decides which burst
        of failures it belongs to), for ``leader`` if the request that made it is to be
        admitted in the same native call as the answer is checked."""
        start = time.perf_counter()
        try:
            result = self._checked(await self._ask(token), leader)
        except Saturated as busy:
            self._counts["unavailable"] += 1
            raise IntrospectionUnavailableError(str(busy), retry_after=1) from None
        except IntrospectionUnavailableError as failure:
            self._counts["calls"] += 1
            self._report("failed", start)
            raise self._failed(failure.detail, admitted) from None
        self._counts["calls"] += 1
        self.backoff.succeeded()
        self.cache.put(key, result, self._clock())
        outcome = "refused" if isinstance(result, Refused) else "active"
        self._counts[outcome] += 1
        self._report(outcome, start)
        return result

    def report_calls(self, on_call: Callable[[str, float], None]) -> None:
        """Have ``on_call(outcome, seconds)`` told of every call to the endpoint; ``outcome`` is
        ``active``, ``refused`` (inactive, or failing the claim rules) or ``failed``."""
        self._on_call = on_call

    def _report(self, outcome: str, start: float) -> None:
        if self._on_call is not None:
            self._on_call(outcome, time.perf_counter() - start)

    async def ask(self, token: str) -> bytes:
        """One call to the endpoint (discovering it first if needed), past the cache and the
        backoff: the body of its answer. Every failure is an ``IntrospectionUnavailableError``;
        a 400-class answer about the token is an ``InactiveTokenError``. For diagnostics
        (``mcp-oauth2 inspect``); requests go through ``introspect``."""
        answer = await self._ask(token)
        if isinstance(answer, Refused):
            raise answer.exception()
        return answer.body

    async def _ask(self, token: str) -> FetchedDocument | Refused:
        """The endpoint's answer, or the refusal of a 400-class answer; ``Saturated`` when the
        call could not be made now."""
        try:
            endpoint = await self._endpoint()
            document = await self.upstream.fetch(
                endpoint,
                form={"token": token, "token_type_hint": "access_token", **self._form_auth},
                headers=self._headers,
            )
        except Saturated:
            raise
        except FetchError as error:
            if error.status in REFUSING_STATUSES:
                logger.info("introspection answered HTTP %d about a token: refused", error.status)
                return Refused(
                    InactiveTokenError,
                    f"the authorization server refused to introspect the token "
                    f"(HTTP {error.status})",
                )
            raise IntrospectionUnavailableError(str(error)) from None
        except AuthorizationServerUnavailableError as error:  # discovery
            raise IntrospectionUnavailableError(error.detail) from None
        media_type = document.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type != "application/json" and not media_type.endswith("+json"):
            raise IntrospectionUnavailableError(
                f"POST {endpoint}: the answer's Content-Type is {media_type[:100]!r}, "
                "not application/json"
            )
        return document

    def check(self, body: bytes) -> AuthenticatedUser:
        """The native claim rules on an answer (``TokenValidator.validate_introspection``):
        the user, or ``TokenValidationError``; ``ValueError`` when it is not one JSON object."""
        return self.validator.validate_introspection(
            body,
            now=self._clock(),
            require_audience=self.settings.require_audience,
            issuer=self.settings.issuer,
        )

    def trace(
        self, body: bytes, rules: ScopeRules | None = None
    ) -> tuple[
        list[tuple[str, str, str]],
        AuthenticatedUser | tuple[AuthenticatedUser, tuple[str, ...]] | TokenValidationError,
    ]:
        """``check`` explained, then ``rules`` applied as the middleware applies them
        (``TokenValidator.trace_introspection``): the steps, and the verdict."""
        return self.validator.trace_introspection(
            body,
            now=self._clock(),
            require_audience=self.settings.require_audience,
            issuer=self.settings.issuer,
            scopes=rules,
        )

    def _checked(self, answer: FetchedDocument | Refused, leader: _Leader | None) -> CachedResult:
        if isinstance(answer, Refused):
            return answer
        try:
            if leader is None:
                return self.check(answer.body)
            user, leader.verdict = self.validator.admit_introspection(
                leader.referral,
                answer.body,
                now=self._clock(),
                require_audience=self.settings.require_audience,
                issuer=self.settings.issuer,
                scopes=leader.rules,
            )
            return user
        except TokenValidationError as refusal:
            return Refused.of(refusal)
        except ValueError as error:  # not one JSON object: the endpoint misbehaved
            raise IntrospectionUnavailableError(f"POST {self.endpoint}: {error}") from None

    async def _endpoint(self) -> str:
        if self.endpoint is None:
            self.endpoint = await self._discovery.join(None, self._discover)
        return self.endpoint

    async def _discover(self) -> str:
        return await discover_endpoint(
            self.upstream.fetch, self.settings.issuer, "introspection_endpoint"
        )

    def _failed(self, detail: str, started: float) -> IntrospectionUnavailableError:
        """Count and log a failed call (once per burst: ``Backoff``), and say when to retry."""
        self._counts["failures"] += 1
        retry_after, new_episode = self.backoff.episode(started, self._clock())
        if new_episode:
            logger.warning(
                "introspection failed (%d in a row; next call in %d s): %s",
                self.backoff.failures,
                retry_after,
                detail,
            )
        return IntrospectionUnavailableError(detail, retry_after=retry_after)

    # -- lifecycle and observability ---------------------------------------------------------

    async def aclose(self) -> None:
        await self._calls.aclose()
        await self._discovery.aclose()
        await self.upstream.aclose()

    def stats(self) -> IntrospectionStats:
        counts = self._counts
        return IntrospectionStats(
            cached=len(self.cache),
            hits=counts["hits"],
            calls=counts["calls"],
            active=counts["active"],
            refused=counts["refused"],
            failures=counts["failures"],
            unavailable=counts["unavailable"],
            evictions=self.cache.evictions,
            consecutive_failures=self.backoff.failures,
        )


class _Leader:
    """The request whose call to the endpoint is under way, and, once the answer is checked,
    its own admission (or the refusal of it, as a value)."""

    __slots__ = ("referral", "rules", "verdict")

    def __init__(self, referral: Referral, rules: ScopeRules | None) -> None:
        self.referral = referral
        self.rules = rules
        self.verdict: Admitted | TokenValidationError | None = None


def _answer(result: CachedResult) -> AuthenticatedUser:
    if isinstance(result, Refused):
        raise result.exception()
    return result
