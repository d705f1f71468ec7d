"""Type stubs for the native core (``mcp_oauth2._rust``), written by hand and checked against
the built module by ``python -m mypy.stubtest`` in ``make lint``."""

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, final

__all__ = [
    "AuthenticatedUser",
    "KeySet",
    "ScopeRules",
    "TokenValidator",
    "__version__",
    "bearer_token",
    "peek_header",
    "peek_issuer",
    "token_error_descriptions",
    "token_error_examples",
]

__version__: str

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
    def claims(self) -> Mapping[str, Any]:
        """The whole decoded payload, read-only at every depth.

        JSON objects are read-only mappings (``types.MappingProxyType``) and arrays are tuples,
        also when nested, so no code can change what another request sees through the cache.
        ``json.dumps(user.claims, default=dict)`` gives the JSON text.
        """

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
    ) -> TokenValidator: ...
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

    def validate_introspection(
        self,
        response: bytes,
        *,
        now: float | None = None,
        require_audience: bool = True,
        issuer: str | None = None,
    ) -> AuthenticatedUser:
        """Check an RFC 7662 introspection response (its JSON text) against this policy.

        Only ``"active": true`` (exactly) is active, else ``InactiveTokenError``; a
        ``token_use`` other than ``access_token`` is refused; ``exp``, ``nbf`` and ``iat`` follow
        the JWT rules with the same leeway; ``iss``, when present, must be a configured issuer;
        ``aud`` must name a configured audience and may be absent only when ``require_audience``
        is False; ``required_claims`` do not apply. ``issuer`` (default: the first configured
        one) is the user's ``issuer`` when the response has no ``iss``. Raises ``ValueError``
        when the text is not one JSON object (duplicate member names refused).
        """

    def authorize(
        self,
        authorization: bytes | str,
        keys: KeySet,
        scopes: ScopeRules | None = None,
        *,
        now: float | None = None,
    ) -> tuple[AuthenticatedUser, tuple[str, ...]] | None:
        """One call from an ``Authorization`` header value to the user and its scopes.

        Reads the Bearer credentials (RFC 6750 section 2.1: the scheme case-insensitively, one
        b64token), validates the token as ``validate`` does (verified-token cache included) and
        applies ``scopes``: returns ``(user, effective scopes sorted)``, or None when the header
        names another scheme. Raises ``InvalidRequestError`` for empty or malformed Bearer
        credentials, ``TokenValidationError`` subclasses as ``validate`` does, and
        ``InsufficientScopeError`` (with every scope ``scopes`` requires) when a required scope
        is not covered.
        """

    def cache_info(self) -> dict[str, int]:
        """Counters of the verified-token cache: size, capacity, hits, misses, evictions."""

    def cache_clear(self) -> None:
        """Forget every cached result."""

    def __repr__(self) -> str: ...

def bearer_token(authorization: bytes | str) -> str | None:
    """The bearer token of an ``Authorization`` header value, read as ``TokenValidator.authorize``
    reads it (RFC 6750 section 2.1): None when the header names another scheme; raises
    ``InvalidRequestError`` for empty or malformed Bearer credentials."""

def peek_header(token: str | bytes, max_token_bytes: int = 8192) -> dict[str, Any]:
    """Decode the protected header of a compact JWS without verifying anything.

    For routing only (for example choosing a key source by ``kid``); never trust the result.
    """

def peek_issuer(token: str | bytes, max_token_bytes: int = 8192) -> str | None:
    """The unverified ``iss`` claim of a compact JWS, or None when absent or unreadable.

    For choosing a key source among several issuers; the token is verified afterwards.
    """

def token_error_descriptions() -> dict[str, str]:
    """Each error code the core raises, with its fixed client-safe words (the
    ``default_description`` of the class with that code in ``mcp_oauth2.errors``)."""

def token_error_examples() -> list[tuple[str, str, Exception]]:
    """One error of every kind the core raises: ``(code, description, exception)``, the exception
    converted the way ``validate`` raises it (for tests)."""
