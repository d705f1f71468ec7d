"""Opaque tokens, measured: the per-request cost with a warm introspection cache, beside fastmcp's
``IntrospectionTokenVerifier`` in the same run, and the introspection calls per second that a
flood of random tokens causes.

    make bench-introspection
    .venv/bin/python benches/introspection.py --rounds 5 --calls 20000 --flood-seconds 5

Both verifiers ask the same ``LocalIssuer`` (RFC 7662 endpoint on loopback, served from its own
thread), with the same client and the same audience. Warm: one token, introspected once, then
asked about ``--calls`` times in a row; each round times both verifiers in turn and the median
per-call time over the rounds is reported. Flood: ``--workers`` concurrent tasks each send a new
random token, again and again, for ``--flood-seconds``; the issuer counts the calls that reach
its endpoint. Needs the bench group (``uv sync --group bench``: fastmcp).
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from mcp_oauth2 import OAuth2Config
from mcp_oauth2.lowlevel import Authenticator
from mcp_oauth2.testing import LocalIssuer

AUDIENCE = "https://mcp.example.com/mcp"
Verify = Callable[[str], Awaitable[bool]]


def ours(issuer: LocalIssuer, **settings: Any) -> Authenticator:
    config = OAuth2Config.model_validate(
        {
            "issuer": [issuer.issuer],
            "audience": [AUDIENCE],
            "token_format": "opaque",
            "introspection_endpoint": issuer.introspection_endpoint,
            "client_id": issuer.introspection_client_id,
            "client_secret": issuer.introspection_client_secret,
            **settings,
        }
    )
    return Authenticator.from_config(config)


def fastmcp_verifier(issuer: LocalIssuer, *, cache_ttl: int | None) -> Any:
    from fastmcp.server.auth.providers.introspection import IntrospectionTokenVerifier

    return IntrospectionTokenVerifier(
        introspection_url=issuer.introspection_endpoint,
        client_id=issuer.introspection_client_id,
        client_secret=issuer.introspection_client_secret,
        audience=AUDIENCE,
        cache_ttl_seconds=cache_ttl,
    )


def verify_ours(authenticator: Authenticator) -> Verify:
    async def verify(token: str) -> bool:
        try:
            await authenticator.authenticate(token)
        except Exception:
            return False
        return True

    return verify


def verify_fastmcp(verifier: Any) -> Verify:
    async def verify(token: str) -> bool:
        return await verifier.verify_token(token) is not None

    return verify


async def per_call(verify: Verify, token: str, calls: int) -> float:
    """Seconds per call, over ``calls`` calls in a row (the first answer is already cached)."""
    started = time.perf_counter()
    for _ in range(calls):
        await verify(token)
    return (time.perf_counter() - started) / calls


@dataclass
class Flood:
    seconds: float
    requests: int
    accepted: int
    calls: int

    @property
    def calls_per_second(self) -> float:
        return self.calls / self.seconds

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.seconds


async def flood(issuer: LocalIssuer, verify: Verify, *, seconds: float, workers: int) -> Flood:
    before = issuer.introspection_requests
    deadline = time.perf_counter() + seconds
    counts = {"requests": 0, "accepted": 0}

    async def worker() -> None:
        while time.perf_counter() < deadline:
            accepted = await verify("opq_" + secrets.token_urlsafe(24))
            counts["requests"] += 1
            counts["accepted"] += accepted
            # A refusal without a call never awaits: yield, as a server between requests does.
            await asyncio.sleep(0)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(workers)))
    elapsed = time.perf_counter() - started
    calls = issuer.introspection_requests - before
    return Flood(elapsed, counts["requests"], counts["accepted"], calls)


async def run(args: argparse.Namespace, issuer: LocalIssuer) -> dict[str, Any]:
    token = issuer.mint_opaque(audience=AUDIENCE, expires_in=3600, scopes=["mcp:tools"])
    authenticator = ours(issuer, introspection_cache_ttl=3600)
    theirs = fastmcp_verifier(issuer, cache_ttl=3600)
    results: dict[str, Any] = {"warm_ours": [], "warm_fastmcp": []}
    try:
        verifiers = {
            "warm_ours": verify_ours(authenticator),
            "warm_fastmcp": verify_fastmcp(theirs),
        }
        for name, verify in verifiers.items():
            assert await verify(token), f"{name} refuses a valid token"
        for _ in range(args.rounds):
            for name, verify in verifiers.items():
                results[name].append(await per_call(verify, token, args.calls))
    finally:
        await authenticator.aclose()
    # Cold: every request is a call (no cache), what the endpoint costs from here.
    uncached = ours(issuer, introspection_cache_ttl=0)
    try:
        cold = {
            "cold_ours": verify_ours(uncached),
            "cold_fastmcp": verify_fastmcp(fastmcp_verifier(issuer, cache_ttl=None)),
        }
        for name, verify in cold.items():
            results[name] = await per_call(verify, token, args.cold_calls)
    finally:
        await uncached.aclose()
    # Floods: a fresh verifier each, so no cache or backoff carries over.
    flood_ours = ours(issuer)
    try:
        results["flood_ours"] = await flood(
            issuer, verify_ours(flood_ours), seconds=args.flood_seconds, workers=args.workers
        )
        results["flood_ours_stats"] = flood_ours.introspector.stats()  # type: ignore[union-attr]
    finally:
        await flood_ours.aclose()
    results["flood_fastmcp"] = await flood(
        issuer,
        verify_fastmcp(fastmcp_verifier(issuer, cache_ttl=3600)),
        seconds=args.flood_seconds,
        workers=args.workers,
    )
    return results


def report(args: argparse.Namespace, results: dict[str, Any]) -> str:
    ours_us = statistics.median(results["warm_ours"]) * 1e6
    theirs_us = statistics.median(results["warm_fastmcp"]) * 1e6
    lines = [
        f"warm cache, per request ({args.rounds} rounds x {args.calls} calls, median):",
        f"  mcp-oauth2 Authenticator (token_format=opaque)  {ours_us:8.2f} us",
        f"  fastmcp IntrospectionTokenVerifier              {theirs_us:8.2f} us"
        f"   ({theirs_us / ours_us:.1f}x)",
        f"no cache, per request ({args.cold_calls} calls one at a time: the endpoint's cost):",
        f"  mcp-oauth2 {results['cold_ours'] * 1e3:8.2f} ms   "
        f"fastmcp {results['cold_fastmcp'] * 1e3:8.2f} ms",
        f"flood of random tokens ({args.workers} concurrent, {args.flood_seconds:g} s):",
    ]
    for name in ("ours", "fastmcp"):
        result: Flood = results[f"flood_{name}"]
        label = "mcp-oauth2" if name == "ours" else "fastmcp"
        lines.append(
            f"  {label:<11} introspection calls/s {result.calls_per_second:8.0f}   "
            f"requests/s {result.requests_per_second:8.0f}   accepted {result.accepted}"
        )
    stats = results["flood_ours_stats"]
    lines.append(
        f"  mcp-oauth2: {stats.calls} calls, {stats.refused} inactive, "
        f"{stats.unavailable} refused with 503 without a call (max_pending)"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--cold-calls", type=int, default=100)
    parser.add_argument("--flood-seconds", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=256)
    args = parser.parse_args(argv)
    issuer = LocalIssuer(default_audience=AUDIENCE)
    with issuer.serve():
        results = asyncio.run(run(args, issuer))
    print(report(args, results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
