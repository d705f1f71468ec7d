"""Benchmark fixtures, and what the results JSON records beside pytest-benchmark's own fields.

``make bench`` runs these files with ``--benchmark-enable --benchmark-json=results/suite-<python>
.json``; ``report.py`` renders every such file (and ``e2e.json``) into ``results/results.md`` and
``results/validation.png``. ``make test`` runs them with benchmarking disabled: each case once,
every correctness check in full.
"""

from __future__ import annotations

import os
import platform
import shlex
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from cases import AUDIENCE, versions
from mcp_oauth2.testing import LocalIssuer


@pytest.fixture(scope="session")
def full(request: pytest.FixtureRequest) -> bool:
    """Whether this run benchmarks (``--benchmark-enable``) or only runs each case once."""
    return bool(request.config.getoption("benchmark_enable"))


@pytest.fixture(scope="module")
def issuer() -> Iterator[LocalIssuer]:
    local = LocalIssuer(default_audience=AUDIENCE)
    with local.serve():
        yield local


def pytest_benchmark_update_json(
    config: pytest.Config, benchmarks: list[Any], output_json: dict[str, Any]
) -> None:
    # Every round of every case is in the entry's stats; the summary is what the report reads.
    for bench in output_json.get("benchmarks", []):
        bench.get("stats", {}).pop("data", None)
    output_json["command"] = os.environ.get("BENCH_COMMAND") or shlex.join(sys.argv)
    output_json["python"] = f"{platform.python_implementation()} {platform.python_version()}"
    output_json["versions"] = versions()
