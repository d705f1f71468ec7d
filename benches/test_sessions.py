"""Many sessions: 10,000 live tokens against verified-token caches of several sizes.

Each cache size runs in a fresh process (``probes.py sessions``): every session sends its first
request, then 100,000 requests go to sessions picked at random. The probe reports the hit rate,
the latency of those requests and the growth of resident memory; with the cache off as the
control, the growth with room for every session gives the memory per entry.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cases import AUDIENCE, session_tokens
from mcp_oauth2.testing import LocalIssuer

HERE = Path(__file__).resolve().parent
SESSIONS = 10_000
REQUESTS = 100_000
CACHE_SIZES = (0, 1024, 16_384)


def probe(spec: dict[str, Any]) -> dict[str, Any]:
    answer = subprocess.run(  # noqa: S603 - our interpreter and our probe script
        [sys.executable, str(HERE / "probes.py"), "sessions"],
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    result: dict[str, Any] = json.loads(answer.stdout)
    return result


@pytest.fixture(scope="module")
def tokens(issuer: LocalIssuer, full: bool) -> list[str]:
    return session_tokens(issuer, SESSIONS if full else 50)


@pytest.mark.parametrize("cache_size", CACHE_SIZES)
def test_sessions(
    benchmark: Any, issuer: LocalIssuer, tokens: list[str], full: bool, cache_size: int
) -> None:
    spec: dict[str, Any] = {
        "jwks": issuer.jwks(),
        "issuer": issuer.issuer,
        "audience": AUDIENCE,
        "tokens": tokens,
        "cache_size": cache_size,
        "requests": REQUESTS if full else 200,
        "seed": 11,
    }
    result = benchmark.pedantic(probe, args=(spec,), rounds=1, iterations=1)
    info = result["cache_info"]
    assert info["size"] == min(cache_size, len(tokens)), info
    if cache_size == 0:
        # A disabled cache is never consulted.
        assert info["hits"] == info["misses"] == 0, info
    else:
        assert info["hits"] + info["misses"] == len(tokens) + spec["requests"] + 1, info
    if cache_size >= len(tokens):
        assert result["hit_rate"] == 1.0, result
    benchmark.extra_info.update(result)
