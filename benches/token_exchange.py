"""Token exchange, measured: what a cached exchange adds to each downstream call, and what an
uncached exchange costs against the local issuer.

    make bench-exchange
    .venv/bin/python benches/token_exchange.py --rounds 5 --calls 20000 --cold 300 --requests 2000

One ``TokenExchanger`` asks a ``LocalIssuer`` (its token endpoint on loopback, served from its
own thread). The caller's token is held as ``OAuth2Middleware`` holds it for a request it admitted
(a ``Subject`` in the ASGI scope).

- **cached, per call**: ``exchanger.exchange(scope, audience=...)`` answered from the cache,
  ``--calls`` times in a row; and the whole ``httpx.Auth`` flow of one downstream request
  (``exchanger.auth``: the cached exchange, then the header set), beside setting the same header
  by hand. Median over ``--rounds`` rounds.
- **cached, a whole downstream call**: GET to an app on loopback (uvicorn, another thread)
  through an ``httpx.AsyncClient`` with ``exchanger.auth(...)``, beside the same client with the
  header set by hand; the two alternate request by request, ``--requests`` each; medians.
- **uncached**: ``--cold`` different callers' tokens, each exchanged once (the issuer checks the
  subject token's signature and signs a new RS256 token for each), one at a time; percentiles.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from mcp_oauth2 import OAuth2Config, TokenExchanger
from mcp_oauth2._subject_token import SUBJECT_SCOPE_KEY, Subject
from mcp_oauth2.lowlevel import KeySet, TokenValidator
from mcp_oauth2.testing import AppServer, LocalIssuer

AUDIENCE = "https://mcp.example.com/mcp"
API = "https://api.example.com"


def exchanger_for(issuer: LocalIssuer) -> TokenExchanger:
    config = OAuth2Config.model_validate(
        {
            "issuer": [issuer.issuer],
            "audience": [AUDIENCE],
            "token_endpoint": issuer.token_endpoint,
            "client_id": issuer.introspection_client_id,
            "client_secret": issuer.introspection_client_secret,
        }
    )
    return TokenExchanger(config)


def admitted(issuer: LocalIssuer, validator: TokenValidator, keys: KeySet) -> dict[str, Any]:
    """An ASGI scope as the middleware leaves it for a request with a fresh caller's token."""
    token = issuer.mint(subject="alice", audience=AUDIENCE, expires_in=3600)
    user = validator.validate(token, keys)
    return {"type": "http", SUBJECT_SCOPE_KEY: Subject(f"Bearer {token}".encode(), user)}


async def timed(call: Callable[[], Awaitable[object]], calls: int) -> float:
    """Seconds per call, over ``calls`` calls in a row."""
    started = time.perf_counter()
    for _ in range(calls):
        await call()
    return (time.perf_counter() - started) / calls


async def cached(exchanger: TokenExchanger, scope: dict[str, Any], args: Any) -> dict[str, Any]:
    auth = exchanger.auth(scope, audience=API)
    exchanged = await exchanger.exchange(scope, audience=API)
    header = "Bearer " + exchanged.access_token.get_secret_value()

    async def exchange() -> object:
        return await exchanger.exchange(scope, audience=API)

    async def flow() -> object:
        request = httpx.Request("GET", API)
        steps = auth.async_auth_flow(request)
        sent = await steps.__anext__()
        await steps.aclose()
        return sent

    async def by_hand() -> object:
        request = httpx.Request("GET", API)
        request.headers["Authorization"] = header
        return request

    rounds: dict[str, list[float]] = {"exchange": [], "flow": [], "by_hand": []}
    for _ in range(args.rounds):
        for name, call in (("exchange", exchange), ("flow", flow), ("by_hand", by_hand)):
            rounds[name].append(await timed(call, args.calls))
    return {name: statistics.median(values) for name, values in rounds.items()}


async def downstream(
    exchanger: TokenExchanger, scope: dict[str, Any], url: str, requests: int
) -> dict[str, float]:
    """A whole GET on loopback, with ``exchanger.auth`` and with the header set by hand."""
    token = (await exchanger.exchange(scope, audience=API)).access_token.get_secret_value()
    times: dict[str, list[float]] = {"auth": [], "by_hand": []}
    async with (
        httpx.AsyncClient(auth=exchanger.auth(scope, audience=API)) as with_auth,
        httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as by_hand,
    ):
        clients = {"auth": with_auth, "by_hand": by_hand}
        for client in clients.values():
            (await client.get(url)).raise_for_status()  # connections open
        for _ in range(requests):
            for name, client in clients.items():
                started = time.perf_counter()
                (await client.get(url)).raise_for_status()
                times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in times.items()}


async def uncached(
    exchanger: TokenExchanger, scopes: list[dict[str, Any]]
) -> dict[str, float | int]:
    times = []
    for scope in scopes:
        started = time.perf_counter()
        await exchanger.exchange(scope, audience=API)
        times.append(time.perf_counter() - started)
    cuts = statistics.quantiles(times, n=100, method="inclusive")
    return {"n": len(times), "p50": cuts[49], "p90": cuts[89], "p99": cuts[98], "max": max(times)}


async def run(args: argparse.Namespace, issuer: LocalIssuer, api_url: str) -> dict[str, Any]:
    validator = TokenValidator(issuer.issuer, AUDIENCE)
    keys = KeySet.from_jwks(issuer.jwks())
    exchanger = exchanger_for(issuer)
    try:
        scope = admitted(issuer, validator, keys)
        results: dict[str, Any] = {"cached": await cached(exchanger, scope, args)}
        results["downstream"] = await downstream(exchanger, scope, api_url, args.requests)
        cold = [admitted(issuer, validator, keys) for _ in range(args.cold)]
        await exchanger.exchange(admitted(issuer, validator, keys), audience=API)  # connected
        results["uncached"] = await uncached(exchanger, cold)
        results["stats"] = exchanger.stats()
    finally:
        await exchanger.aclose()
    return results


def report(args: argparse.Namespace, results: dict[str, Any]) -> str:
    cached_us = {name: value * 1e6 for name, value in results["cached"].items()}
    down_us = {name: value * 1e6 for name, value in results["downstream"].items()}
    cold_ms = {name: value * 1e3 for name, value in results["uncached"].items() if name != "n"}
    added = cached_us["flow"] - cached_us["by_hand"]
    return "\n".join(
        [
            f"cached exchange ({args.rounds} rounds x {args.calls} calls, median per call):",
            f"  exchanger.exchange(), from the cache        {cached_us['exchange']:8.2f} us",
            f"  exchanger.auth() flow of one request        {cached_us['flow']:8.2f} us",
            f"  the same header set by hand                 {cached_us['by_hand']:8.2f} us",
            f"  added per downstream call                   {added:8.2f} us",
            f"a whole downstream GET on loopback ({args.requests} each, alternating, median):",
            f"  with exchanger.auth()  {down_us['auth']:8.1f} us   "
            f"header by hand  {down_us['by_hand']:8.1f} us   "
            f"difference {down_us['auth'] - down_us['by_hand']:+.1f} us",
            f"uncached exchange at the local issuer ({results['uncached']['n']} callers, one "
            "at a time):",
            f"  p50 {cold_ms['p50']:.2f} ms   p90 {cold_ms['p90']:.2f} ms   "
            f"p99 {cold_ms['p99']:.2f} ms   max {cold_ms['max']:.2f} ms",
        ]
    )


def api_app() -> Starlette:
    async def ok(_: object) -> PlainTextResponse:
        return PlainTextResponse("ok")

    return Starlette(routes=[Route("/", ok)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=2_000)
    parser.add_argument("--cold", type=int, default=300)
    args = parser.parse_args(argv)
    issuer = LocalIssuer()
    with issuer.serve(), AppServer(api_app(), lifespan="off") as api_url:
        results = asyncio.run(run(args, issuer, api_url + "/"))
    print(report(args, results))
    print(f"exchanger: {results['stats']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
