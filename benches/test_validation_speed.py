"""Per-token validation with pre-parsed keys: mcp-oauth2 against PyJWT's fastest path.

PyJWT gets a pre-parsed public key object and checks the same claims (signature, exp, iss, aud).
``mcp_oauth2`` is the full validation (verified-token cache off); ``mcp_oauth2_cached`` is the
repeat of one token, answered from the cache.
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
    # Without the verified-token cache: the same token every round would otherwise be a hit.
    validator = TokenValidator(ISSUER, AUDIENCE, algorithms=[material.alg], cache_size=0)
    user = benchmark(validator.validate, material.token, keys)
    assert user.subject == "user-1"
    assert validator.cache_info()["hits"] == 0


def test_mcp_oauth2_cached(benchmark: Any, material: Material) -> None:
    benchmark.group = f"{material.alg} validate"
    keys = KeySet.from_jwks(material.jwks)
    validator = TokenValidator(ISSUER, AUDIENCE, algorithms=[material.alg])
    user = benchmark(validator.validate, material.token, keys)
    assert user.subject == "user-1"
