"""A DPoP client (RFC 9449) for tests and demos: ``DPoPKey`` holds a key pair and makes proofs,
and ``DPoPAuth`` sends a DPoP-bound token with a fresh proof on every request of an httpx client.

The client side is written here on its own, with ``cryptography`` and the standard library (the
thumbprint and ``ath`` by ``hashlib``), never with the verifier under test, so that a mistake in
one is not mirrored by the other.

``DPoPAuth`` is an ``httpx.Auth`` and, when the MCP SDK's HTTP client (``httpx2``) is installed,
an ``httpx2.Auth`` too: the same object goes into either client's ``auth=``.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable, Generator, Mapping
from typing import Any, Final

import httpx
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from mcp_oauth2.testing._keys import b64u, compact_json, generate, merged, public_jwk, sign

try:  # the MCP SDK's client
    from httpx2 import Auth as _SdkAuth
except ImportError:  # pragma: no cover - depends on the installed extras

    class _SdkAuth:  # type: ignore[no-redef]
        """Stands in for ``httpx2.Auth`` where it is not installed."""


__all__ = ["DPoPAuth", "DPoPKey"]

DPOP_TYPE: Final = "dpop+jwt"
# RFC 7638 section 3.2: the required members of each key type, in lexicographic order.
_THUMBPRINT_MEMBERS: Final = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n")}
_OKP_MEMBERS: Final = ("crv", "kty", "x")


class DPoPKey:
    """A client's DPoP key pair: makes proofs, and is named by its RFC 7638 thumbprint (what
    ``LocalIssuer.mint(jkt=key.thumbprint)`` binds a token to)."""

    def __init__(self, algorithm: str = "ES256") -> None:
        """``algorithm``: any asymmetric JWS algorithm (ES256, ES384, ES512, RS256, PS256, ...,
        EdDSA)."""
        self.algorithm = algorithm
        self._private = generate(algorithm)
        self.public_jwk: dict[str, str] = public_jwk(self._private, algorithm)
        """The public key as the proofs carry it (``jwk``)."""

    @property
    def thumbprint(self) -> str:
        """The RFC 7638 SHA-256 thumbprint of the public key, base64url (a bound token's
        ``cnf.jkt``)."""
        jwk = self.public_jwk
        members = _THUMBPRINT_MEMBERS.get(jwk["kty"], _OKP_MEMBERS)
        canonical = compact_json({name: jwk[name] for name in members})
        return b64u(hashlib.sha256(canonical).digest())

    def private_jwk(self) -> dict[str, str]:
        """The public JWK with the private member ``d``: what a proof must never carry."""
        private = self._private
        if isinstance(private, ed25519.Ed25519PrivateKey):
            raw = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
            return {**self.public_jwk, "d": b64u(raw)}
        numbers = private.private_numbers()
        value = numbers.d if isinstance(numbers, rsa.RSAPrivateNumbers) else numbers.private_value
        return {**self.public_jwk, "d": b64u(value.to_bytes((value.bit_length() + 7) // 8, "big"))}

    def proof(
        self,
        method: str,
        url: str,
        *,
        access_token: str | None = None,
        nonce: str | None = None,
        issued_at: float | None = None,
        jti: str | None = None,
        headers: Mapping[str, Any] | None = None,
        claims: Mapping[str, Any] | None = None,
    ) -> str:
        """A DPoP proof (RFC 9449 section 4.2) for ``method`` on ``url`` (its query and fragment
        left out of ``htu``): ``typ``, ``alg``, ``jwk``; ``jti`` (random unless given), ``htm``,
        ``htu``, ``iat`` (now unless given), ``ath`` with ``access_token``, ``nonce`` when
        given. ``headers`` and ``claims`` add or replace members (None removes one), for
        proofs that break a rule."""
        htu = url.split("#", 1)[0].split("?", 1)[0]
        header = {"typ": DPOP_TYPE, "alg": self.algorithm, "jwk": self.public_jwk}
        payload: dict[str, Any] = {
            "jti": jti if jti is not None else secrets.token_urlsafe(16),
            "htm": method,
            "htu": htu,
            "iat": int(time.time()) if issued_at is None else issued_at,
        }
        if access_token is not None:
            payload["ath"] = b64u(hashlib.sha256(access_token.encode("ascii")).digest())
        if nonce is not None:
            payload["nonce"] = nonce
        return sign(merged(header, headers), merged(payload, claims), self._private, self.algorithm)


class DPoPAuth(httpx.Auth, _SdkAuth):  # type: ignore[misc]  # one flow for both clients
    """Sends ``Authorization: DPoP <token>`` and a fresh proof by ``key`` on every request.

    The newest ``DPoP-Nonce`` a response carried goes into the next proofs (RFC 9449 section
    9); a 401 ``use_dpop_nonce`` is retried once with the nonce it names. ``token`` is the
    token, or a function giving it (called for every request).
    """

    requires_request_body = True  # a retry sends the same body again

    def __init__(self, key: DPoPKey, token: str | Callable[[], str]) -> None:
        self.key = key
        self._token = token
        self.nonce: str | None = None
        """The newest nonce a response gave."""

    def auth_flow(self, request: Any) -> Generator[Any, Any, None]:
        token = self._token if isinstance(self._token, str) else self._token()
        request.headers["Authorization"] = f"DPoP {token}"
        request.headers["DPoP"] = self._proof(request, token)
        response = yield request
        nonce = response.headers.get("DPoP-Nonce")
        if nonce:
            self.nonce = nonce
        challenge = response.headers.get("WWW-Authenticate", "")
        if response.status_code == 401 and nonce and "use_dpop_nonce" in challenge:
            request.headers["DPoP"] = self._proof(request, token)
            yield request

    def _proof(self, request: Any, token: str) -> str:
        return self.key.proof(
            request.method, str(request.url), access_token=token, nonce=self.nonce
        )
