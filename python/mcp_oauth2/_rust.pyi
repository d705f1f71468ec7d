"""Type stubs for the native core (``mcp_oauth2._rust``), written by hand and checked against
the built module by ``python -m mypy.stubtest`` in ``make lint``."""

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, final, overload

from mcp_oauth2._claims import ReadOnlyDict
from mcp_oauth2.errors import InvalidDPoPProofError, TokenValidationError

# One check of a trace: ``(check, status, detail)``, status ``"pass"``, ``"fail"``, ``"skip"``
# or ``"not_reached"``.
_Step = tuple[str, str, str]

__all__ = [
    "AuthenticatedUser",
    "DPoPPolicy",
    "DPoPProof",
    "KeySet",
    "Referral",
    "ScopeRules",
    "TokenValidator",
    "__version__",
    "bearer_token",
    "claim_values",
    "token_error_descriptions",
]

__version__: str

# What ``TokenValidator.authorize`` admits: the user and its effective scopes (sorted), and the
# DPoP proof when the request came with one.
_Admitted = tuple[AuthenticatedUser, tuple[str, ...]]
_Proven = tuple[AuthenticatedUser, tuple[str, ...], DPoPProof]

@final
class KeySet:
    """An immutable set of public verification keys parsed once from a JWKS document.

    Safe to share between threads. A refresh builds a new ``KeySet``; nothing mutates one.
    """

    @staticmethod
    def from_jwks(jwks: Mapping[str, Any] | str | bytes) -> KeySet:
        """Parse a JWKS document (a dict, or its JSON text as str or bytes).

        Keys that cannot be used are skipped, each with a readable reason in ``skipped``.
        Raises ``JWKSError`` when the document is not a JWKS or no key is usable.
        """

    @property
    def key_ids(self) -> tuple[str, ...]:
        """The ``kid`` of every usable key that has one, in document order."""

    @property
    def skipped(self) -> tuple[str, ...]:
        """One readable reason per key that was skipped (for diagnostics and logs).

        Only the first 100 entries of ``keys`` are read; any beyond them are summed up in one
        last reason, ``"N more entries beyond the first 100 were not read"``.
        """

    @property
    def fingerprint(self) -> bytes:
        """SHA-256 over the usable keys' canonical public material, ids and algorithms.

        Equal fingerprints mean the same keys; a refresh that changes nothing keeps it.
        """

    def __len__(self) -> int:
        """The number of usable keys."""

    def __contains__(self, kid: object, /) -> bool:
        """Whether a usable key has this ``kid``."""

    def verify_signature(
        self, algorithm: str, message: bytes, signature: bytes, *, kid: str | None = None
    ) -> bool:
        """Low-level check: does ``signature`` over ``message`` verify with a key of this set?

        ``algorithm`` is a JWS ``alg``; the key is chosen as for a token (by ``kid``, else the
        single key fitting the algorithm). Returns False for a bad signature; raises the same
        ``TokenValidationError`` subclasses as ``TokenValidator.validate`` when no key fits.
        """

    def __repr__(self) -> str: ...

@final
class AuthenticatedUser:
    """The result of a successful validation. Frozen; usable as Starlette's ``request.user``."""

    @property
    def subject(self) -> str | None:
        """The ``sub`` claim (None only when ``required_claims`` leaves ``sub`` out)."""

    @property
    def issuer(self) -> str:
        """The ``iss`` claim (one of the configured issuers); for an introspection response
        without ``iss``, the issuer it was introspected for."""

    @property
    def audience(self) -> tuple[str, ...]:
        """Every value of the ``aud`` claim."""

    @property
    def username(self) -> str | None:
        """The ``username`` member (RFC 7662 introspection responses carry it)."""

    @property
    def scopes(self) -> frozenset[str]:
        """Scopes from ``scope`` (space-separated) and ``scp`` (string or list)."""

    @property
    def roles(self) -> frozenset[str]:
        """The roles at the validator's ``roles_claims`` paths (``roles`` by default; dotted
        paths such as ``realm_access.roles`` for nested claims): each string found there, or
        each string of a list found there. Read with the other claims; a value of another type
        made the token an ``invalid_claim``."""

    @property
    def client_id(self) -> str | None:
        """The ``client_id`` claim, else ``azp``."""

    @property
    def expires_at(self) -> int | None:
        """``exp`` in unix seconds (rounded down)."""

    @property
    def issued_at(self) -> int | None:
        """``iat`` in unix seconds (rounded down)."""

    @property
    def token_id(self) -> str | None:
        """The ``jti`` claim."""

    @property
    def claims(self) -> ReadOnlyDict:
        """The whole decoded payload, read-only at every depth.

        JSON objects are ``ReadOnlyDict`` (a ``dict`` whose mutating methods raise
        ``TypeError``) and arrays are tuples, also when nested, so no code can change what
        another request sees through the cache. They serialize as the JSON they came from
        (``json.dumps``, pydantic, FastAPI); ``dict(claims)`` or ``copy.deepcopy`` gives a copy
        to change.
        """

    @property
    def actor(self) -> ReadOnlyDict | None:
        """The ``act`` claim (RFC 8693 section 4.1), read from ``claims``: who acts for the
        subject (its ``sub``), with the earlier actors nested under ``act``; None when the token
        names no actor (or its ``act`` is not an object)."""

    @property
    def is_authenticated(self) -> bool:
        """Always True (Starlette's ``BaseUser`` protocol)."""

    @property
    def display_name(self) -> str:
        """The subject, else the username, else the client id, else an empty string."""

    @property
    def identity(self) -> str:
        """The subject, else the client id, else an empty string."""

    def has_scopes(self, *scopes: str) -> bool:
        """Whether every given scope was granted."""

    def __eq__(self, other: object, /) -> bool: ...
    def __hash__(self) -> int: ...
    def __repr__(self) -> str: ...

@final
class ScopeRules:
    """Scope implications and the scopes every request needs, for ``TokenValidator.authorize``.

    A broader scope grants the narrower ones it implies, transitively
    (``{"mcp:admin": ["mcp:write"], "mcp:write": ["mcp:read"]}``); the closure is computed once.
    Immutable; build one at startup and share it.
    """

    def __new__(
        cls,
        implications: Mapping[str, Iterable[str]] | None = None,
        required: Sequence[str] | None = None,
    ) -> ScopeRules: ...
    @property
    def required(self) -> tuple[str, ...]:
        """The scopes every request needs, each once, in the order given."""

    def effective(self, granted: Iterable[str]) -> frozenset[str]:
        """The granted scopes plus everything they imply."""

    def missing(
        self, granted: Iterable[str], required: Iterable[str] | None = None
    ) -> tuple[str, ...]:
        """The required scopes (default: ``self.required``) not covered, in the order given,
        each once."""

    def admit(self, user: AuthenticatedUser) -> tuple[str, ...]:
        """The user's effective scopes under these rules, sorted, as ``TokenValidator.authorize``
        gives them; ``InsufficientScopeError`` (with every required scope) when a required scope
        is not covered. Decided once per user object for the first rules that ask."""

    def __repr__(self) -> str: ...

@final
class TokenValidator:
    """A validation policy: which issuers, audiences, algorithms and claims are accepted.

    Immutable and thread-safe; build one at startup and share it.
    """

    def __new__(
        cls,
        issuer: str | Sequence[str],
        audience: str | Sequence[str],
        *,
        algorithms: Sequence[str] = ("RS256", "ES256"),
        leeway: int = 60,
        required_claims: Sequence[str] = ("exp", "iss", "aud", "sub"),
        required_scopes: Sequence[str] = (),
        accepted_types: Sequence[str] | None = None,
        max_token_bytes: int = 8192,
        cache_size: int = 16384,
        roles_claims: Sequence[str] | None = None,
        dpop: DPoPPolicy | None = None,
    ) -> TokenValidator:
        """``roles_claims``: the claim paths ``AuthenticatedUser.roles`` are read from (None:
        ``("roles",)``); ``dpop``: what it accepts of DPoP (None: as ``off``)."""
    @property
    def issuers(self) -> tuple[str, ...]: ...
    @property
    def audiences(self) -> tuple[str, ...]: ...
    @property
    def algorithms(self) -> tuple[str, ...]: ...
    @property
    def leeway(self) -> int: ...
    @property
    def required_claims(self) -> tuple[str, ...]: ...
    @property
    def required_scopes(self) -> tuple[str, ...]: ...
    @property
    def accepted_types(self) -> tuple[str, ...] | None: ...
    @property
    def max_token_bytes(self) -> int: ...
    @property
    def roles_claims(self) -> tuple[str, ...]: ...
    @property
    def dpop(self) -> DPoPPolicy | None:
        """What this validator accepts of DPoP (None: bearer tokens only, as ``off``)."""

    def validate(
        self, token: str | bytes, keys: KeySet, *, now: float | None = None
    ) -> AuthenticatedUser:
        """Verify the token's signature with ``keys`` and check its claims against this policy.

        Pure: no I/O. ``now`` (unix seconds) defaults to the system clock. Raises a subclass of
        ``TokenValidationError`` on any failure.

        A token that validated before is answered from the verified-token cache (``cache_size``
        entries, least recently used out first; 0 disables it): ``exp`` and ``nbf`` are checked
        again against ``now``, and the result holds only while the key that verified it is in
        ``keys``. The same immutable ``AuthenticatedUser`` object is returned for each hit.
        """

    def admit_introspection(
        self,
        referral: Referral,
        response: bytes,
        *,
        now: float | None = None,
        require_audience: bool = True,
        issuer: str | None = None,
        scopes: ScopeRules | None = None,
    ) -> tuple[AuthenticatedUser, _Admitted | _Proven | TokenValidationError]:
        """``validate_introspection`` and ``referral.admit(user, scopes)`` in one call, for the
        request whose call to the endpoint fetched ``response``: ``(user, verdict)``, where
        ``verdict`` is what ``referral.admit`` returns, or the ``TokenValidationError`` it raises
        as a value (the DPoP binding or a missing scope refuses this request, not the answer).
        Raises as ``validate_introspection`` does when the answer itself is refused or is not
        JSON."""

    @overload
    def validate_introspection(
        self,
        response: bytes,
        *,
        now: float | None = None,
        require_audience: bool = True,
        issuer: str | None = None,
        scopes: None = None,
    ) -> AuthenticatedUser: ...
    @overload
    def validate_introspection(
        self,
        response: bytes,
        *,
        now: float | None = None,
        require_audience: bool = True,
        issuer: str | None = None,
        scopes: ScopeRules,
    ) -> tuple[AuthenticatedUser, tuple[str, ...]]:
        """Check an RFC 7662 introspection response (its JSON text) against this policy.

        Only ``"active": true`` (exactly) is active, else ``InactiveTokenError``; a
        ``token_use`` other than ``access_token`` is refused; ``exp``, ``nbf`` and ``iat`` follow
        the JWT rules with the same leeway; ``iss``, when present, must be a configured issuer;
        ``aud`` must name a configured audience and may be absent only when ``require_audience``
        is False; ``required_claims`` do not apply. ``issuer`` (default: the first configured
        one) is the user's ``issuer`` when the response has no ``iss``. Raises ``ValueError``
        when the text is not one JSON object (duplicate member names refused). With ``scopes``,
        returns ``(user, effective scopes sorted)`` as ``authorize`` does (and raises
        ``InsufficientScopeError`` as it does).
        """

    @overload
    def authorize(
        self,
        authorization: bytes | str,
        keys: KeySet,
        scopes: ScopeRules | None = None,
        *,
        token_format: Literal["jwt"] = "jwt",  # noqa: S107 - a format name, not a secret
        now: float | None = None,
        dpop_proofs: None = None,
        method: str = "GET",
        path: str = "/",
    ) -> _Admitted | None: ...
    @overload
    def authorize(
        self,
        authorization: bytes | str,
        keys: KeySet | Mapping[str, KeySet],
        scopes: ScopeRules | None = None,
        *,
        token_format: str = "jwt",  # noqa: S107 - a format name, not a secret
        now: float | None = None,
        dpop_proofs: None = None,
        method: str = "GET",
        path: str = "/",
    ) -> _Admitted | Referral | None: ...
    @overload
    def authorize(
        self,
        authorization: bytes | str,
        keys: KeySet | Mapping[str, KeySet],
        scopes: ScopeRules | None = None,
        *,
        token_format: str = "jwt",  # noqa: S107 - a format name, not a secret
        now: float | None = None,
        dpop_proofs: Sequence[bytes],
        method: str = "GET",
        path: str = "/",
    ) -> _Admitted | _Proven | Referral | None:
        """One call from an ``Authorization`` header value to what becomes of the request.

        Reads the credentials (RFC 6750 section 2.1, RFC 9449 section 7.1: the scheme
        case-insensitively, one token) and returns None when the header names a scheme this
        validator does not read (``DPoP`` is one only with a ``dpop`` policy that is not
        ``off``). Under the ``DPoP`` scheme, ``dpop_proofs`` (the values of every ``DPoP``
        header: exactly one is required) is checked for ``method`` and ``path`` (the request's
        own, percent-encoded, without the query) as RFC 9449 section 4.3 says, and after
        validation the token must be bound to the proof's key (``cnf.jkt``); the answer then has
        the ``DPoPProof`` third, for the caller's replay check. A token bound to a key
        (``cnf.jkt``) presented as a bearer token is refused (``DPoPRequiredError``), and so is
        any bearer token under ``required``. The token's kind is
        decided by ``token_format`` and its shape alone: under ``opaque`` every token, under
        ``auto`` every token without exactly two dots, is handed back as a ``Referral`` to
        introspect. A JWT is validated as ``validate`` does (verified-token cache included)
        with ``keys``: one ``KeySet`` for every issuer, or a mapping of issuer to ``KeySet``
        from which the token's unverified ``iss`` chooses (it must be a configured issuer; the
        token is then verified in full). A configured issuer that ``keys`` has no set for gives
        a ``Referral`` naming it. ``scopes`` then applies: returns ``(user, effective scopes
        sorted)``.

        Raises ``InvalidRequestError`` for empty or malformed credentials,
        ``InvalidDPoPProofError``, ``UseDPoPNonceError`` and ``DPoPRequiredError`` for DPoP,
        ``TokenValidationError`` subclasses as ``validate`` does (a ``KeyNotFoundError`` or
        ``InvalidSignatureError`` names in ``issuer`` and ``kid`` the issuer whose keys were
        chosen, if chosen by issuer, and the token's key id), and ``InsufficientScopeError``
        (with every scope ``scopes`` requires) when a required scope is not covered.
        """

    @overload
    def authorize_token(
        self,
        token: str | bytes,
        keys: KeySet,
        scopes: ScopeRules | None = None,
        *,
        token_format: Literal["jwt"] = "jwt",  # noqa: S107 - a format name, not a secret
        now: float | None = None,
    ) -> _Admitted: ...
    @overload
    def authorize_token(
        self,
        token: str | bytes,
        keys: KeySet | Mapping[str, KeySet],
        scopes: ScopeRules | None = None,
        *,
        token_format: str = "jwt",  # noqa: S107 - a format name, not a secret
        now: float | None = None,
    ) -> _Admitted | Referral:
        """``authorize`` for a bare token, without the header (as the MCP SDK hands one over):
        a bearer token, so one bound to a DPoP key (``cnf.jkt``) is refused."""

    def trace(
        self,
        token: str | bytes,
        keys: KeySet | Mapping[str, KeySet],
        scopes: ScopeRules | None = None,
        *,
        token_format: str = "jwt",  # noqa: S107 - a format name, not a secret
        now: float | None = None,
    ) -> tuple[
        list[_Step],
        _Admitted | Referral | TokenValidationError,
    ]:
        """``authorize_token``, explained: ``(steps, verdict)``.

        ``steps`` are the checks in the order the validator makes them, each ``(check, status,
        detail)``: ``status`` is ``"pass"``, ``"fail"``, ``"skip"`` (made, with nothing to
        check) or ``"not_reached"`` (an earlier check settled the token); a failure's
        ``detail`` is the error's own ``description``. ``verdict`` is what ``authorize_token``
        returns, or the ``TokenValidationError`` it raises (as a value). The rules record their
        outcomes as they run on the same code path as ``authorize_token``; only the
        verified-token cache is left out (every check is made, and nothing is cached). Raises,
        as ``authorize_token`` does, for what is no token at all (``TypeError``; bytes that are
        not UTF-8: ``MalformedTokenError``) and for keys that are not keys (``TypeError``).
        """

    def trace_introspection(
        self,
        response: bytes,
        *,
        now: float | None = None,
        require_audience: bool = True,
        issuer: str | None = None,
        scopes: ScopeRules | None = None,
    ) -> tuple[
        list[_Step],
        AuthenticatedUser | tuple[AuthenticatedUser, tuple[str, ...]] | TokenValidationError,
    ]:
        """``validate_introspection``, explained: ``(steps, verdict)`` as ``trace`` gives them.
        An answer that is not one JSON object still raises ``ValueError``."""

    def cache_info(self) -> dict[str, int]:
        """Counters of the verified-token cache: size, capacity, hits, misses, evictions."""

    def cache_clear(self) -> None:
        """Forget every cached result."""

    def __repr__(self) -> str: ...

@final
class Referral:
    """A token that one ``TokenValidator.authorize`` call could not settle by itself."""

    def admit(
        self, user: AuthenticatedUser, scopes: ScopeRules | None = None
    ) -> _Admitted | _Proven:
        """The introspected ``user`` of this token admitted as ``authorize`` admits a verified
        one: the DPoP binding (the answer's ``cnf.jkt`` against the proof's key; none for a
        bearer token), then ``(user, effective scopes sorted)`` under ``scopes`` (the granted
        scopes without), with the ``DPoPProof`` third when the token came with one."""

    @property
    def token(self) -> str:
        """The bearer token."""

    @property
    def issuer(self) -> str | None:
        """None: introspect the token (RFC 7662). Otherwise a configured issuer, named by the
        JWT's unverified ``iss``, whose keys the call was not given: get them and call again."""

    def __repr__(self) -> str: ...

@final
class DPoPPolicy:
    """What a resource accepts of DPoP (RFC 9449): the mode (``off``, ``allowed``,
    ``required``), the proofs' algorithms (asymmetric only) and time window, the resource's URL
    (the scheme and authority of every ``htu``), and nonces: an HMAC of ``nonce_secret`` (32 bytes
    or more) and a 150-second window, accepted in that window and the next, so that any process
    with the secret accepts another's nonce; without a secret, a random one of this object, which
    no other process knows."""

    def __new__(
        cls,
        mode: str,
        resource: str,
        *,
        algorithms: Sequence[str] = ("ES256", "ES384", "RS256", "PS256", "EdDSA"),
        max_age: int = 300,
        nonce: bool = False,
        nonce_secret: bytes | None = None,
    ) -> DPoPPolicy: ...
    @property
    def mode(self) -> str: ...
    @property
    def algorithms(self) -> tuple[str, ...]: ...
    @property
    def max_age(self) -> int:
        """Seconds a proof's ``iat`` may be from the clock, either way."""

    @property
    def nonce(self) -> bool:
        """Whether proofs must carry this server's nonce."""

    def current_nonce(self, *, now: float | None = None) -> str | None:
        """The nonce to hand a client now (``DPoP-Nonce``); None when nonces are off."""

    def check_proof(
        self,
        proof: str,
        *,
        method: str,
        path: str,
        access_token: str,
        now: float | None = None,
    ) -> DPoPProof:
        """Check one proof (RFC 9449 section 4.3) for ``method`` on ``path`` of this resource
        with ``access_token``; raises ``InvalidDPoPProofError`` or ``UseDPoPNonceError``. The
        binding to the token's key is ``TokenValidator.authorize``'s."""

    def explain(
        self,
        proof: str,
        *,
        method: str,
        path: str,
        access_token: str,
        confirmation: str | None = None,
        now: float | None = None,
    ) -> list[tuple[str, str, str]]:
        """Each check ``check_proof`` makes, in its order, then the binding to ``confirmation``
        (the token's ``cnf.jkt``): ``(check, "pass" | "fail" | "not_reached", why)``, in the
        words of ``TokenValidator.trace``."""

    def __repr__(self) -> str: ...

@final
class DPoPProof:
    """A DPoP proof that passed: its key's thumbprint, and what a replay check keeps of it."""

    @property
    def thumbprint(self) -> str:
        """The RFC 7638 SHA-256 thumbprint of the proof's key (a bound token's ``cnf.jkt``)."""

    @property
    def replay_key(self) -> bytes:
        """32 bytes naming the proof (its key and ``jti``) in a replay cache."""

    @property
    def expires_at(self) -> float:
        """Unix time after which the proof no longer passes the time check."""

    def replayed(self) -> InvalidDPoPProofError:
        """The refusal of this proof when it was seen before."""

    def __repr__(self) -> str: ...

def bearer_token(authorization: bytes | str) -> str | None:
    """The bearer token of an ``Authorization`` header value, read as ``TokenValidator.authorize``
    reads it (RFC 6750 section 2.1): None when the header names another scheme; raises
    ``InvalidRequestError`` for empty or malformed Bearer credentials."""

def claim_values(user: AuthenticatedUser, path: str) -> tuple[Any, ...]:
    """Every value at the dotted claim ``path`` of ``user.claims`` (``realm_access.roles``: the
    member ``roles`` of the claim ``realm_access``; a member name is matched as written, dots
    included), as read-only values: none when the path leads nowhere, more than one only when the
    claims hold both readings of a dotted name. The path rule is the one ``roles_claims`` uses."""

def token_error_descriptions() -> dict[str, str]:
    """Each error code the core raises, with its fixed client-safe words (the
    ``default_description`` of the class with that code in ``mcp_oauth2.errors``)."""
