"""Per-token validation with pre-parsed keys: mcp-oauth2 against PyJWT's fastest path.

PyJWT gets a pre-parsed public key object and checks the same claims (signature, exp, iss, aud).
Run with ``make bench``; ``make test`` runs each case once with timing disabled.
"""

from __future__ import annotations

from typing import Any

import jwt

from bench_material import AUDIENCE, ISSUER, Material
from mcp_oauth2 import KeySet, TokenValidator


def test_pyjwt(benchmark: Any, material: Material) -> None:
    benchmark.group = f"{material.alg} validate"

    def decode() -> dict[str, Any]:
        return jwt.decode(
            material.token,
            material.public,
            algorithms=[material.alg],
            audience=AUDIENCE,
            issuer=ISSUER,
        )

    assert benchmark(decode)["sub"] == "user-1"


def test_mcp_oauth2(benchmark: Any, material: Material) -> None:
    benchmark.group = f"{material.alg} validate"
    keys = KeySet.from_jwks(material.jwks)
    validator = TokenValidator(ISSUER, AUDIENCE, algorithms=[material.alg])
    user = benchmark(validator.validate, material.token, keys)
    assert user.subject == "user-1"
