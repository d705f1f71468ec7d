"""Keys, JWKS documents and tokens for the benchmarks (one set per algorithm)."""

from __future__ import annotations

import json
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
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
        if alg == "RS256":
            self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            jwk = json.loads(RSAAlgorithm.to_jwk(self.private.public_key()))
        else:
            self.private = ec.generate_private_key(ec.SECP256R1())
            jwk = json.loads(ECAlgorithm.to_jwk(self.private.public_key()))
        self.public = self.private.public_key()
        self.jwks = {"keys": [{**jwk, "kid": self.kid, "use": "sig"}]}
        self.token = self.mint()

    def mint(self, **extra: Any) -> str:
        return jwt.encode(
            {**_claims(), **extra}, self.private, algorithm=self.alg, headers={"kid": self.kid}
        )
