"""Renders ``results/results.md`` and ``results/validation.png`` from the saved results.

    python benches/report.py

Reads every ``results/suite-*.json`` (pytest-benchmark's ``--benchmark-json`` of ``make bench``,
one per interpreter, with each section's figures in ``extra_info``), ``results/e2e.json``
(``make bench-e2e``) and the Rust floor benchmark (criterion's estimates under ``target/``,
copied to ``results/rust.json``), and checks each figure against its target.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cases import EMPTY, FLOOR, MCP_CACHED, MCP_UNCACHED, ORDER, versions

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
CRITERION = HERE.parent / "target" / "criterion"
ALGS = ("RS256", "ES256")
# Issue 11's targets.
FLOOR_MARGIN = 0.08
RUST_FLOOR_MARGIN = 0.05
THREADS_VS_PROCESSES = 0.95
MIDDLEWARE_US = 3.0
E2E_LOSS = 0.05
MIDDLEWARE = "minimal ASGI app + OAuth2Middleware"

Suite = dict[str, Any]


def stamp() -> dict[str, Any]:
    """When, under which interpreter and by which command a result was made."""
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "command": os.environ.get("BENCH_COMMAND") or shlex.join(sys.argv),
        "versions": versions(),
    }


def save(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    return path


# -- reading ----------------------------------------------------------------------------------


def entries(suite: Suite, test: str) -> Iterator[dict[str, Any]]:
    for bench in suite.get("benchmarks", []):
        if bench["name"].split("[")[0] == test:
            yield bench


def per_token(suite: Suite) -> dict[str, dict[str, dict[str, Any]]]:
    """alg -> case -> its pytest-benchmark entry."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for bench in entries(suite, "test_per_token"):
        out.setdefault(bench["params"]["alg"], {})[bench["params"]["name"]] = bench
    return out


def us(bench: dict[str, Any], field: str = "median") -> float:
    return float(bench["stats"][field]) * 1e6


def rust_floor() -> dict[str, float]:
    """Criterion's median (ns) of each Rust floor benchmark, from target/ or the saved copy."""
    found = {}
    # Criterion writes "RS256/<name>" into the folder "RS256_<name>".
    for estimates in CRITERION.glob("*/new/estimates.json"):
        alg, _, name = estimates.parents[1].name.partition("_")
        if alg in ALGS and name:
            point = json.loads(estimates.read_text())["median"]["point_estimate"]
            found[f"{alg}/{name}"] = point
    if found:
        save("rust", found)
        return found
    saved = RESULTS / "rust.json"
    return json.loads(saved.read_text()) if saved.exists() else {}


# -- rendering --------------------------------------------------------------------------------


def fmt_us(value: float) -> str:
    return f"{value:.3f}" if value < 10 else f"{value:.2f}" if value < 100 else f"{value:.1f}"


def verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def conditions(found: dict[str, Any] | None) -> str:
    """What else the machine did while a section ran."""
    if not found:
        return ""
    text = ""
    quiet = found.get("quiet")
    if quiet:
        text += (
            f"Other processes used {quiet['busy_cores']} cores when the timing started (after "
            f"waiting {quiet['waited_s']} s for a quiet machine). "
        )
    if "rounds_kept" in found:
        text += (
            f"Rounds kept: {found['rounds_kept']}, set aside as disturbed: "
            f"{found['rounds_discarded']}; other processes' cores per block of 10 rounds: median "
            f"{found['other_cores_median']}, max {found['other_cores_max']}. "
        )
        if found["disturbed"]:
            text += "**Disturbed: too few quiet rounds, every round counted.** "
    if "load_before" in found:
        load = "/".join(f"{v:.2f}" for v in found["load_before"])
        text += f"Load average (1/5/15 min) before: {load}."
    return text


def targets(suites: dict[str, Suite], e2e: dict[str, Any] | None, rust: dict[str, float]) -> str:
    rows = []
    for python, suite in suites.items():
        cases = per_token(suite)
        for alg in ALGS:
            found = cases.get(alg, {})
            if MCP_UNCACHED not in found:
                continue
            mine = found[MCP_UNCACHED]
            over = mine["extra_info"]["vs_floor"] - 1
            gap = us(mine) - us(found[FLOOR])
            rows.append(
                [
                    python,
                    f"{alg} uncached within {FLOOR_MARGIN:.0%} of `KeySet.verify_signature`",
                    f"{over:+.1%} per round ({gap:+.2f} us; medians {fmt_us(us(mine))} / "
                    f"{fmt_us(us(found[FLOOR]))} us)",
                    verdict(over <= FLOOR_MARGIN),
                ]
            )
            peers = {
                name: bench["extra_info"]["vs_floor"]
                for name, bench in found.items()
                if name not in (MCP_UNCACHED, MCP_CACHED, FLOOR)
            }
            closest = min(peers, key=lambda name: peers[name])
            lead = peers[closest] / mine["extra_info"]["vs_floor"]
            rows.append(
                [
                    python,
                    f"{alg} uncached ahead of every peer",
                    f"closest: {closest}, {lead:.2f}x mcp-oauth2's time",
                    verdict(lead > 1),
                ]
            )
        for bench in entries(suite, "test_threads"):
            info = bench["extra_info"]
            if "cases" not in info:
                continue
            alg = bench["params"]["alg"]
            mine = info["cases"][MCP_UNCACHED]
            rows.append(
                [
                    python,
                    f"{alg} two threads >= {THREADS_VS_PROCESSES:.0%} of two processes (uncached)",
                    f"{mine['vs_processes']:.2f} (threads {mine['ratio']:.2f}x, processes "
                    f"{info['processes']['ratio']:.2f}x, medians of {info['reps']} repetitions)",
                    verdict(mine["vs_processes"] >= THREADS_VS_PROCESSES),
                ]
            )
        middleware = {b["params"]["name"]: b for b in entries(suite, "test_middleware")}
        protected = middleware.get(MIDDLEWARE)
        if protected and "over" in protected["extra_info"]:
            cost = protected["extra_info"]["over"]["paired_us"]
            rows.append(
                [
                    python,
                    f"middleware <= {MIDDLEWARE_US:g} us over a minimal ASGI app",
                    f"{cost:.2f} us",
                    verdict(cost <= MIDDLEWARE_US),
                ]
            )
    for alg in ALGS:
        core = rust.get(f"{alg}/mcp-oauth2 validate (core)")
        floor = rust.get(f"{alg}/aws-lc-rs bare verify (floor)")
        if core and floor:
            over = core / floor - 1
            rows.append(
                [
                    "Rust (criterion)",
                    f"{alg} core within {RUST_FLOOR_MARGIN:.0%} of aws-lc-rs verification",
                    f"{over:+.1%} ({core / 1000:.2f} / {floor / 1000:.2f} us)",
                    verdict(over <= RUST_FLOOR_MARGIN),
                ]
            )
    if e2e:
        for mode, found in e2e["modes"].items():
            loss = 1 - found.get("ratio_even", found["ratio"])
            rows.append(
                [
                    e2e.get("python", ""),
                    f"end to end ({mode}): <= {E2E_LOSS:.0%} fewer requests/s",
                    f"{loss:.1%} fewer (per pair of runs: {1 - found['ratio_paired']:.1%})",
                    verdict(loss <= E2E_LOSS),
                ]
            )
    return table(["interpreter", "target", "measured", "verdict"], rows)


def render_per_token(suite: Suite) -> str:
    cases = per_token(suite)
    header = ["library"]
    for alg in ALGS:
        header += [f"{alg} median (us)", "p25-p75", "time / floor", "speed-up vs PyJWT"]
    rows = []
    for name in ORDER:
        if name == EMPTY or not any(name in cases.get(alg, {}) for alg in ALGS):
            continue
        row = [name]
        for alg in ALGS:
            bench = cases.get(alg, {}).get(name)
            if bench is None:
                row += ["-"] * 4
                continue
            info = bench["extra_info"]
            row += [
                fmt_us(us(bench)),
                f"{fmt_us(us(bench, 'q1'))}-{fmt_us(us(bench, 'q3'))}",
                f"{info['vs_floor']:.3f}",
                f"{info['speedup_vs_pyjwt']:.2f}x",
            ]
        rows.append(row)
    empty = next(entries(suite, "test_harness_overhead"), None)
    any_case = next(iter(cases.get("RS256", {}).values()), None)
    lines = [
        f"Interleaved rounds (one batch of every case per round, ~2 ms a batch, rotating order); "
        "per-call medians; ratios are medians of the per-round ratios. The same token every "
        f"call; `{MCP_UNCACHED}` has `cache_size=0`. "
        + conditions(any_case["extra_info"].get("conditions") if any_case else None),
        "",
        table(header, rows),
    ]
    if empty:
        lines += ["", f"The harness's own call costs {fmt_us(us(empty))} us (in every row)."]
    if any_case:
        lines += [
            "",
            "Every library was first shown to return the subject of a valid token and to raise "
            "for an expired one, a wrong issuer, a wrong audience and a forged signature (the "
            "floor: accepts the signature, rejects the forgery).",
        ]
    return "\n".join(lines)


def render_threads(suite: Suite) -> str:
    rows = []
    process_rows = []
    for bench in entries(suite, "test_threads"):
        info = bench["extra_info"]
        if "cases" not in info:
            continue
        alg = bench["params"]["alg"]
        for name, found in info["cases"].items():
            rows.append(
                [
                    alg,
                    name,
                    f"{found['one']:,.0f}",
                    f"{found['two']:,.0f}",
                    f"**{found['ratio']:.2f}x**",
                    f"{min(found['ratios']):.2f}-{max(found['ratios']):.2f}",
                    f"{found['cpu_two']:.2f}",
                    f"{found['other_cores_max']:.2f}",
                ]
            )
        ceiling = info["processes"]
        process_rows.append(
            [
                alg,
                f"{ceiling['one']:,.0f}",
                f"{ceiling['two']:,.0f}",
                f"**{ceiling['ratio']:.2f}x**",
                ", ".join(f"{r:.2f}" for r in ceiling["ratios"]),
            ]
        )
    if not rows:
        return "(not run)"
    return "\n".join(
        [
            "Fixed work per thread (~0.2 s single-threaded), one thread then two (or two then "
            "one), 7 repetitions rotating the cases; throughput medians; ratio = median of the "
            "per-repetition ratios. A pair during which other processes used more than 0.25 "
            "cores was measured again (up to 3 tries, the least disturbed kept). The uncached "
            "cases validate one token; `cached, 512 sessions` cycles through 512 cached tokens. "
            "`cores used` is this process's CPU time over wall time with two threads.",
            "",
            table(
                [
                    "alg",
                    "case",
                    "1 thread (calls/s)",
                    "2 threads (calls/s)",
                    "2T / 1T",
                    "range",
                    "cores used",
                    "other processes' cores (max)",
                ],
                rows,
            ),
            "",
            "The same work without any GIL: the bare signature check in two separate processes "
            "(`probes.py signatures`), one alone and then both, right after each repetition of "
            "mcp-oauth2's uncached pair:",
            "",
            table(["alg", "1 process", "2 processes", "2P / 1P", "per repetition"], process_rows),
        ]
    )


def render_sessions(suite: Suite) -> str:
    rows = []
    runs = {b["params"]["cache_size"]: b["extra_info"] for b in entries(suite, "test_sessions")}
    runs = {size: info for size, info in runs.items() if "hit_rate" in info}
    if not runs:
        return "(not run)"
    for size, info in sorted(runs.items()):
        rows.append(
            [
                f"{size:,}" if size else "0 (cache off)",
                f"{info['hit_rate']:.1%}",
                f"{info['mean_us']:.2f}",
                f"{info['p50_us']:.2f}",
                f"{info['p99_us']:.1f}",
                f"{info['rss_growth_kib'] / 1024:.1f}",
                f"{info['cache_info']['size']:,}",
            ]
        )
    text = [
        f"{next(iter(runs.values()))['sessions']:,} live sessions (distinct ES256 tokens of "
        "about 430 bytes, `LocalIssuer` claims); each sends a first request, then "
        f"{next(iter(runs.values()))['requests']:,} requests go to sessions picked at random; "
        "a fresh process per cache size (`probes.py sessions`), resident memory (VmRSS) before "
        "the first request and after the last.",
        "",
        table(
            [
                "cache_size",
                "hit rate",
                "mean (us)",
                "p50 (us)",
                "p99 (us)",
                "RSS growth (MiB)",
                "entries",
            ],
            rows,
        ),
    ]
    full = [size for size, info in runs.items() if info["cache_info"]["size"] == info["sessions"]]
    if 0 in runs and full:
        size = min(full)
        per_entry = (
            (runs[size]["rss_growth_kib"] - runs[0]["rss_growth_kib"])
            * 1024
            / runs[size]["sessions"]
        )
        text += [
            "",
            f"Memory per cache entry: (growth with cache_size={size:,} - growth without a "
            f"cache) / {runs[size]['sessions']:,} entries = **{per_entry:,.0f} bytes**.",
        ]
    return "\n".join(text)


def render_middleware(suite: Suite) -> str:
    found = {b["params"]["name"]: b for b in entries(suite, "test_middleware")}
    if not found:
        return "(not run)"
    rows = []
    for name, bench in found.items():
        over = bench["extra_info"].get("over")
        added = f"+{over['paired_us']:.2f} over {over['app']}" if over else ""
        rows.append(
            [name, fmt_us(us(bench)), f"{fmt_us(us(bench, 'q1'))}-{fmt_us(us(bench, 'q3'))}", added]
        )
    text = [
        "ASGI apps called directly (prepared scope, no-op `send`), interleaved rounds; the same "
        "token every request; key and token caches warm. "
        + conditions(next(iter(found.values()))["extra_info"].get("conditions")),
        "",
        table(["case", "median (us)", "p25-p75", "added (median of per-round differences)"], rows),
    ]
    cold = next(entries(suite, "test_cold_start"), None)
    if cold and "cold_start" in cold["extra_info"]:
        cold_rows = [
            [
                label,
                f"{info['first_median_us'] / 1000:.2f}",
                f"{info['first_min_us'] / 1000:.2f}-{info['first_max_us'] / 1000:.2f}",
                f"{info['second_median_us']:.1f}",
                str(info["starts"]),
            ]
            for label, info in cold["extra_info"]["cold_start"].items()
        ]
        text += [
            "",
            "Cold start: the first request of a new app (minimal ASGI app + `OAuth2Middleware`, "
            "lifespan not run), against a `LocalIssuer` on loopback in the same process:",
            "",
            table(
                [
                    "key source",
                    "first request, median (ms)",
                    "range (ms)",
                    "second request (us)",
                    "starts",
                ],
                cold_rows,
            ),
        ]
    return "\n".join(text)


def render_e2e(result: dict[str, Any]) -> str:
    rows = []
    notes = []
    for mode, found in result["modes"].items():
        for name in ("plain", "protected"):
            run = found[name]
            rows.append(
                [
                    mode,
                    "with OAuth2Middleware" if name == "protected" else "without",
                    f"{run['rps']:,.0f}",
                    f"{run['p50_ms']:.2f}",
                    f"{run['p99_ms']:.2f}",
                    ", ".join(f"{x:,.0f}" for x in run["rps_runs"]),
                    ", ".join(f"{x:.0%}" for x in run["busiest_share"])
                    if found["workers"] > 1
                    else "",
                ]
            )
        even = ""
        if "ratio_even" in found:
            even = f"; evenly spread runs only: {found['ratio_even']:.3f}"
        rows.append(
            [
                mode,
                "**with / without**",
                f"**{found['ratio']:.3f}**",
                "",
                "",
                f"per pair of runs: {found['ratio_paired']:.3f}{even}",
                "",
            ]
        )
        notes.append(
            f"- {mode}: {found['jwks_fetches_total']} JWKS request(s) at the issuer for "
            f"{found['workers']} worker process(es); load {found['load_before'][0]:.2f} before."
        )
    return "\n".join(
        [
            f"{result.get('date', '?')}; {result.get('python', '')}; {result['driver_version']}, "
            f"{result['threads']} threads, {result['connections']} connections, "
            f"{result['duration_s']:g} s per run, {result['reps']} runs per app "
            f"({result['reps_workers']} with two workers), alternating; uvicorn (h11, asyncio) on "
            f"127.0.0.1, the same {result['token_alg']} token on every request. With two "
            "workers, a run where one worker answered more than 60% of the requests (wrk's "
            "connections landed unevenly) is left out of the `evenly spread` ratio.",
            "",
            table(
                [
                    "mode",
                    "app",
                    "requests/s (median)",
                    "p50 (ms)",
                    "p99 (ms)",
                    "runs (req/s)",
                    "busiest worker's share",
                ],
                rows,
            ),
            "",
            *notes,
        ]
    )


def load() -> tuple[dict[str, Suite], dict[str, Any] | None]:
    suites = {}
    for path in sorted(RESULTS.glob("suite-*.json")):
        data = json.loads(path.read_text())
        suites[data.get("python", path.stem)] = data
    e2e_path = RESULTS / "e2e.json"
    return suites, json.loads(e2e_path.read_text()) if e2e_path.exists() else None


def render_all() -> str:
    suites, e2e = load()
    rust = rust_floor()
    out = ["# mcp-oauth2 benchmark results", ""]
    for python, suite in suites.items():
        cpu = suite.get("machine_info", {}).get("cpu", {})
        out.append(
            f"- Suite under {python}: {suite.get('datetime', '?')[:16]}, `{suite.get('command')}`"
            f" on {cpu.get('brand_raw', '?')} ({cpu.get('count', '?')} logical cores)"
        )
    if e2e:
        out.append(f"- End to end under {e2e.get('python')}: {e2e.get('date')}, `{e2e['command']}`")
    versions: dict[str, str] = {}
    for suite in suites.values():
        for name, version in suite.get("versions", {}).items():
            if versions.get(name, "not installed") == "not installed":
                versions[name] = version
    if versions:
        out.append("- Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    out += [
        "- Compare ratios within one run: absolute times drift between runs on this shared VM.",
        "",
        "## Targets",
        "",
        targets(suites, e2e, rust),
    ]
    if rust:
        rows = [[name, f"{ns / 1000:.3f}"] for name, ns in sorted(rust.items())]
        out += [
            "",
            "## Rust alone (criterion, `cargo bench --features bench --bench verify_floor`)",
            "",
            table(["benchmark", "median (us)"], rows),
        ]
    sections = (
        ("Per token", render_per_token),
        ("Thread scaling", render_threads),
        ("Many sessions: the verified-token cache", render_sessions),
        ("Middleware in process, and cold start", render_middleware),
    )
    for python, suite in suites.items():
        for title, render in sections:
            out += ["", f"## {title} ({python})", "", render(suite)]
    if e2e:
        out += ["", "## End to end (uvicorn + wrk)", "", render_e2e(e2e)]
    out += ["", "![per-token medians](validation.png)", ""]
    return "\n".join(out)


def write_chart(suites: dict[str, Suite]) -> None:
    try:
        import matplotlib  # the `bench` dependency group

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is missing (uv sync --group bench): no chart", file=sys.stderr)
        return
    series = {python: per_token(suite) for python, suite in suites.items()}
    series = {python: cases for python, cases in series.items() if cases}
    if not series:
        return
    names = [
        n
        for n in ORDER
        if n != EMPTY and any(n in c.get(alg, {}) for c in series.values() for alg in ALGS)
    ]
    figure, axes = plt.subplots(1, 2, figsize=(13, 0.55 * len(names) + 2), sharey=True)
    height = 0.8 / len(series)
    for ax, alg in zip(axes, ALGS, strict=True):
        for index, (python, cases) in enumerate(series.items()):
            found = cases.get(alg, {})
            values = [us(found[n]) if n in found else 0.0 for n in names]
            ys = [i + index * height for i in range(len(names))]
            bars = ax.barh(ys, values, height=height, label=python)
            for bar, value in zip(bars, values, strict=True):
                if value:
                    y = bar.get_y() + bar.get_height() / 2
                    ax.text(value * 1.08, y, f"{value:.3g}", va="center", fontsize=7)
        ax.set_xscale("log")
        ax.set_title(f"{alg}: per-token median (us, log scale; lower is faster)")
        ax.set_yticks([i + height * (len(series) - 1) / 2 for i in range(len(names))], names)
        ax.invert_yaxis()
        ax.grid(axis="x", which="both", alpha=0.3)
        ax.set_xlim(right=max(ax.get_xlim()[1], 1) * 3)
    axes[0].legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    figure.savefig(RESULTS / "validation.png", dpi=110)
    plt.close(figure)


def write_all() -> str:
    RESULTS.mkdir(exist_ok=True)
    text = render_all()
    (RESULTS / "results.md").write_text(text)
    write_chart(load()[0])
    return text


if __name__ == "__main__":
    print(write_all())
