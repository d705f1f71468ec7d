"""Keys, JWKS documents and tokens for the benchmarks (one set per algorithm)."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

ISSUER = "https://auth.example.com"
AUDIENCE = "https://mcp.example.com/mcp"


def _claims() -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "user-1",
        "client_id": "client-1",
        "scope": "mcp:tools mcp:read",
        "iat": now,
        "exp": now + 3600,
        "jti": "b3a1c9",
    }


class Material:
    """One algorithm's private key, public key, JWKS document and a token signed with it."""

    def __init__(self, alg: str) -> None:
        self.alg = alg
        self.kid = f"{alg.lower()}-key"
        self.private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
        if alg == "RS256":
            rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            jwk = json.loads(RSAAlgorithm.to_jwk(rsa_key.public_key()))
            self.private = rsa_key
        else:
            ec_key = ec.generate_private_key(ec.SECP256R1())
            jwk = json.loads(ECAlgorithm.to_jwk(ec_key.public_key()))
            self.private = ec_key
        self.public = self.private.public_key()
        self.jwks = {"keys": [{**jwk, "kid": self.kid, "use": "sig"}]}
        self.token = self.mint()

    def mint(self, **extra: Any) -> str:
        return jwt.encode(
            {**_claims(), **extra}, self.private, algorithm=self.alg, headers={"kid": self.kid}
        )


def mint_many(material: Material, issuer: str, audience: str, count: int) -> list[str]:
    """``count`` distinct ES256 tokens (unique ``jti`` and ``sub``), signed without a JWT library.

    The claims are those of ``LocalIssuer.mint``, so a cache entry is the size a real access
    token's would be. About 80 us a token on a 2-core cloud VM (100,000 in a few seconds).
    """

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")

    assert material.alg == "ES256"
    assert isinstance(material.private, ec.EllipticCurvePrivateKey)
    header = b64(json.dumps({"alg": "ES256", "typ": "at+jwt", "kid": material.kid}).encode())
    now = int(time.time())
    ecdsa = ec.ECDSA(hashes.SHA256())
    tokens = []
    for index in range(count):
        payload = {
            "iss": issuer,
            "sub": f"user-{index}",
            "aud": audience,
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
            "jti": f"{index:032x}",
            "client_id": "local-client",
            "scope": "mcp:tools mcp:read",
        }
        signing_input = header + "." + b64(json.dumps(payload, separators=(",", ":")).encode())
        r, s = decode_dss_signature(material.private.sign(signing_input.encode(), ecdsa))
        tokens.append(signing_input + "." + b64(r.to_bytes(32, "big") + s.to_bytes(32, "big")))
    return tokens
