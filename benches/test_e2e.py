"""Smoke run of the end-to-end benchmark (``make bench-e2e`` runs it in full, with wrk).

Under ``make test`` it starts the plain and the protected app under uvicorn once, checks their
answers and JWKS fetching, and drives a fraction of a second of httpx load through each, so the
runner cannot rot. With benchmarking enabled it is skipped: ``make bench-e2e`` is the real run.
"""

from __future__ import annotations

from typing import Any

import pytest

import e2e


def test_e2e_smoke(benchmark: Any, full: bool) -> None:
    if full:
        pytest.skip("make bench-e2e runs the end-to-end benchmark")

    def body() -> None:
        result = e2e.run(
            duration=0.1, reps=1, driver="httpx", modes=("workers=1",), connections=4, probe_s=0.01
        )
        mode = result["modes"]["workers=1"]
        # One process, one key fetch at start-up (the middleware prefetches in its lifespan),
        # and one more for the forged token of the answer check (a key miss refetches once per
        # cooldown window; the startup fetch does not use the window up); none afterwards: the
        # warm key cache serves every request of the load.
        assert mode["jwks_fetches_at_start"] == 1, mode
        assert mode["jwks_fetches_total"] == 2, mode
        assert mode["plain"]["requests"] > 0, mode
        assert mode["protected"]["requests"] > 0, mode
        worker = next(iter(mode["per_worker"].values()))
        assert worker["fetches"] == 2, worker
        assert worker["key_hits"] > 0, worker

    benchmark.pedantic(body, rounds=1, iterations=1, warmup_rounds=0)
