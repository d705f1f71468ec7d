"""End-to-end benchmark: FastAPI under uvicorn on 127.0.0.1, with and without OAuth2Middleware.

    python benches/e2e.py [--duration 5] [--reps 4] [--reps-workers 6] [--driver auto|wrk|httpx]

(``make bench-e2e`` runs it.) A ``LocalIssuer`` in this process serves the JWKS; the servers are
uvicorn subprocesses configured through ``MCP_OAUTH2_ISSUER``, ``MCP_OAUTH2_AUDIENCE`` and
``MCP_OAUTH2_JWKS_URI``: first a single process, then ``--workers 2``. For each mode the plain
and the protected app run side by side and the load alternates between them (plain, protected,
protected, plain, ...), every request carrying the same bearer token, so after the first request
the middleware answers from its verified-token cache. The load comes from ``wrk`` (2 threads, 32
connections), or from a bounded httpx script when wrk is missing (much slower: its numbers only
show that the path works). ``--workers 2`` runs through ``e2e_serve.py``: as uvicorn ships it,
its pre-bound socket loses TCP_NODELAY, so every keep-alive request waits ~40 ms for a delayed
ACK (Kludex/uvicorn#3149) and both apps measure only that. The results go to
``results/e2e.json`` and ``results/results.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

import report
from e2e_app import PING_PATH, STATS_PATH
from harness import QUIET_CORES, OtherCpu, busy_elsewhere, wait_for_quiet
from mcp_oauth2.testing import LocalIssuer

HERE = Path(__file__).resolve().parent
AUDIENCE = "https://mcp.example.com/mcp"
HOST = "127.0.0.1"
START_TIMEOUT = 30.0
NODELAY_SUFFIX = ", TCP_NODELAY restored"
# Single process; --workers 2 with the fix of uvicorn#3149.
MODE_WORKERS = {"workers=1": 1, "workers=2" + NODELAY_SUFFIX: 2}
MODES = tuple(MODE_WORKERS)
# With two workers, a run counts as evenly spread when no worker answered more than this share.
EVEN_SHARE = 0.6


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class Server:
    """``uvicorn e2e_app:<factory> --factory`` in a subprocess; stopped on exit, always."""

    def __init__(
        self, factory: str, workers: int, env: dict[str, str], *, nodelay_fix: bool = False
    ) -> None:
        self.factory = factory
        self.workers = workers
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        # The stock CLI, or the same CLI with TCP_NODELAY kept under --workers (e2e_serve.py).
        launcher = [str(HERE / "e2e_serve.py")] if nodelay_fix else ["-m", "uvicorn"]
        command = [
            sys.executable,
            *launcher,
            f"e2e_app:{factory}",
            "--factory",
            "--app-dir",
            str(HERE),
            "--host",
            HOST,
            "--port",
            str(self.port),
            "--log-level",
            "warning",
            "--no-access-log",
        ]
        if workers > 1:
            command += ["--workers", str(workers)]
        self.terminated = False
        # Our own interpreter and arguments only; a session of its own, so that the workers
        # can be stopped as one group if the server does not stop by itself.
        self.process = subprocess.Popen(command, env=env, start_new_session=True)  # noqa: S603

    def wait_ready(self) -> set[int]:
        """Wait until the server answers (and, with workers, until every worker has answered).

        Returns the worker pids seen. Bounded by START_TIMEOUT.
        """
        deadline = time.monotonic() + START_TIMEOUT
        pids: set[int] = set()
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"uvicorn {self.factory} exited with {self.process.returncode}")
            try:
                pids |= set(worker_stats(self.url, attempts=4 * self.workers))
            except httpx.HTTPError:
                time.sleep(0.05)
                continue
            if len(pids) >= self.workers:
                return pids
            time.sleep(0.1)
        if pids:
            return pids
        raise RuntimeError(f"uvicorn {self.factory} did not start within {START_TIMEOUT} s")

    def terminate(self) -> None:
        """Ask for a graceful shutdown, once (a second SIGTERM makes uvicorn force its exit)."""
        if not self.terminated and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        self.terminated = True

    def stop(self) -> None:
        self.terminate()
        if self.process.poll() is None:
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                # The whole group: with --workers the children are in our new session.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)


@contextlib.contextmanager
def serving(
    workers: int, env: dict[str, str], *, nodelay_fix: bool
) -> Iterator[tuple[Server, Server]]:
    """The plain and the protected app, started together and stopped together."""
    servers: list[Server] = []
    try:
        servers.append(Server("plain_app", workers, env, nodelay_fix=nodelay_fix))
        servers.append(Server("protected_app", workers, env, nodelay_fix=nodelay_fix))
        yield servers[0], servers[1]
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.stop()


def worker_stats(url: str, attempts: int) -> dict[int, dict[str, Any]]:
    """``/_bench/stats`` ``attempts`` times over fresh connections (no keep-alive), so that
    different workers answer; the last report of each worker, by pid."""
    seen: dict[int, dict[str, Any]] = {}
    limits = httpx.Limits(max_keepalive_connections=0)
    with httpx.Client(limits=limits, timeout=5) as client:
        for _ in range(attempts):
            answer = client.get(url + STATS_PATH)
            answer.raise_for_status()
            report = answer.json()
            seen[report["pid"]] = report
    return seen


def answered_by_worker(server: Server, pids: set[int]) -> dict[int, int]:
    """Requests each worker has answered so far (fresh connections until every worker spoke)."""
    seen: dict[int, int] = {}
    limits = httpx.Limits(max_keepalive_connections=0)
    with httpx.Client(limits=limits, timeout=5) as client:
        for _ in range(20 * len(pids)):
            report = client.get(server.url + STATS_PATH).json()
            seen[report["pid"]] = report["answered"]
            if pids <= set(seen):
                break
    return seen


# -- load drivers ---------------------------------------------------------------------------------


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


_WRK_RPS = re.compile(r"Requests/sec:\s+([0-9.]+)")
_WRK_PCT = re.compile(r"^\s+(50|75|90|99)%\s+([0-9.]+)(us|ms|s)\s*$", re.MULTILINE)
_WRK_NON2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_WRK_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_WRK_TOTAL = re.compile(r"(\d+) requests in")
_UNIT = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def run_wrk(
    url: str, token: str, duration: float, threads: int, connections: int
) -> dict[str, Any]:
    command = [
        shutil.which("wrk") or "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--latency",
        "-H",
        f"Authorization: Bearer {token}",
        url,
    ]
    output = subprocess.run(  # noqa: S603 - wrk with arguments built here
        command, capture_output=True, text=True, timeout=duration + 60, check=True
    ).stdout
    percentiles = {p: float(v) * _UNIT[u] for p, v, u in _WRK_PCT.findall(output)}
    non2xx = _WRK_NON2XX.search(output)
    errors = _WRK_ERRORS.search(output)
    rps = _WRK_RPS.search(output)
    total = _WRK_TOTAL.search(output)
    if rps is None or "50" not in percentiles:
        raise RuntimeError(f"cannot read wrk's output:\n{output}")
    return {
        "rps": float(rps.group(1)),
        "p50_ms": percentiles["50"],
        "p99_ms": percentiles.get("99", float("nan")),
        "requests": int(total.group(1)) if total else 0,
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": sum(int(x) for x in errors.groups()) if errors else 0,
    }


def run_httpx(url: str, token: str, duration: float, connections: int) -> dict[str, Any]:
    """A bounded closed-loop load: ``connections`` clients, each one request at a time."""

    async def load() -> tuple[list[float], int, float]:
        latencies: list[float] = []
        bad = 0
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(limits=limits, headers=headers, timeout=10) as client:
            start = time.perf_counter()
            stop = start + duration

            async def user() -> None:
                nonlocal bad
                while time.perf_counter() < stop:
                    sent = time.perf_counter()
                    answer = await client.get(url)
                    latencies.append((time.perf_counter() - sent) * 1000)
                    if answer.status_code != 200:
                        bad += 1

            await asyncio.gather(*(user() for _ in range(connections)))
            return latencies, bad, time.perf_counter() - start

    latencies, bad, elapsed = asyncio.run(load())
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies),
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "requests": len(latencies),
        "non_2xx": bad,
        "socket_errors": 0,
    }


# -- the benchmark --------------------------------------------------------------------------------


def check_answers(plain: Server, protected: Server, token: str) -> None:
    """Both apps answer 200 with the token; the protected one refuses a missing or bad token."""
    with httpx.Client(timeout=5) as client:
        auth = {"Authorization": f"Bearer {token}"}
        for server in (plain, protected):
            answer = client.get(server.url + PING_PATH, headers=auth)
            assert answer.status_code == 200, (server.factory, answer.status_code, answer.text)
            assert answer.json() == {"ok": True}
        assert client.get(plain.url + PING_PATH).status_code == 200
        missing = client.get(protected.url + PING_PATH)
        assert missing.status_code == 401, missing.status_code
        assert "Bearer" in missing.headers.get("www-authenticate", "")
        forged = token[:-8] + ("AAAAAAAA" if not token.endswith("AAAAAAAA") else "BBBBBBBB")
        bad = client.get(protected.url + PING_PATH, headers={"Authorization": f"Bearer {forged}"})
        assert bad.status_code == 401, bad.status_code


def run_mode(
    issuer: LocalIssuer,
    token: str,
    env: dict[str, str],
    *,
    workers: int,
    duration: float,
    reps: int,
    driver: str,
    threads: int,
    connections: int,
    probe_s: float,
    nodelay_fix: bool = False,
) -> dict[str, Any]:
    ours: set[int] = set()

    def load(url: str, seconds: float) -> dict[str, Any]:
        if driver == "wrk":
            return run_wrk(url, token, seconds, threads, connections)
        return run_httpx(url, token, seconds, connections)

    def measured(server: Server, pids: set[int], seconds: float) -> dict[str, Any]:
        """A load run; again (up to 3 tries, least disturbed kept) if other processes, not
        the servers, wrk or this process, used more than QUIET_CORES meanwhile. Records how
        the requests were spread over the workers (the kernel hands each of wrk's connections
        to whichever worker accepts first, so one worker may get most of them)."""
        best: dict[str, Any] | None = None
        for _ in range(3 if seconds >= 1 else 1):
            before = answered_by_worker(server, pids)
            with OtherCpu(lambda: sorted(ours)) as other:
                result = load(server.url + PING_PATH, seconds)
            after = answered_by_worker(server, pids)
            result["other_cores"] = round(other.cores or 0.0, 2)
            # A worker that did not answer a stats request before and after is unknown: the
            # run then counts as lopsided (share 1.0), never as evenly spread.
            counts = [after[pid] - before[pid] for pid in pids if pid in after and pid in before]
            known = len(counts) == len(pids) and sum(counts) > 0
            result["busiest_share"] = round(max(counts) / sum(counts), 2) if known else 1.0
            if best is None or result["other_cores"] < best["other_cores"]:
                best = result
            if result["other_cores"] <= QUIET_CORES:
                break
        assert best is not None
        return best

    fetches_before = issuer.jwks_requests
    with serving(workers, env, nodelay_fix=nodelay_fix) as (plain, protected):
        plain_pids = plain.wait_ready()
        pids = protected.wait_ready()
        ours.update(plain_pids, pids, [plain.process.pid, protected.process.pid])
        workers_of = {"plain": plain_pids, "protected": pids}
        fetches_at_start = issuer.jwks_requests - fetches_before
        check_answers(plain, protected, token)
        quiet = (
            wait_for_quiet()
            if probe_s >= 1
            else {"waited_s": 0.0, "busy_cores": round(busy_elsewhere(probe_s), 2)}
        )
        load_before = os.getloadavg()
        warm = min(1.0, duration / 2)
        load(plain.url + PING_PATH, warm)  # warm-up: connections, first-request work, caches
        load(protected.url + PING_PATH, warm)
        runs: dict[str, list[dict[str, Any]]] = {"plain": [], "protected": []}
        for rep in range(reps):
            order = ["plain", "protected"] if rep % 2 == 0 else ["protected", "plain"]
            for name in order:
                server = plain if name == "plain" else protected
                runs[name].append(measured(server, workers_of[name], duration))
        load_after = os.getloadavg()
        per_worker = worker_stats(protected.url, attempts=12 * workers)
        pids |= set(per_worker)
        fetches_total = issuer.jwks_requests - fetches_before

    def summary(name: str) -> dict[str, Any]:
        values = runs[name]
        return {
            "rps": statistics.median(r["rps"] for r in values),
            "p50_ms": statistics.median(r["p50_ms"] for r in values),
            "p99_ms": statistics.median(r["p99_ms"] for r in values),
            "rps_runs": [round(r["rps"], 1) for r in values],
            "other_cores": [r["other_cores"] for r in values],
            "busiest_share": [r["busiest_share"] for r in values],
            "requests": sum(r["requests"] for r in values),
            "non_2xx": sum(r["non_2xx"] for r in values),
            "socket_errors": sum(r["socket_errors"] for r in values),
        }

    result: dict[str, Any] = {
        "workers": workers,
        "nodelay_fix": nodelay_fix,
        "plain": summary("plain"),
        "protected": summary("protected"),
        "jwks_fetches_at_start": fetches_at_start,
        "jwks_fetches_total": fetches_total,
        "worker_pids_seen": len(pids),
        "per_worker": {
            str(pid): {
                "fetches": report.get("fetches"),
                "key_hits": report.get("key_hits"),
            }
            for pid, report in sorted(per_worker.items())
        },
        "quiet": quiet,
        "load_before": load_before,
        "load_after": load_after,
    }
    result["ratio"] = result["protected"]["rps"] / result["plain"]["rps"]
    # The same, from the back-to-back pairs of runs (each pair saw similar conditions).
    result["ratio_paired"] = statistics.median(
        p["rps"] / q["rps"] for p, q in zip(runs["protected"], runs["plain"], strict=True)
    )
    if workers > 1:
        # Only the runs where no worker answered more than 60% of the requests: a lopsided
        # spread of wrk's connections measures the kernel's accept order, not the middleware.
        even = {
            name: [r["rps"] for r in runs[name] if r["busiest_share"] <= EVEN_SHARE]
            for name in runs
        }
        if even["plain"] and even["protected"]:
            result["ratio_even"] = statistics.median(even["protected"]) / statistics.median(
                even["plain"]
            )
            result["even_runs"] = {name: len(values) for name, values in even.items()}
    for name in ("plain", "protected"):
        if result[name]["non_2xx"] or result[name]["socket_errors"]:
            raise RuntimeError(f"{name}: non-2xx answers or socket errors: {result[name]}")
    return result


def run(
    *,
    duration: float,
    reps: int,
    driver: str,
    modes: tuple[str, ...] = MODES,
    threads: int = 2,
    connections: int = 32,
    probe_s: float = 1.0,
    reps_workers: int | None = None,
) -> dict[str, Any]:
    reps_workers = reps_workers or reps
    if driver == "auto":
        driver = "wrk" if wrk_available() else "httpx"
    issuer = LocalIssuer(default_audience=AUDIENCE)
    with issuer.serve():
        token = issuer.mint(expires_in=3600, scopes=["mcp:tools"])
        env = {
            **os.environ,
            "MCP_OAUTH2_ISSUER": issuer.issuer,
            "MCP_OAUTH2_AUDIENCE": AUDIENCE,
            "MCP_OAUTH2_JWKS_URI": issuer.metadata()["jwks_uri"],
            "MCP_OAUTH2_EXEMPT_ROUTES": STATS_PATH,
        }
        results = {
            mode: run_mode(
                issuer,
                token,
                env,
                workers=MODE_WORKERS[mode],
                duration=duration,
                reps=reps_workers if MODE_WORKERS[mode] > 1 else reps,
                driver=driver,
                threads=threads,
                connections=connections,
                probe_s=probe_s,
                nodelay_fix=mode.endswith(NODELAY_SUFFIX),
            )
            for mode in modes
        }
    return {
        "driver": driver,
        "driver_version": wrk_version() if driver == "wrk" else f"httpx {httpx.__version__}",
        "duration_s": duration,
        "reps": reps,
        "reps_workers": reps_workers,
        "threads": threads,
        "connections": connections,
        "token_alg": "RS256",
        "modes": results,
    }


def wrk_version() -> str:
    try:
        wrk = shutil.which("wrk") or "wrk"
        answer = subprocess.run([wrk, "-v"], capture_output=True, text=True, timeout=10)  # noqa: S603
    except (OSError, subprocess.SubprocessError):
        return "wrk"
    first = (answer.stdout or answer.stderr).strip().splitlines()
    return first[0] if first else "wrk"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per load run")
    parser.add_argument("--reps", type=int, default=4, help="runs per app, single process")
    parser.add_argument(
        "--reps-workers",
        type=int,
        default=6,
        help="runs per app with --workers 2 (more: some runs land lopsided on one worker)",
    )
    parser.add_argument("--driver", choices=("auto", "wrk", "httpx"), default="auto")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    result = run(
        duration=args.duration,
        reps=args.reps,
        reps_workers=args.reps_workers,
        driver=args.driver,
        threads=args.threads,
        connections=args.connections,
    )
    result.update(report.stamp())
    report.save("e2e", result)
    text = report.write_all()
    print(report.render_e2e(result))
    print(f"\nwrote {report.RESULTS / 'results.md'} ({len(text)} characters)")


if __name__ == "__main__":
    main()
