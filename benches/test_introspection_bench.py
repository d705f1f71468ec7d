"""``benches/introspection.py`` runs (tiny sizes), so the benchmark cannot rot; skipped without
the bench group (fastmcp)."""

from __future__ import annotations

import argparse
import asyncio

import pytest

import introspection
from mcp_oauth2.testing import LocalIssuer

pytest.importorskip("fastmcp")


def test_the_introspection_benchmark_runs() -> None:
    args = argparse.Namespace(rounds=1, calls=50, cold_calls=3, flood_seconds=0.5, workers=16)
    issuer = LocalIssuer(default_audience=introspection.AUDIENCE)
    with issuer.serve():
        results = asyncio.run(introspection.run(args, issuer))
    text = introspection.report(args, results)
    assert "fastmcp IntrospectionTokenVerifier" in text
    # Neither verifier accepts a random token, however many arrive.
    assert results["flood_ours"].accepted == 0
    assert results["flood_fastmcp"].accepted == 0
    stats = results["flood_ours_stats"]
    assert stats.calls <= results["flood_ours"].requests
