"""What the middleware costs per request in process, with telemetry off (the default) or on.

    python benches/middleware_overhead.py [--telemetry] [--calls 20000] [--reps 9]

The ASGI app behind the middleware does nothing; every request carries the same valid token, so
after the first one the middleware answers from the verified-token cache: what is left is the
middleware's own path (header parsing, the cache lookup, scopes, the scope keys), the part that
telemetry adds to. Keys are a ``StaticKeys``, so no network is involved. ``--telemetry`` records
to the OpenTelemetry SDK (an in-memory metric reader, a tracer provider without exporters).
Prints the median and the spread of the per-request time over ``--reps`` runs of ``--calls``
requests each. Run it against another checkout's sources with ``PYTHONPATH`` to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from mcp_oauth2 import OAuth2Config, OAuth2Middleware
from mcp_oauth2.lowlevel import StaticKeys
from mcp_oauth2.testing import LocalIssuer

AUDIENCE = "https://mcp.example.com/mcp"


async def app(scope: Any, receive: Any, send: Any) -> None:
    return None


async def receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def send(message: Any) -> None:
    return None


def build(telemetry: bool) -> tuple[OAuth2Middleware, str]:
    issuer = LocalIssuer(issuer="https://auth.example.com", default_audience=AUDIENCE)
    config = OAuth2Config(issuer=issuer.issuer, audience=AUDIENCE)
    options: dict[str, Any] = {"key_sources": StaticKeys(issuer.jwks())}
    if telemetry:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider

        from mcp_oauth2.telemetry import Telemetry

        meters = MeterProvider(metric_readers=[InMemoryMetricReader()])
        options["telemetry"] = Telemetry(meter_provider=meters, tracer_provider=TracerProvider())
    return OAuth2Middleware(app, config, **options), issuer.mint(expires_in=3600)


async def run(middleware: OAuth2Middleware, token: str, calls: int) -> float:
    """Seconds per request over ``calls`` requests."""
    header = (b"authorization", f"Bearer {token}".encode())
    scope: dict[str, Any] = {"type": "http", "method": "POST", "path": "/mcp", "headers": []}
    start = time.perf_counter()
    for _ in range(calls):
        request = dict(scope, headers=[header])
        await middleware(request, receive, send)
    return (time.perf_counter() - start) / calls


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--telemetry", action="store_true")
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--reps", type=int, default=9)
    args = parser.parse_args()
    middleware, token = build(args.telemetry)
    await run(middleware, token, 1_000)  # warm up: the first request verifies in full
    times = [await run(middleware, token, args.calls) for _ in range(args.reps)]
    micro = sorted(t * 1e6 for t in times)
    label = "telemetry on" if args.telemetry else "telemetry off"
    print(
        f"{label}: median {statistics.median(micro):.2f} us/request "
        f"(min {micro[0]:.2f}, max {micro[-1]:.2f}; {args.reps} x {args.calls} requests)"
    )


if __name__ == "__main__":
    asyncio.run(main())
