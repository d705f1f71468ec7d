"""The cost of a warm key cache on the validation path.

``Authenticator.authenticate`` with a warm ``JWKSCache`` against ``TokenValidator.validate`` with
the same ``KeySet`` in hand: the difference is what the cache lookup (and the coroutine) adds.
"""

from __future__ import annotations

import asyncio
from typing import Any

from bench_material import AUDIENCE, ISSUER, Material
from mcp_oauth2 import Authenticator, KeySet, StaticKeys, TokenValidator


def _run_many(coro_factory: Any, rounds: int) -> None:
    async def many() -> None:
        for _ in range(rounds):
            await coro_factory()

    asyncio.run(many())


def test_validate_with_keyset_in_hand(benchmark: Any, material: Material) -> None:
    benchmark.group = f"{material.alg} key lookup (1000 tokens)"
    keys = KeySet.from_jwks(material.jwks)
    validator = TokenValidator(ISSUER, AUDIENCE, algorithms=[material.alg])

    async def once() -> None:
        validator.validate(material.token, keys)

    benchmark(_run_many, once, 1000)


def test_authenticate_via_warm_cache(benchmark: Any, material: Material) -> None:
    benchmark.group = f"{material.alg} key lookup (1000 tokens)"
    validator = TokenValidator(ISSUER, AUDIENCE, algorithms=[material.alg])
    auth = Authenticator(validator, StaticKeys(material.jwks))

    async def once() -> None:
        await auth.authenticate(material.token)

    benchmark(_run_many, once, 1000)
