"""Signing keys and tokens of the local issuer: key generation per JWS algorithm, public JWKs,
rotation, and the compact JWS built byte by byte as RFC 7515 describes it.

Tokens are signed with ``cryptography`` directly, not with a JWT library, so the testing extra
needs nothing beyond it.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, TypedDict

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

__all__ = [
    "DEFAULT_CLIENT_ID",
    "DEFAULT_LIFETIME",
    "CommonMintOptions",
    "KeyRing",
    "MintOptions",
    "b64u",
    "claims_for",
    "compact_json",
    "generate",
    "merged",
    "public_jwk",
    "sign",
    "unusable_jwks",
]

DEFAULT_CLIENT_ID: Final = "local-client"
"""The ``client_id`` claim of minted tokens (override it with ``claims=``)."""

DEFAULT_LIFETIME: Final = 300
"""Seconds a minted token is valid for unless ``expires_in`` says otherwise."""

_PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


class CommonMintOptions(TypedDict, total=False):
    """What every ``mint*`` method accepts (``LocalIssuer.mint`` documents each)."""

    subject: str | None
    scopes: str | Iterable[str]
    expires_in: int
    algorithm: str | None
    kid: str | None
    headers: Mapping[str, Any] | None
    claims: Mapping[str, Any] | None
    issued_at: int | None
    jkt: str | None


class MintOptions(CommonMintOptions, total=False):
    """The keyword arguments of ``LocalIssuer.mint``, for the ``mint_*`` variants."""

    audience: str | Sequence[str] | None


@dataclass(frozen=True, slots=True)
class _Algorithm:
    """How one JWS algorithm (RFC 7518 section 3, RFC 8037) makes keys and signatures."""

    family: Literal["RSA", "PSS", "EC", "OKP"]
    hash: hashes.HashAlgorithm | None = None
    curve: ec.EllipticCurve | None = None
    crv: str = ""
    size: int = 0  # bytes of an EC coordinate (and of r and s)

    def generate(self) -> _PrivateKey:
        if self.family in ("RSA", "PSS"):
            return rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if self.curve is not None:
            return ec.generate_private_key(self.curve)
        return ed25519.Ed25519PrivateKey.generate()

    def sign(self, key: _PrivateKey, message: bytes) -> bytes:
        if isinstance(key, ed25519.Ed25519PrivateKey):
            return key.sign(message)
        assert self.hash is not None
        if isinstance(key, ec.EllipticCurvePrivateKey):
            # JWS wants r || s at fixed length (RFC 7518 section 3.4), not ASN.1 DER.
            r, s = decode_dss_signature(key.sign(message, ec.ECDSA(self.hash)))
            return r.to_bytes(self.size, "big") + s.to_bytes(self.size, "big")
        if self.family == "PSS":
            pss = padding.PSS(mgf=padding.MGF1(self.hash), salt_length=padding.PSS.DIGEST_LENGTH)
            return key.sign(message, pss, self.hash)
        return key.sign(message, padding.PKCS1v15(), self.hash)


_ALGORITHMS: Final[Mapping[str, _Algorithm]] = {
    "RS256": _Algorithm("RSA", hashes.SHA256()),
    "RS384": _Algorithm("RSA", hashes.SHA384()),
    "RS512": _Algorithm("RSA", hashes.SHA512()),
    "PS256": _Algorithm("PSS", hashes.SHA256()),
    "PS384": _Algorithm("PSS", hashes.SHA384()),
    "PS512": _Algorithm("PSS", hashes.SHA512()),
    "ES256": _Algorithm("EC", hashes.SHA256(), ec.SECP256R1(), "P-256", 32),
    "ES384": _Algorithm("EC", hashes.SHA384(), ec.SECP384R1(), "P-384", 48),
    "ES512": _Algorithm("EC", hashes.SHA512(), ec.SECP521R1(), "P-521", 66),
    "EdDSA": _Algorithm("OKP"),
}


def _algorithm(name: str) -> _Algorithm:
    spec = _ALGORITHMS.get(name)
    if spec is None:
        raise ValueError(f"unsupported algorithm {name!r}; use one of {', '.join(_ALGORITHMS)}")
    return spec


def b64u(data: bytes) -> str:
    """base64url without padding (RFC 7515 section 2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _uint(value: int, size: int = 0) -> str:
    """base64url of a big-endian unsigned integer: minimal length, or left-padded to ``size``."""
    return b64u(value.to_bytes(max(size, (value.bit_length() + 7) // 8, 1), "big"))


def compact_json(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


def generate(algorithm: str) -> _PrivateKey:
    """A new private key for ``algorithm`` (RSA keys of 2048 bits)."""
    return _algorithm(algorithm).generate()


def sign(
    header: Mapping[str, Any], payload: Mapping[str, Any], key: _PrivateKey, algorithm: str
) -> str:
    """A compact JWS of ``payload`` under ``header`` as given, signed with ``key`` by
    ``algorithm`` (whatever the header's ``alg`` says: a mislabelled token is a test case)."""
    signing_input = f"{b64u(compact_json(header))}.{b64u(compact_json(payload))}"
    signature = _algorithm(algorithm).sign(key, signing_input.encode("ascii"))
    return f"{signing_input}.{b64u(signature)}"


def public_jwk(private: _PrivateKey, algorithm: str) -> dict[str, str]:
    """The public JWK (RFC 7517/7518/8037) of ``private``, its members only, built by hand with
    exact-length members."""
    public = private.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        numbers = public.public_numbers()
        return {"kty": "RSA", "n": _uint(numbers.n), "e": _uint(numbers.e)}
    if isinstance(public, ec.EllipticCurvePublicKey):
        spec = _ALGORITHMS[algorithm]
        point = public.public_numbers()
        return {
            "kty": "EC",
            "crv": spec.crv,
            "x": _uint(point.x, spec.size),
            "y": _uint(point.y, spec.size),
        }
    raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return {"kty": "OKP", "crv": "Ed25519", "x": b64u(raw)}


@dataclass(slots=True)
class _SigningKey:
    kid: str
    algorithm: str
    private: _PrivateKey

    def public_jwk(self) -> dict[str, str]:
        """The published JWK: the key's members, its ``kid``, ``use`` and ``alg``."""
        jwk = public_jwk(self.private, self.algorithm)
        return {**jwk, "kid": self.kid, "use": "sig", "alg": self.algorithm}


@functools.cache
def unusable_jwks() -> dict[str, list[dict[str, str]]]:
    """A well-formed JWKS whose keys a verifier must skip (an HMAC key, an RSA-1024 key)."""
    # Deliberately too small: a verifier must refuse RSA moduli under 2048 bits.
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505
    numbers = weak.public_key().public_numbers()
    return {
        "keys": [
            {
                "kty": "oct",
                "kid": "hmac-1",
                "use": "sig",
                "alg": "HS256",
                "k": b64u(os.urandom(32)),
            },
            {
                "kty": "RSA",
                "kid": "rsa-1024",
                "use": "sig",
                "alg": "RS256",
                "n": _uint(numbers.n),
                "e": _uint(numbers.e),
            },
        ]
    }


class KeyRing:
    """The issuer's signing keys: published in order, one current key per algorithm, and an
    unpublished impostor per algorithm for forgeries. Safe to use from several threads."""

    def __init__(self, algorithms: Iterable[str]) -> None:
        self._lock = threading.Lock()
        self._keys: dict[str, _SigningKey] = {}  # published, in JWKS order
        self._current: dict[str, str] = {}  # algorithm -> kid that ``mint`` signs with
        self._serials: Counter[str] = Counter()
        self._impostors: dict[str, _PrivateKey] = {}
        for algorithm in algorithms:
            self.rotate(algorithm)

    @property
    def key_ids(self) -> tuple[str, ...]:
        with self._lock:
            return tuple(self._keys)

    def public_jwks(self) -> list[dict[str, str]]:
        with self._lock:
            keys = list(self._keys.values())
        return [key.public_jwk() for key in keys]

    def current_kid(self, algorithm: str) -> str:
        with self._lock:
            kid = self._current.get(algorithm)
        if kid is None:
            raise LookupError(f"no {algorithm} key: call issuer.rotate({algorithm!r}) to add one")
        return kid

    def rotate(self, algorithm: str, *, keep_old: bool = True) -> str:
        key = _algorithm(algorithm).generate()
        with self._lock:
            self._serials[algorithm] += 1
            kid = f"{algorithm.lower()}-{self._serials[algorithm]}"
            if not keep_old:
                for old in [k for k in self._keys.values() if k.algorithm == algorithm]:
                    del self._keys[old.kid]
            self._keys[kid] = _SigningKey(kid, algorithm, key)
            self._current[algorithm] = kid
        return kid

    def replace(self, kid: str) -> None:
        with self._lock:
            old = self._require(kid)
        new = _ALGORITHMS[old.algorithm].generate()
        with self._lock:
            self._require(kid).private = new

    def remove(self, kid: str) -> None:
        with self._lock:
            removed = self._require(kid)
            del self._keys[kid]
            if self._current.get(removed.algorithm) == kid:
                rest = [k.kid for k in self._keys.values() if k.algorithm == removed.algorithm]
                if rest:
                    self._current[removed.algorithm] = rest[-1]
                else:
                    del self._current[removed.algorithm]

    def sign(
        self,
        header: Mapping[str, Any],
        payload: Mapping[str, Any],
        *,
        algorithm: str | None,
        kid: str | None,
        impostor: bool = False,
    ) -> str:
        """A compact JWS of ``payload``. The header gets ``alg``, ``typ: at+jwt`` and ``kid``
        (the key's, or the ``kid`` given even when unknown), then ``header``'s members; a member
        whose value is None is dropped."""
        key = self._signing_key(algorithm, kid)
        private = self._impostor(key.algorithm) if impostor else key.private
        base = {"alg": key.algorithm, "typ": "at+jwt", "kid": kid or key.kid}
        return sign(merged(base, header), payload, private, key.algorithm)

    def _signing_key(self, algorithm: str | None, kid: str | None) -> _SigningKey:
        with self._lock:
            key = self._keys.get(kid) if kid is not None else None
            if key is not None:
                if algorithm is not None and algorithm != key.algorithm:
                    raise ValueError(
                        f"key {kid!r} is an {key.algorithm} key, not {algorithm}; "
                        "to mislabel a token, pass headers={'alg': ...}"
                    )
                return key
            algorithm = algorithm or "RS256"
            _algorithm(algorithm)
            current = self._current.get(algorithm)
            if current is None:
                raise LookupError(
                    f"no {algorithm} key: call issuer.rotate({algorithm!r}) to add one"
                )
            return self._keys[current]

    def _impostor(self, algorithm: str) -> _PrivateKey:
        """A key of the same type as the real one, never published (one per algorithm)."""
        with self._lock:
            key = self._impostors.get(algorithm)
        if key is None:
            key = _ALGORITHMS[algorithm].generate()
            with self._lock:
                key = self._impostors.setdefault(algorithm, key)
        return key

    def _require(self, kid: str) -> _SigningKey:
        key = self._keys.get(kid)
        if key is None:
            raise KeyError(f"no published key {kid!r}; published: {sorted(self._keys)}")
        return key


def claims_for(
    options: MintOptions, *, issuer: str, default_audience: str | Sequence[str] | None
) -> dict[str, Any]:
    """The payload of a minted token (``LocalIssuer.mint`` documents each claim)."""
    audience = options.get("audience")
    if audience is None:
        audience = default_audience
    iat = options.get("issued_at")
    iat = int(time.time()) if iat is None else iat
    scopes = options.get("scopes", ())
    scope = scopes if isinstance(scopes, str) else " ".join(scopes)
    payload: dict[str, Any] = {
        "iss": issuer,
        "sub": options.get("subject", "user-1"),
        "aud": audience if isinstance(audience, str) or audience is None else list(audience),
        "iat": iat,
        "nbf": iat,
        "exp": iat + options.get("expires_in", DEFAULT_LIFETIME),
        "jti": uuid.uuid4().hex,
        "client_id": DEFAULT_CLIENT_ID,
        "scope": scope or None,
    }
    jkt = options.get("jkt")
    if jkt is not None:
        payload["cnf"] = {"jkt": jkt}  # RFC 9449 section 6.1: bound to that key
    return merged(payload, options.get("claims"))


def merged(base: Mapping[str, Any], changes: Mapping[str, Any] | None) -> dict[str, Any]:
    """``base`` updated with ``changes``; members whose value ends up None are dropped."""
    both = {**base, **(changes or {})}
    return {name: value for name, value in both.items() if value is not None}
