"""Opaque access tokens: asking the authorization server about them (RFC 7662), failing closed.

``Introspector.introspect(token)`` answers from the ``IntrospectionCache`` when it can, and
otherwise POSTs ``token`` and ``token_type_hint=access_token`` to the introspection endpoint,
authenticated as a client (``client_secret_basic`` or ``client_secret_post``), and has the native
core check the answer with the JWT claim rules (``TokenValidator.validate_introspection``).

- One call per token at a time: concurrent requests with the same token share the call in
  flight (a caller that gives up does not cancel it); at most ``max_pending`` distinct tokens are
  introspected at once, and beyond that a request is refused with 503 without a call.
- The HTTP rules are the key fetches' (``_http_fetch``): HTTPS except loopback, one total
  deadline, a cap on the body as received, identity coding only, no redirects, two connections.
- When the endpoint fails (no answer in time, a status other than 200, an answer that is not a
  JSON object), the token is refused with ``IntrospectionUnavailableError`` (503 with
  ``Retry-After``) and never accepted; the next calls wait out a backoff that doubles from 1 s to
  ``max_backoff``, and after it one call at a time probes the endpoint until one succeeds.
- Neither the token nor the client secret appears in a log line, an error or a cache key.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal
from urllib.parse import quote_plus

import httpx
from pydantic import SecretStr

from mcp_oauth2._discovery import discover_endpoint
from mcp_oauth2._http_fetch import FetchError, FetchLimits, fetch_document, new_client
from mcp_oauth2._introspection_cache import CachedResult, IntrospectionCache, Refused
from mcp_oauth2._rust import AuthenticatedUser, TokenValidator
from mcp_oauth2._url_rules import require_fetchable_url
from mcp_oauth2.errors import (
    ConfigurationError,
    IntrospectionUnavailableError,
    JWKSUnavailableError,
    MalformedTokenError,
    TokenTooLargeError,
    TokenValidationError,
)

if TYPE_CHECKING:
    from mcp_oauth2._config import OAuth2Config

__all__ = ["IntrospectionSettings", "IntrospectionStats", "Introspector"]

logger = logging.getLogger("mcp_oauth2.introspection")

AuthMethod = Literal["client_secret_basic", "client_secret_post"]
# The first pause after a failure; it doubles with each failure in a row, up to max_backoff.
FIRST_BACKOFF: Final = 1.0
# Retries within one call, after a connection error or a 5xx answer (as for keys).
CALL_RETRIES: Final = 1


@dataclass(frozen=True, slots=True)
class IntrospectionSettings:
    """Where and how to introspect; ``OAuth2Config`` documents each field."""

    issuer: str
    """Whose tokens these are: the metadata naming the endpoint, and the user's ``issuer`` when
    a response has no ``iss``."""
    client_id: str
    client_secret: SecretStr
    endpoint: str | None = None
    auth_method: AuthMethod = "client_secret_basic"
    require_audience: bool = True
    cache_ttl: float = 60.0
    negative_ttl: float = 10.0
    cache_size: int = 10_000
    timeout: float = 5.0
    max_bytes: int = 16_384
    max_pending: int = 64
    max_backoff: float = 60.0

    @classmethod
    def from_config(cls, config: OAuth2Config) -> IntrospectionSettings:
        if config.introspection_client_id is None or config.introspection_client_secret is None:
            raise ConfigurationError(
                "introspection needs introspection_client_id and introspection_client_secret"
            )
        return cls(
            issuer=config.issuer[0],
            client_id=config.introspection_client_id,
            client_secret=config.introspection_client_secret,
            endpoint=config.introspection_endpoint,
            auth_method=config.introspection_auth_method,
            require_audience=config.introspection_require_audience,
            cache_ttl=config.introspection_cache_ttl,
            negative_ttl=config.introspection_negative_ttl,
            cache_size=config.introspection_cache_size,
            timeout=config.introspection_timeout,
            max_bytes=config.introspection_max_bytes,
            max_pending=config.introspection_max_pending,
        )

    @property
    def fetch_limits(self) -> FetchLimits:
        return FetchLimits(deadline=self.timeout, max_bytes=self.max_bytes, retries=CALL_RETRIES)


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
    """Requests refused with 503 without a call (backoff, or ``max_pending`` reached)."""
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
        self._client = client
        self._owns_client = client is None
        self._clock = clock
        self._inflight: dict[bytes, asyncio.Task[CachedResult]] = {}
        self._failures = 0
        self._retry_at = 0.0
        self._counts = dict.fromkeys(
            ("hits", "calls", "active", "refused", "failures", "unavailable"), 0
        )
        self._form_auth, self._headers = _client_authentication(settings)
        self._on_call: Callable[[str, float], None] | None = None

    # -- the request path -------------------------------------------------------------------

    async def introspect(self, token: str | bytes) -> AuthenticatedUser:
        """The user the authorization server vouches for; raises ``TokenValidationError``
        (``InactiveTokenError`` and the claim rules' errors) or
        ``IntrospectionUnavailableError``."""
        text = self._token_text(token)
        key = self.cache.key(text)
        cached = self.cache.get(key, self._clock())
        if cached is not None:
            self._counts["hits"] += 1
            return _answer(cached)
        task = self._inflight.get(key)
        if task is None:
            self._admit_call()
            task = asyncio.get_running_loop().create_task(self._call(text, key))
            self._inflight[key] = task
            task.add_done_callback(self._call_done(key))
        # shield: a caller that gives up must not cancel the call others are waiting on.
        return _answer(await asyncio.shield(task))

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
        """Refuse (503) a new call during a backoff, beside the one probing call after it, or
        beyond ``max_pending`` calls in flight."""
        now = self._clock()
        if self._failures and (now < self._retry_at or self._inflight):
            self._counts["unavailable"] += 1
            wait = max(self._retry_at - now, 1.0)
            raise IntrospectionUnavailableError(
                "introspection is backing off after failures", retry_after=math.ceil(wait)
            )
        if len(self._inflight) >= self.settings.max_pending:
            self._counts["unavailable"] += 1
            raise IntrospectionUnavailableError(
                f"{len(self._inflight)} introspection calls in flight (the limit)", retry_after=1
            )

    def _call_done(self, key: bytes) -> Callable[[asyncio.Task[CachedResult]], None]:
        def done(task: asyncio.Task[CachedResult]) -> None:
            if self._inflight.get(key) is task:
                del self._inflight[key]
            if not task.cancelled():
                task.exception()  # retrieved: every waiter may have given up

        return done

    # -- the call ----------------------------------------------------------------------------

    async def _call(self, token: str, key: bytes) -> CachedResult:
        self._counts["calls"] += 1
        start = time.perf_counter()
        try:
            result = self._checked(await self.ask(token))
        except IntrospectionUnavailableError as failure:
            self._report("failed", start)
            raise self._failed(failure.detail) from None
        self._failures = 0
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
        backoff: the body of its answer. Every failure is an ``IntrospectionUnavailableError``.
        For diagnostics (``mcp-oauth2 inspect``); requests go through ``introspect``."""
        try:
            endpoint = await self._endpoint()
            document = await fetch_document(
                self.shared_client(),
                endpoint,
                self.settings.fetch_limits,
                form={"token": token, "token_type_hint": "access_token", **self._form_auth},
                headers=self._headers,
            )
        except FetchError as error:
            raise IntrospectionUnavailableError(str(error)) from None
        except JWKSUnavailableError as error:  # discovery
            raise IntrospectionUnavailableError(error.detail) from None
        return document.body

    def check(self, body: bytes) -> AuthenticatedUser:
        """The native claim rules on an answer (``TokenValidator.validate_introspection``):
        the user, or ``TokenValidationError``; ``ValueError`` when it is not one JSON object."""
        return self.validator.validate_introspection(
            body,
            now=self._clock(),
            require_audience=self.settings.require_audience,
            issuer=self.settings.issuer,
        )

    def _checked(self, body: bytes) -> CachedResult:
        try:
            return self.check(body)
        except TokenValidationError as refusal:
            return Refused.of(refusal)
        except ValueError as error:  # not one JSON object: the endpoint misbehaved
            raise IntrospectionUnavailableError(f"POST {self.endpoint}: {error}") from None

    async def _endpoint(self) -> str:
        if self.endpoint is None:
            self.endpoint = await discover_endpoint(
                self.shared_client(),
                self.settings.issuer,
                self.settings.fetch_limits,
                "introspection_endpoint",
            )
        return self.endpoint

    def _failed(self, detail: str) -> IntrospectionUnavailableError:
        """Count and log a failed call, and back off."""
        self._counts["failures"] += 1
        self._failures += 1
        pause = min(FIRST_BACKOFF * 2 ** (self._failures - 1), self.settings.max_backoff)
        self._retry_at = self._clock() + pause
        logger.warning(
            "introspection failed (%d in a row; next call in %.0f s): %s",
            self._failures,
            pause,
            detail,
        )
        return IntrospectionUnavailableError(detail, retry_after=math.ceil(pause))

    def shared_client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = new_client(self.settings.timeout)
        return self._client

    # -- lifecycle and observability ---------------------------------------------------------

    async def aclose(self) -> None:
        tasks = list(self._inflight.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._inflight.clear()
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None

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
            consecutive_failures=self._failures,
        )


def _answer(result: CachedResult) -> AuthenticatedUser:
    if isinstance(result, Refused):
        raise result.exception()
    return result


def _client_authentication(
    settings: IntrospectionSettings,
) -> tuple[dict[str, str], dict[str, str]]:
    """The form fields and headers that authenticate this client (RFC 6749 section 2.3.1)."""
    secret = settings.client_secret.get_secret_value()
    headers = {"Accept": "application/json"}
    if settings.auth_method == "client_secret_post":
        return {"client_id": settings.client_id, "client_secret": secret}, headers
    # client_secret_basic: each part form-urlencoded first, as section 2.3.1 requires.
    pair = f"{quote_plus(settings.client_id)}:{quote_plus(secret)}"
    headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
    return {}, headers
