"""``benches/token_exchange.py`` runs (tiny sizes), so the benchmark cannot rot."""

from __future__ import annotations

import argparse
import asyncio

import token_exchange
from mcp_oauth2.testing import AppServer, LocalIssuer


def test_the_token_exchange_benchmark_runs() -> None:
    args = argparse.Namespace(rounds=1, calls=20, requests=5, cold=5)
    issuer = LocalIssuer()
    with issuer.serve(), AppServer(token_exchange.api_app(), lifespan="off") as api_url:
        results = asyncio.run(token_exchange.run(args, issuer, api_url + "/"))
    text = token_exchange.report(args, results)
    assert "added per downstream call" in text
    stats = results["stats"]
    # One call for the cached caller, one per cold caller (and one to connect): the rest hits.
    assert stats.calls == 1 + args.cold + 1
    assert stats.hits >= args.calls * 2 + args.requests
    assert (stats.failures, stats.refused) == (0, 0)
