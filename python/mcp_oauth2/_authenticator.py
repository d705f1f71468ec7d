"""Validating a bearer token against the live keys of its issuer.

The ``Authenticator`` joins a ``TokenValidator`` (the policy) with one key source per trusted
issuer. With several issuers, the token's unverified ``iss`` only picks which key set to try; the
token is then verified in full, so a forged ``iss`` gains nothing. When the key set does not know
the token's key (a rotation), or the signature fails under a known ``kid`` (an issuer that
restarted with a new key under the same id), the source may refetch, rate limited, and the
token is checked against the fresh set (twice at most: a set that arrived from a scheduled fetch
may predate the key). An unknown key while the key server cannot be reached is
``JWKSUnavailableError`` (503, fail closed), not ``key_not_found``: the key may well exist.

With an ``Introspector`` (``token_format`` ``opaque`` or ``auto``), tokens are asked about at the
authorization server instead (RFC 7662): every token under ``opaque``; under ``auto``, every token
that is not a JWS compact serialization (three segments whose header decodes), while JWTs are
still verified locally and a JWT that fails is refused, never introspected. Either way the result
is the same ``AuthenticatedUser``, so everything after this point treats both kinds alike.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, TypeVar

from mcp_oauth2._health import AuthenticatorHealth, summarize
from mcp_oauth2._introspection import IntrospectionSettings, Introspector
from mcp_oauth2._jwks import JWKSCache, KeySource
from mcp_oauth2._rust import (
    AuthenticatedUser,
    KeySet,
    ScopeRules,
    TokenValidator,
    bearer_token,
    peek_header,
    peek_issuer,
)
from mcp_oauth2._token_format import TokenFormat
from mcp_oauth2.errors import (
    ConfigurationError,
    InsufficientScopeError,
    InvalidIssuerError,
    InvalidSignatureError,
    JWKSError,
    JWKSUnavailableError,
    KeyNotFoundError,
    MalformedTokenError,
    TokenValidationError,
)

if TYPE_CHECKING:
    from mcp_oauth2._config import OAuth2Config

Checked = TypeVar("Checked")

__all__ = ["Authenticator", "introspected"]

# After a key miss, how many newer key sets a token is tried against.
MISS_REFETCHES = 2
# How long a readiness check waits for a refresh it started (a probe's timeout is often 1 s).
READINESS_WAIT = 0.5


class Authenticator:
    """Authenticates bearer tokens: ``await authenticator.authenticate(token)``."""

    def __init__(
        self,
        validator: TokenValidator,
        keys: KeySource | Mapping[str, KeySource] | None = None,
        *,
        introspector: Introspector | None = None,
        token_format: TokenFormat | str = TokenFormat.JWT,
    ) -> None:
        """``keys`` are needed unless ``token_format`` is ``opaque``; ``introspector`` unless
        it is ``jwt``."""
        self.validator = validator
        self.introspector = introspector
        try:
            token_format = TokenFormat(token_format)
        except ValueError:
            raise ConfigurationError(
                f"token_format must be 'jwt', 'opaque' or 'auto', not {token_format!r}"
            ) from None
        self.token_format = token_format
        if (introspector is None) == token_format.introspects:
            raise ConfigurationError(
                f"token_format={token_format!r} "
                + ("needs an introspector" if introspector is None else "never introspects")
            )
        self._introspect_all = not token_format.verifies_locally
        if keys is None:
            if not self._introspect_all:
                raise ConfigurationError(f"token_format={token_format!r} needs key sources")
            keys = {}
        if isinstance(keys, Mapping):
            sources = dict(keys)
        else:
            sources = {issuer: keys for issuer in validator.issuers}
        unknown = set(sources) - set(validator.issuers)
        missing = set(validator.issuers) - set(sources) if sources else set()
        if unknown or missing or not (sources or self._introspect_all):
            raise ConfigurationError(
                "key sources must match the validator's issuers exactly; "
                f"without a source: {sorted(missing)}, not trusted: {sorted(unknown)}"
            )
        self.sources: dict[str, KeySource] = sources
        # One distinct source serves every issuer: no need to peek at the token.
        distinct = {id(source) for source in sources.values()}
        self._single: KeySource | None = (
            next(iter(sources.values())) if len(distinct) == 1 else None
        )

    @classmethod
    def from_config(
        cls,
        config: OAuth2Config,
        key_sources: KeySource | Mapping[str, KeySource] | None = None,
        introspector: Introspector | None = None,
    ) -> Authenticator:
        """The validator of ``config`` with ``key_sources``, or else the key caches it describes:
        one for ``jwks_uri`` when set, otherwise one per issuer, discovered from its metadata
        (none under ``token_format="opaque"``); and ``introspector``, or else the introspector it
        describes, if any (``IntrospectionSettings`` has the knobs the configuration leaves at
        their defaults)."""
        validator = config.token_validator()
        if introspector is None and config.token_format.introspects:
            introspector = Introspector(validator, IntrospectionSettings.from_config(config))
        if key_sources is None and config.token_format.verifies_locally:
            settings = config.cache_settings()
            if config.jwks_uri is not None:
                key_sources = JWKSCache(jwks_uri=config.jwks_uri, settings=settings)
            else:
                key_sources = {
                    issuer: JWKSCache(issuer=issuer, settings=settings) for issuer in config.issuer
                }
        return cls(
            validator, key_sources, introspector=introspector, token_format=config.token_format
        )

    def source_for(self, token: str | bytes) -> KeySource:
        """The key source of the token's (unverified) issuer."""
        if self._single is not None:
            return self._single
        issuer = peek_issuer(token, self.validator.max_token_bytes)
        source = self.sources.get(issuer) if issuer is not None else None
        if source is None:
            raise InvalidIssuerError()
        return source

    async def authenticate(self, token: str | bytes) -> AuthenticatedUser:
        """Validate ``token``; raises ``TokenValidationError`` or ``JWKSUnavailableError``
        (``IntrospectionUnavailableError`` when an introspection cannot be had)."""
        if self.introspector is not None and introspected(
            self.token_format, token, self.validator.max_token_bytes
        ):
            return await self.introspector.introspect(token)
        source = self.source_for(token)
        keys = await source.get_keys()
        try:
            return self.validator.validate(token, keys)
        except (KeyNotFoundError, InvalidSignatureError) as miss:
            return await self._after_miss(
                source, keys, miss, lambda keys: self.validator.validate(token, keys), token
            )

    async def authorize(
        self, authorization: bytes, rules: ScopeRules
    ) -> tuple[AuthenticatedUser, tuple[str, ...]] | None:
        """The user of an ``Authorization`` header value and its effective scopes under
        ``rules``, in one native call (``TokenValidator.authorize``), or None when the header
        names another scheme. Raises ``InvalidRequestError`` for a malformed header,
        ``TokenValidationError`` (``InsufficientScopeError`` included) or
        ``JWKSUnavailableError`` (``IntrospectionUnavailableError`` for an introspection)."""
        if self.introspector is not None:
            token = bearer_token(authorization)
            if token is None:
                return None
            if introspected(self.token_format, token, self.validator.max_token_bytes):
                user = await self.introspector.introspect(token)
                return user, _within(rules, user)
        if self._single is not None:
            source = self._single
            try:
                keys = await source.get_keys()
            except JWKSError:
                # Without keys the header is read on its own: another scheme is still no token
                # (401), broken credentials still a bad request (400).
                if bearer_token(authorization) is None:
                    return None
                raise
        else:
            token = bearer_token(authorization)
            if token is None:
                return None
            source = self.source_for(token)
            keys = await source.get_keys()
        validator = self.validator
        try:
            return validator.authorize(authorization, keys, rules)
        except (KeyNotFoundError, InvalidSignatureError) as miss:
            return await self._after_miss(
                source,
                keys,
                miss,
                lambda keys: validator.authorize(authorization, keys, rules),
                bearer_token(authorization) or "",
            )

    async def _after_miss(
        self,
        source: KeySource,
        keys: KeySet,
        miss: KeyNotFoundError | InvalidSignatureError,
        check: Callable[[KeySet], Checked],
        token: str | bytes,
    ) -> Checked:
        """``check`` again after a key miss on ``keys``, with a newer set, twice at most: the
        first may come from a scheduled fetch that left before the key was published; the
        source decides (within its miss budget) whether to fetch again. (Off the request's
        usual path, which calls the validator directly.) An unknown key while the key server
        cannot be asked is ``JWKSUnavailableError`` (503), not a verdict on the token; a
        signature that fails under a key in hand stays a refusal of the token."""
        kid = _key_id(token, self.validator.max_token_bytes)
        for refetch in range(1, MISS_REFETCHES + 1):
            try:
                fresh = await source.refresh_after_miss(keys, kid)
            except JWKSUnavailableError:
                if isinstance(miss, InvalidSignatureError):
                    raise miss from None
                raise
            if fresh is None:
                raise miss from None
            keys = fresh
            try:
                return check(keys)
            except (KeyNotFoundError, InvalidSignatureError) as again:
                if refetch == MISS_REFETCHES:
                    raise
                miss = again
        raise miss

    def health(self) -> AuthenticatorHealth:
        """Each issuer's key source's stats, and whether every one holds usable keys (no I/O)."""
        stats = {id(source): source.stats() for source in self._distinct_sources()}
        by_issuer = {issuer: stats[id(source)] for issuer, source in self.sources.items()}
        failures = None
        if self.introspector is not None:
            failures = self.introspector.stats().consecutive_failures
        return summarize(by_issuer, list(stats.values()), failures)

    async def readiness(self, wait: float = READINESS_WAIT) -> AuthenticatorHealth:
        """``health()`` after asking each source for its keys as a request would: a source
        whose keys are due or unusable starts a refresh (within its fetch rules), which is
        waited for up to ``wait`` seconds. An idle process thus notices that its identity
        provider came back (or went away) without a request carrying a token."""
        for source in self._distinct_sources():
            with contextlib.suppress(JWKSError, TimeoutError):
                await asyncio.wait_for(source.get_keys(), wait)
        return self.health()

    async def start(self) -> None:
        """Start every key source (prefetching keys where configured)."""
        for source in self._distinct_sources():
            await source.start()

    async def aclose(self) -> None:
        for source in self._distinct_sources():
            await source.aclose()
        if self.introspector is not None:
            await self.introspector.aclose()

    def _distinct_sources(self) -> list[KeySource]:
        seen: dict[int, KeySource] = {}
        for source in self.sources.values():
            seen.setdefault(id(source), source)
        return list(seen.values())


def _within(rules: ScopeRules, user: AuthenticatedUser) -> tuple[str, ...]:
    """The effective scopes of an introspected ``user`` under ``rules``, sorted, as
    ``TokenValidator.authorize`` gives them for a JWT; ``InsufficientScopeError`` when a scope
    every request needs is not covered."""
    effective = rules.effective(user.scopes)
    missing = rules.missing(effective)
    if missing:
        raise InsufficientScopeError.lacking(missing, rules.required)
    return tuple(sorted(effective))


def _key_id(token: str | bytes, max_token_bytes: int) -> str | None:
    """The ``kid`` of a token that missed (it parsed far enough to miss: its header reads)."""
    try:
        kid = peek_header(token, max_token_bytes).get("kid")
    except TokenValidationError:
        return None
    return kid if isinstance(kid, str) else None


def introspected(token_format: TokenFormat, token: str | bytes, max_token_bytes: int) -> bool:
    """Whether ``token`` is asked about at the authorization server under ``token_format``:
    every token under ``opaque``; under ``auto``, every token not shaped as a JWS."""
    if not token_format.introspects:
        return False
    return not token_format.verifies_locally or not _is_jws(token, max_token_bytes)


def _is_jws(token: str | bytes, max_token_bytes: int) -> bool:
    """Three segments and a decodable header: what ``auto`` verifies locally."""
    dots = token.count(".") if isinstance(token, str) else token.count(b".")
    if dots != 2:
        return False
    try:
        peek_header(token, max_token_bytes)
    except MalformedTokenError:
        return False
    return True
