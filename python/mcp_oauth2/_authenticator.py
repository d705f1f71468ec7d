"""Validating a bearer token against the live keys of its issuer.

The ``Authenticator`` joins a ``TokenValidator`` (the policy) with one key source per trusted
issuer. With several issuers, the token's unverified ``iss`` only picks which key set to try; the
token is then verified in full, so a forged ``iss`` gains nothing. When the key set does not know
the token's key (a rotation), or the signature fails under a known ``kid`` (an issuer that
restarted with a new key under the same id), the source may refetch, rate limited, and the
token is checked against the fresh set (twice at most: a set that arrived from a scheduled fetch
may predate the key).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, TypeVar

from mcp_oauth2._jwks import JWKSCache, KeySource
from mcp_oauth2._rust import (
    AuthenticatedUser,
    KeySet,
    ScopeRules,
    TokenValidator,
    bearer_token,
    peek_issuer,
)
from mcp_oauth2.errors import (
    ConfigurationError,
    InvalidIssuerError,
    InvalidSignatureError,
    JWKSError,
    KeyNotFoundError,
)

if TYPE_CHECKING:
    from mcp_oauth2._config import OAuth2Config

Checked = TypeVar("Checked")

__all__ = ["Authenticator"]

# After a key miss, how many newer key sets a token is tried against.
MISS_REFETCHES = 2


class Authenticator:
    """Authenticates bearer tokens: ``await authenticator.authenticate(token)``."""

    def __init__(
        self, validator: TokenValidator, keys: KeySource | Mapping[str, KeySource]
    ) -> None:
        self.validator = validator
        if isinstance(keys, Mapping):
            sources = dict(keys)
        else:
            sources = {issuer: keys for issuer in validator.issuers}
        unknown = set(sources) - set(validator.issuers)
        missing = set(validator.issuers) - set(sources)
        if unknown or missing:
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
    ) -> Authenticator:
        """The validator of ``config`` with ``key_sources``, or else the key caches it describes:
        one for ``jwks_uri`` when set, otherwise one per issuer, discovered from its metadata."""
        if key_sources is None:
            settings = config.cache_settings()
            prefetch = config.jwks_prefetch
            if config.jwks_uri is not None:
                key_sources = JWKSCache(
                    jwks_uri=config.jwks_uri, settings=settings, prefetch=prefetch
                )
            else:
                key_sources = {
                    issuer: JWKSCache(issuer=issuer, settings=settings, prefetch=prefetch)
                    for issuer in config.issuer
                }
        return cls(config.token_validator(), key_sources)

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
        """Validate ``token``; raises ``TokenValidationError`` or ``JWKSUnavailableError``."""
        source = self.source_for(token)
        keys = await source.get_keys()
        try:
            return self.validator.validate(token, keys)
        except (KeyNotFoundError, InvalidSignatureError) as miss:
            return await self._after_miss(
                source, keys, miss, lambda keys: self.validator.validate(token, keys)
            )

    async def authorize(
        self, authorization: bytes, rules: ScopeRules
    ) -> tuple[AuthenticatedUser, tuple[str, ...]] | None:
        """The user of an ``Authorization`` header value and its effective scopes under
        ``rules``, in one native call (``TokenValidator.authorize``), or None when the header
        names another scheme. Raises ``InvalidRequestError`` for a malformed header,
        ``TokenValidationError`` (``InsufficientScopeError`` included) or
        ``JWKSUnavailableError``."""
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
                source, keys, miss, lambda keys: validator.authorize(authorization, keys, rules)
            )

    async def _after_miss(
        self,
        source: KeySource,
        keys: KeySet,
        miss: KeyNotFoundError | InvalidSignatureError,
        check: Callable[[KeySet], Checked],
    ) -> Checked:
        """``check`` again after a key miss on ``keys``, with a newer set, twice at most: the
        first may come from a scheduled fetch that left before the key was published; the
        source decides (within its miss budget) whether to fetch again. (Off the request's
        usual path, which calls the validator directly.)"""
        for refetch in range(1, MISS_REFETCHES + 1):
            fresh = await source.refresh_after_miss(keys)
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

    async def start(self) -> None:
        """Start every key source (prefetching keys where configured)."""
        for source in self._distinct_sources():
            await source.start()

    async def aclose(self) -> None:
        for source in self._distinct_sources():
            await source.aclose()

    def _distinct_sources(self) -> list[KeySource]:
        seen: dict[int, KeySource] = {}
        for source in self.sources.values():
            seen.setdefault(id(source), source)
        return list(seen.values())
