"""A flood of random opaque tokens against an introspection endpoint of a stated latency: what it
costs the endpoint, and what the real users get during and after it.

    make bench-flood
    .venv/bin/python benches/introspection_flood.py --latencies 0.05 0.2 0.5 --seconds 10

For each latency, a fresh ``LocalIssuer`` (its RFC 7662 endpoint on loopback, served from its
own thread, waiting ``latency`` seconds before each answer) and an ``Authenticator`` with the
default introspection settings (16 connections, 128 calls admitted, a 5 s deadline). ``--attackers``
tasks send new random tokens, one after the other, for ``--seconds``; meanwhile one real user
sends a new, never-seen valid token every ``--user-interval`` seconds (an uncached token: the
worst case for the user). When the flood stops, a new valid token is sent every 50 ms until one
is accepted: the time that takes is how long the flood outlives itself.

Everything runs in one process and one event loop, as the middleware does; the figures are
those of this machine at the time of the run (the issuer's thread competes for the same cores).
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import sys
import time
from dataclasses import dataclass, field

from mcp_oauth2 import OAuth2Config
from mcp_oauth2.lowlevel import Authenticator
from mcp_oauth2.testing import LocalIssuer

AUDIENCE = "https://mcp.example.com/mcp"


@dataclass
class Outcome:
    latency: float
    seconds: float = 0.0
    attacks: int = 0
    attacks_accepted: int = 0
    calls: int = 0
    user_sent: int = 0
    user_accepted: int = 0
    user_unavailable: int = 0
    user_latencies: list[float] = field(default_factory=list)
    after_flood: float | None = None
    endpoint_failures: int = 0
    refused_without_call: int = 0

    def row(self) -> str:
        latencies = sorted(self.user_latencies) or [float("nan")]
        p50 = statistics.median(latencies)
        p95 = latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))]
        after = "never" if self.after_flood is None else f"{self.after_flood * 1000:.0f} ms"
        return (
            f"| {self.latency:g} s | {self.calls / self.seconds:.0f} | "
            f"{self.attacks / self.seconds:.0f} | {self.attacks_accepted} | "
            f"{self.user_accepted}/{self.user_sent} | {self.user_unavailable} | "
            f"{p50 * 1000:.0f} / {p95 * 1000:.0f} ms | {self.endpoint_failures} | {after} |"
        )


def authenticator_for(issuer: LocalIssuer) -> Authenticator:
    config = OAuth2Config.model_validate(
        {
            "issuer": [issuer.issuer],
            "audience": [AUDIENCE],
            "token_format": "opaque",
            "introspection_endpoint": issuer.introspection_endpoint,
            "client_id": issuer.introspection_client_id,
            "client_secret": issuer.introspection_client_secret,
        }
    )
    return Authenticator.from_config(config)


async def one(authenticator: Authenticator, token: str) -> tuple[bool, str]:
    """Whether ``token`` is accepted, and the refusal's code."""
    try:
        await authenticator.authenticate(token)
    except Exception as error:
        return False, str(getattr(error, "code", type(error).__name__))
    return True, ""


async def measure(issuer: LocalIssuer, latency: float, args: argparse.Namespace) -> Outcome:
    issuer.introspection_delay = latency
    outcome = Outcome(latency)
    authenticator = authenticator_for(issuer)
    introspector = authenticator.introspector
    assert introspector is not None
    before = issuer.introspection_requests
    deadline = time.perf_counter() + args.seconds

    async def attacker() -> None:
        while time.perf_counter() < deadline:
            accepted, _ = await one(authenticator, "opq_" + secrets.token_urlsafe(24))
            outcome.attacks += 1
            outcome.attacks_accepted += accepted
            await asyncio.sleep(0)  # a refusal without a call never awaits: yield

    async def user() -> None:
        while time.perf_counter() < deadline:
            token = issuer.mint_opaque(audience=AUDIENCE, subject="real-user")
            sent = time.perf_counter()
            accepted, code = await one(authenticator, token)
            outcome.user_sent += 1
            if accepted:
                outcome.user_accepted += 1
                outcome.user_latencies.append(time.perf_counter() - sent)
            elif code == "introspection_unavailable":
                outcome.user_unavailable += 1
            await asyncio.sleep(args.user_interval)

    try:
        started = time.perf_counter()
        await asyncio.gather(user(), *(attacker() for _ in range(args.attackers)))
        outcome.seconds = time.perf_counter() - started
        outcome.calls = issuer.introspection_requests - before
        stopped = time.perf_counter()
        while time.perf_counter() - stopped < 30:
            accepted, _ = await one(authenticator, issuer.mint_opaque(audience=AUDIENCE))
            if accepted:
                outcome.after_flood = time.perf_counter() - stopped
                break
            await asyncio.sleep(0.05)
        stats = introspector.stats()
        outcome.endpoint_failures = stats.failures
        outcome.refused_without_call = stats.unavailable
    finally:
        await authenticator.aclose()
    return outcome


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--latencies", type=float, nargs="+", default=[0.05, 0.2, 0.5])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--attackers", type=int, default=64)
    parser.add_argument("--user-interval", type=float, default=0.1)
    args = parser.parse_args(argv)
    print(
        f"{args.attackers} attackers sending random tokens for {args.seconds:g} s; one real user "
        f"sending a new valid token every {args.user_interval:g} s (after the previous answer)\n"
    )
    print(
        "| endpoint latency | endpoint calls/s | attacker requests/s | attacks accepted "
        "| real user accepted | real user 503 | real user p50 / p95 "
        "| endpoint failures counted | new token accepted after the flood |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    issuer = LocalIssuer(default_audience=AUDIENCE)
    with issuer.serve():
        for latency in args.latencies:
            print(asyncio.run(measure(issuer, latency, args)).row(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
