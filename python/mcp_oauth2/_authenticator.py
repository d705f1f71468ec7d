"""Validating a bearer token against the live keys of its issuer, or at its authorization server.

The ``Authenticator`` joins a ``TokenValidator`` (the policy) with one key source per trusted
issuer, and an ``Introspector`` (RFC 7662) under ``token_format`` ``opaque`` or ``auto``. One
native call (``TokenValidator.authorize``) decides what becomes of a request: it reads the
``Authorization`` header, classifies the token by its shape alone (every token is introspected
under ``opaque``; under ``auto``, every token without exactly two dots, while one with two is a
JWT, verified locally and refused if it does not parse, never introspected), picks the keys of
the token's issuer by its unverified ``iss`` (a forged ``iss`` gains nothing: the token is then
verified in full against those keys and the issuer rule), validates it and applies the scope
rules. What it cannot settle it refers back: a token to introspect (the scope rules then apply to
the introspected user, in one more call), or the issuer whose keys it was not given.

Keys: with one source for every issuer, that source's keys are asked for before the call. With a
source per issuer, the call gets the set each source gave last, and the token's own source is
asked afterwards, as any request asks (which may start a refresh, or find the keys too old to
serve: 503); when it gives another set, the token is checked again with it.

DPoP (RFC 9449): with the request's ``DPoP`` header values, method and path (``DPoPRequest``),
the same native call checks the proof and, once the token is verified, that the token is bound
to the proof's key; an introspected token's binding is checked on the answer
(``TokenValidator.admit_introspection`` for the request whose call fetched it, ``Referral.admit``
for the others). The answer then carries the ``DPoPProof``, whose replay is the caller's
to check (``_dpop_replay``).

When the key set does not know the token's key (a rotation), or the signature fails under a known
``kid`` (an issuer that restarted with a new key under the same id), the call's error names the
issuer and key id that missed; the source may refetch, rate limited, and the token is checked
against the fresh set (twice at most: a set that arrived from a scheduled fetch may predate the
key). An unknown key while the key server cannot be reached is ``JWKSUnavailableError`` (503,
fail closed), not ``key_not_found``: the key may well exist.

Delegation (``delegated_tokens``): a token with an ``act`` claim (RFC 8693 section 4.1) says that
its actor acts for its subject. Under ``forbidden`` such a token is refused, under ``required``
every other one, whichever way it was checked (``InvalidClaimError``, 401).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Literal, NamedTuple, TypeVar, overload

from mcp_oauth2._health import AuthenticatorHealth, summarize
from mcp_oauth2._introspection import IntrospectionSettings, Introspector
from mcp_oauth2._jwks import JWKSCache, KeySource
from mcp_oauth2._rust import (
    AuthenticatedUser,
    DPoPProof,
    KeySet,
    Referral,
    ScopeRules,
    TokenValidator,
)
from mcp_oauth2._token_format import TokenFormat
from mcp_oauth2.errors import (
    ConfigurationError,
    InvalidClaimError,
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
# A user and its effective scopes, sorted; and the DPoP proof, when the request came with one.
Admitted = (
    tuple[AuthenticatedUser, tuple[str, ...]] | tuple[AuthenticatedUser, tuple[str, ...], DPoPProof]
)
# The keys one native call is given: a set for every issuer, or a set per issuer.
Keys = KeySet | Mapping[str, KeySet]
# One native call on a header (None: another scheme) or a bare token, with the given keys.
Check = Callable[[Keys], Admitted | Referral | None]
# TokenValidator.authorize (a header) or authorize_token (a bare token).
NativeCall = Callable[..., Admitted | Referral | None]

__all__ = ["Admitted", "Authenticator", "DPoPRequest"]

# OAuth2Config.delegated_tokens: whether tokens with an act claim (RFC 8693) may pass.
Delegation = Literal["allowed", "required", "forbidden"]

# After a key miss, how many newer key sets a token is tried against.
MISS_REFETCHES = 2
# How long a readiness check waits for a refresh it started (a probe's timeout is often 1 s).
READINESS_WAIT = 0.5


class DPoPRequest(NamedTuple):
    """What a DPoP proof is checked against: the values of the request's ``DPoP`` headers, its
    method, and its path as sent (percent-encoded, without the query)."""

    proofs: tuple[bytes, ...]
    method: str
    path: str


class Authenticator:
    """Authenticates bearer tokens: ``await authenticator.authenticate(token)``."""

    def __init__(
        self,
        validator: TokenValidator,
        keys: KeySource | Mapping[str, KeySource] | None = None,
        *,
        introspector: Introspector | None = None,
        token_format: TokenFormat | str = TokenFormat.JWT,
        delegated_tokens: Delegation = "allowed",
    ) -> None:
        """``keys`` are needed unless ``token_format`` is ``opaque``; ``introspector`` unless
        it is ``jwt``. ``delegated_tokens`` is ``OAuth2Config.delegated_tokens``."""
        self.validator = validator
        self.introspector = introspector
        if delegated_tokens not in ("allowed", "required", "forbidden"):
            raise ConfigurationError(
                "delegated_tokens must be 'allowed', 'required' or 'forbidden', "
                f"not {delegated_tokens!r}"
            )
        # None when every token may pass, delegated or not: nothing to check on the way in.
        self._delegation: Delegation | None = (
            None if delegated_tokens == "allowed" else delegated_tokens
        )
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
        # One distinct source serves every issuer: its keys go to the call, whatever the issuer.
        distinct = {id(source) for source in sources.values()}
        self._single: KeySource | None = (
            next(iter(sources.values())) if len(distinct) == 1 else None
        )
        # With a source per issuer: the set each gave last (an issuer not yet asked is absent).
        self._last_keys: dict[str, KeySet] = {}

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
            validator,
            key_sources,
            introspector=introspector,
            token_format=config.token_format,
            delegated_tokens=config.delegated_tokens,
        )

    def authenticate(self, token: str | bytes) -> Coroutine[None, None, AuthenticatedUser]:
        """(Awaitable.) Validate ``token`` as ``authorize`` validates the token of a header,
        without scope rules; raises ``TokenValidationError`` or
        ``AuthorizationServerUnavailableError`` (keys or an introspection cannot be had)."""
        return self._admit(self.validator.authorize_token, token, None, user_only=True)

    def authorize(
        self, authorization: bytes, rules: ScopeRules, dpop: DPoPRequest | None = None
    ) -> Coroutine[None, None, Admitted | None]:
        """(Awaitable.) The user of an ``Authorization`` header value and its effective scopes
        under ``rules`` (and the ``DPoPProof``, for a request that proved possession with
        ``dpop``), or None when the header names a scheme not read here. A JWT is settled in one
        native call (``TokenValidator.authorize``: the header, the DPoP proof, the token's
        kind, its issuer's keys, validation, the DPoP binding, the scope rules); an opaque token
        in two (that call, then ``Introspector.admit``: the answer's checks with the admission,
        or the admission of the cached user). Raises
        ``InvalidRequestError`` for a malformed header, ``TokenValidationError``
        (``InsufficientScopeError`` and the DPoP refusals included) or
        ``AuthorizationServerUnavailableError``."""
        if dpop is None:
            return self._admit(self.validator.authorize, authorization, rules)
        authorize = self.validator.authorize

        def call(
            subject: str | bytes, keys: Keys, rules: ScopeRules | None, *, token_format: str
        ) -> Admitted | Referral | None:
            return authorize(
                subject,
                keys,
                rules,
                token_format=token_format,
                dpop_proofs=dpop.proofs,
                method=dpop.method,
                path=dpop.path,
            )

        return self._admit(call, authorization, rules)

    # ``authenticate`` and ``authorize`` are not coroutine functions themselves: a request then
    # costs one coroutine (``_admit``), not two (about 80 ns each on CPython 3.11 here).

    @overload
    async def _admit(
        self, call: NativeCall, subject: str | bytes, rules: None, *, user_only: Literal[True]
    ) -> AuthenticatedUser: ...

    @overload
    async def _admit(
        self, call: NativeCall, subject: str | bytes, rules: ScopeRules | None
    ) -> Admitted | None: ...

    async def _admit(
        self,
        call: NativeCall,
        subject: str | bytes,
        rules: ScopeRules | None,
        *,
        user_only: bool = False,
    ) -> Admitted | AuthenticatedUser | None:
        """``call`` (``TokenValidator.authorize`` on a header, ``authorize_token`` on a bare
        token) with the keys at hand, then whatever it refers the token to. With one source for
        every issuer, the usual request: its keys, then one call."""
        source = self._single
        outcome: Admitted | Referral | None
        if source is None:
            outcome = await self._admit_routed(self._check(call, subject, rules))
        else:
            try:
                keys = await source.get_keys()
            except JWKSError as unavailable:
                outcome = self._without_keys(self._check(call, subject, rules), unavailable)
            else:
                try:
                    outcome = call(subject, keys, rules, token_format=self.token_format)
                except (KeyNotFoundError, InvalidSignatureError) as miss:
                    check = self._check(call, subject, rules)
                    outcome = await self._after_miss(
                        source, keys, miss, lambda keys: _settled(check(keys))
                    )
        if isinstance(outcome, Referral):
            outcome = await self._introspected(outcome, rules)
        if self._delegation is not None and outcome is not None:
            _check_delegation(outcome[0], self._delegation)
        if not user_only:
            return outcome
        if outcome is None:  # only a header names another scheme
            raise MalformedTokenError()
        return outcome[0]

    def _check(self, call: NativeCall, subject: str | bytes, rules: ScopeRules | None) -> Check:
        """``call`` on ``subject`` as a function of the keys (off the usual path)."""
        token_format = self.token_format

        def check(keys: Keys) -> Admitted | Referral | None:
            return call(subject, keys, rules, token_format=token_format)

        return check

    @staticmethod
    def _without_keys(check: Check, unavailable: JWKSError) -> Referral | None:
        """The call without keys when they cannot be had: the header and the token's shape
        still decide (another scheme is no token, 401; broken credentials a bad request, 400;
        an opaque token is referred to introspection), and a JWT, whatever it says, meets the
        outage (503)."""
        try:
            outcome = check({})
        except TokenValidationError:
            raise unavailable from None
        if outcome is None or (isinstance(outcome, Referral) and outcome.issuer is None):
            return outcome
        raise unavailable

    async def _admit_routed(self, check: Check) -> Admitted | Referral | None:
        """A source per issuer: one call with the set each source gave last, the token's
        unverified ``iss`` choosing among them. Then that issuer's source is asked for its keys
        as any request asks (which may start a refresh, or find them too old to serve: 503); when
        they are not the set the call used, the token is checked again with them, and a key miss
        on the current set goes to the miss refetch. A token to introspect is handed back."""
        seen = dict(self._last_keys)
        miss: KeyNotFoundError | InvalidSignatureError | None = None
        try:
            outcome = check(seen)
        except (KeyNotFoundError, InvalidSignatureError) as error:
            if error.issuer is None:
                raise
            miss, issuer, outcome = error, error.issuer, None
        else:
            if outcome is None:
                return None
            if isinstance(outcome, Referral):
                if outcome.issuer is None:
                    return outcome
                issuer = outcome.issuer  # the first token of this issuer: no set seen yet
            else:
                issuer = outcome[0].issuer
        current = await self.sources[issuer].get_keys()
        if current is not seen.get(issuer):
            return await self._recheck(issuer, current, check)
        if miss is not None:
            return await self._recheck(issuer, current, check, miss)
        return _settled(outcome)

    async def _recheck(
        self,
        issuer: str,
        keys: KeySet,
        check: Check,
        miss: KeyNotFoundError | InvalidSignatureError | None = None,
    ) -> Admitted | None:
        """``check`` with ``issuer``'s set ``keys`` (after ``miss`` on it, if given), which
        becomes the set its tokens are checked with."""

        def with_keys(keys: KeySet) -> Admitted | None:
            self._last_keys[issuer] = keys
            return _settled(check({issuer: keys}))

        if miss is None:
            try:
                return with_keys(keys)
            except (KeyNotFoundError, InvalidSignatureError) as again:
                miss = again
        return await self._after_miss(self.sources[issuer], keys, miss, with_keys)

    async def _introspected(self, referral: Referral, rules: ScopeRules | None) -> Admitted:
        """The user the authorization server vouches for, bound as the token was presented, and
        its effective scopes under ``rules`` (without rules, the granted scopes): one native
        call (``Introspector.admit``)."""
        if referral.issuer is not None:  # only with several issuers, which _admit_routed takes
            raise JWKSUnavailableError(f"no keys for {referral.issuer}")
        if self.introspector is None:  # token_format "jwt" refers no token to introspection
            raise ConfigurationError("token_format='jwt' never introspects")
        return await self.introspector.admit(referral, rules)

    async def _after_miss(
        self,
        source: KeySource,
        keys: KeySet,
        miss: KeyNotFoundError | InvalidSignatureError,
        check: Callable[[KeySet], Checked],
    ) -> Checked:
        """``check`` again after a key miss on ``keys``, with a newer set, twice at most: the
        first may come from a scheduled fetch that left before the key was published; the
        source decides (within its miss budget) whether to fetch again; the miss names the key
        (``kid``). (Off the request's usual path.) An unknown key while the key server
        cannot be asked is ``JWKSUnavailableError`` (503), not a verdict on the token; a
        signature that fails under a key in hand stays a refusal of the token."""
        for refetch in range(1, MISS_REFETCHES + 1):
            try:
                fresh = await source.refresh_after_miss(keys, miss.kid)
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


def _check_delegation(user: AuthenticatedUser, rule: Delegation) -> None:
    """``delegated_tokens``: refuse a token with an ``act`` claim (``forbidden``), or one without
    an actor named by a ``sub`` (``required``), as ``InvalidClaimError`` (401)."""
    if rule == "forbidden":
        if "act" in user.claims:
            raise InvalidClaimError("delegated tokens (with an act claim) are not accepted")
        return
    actor = user.actor
    if actor is None or not isinstance(actor.get("sub"), str):
        raise InvalidClaimError(
            "only delegated tokens are accepted: the act claim must name an actor (sub)"
        )


def _settled(outcome: Admitted | Referral | None) -> Admitted | None:
    """The answer of a check given the keys of the token's issuer, which refers it nowhere."""
    if isinstance(outcome, Referral):
        raise JWKSUnavailableError(f"no keys for {outcome.issuer}")
    return outcome
