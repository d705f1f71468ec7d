"""Test keys, JWKS documents, token minting and constants shared by the test suite.

Keys are generated once per test session (RSA key generation is slow) and cached by key id, so
the plain helpers below (``private_key``, ``mint``) and the session fixtures hand out the same
keys. Tokens are minted with PyJWT, an independent implementation, so every test also checks
interoperability.

Test modules import them directly (``from token_factory import ISSUER, mint``): pytest's
default ``prepend`` import mode puts this folder on ``sys.path``.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Iterable, Mapping
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from mcp_oauth2._claims import ReadOnlyDict
from mcp_oauth2.lowlevel import TokenValidator

ISSUER = "https://auth.example.com"
AUDIENCE = "https://mcp.example.com/mcp"
# A fixed clock (unix seconds, 2027-01-15), passed as ``now=`` so results never depend on the date.
NOW = 1_800_000_000

ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey

# Key id -> what to generate. ``rsa-2`` is deliberately left out of ``TRUSTED_KEY_IDS``: it is a
# well-formed key the server does not trust (wrong-key and key-rotation tests).
_KEY_SPECS: dict[str, tuple[str, Any]] = {
    "rsa-1": ("RSA", 2048),
    "rsa-2": ("RSA", 2048),
    "rsa-3072": ("RSA", 3072),
    "ec-256": ("EC", ec.SECP256R1()),
    "ec-384": ("EC", ec.SECP384R1()),
    "ec-521": ("EC", ec.SECP521R1()),
    "ed25519": ("OKP", None),
}
KEY_IDS = tuple(_KEY_SPECS)
TRUSTED_KEY_IDS = ("rsa-1", "rsa-3072", "ec-256", "ec-384", "ec-521", "ed25519")

# The key ``mint`` signs with when none is given.
DEFAULT_KID = {
    "RS256": "rsa-1",
    "RS384": "rsa-1",
    "RS512": "rsa-1",
    "PS256": "rsa-1",
    "PS384": "rsa-1",
    "PS512": "rsa-1",
    "ES256": "ec-256",
    "ES384": "ec-384",
    "ES512": "ec-521",
    "EdDSA": "ed25519",
}

_EC_SIZES = {"secp256r1": ("P-256", 32), "secp384r1": ("P-384", 48), "secp521r1": ("P-521", 66)}


def b64u(data: bytes) -> str:
    """base64url without padding (RFC 7515 section 2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64u_decode(text: str) -> bytes:
    """Lenient base64url decoding for test data (adds the padding back)."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _uint(value: int, size: int | None = None) -> bytes:
    """Big-endian bytes of a non-negative integer: minimal, or left-padded to ``size``."""
    if size is None:
        size = max(1, (value.bit_length() + 7) // 8)
    return value.to_bytes(size, "big")


@functools.cache
def private_key(kid: str) -> PrivateKey:
    """The private key with this key id, generated on first use and then cached."""
    kind, param = _KEY_SPECS[kid]
    if kind == "RSA":
        return rsa.generate_private_key(public_exponent=65537, key_size=param)
    if kind == "EC":
        return ec.generate_private_key(param)
    return ed25519.Ed25519PrivateKey.generate()


def public_key(kid: str) -> PublicKey:
    return private_key(kid).public_key()


def public_jwk(
    key: PrivateKey | PublicKey,
    kid: str | None = None,
    *,
    alg: str | None = None,
    use: str | None = "sig",
) -> dict[str, str]:
    """The public JWK of ``key`` (RFC 7517/7518/8037), built by hand with exact-length members.

    No ``alg`` by default: an RSA key then serves all of RS* and PS*.
    """
    if isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
        key = key.public_key()
    jwk: dict[str, str]
    if isinstance(key, rsa.RSAPublicKey):
        numbers = key.public_numbers()
        jwk = {"kty": "RSA", "n": b64u(_uint(numbers.n)), "e": b64u(_uint(numbers.e))}
    elif isinstance(key, ec.EllipticCurvePublicKey):
        crv, size = _EC_SIZES[key.curve.name]
        point = key.public_numbers()
        jwk = {
            "kty": "EC",
            "crv": crv,
            "x": b64u(_uint(point.x, size)),
            "y": b64u(_uint(point.y, size)),
        }
    elif isinstance(key, ed25519.Ed25519PublicKey):
        raw = key.public_bytes(Encoding.Raw, PublicFormat.Raw)
        jwk = {"kty": "OKP", "crv": "Ed25519", "x": b64u(raw)}
    else:  # pragma: no cover - guarded by the type hints
        raise TypeError(f"unsupported key type {type(key).__name__}")
    if kid is not None:
        jwk["kid"] = kid
    if use is not None:
        jwk["use"] = use
    if alg is not None:
        jwk["alg"] = alg
    return jwk


def jwks_for(kids: Iterable[str] = TRUSTED_KEY_IDS) -> dict[str, list[dict[str, str]]]:
    """A JWKS document with the public keys of these key ids (each JWK carries its ``kid``)."""
    return {"keys": [public_jwk(private_key(kid), kid) for kid in kids]}


def json_equal(actual: Any, expected: Any) -> bool:
    """Equal as JSON values, with types: bool is not int, int is not float, arrays are lists."""
    if isinstance(expected, Mapping):
        return (
            isinstance(actual, Mapping)
            and set(actual) == set(expected)
            and all(json_equal(actual[name], value) for name, value in expected.items())
        )
    if isinstance(expected, list):
        return (
            type(actual) is list
            and len(actual) == len(expected)
            and all(json_equal(a, e) for a, e in zip(actual, expected, strict=True))
        )
    return type(actual) is type(expected) and actual == expected


def plain_json(claims: Any) -> Any:
    """``AuthenticatedUser.claims`` as plain JSON values (dicts and lists), for comparisons.

    Fails when any level is mutable: objects must be ``ReadOnlyDict`` and arrays tuples.
    """
    if isinstance(claims, ReadOnlyDict):
        return {name: plain_json(value) for name, value in claims.items()}
    if isinstance(claims, Mapping | list):
        raise AssertionError(f"a mutable {type(claims).__name__} inside the claims")
    if isinstance(claims, tuple):
        return [plain_json(item) for item in claims]
    return claims


def make_claims(*, drop: Iterable[str] = (), **overrides: Any) -> dict[str, Any]:
    """A valid access-token claims set at ``NOW`` for ``ISSUER``/``AUDIENCE``, with changes."""
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "user-1",
        "client_id": "client-1",
        "scope": "read write",
        "iat": NOW - 60,
        "nbf": NOW - 60,
        "exp": NOW + 3600,
        "jti": "token-1",
    }
    claims.update(overrides)
    for name in drop:
        claims.pop(name, None)
    return claims


def mint(
    alg: str,
    claims: Mapping[str, Any],
    *,
    key: str | PrivateKey | None = None,
    headers: Mapping[str, Any] | None = None,
) -> str:
    """Sign ``claims`` with PyJWT.

    ``key`` is a key id (the default is ``DEFAULT_KID[alg]``; the header then names it in
    ``kid``) or a private key object (no ``kid`` unless ``headers`` gives one). ``headers`` is
    merged into PyJWT's header, which has ``typ: JWT`` unless given ``{"typ": None}``.
    """
    if key is None:
        key = DEFAULT_KID[alg]
    header: dict[str, Any] = {}
    if isinstance(key, str):
        header["kid"] = key
        key = private_key(key)
    if headers:
        header.update(headers)
    return jwt.encode(dict(claims), key, algorithm=alg, headers=header or None)


def default_validator(**options: Any) -> TokenValidator:
    """A validator for ``ISSUER``/``AUDIENCE`` accepting every supported algorithm."""
    options.setdefault("algorithms", ALGORITHMS)
    return TokenValidator(ISSUER, AUDIENCE, **options)
