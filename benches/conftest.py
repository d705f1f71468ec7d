"""Benchmark fixtures, and the reports printed at the end of a run.

Every pytest-benchmark case belongs to a group (one per algorithm and scenario); within a group
the PyJWT case is the baseline, and the summary prints each case's median and its speed-up over
PyJWT. The comparison suite (``test_comparison.py``) times itself, interleaved; its sections are
saved and rendered into ``results/results.md`` and ``results/validation.png`` (``report.py``).
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

import pytest

import report
from bench_material import Material

BASELINE = "pyjwt"
RESULTS = Path(__file__).parent / "results"


@pytest.fixture(scope="session", params=["RS256", "ES256"])
def material(request: pytest.FixtureRequest) -> Material:
    return Material(request.param)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if report.flush_session():
        text = report.write_all()
        terminalreporter.write_sep("=", "comparison suite (written to benches/results/)")
        terminalreporter.write_line(text)
    session = getattr(config, "_benchmarksession", None)
    if session is None or session.disabled or not session.benchmarks:
        return
    groups: dict[str, dict[str, float]] = {}
    for bench in session.benchmarks:
        if bench.stats is None or (bench.group or "").startswith("suite"):
            continue
        case = bench.name.split("[")[0].removeprefix("test_")
        groups.setdefault(bench.group or "", {})[case] = bench.stats.median
    if not groups:
        return
    lines = [
        f"Machine: {platform.machine()}, {platform.python_implementation()} "
        f"{platform.python_version()}, {platform.system()}",
        "",
        "| group | case | median (us) | speed-up vs PyJWT |",
        "|---|---|---|---|",
    ]
    for group, cases in sorted(groups.items()):
        baseline = cases.get(BASELINE)
        for case, median in sorted(cases.items(), key=lambda item: item[1]):
            ratio = f"{baseline / median:.2f}x" if baseline else "n/a"
            lines.append(f"| {group} | {case} | {median * 1e6:.2f} | {ratio} |")
    table = "\n".join(lines)
    terminalreporter.write_sep("=", "speed-up against PyJWT (same run)")
    terminalreporter.write_line(table)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "validation.md").write_text(table + "\n")
