"""The timing harness of the comparison suite: interleaved batches, medians of many rounds.

pytest-benchmark runs each case to completion before the next one starts, so a slow drift of the
machine (another process, a frequency change) lands on whole cases and skews their ratios. Here
every round times one batch of each case in turn, so all cases see the same conditions, and the
report takes the median per-call time over the rounds.

A case is a function ``batch(n) -> nanoseconds`` that runs ``n`` iterations and times them
itself with ``time.perf_counter_ns`` (so an asynchronous case can time its loop inside the event
loop and leave the loop's start-up out).
"""

from __future__ import annotations

import asyncio
import os
import resource
import statistics
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

Batch = Callable[[int], int]

# Other processes using more than this many cores make a measurement "disturbed".
QUIET_CORES = 0.25

# Set by the make targets. Without it (and without --benchmark-enable) each case runs once.
FULL = os.environ.get("BENCH_FULL") == "1"


def is_full(benchmark: Any) -> bool:
    """Heavy loops only when benchmarking: ``make bench`` (BENCH_FULL=1) or --benchmark-enable."""
    return FULL or not getattr(benchmark, "disabled", True)


@dataclass(frozen=True)
class Stats:
    """Per-call times of one case over the rounds, in microseconds."""

    median: float
    p25: float
    p75: float
    minimum: float
    rounds: int
    batch: int

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


@dataclass
class Run:
    """The statistics of an interleaved run, and how much other work the machine did meanwhile."""

    stats: dict[str, Stats]
    # Per-call microseconds of each kept round, in round order (aligned across cases).
    samples: dict[str, list[float]]
    rounds_kept: int
    rounds_discarded: int
    other_cores_median: float | None
    other_cores_max: float | None
    disturbed: bool

    def paired(self, reference: str, name: str) -> float:
        """Median over rounds of reference/name: a speed-up measured within each round."""
        pairs = zip(self.samples[reference], self.samples[name], strict=True)
        return statistics.median(r / n for r, n in pairs)

    def conditions(self) -> dict[str, Any]:
        return {
            "rounds_kept": self.rounds_kept,
            "rounds_discarded": self.rounds_discarded,
            "other_cores_median": self.other_cores_median,
            "other_cores_max": self.other_cores_max,
            "disturbed": self.disturbed,
        }


def timed(call: Callable[[], object]) -> Batch:
    """A batch function that calls ``call()`` n times."""

    def batch(n: int) -> int:
        start = time.perf_counter_ns()
        for _ in range(n):
            call()
        return time.perf_counter_ns() - start

    return batch


def timed_async(loop: asyncio.AbstractEventLoop, call: Callable[[], Awaitable[object]]) -> Batch:
    """A batch function that awaits ``call()`` n times inside ``loop`` (timed inside the loop)."""

    async def many(n: int) -> int:
        start = time.perf_counter_ns()
        for _ in range(n):
            await call()
        return time.perf_counter_ns() - start

    def batch(n: int) -> int:
        return loop.run_until_complete(many(n))

    return batch


def calibrate(batch: Batch, target_ns: int, limit: int = 1 << 20) -> int:
    """The iteration count for which one batch takes about ``target_ns``."""
    batch(1)  # warm-up: first-call effects (lazy imports, caches, key fetches)
    n = 1
    while n < limit:
        elapsed = batch(n)
        if elapsed >= target_ns:
            break
        # Grow towards the target, at most 10x a step, at least 2x.
        n = min(limit, max(2 * n, min(10 * n, int(n * target_ns / max(elapsed, 1)))))
    return max(1, n)


def interleaved(
    cases: Mapping[str, Batch],
    *,
    rounds: int,
    target_ns: int,
    full: bool,
    block: int = 10,
    threshold: float = QUIET_CORES,
) -> Run:
    """Time every case once per round, in rotating order; per-call medians over the rounds.

    Rounds run in blocks of ``block``; a block during which other processes used more than
    ``threshold`` cores is set aside and more blocks are run, until ``rounds`` undisturbed rounds
    were collected or three times as many were tried. If fewer than a third came out undisturbed,
    every round counts and the run is marked disturbed.

    Without ``full`` each case runs exactly once (the smoke run of ``make test``).
    """
    names = list(cases)
    if not full:
        for name in names:
            cases[name](1)
        return Run(
            {n: Stats(0.0, 0.0, 0.0, 0.0, 1, 1) for n in names},
            {n: [1.0] for n in names},
            1,
            0,
            None,
            None,
            False,
        )
    sizes = {name: calibrate(cases[name], target_ns) for name in names}
    kept: dict[str, list[float]] = {name: [] for name in names}
    discarded: dict[str, list[float]] = {name: [] for name in names}
    others: list[float] = []
    index = 0
    while len(kept[names[0]]) < rounds and index < 3 * rounds:
        block_samples: dict[str, list[float]] = {name: [] for name in names}
        with OtherCpu() as other:
            for _ in range(block):
                # Rotate the start and alternate the direction: no case always follows another.
                shift = index % len(names)
                order = names[shift:] + names[:shift]
                if index % 2:
                    order.reverse()
                for name in order:
                    n = sizes[name]
                    block_samples[name].append(cases[name](n) / n / 1000)
                index += 1
        quiet = other.cores is None or other.cores <= threshold
        if other.cores is not None:
            others.append(other.cores)
        for name in names:
            (kept if quiet else discarded)[name].extend(block_samples[name])
    disturbed = len(kept[names[0]]) < rounds / 3
    if disturbed:
        for name in names:
            kept[name].extend(discarded[name])
    result = {}
    for name in names:
        values = sorted(kept[name])
        quartiles = statistics.quantiles(values, n=4) if len(values) > 1 else values * 3
        result[name] = Stats(
            median=statistics.median(values),
            p25=quartiles[0],
            p75=quartiles[2],
            minimum=values[0],
            rounds=len(values),
            batch=sizes[name],
        )
    return Run(
        stats=result,
        samples=kept,
        rounds_kept=len(kept[names[0]]),
        rounds_discarded=0 if disturbed else len(discarded[names[0]]),
        other_cores_median=round(statistics.median(others), 2) if others else None,
        other_cores_max=round(max(others), 2) if others else None,
        disturbed=disturbed,
    )


def loadavg() -> tuple[float, float, float]:
    """The 1, 5 and 15 minute load averages (to spot other work on the machine)."""
    try:
        return os.getloadavg()
    except OSError:  # pragma: no cover - not on Linux
        return (0.0, 0.0, 0.0)


def busy_elsewhere(seconds: float = 0.5) -> float:
    """Cores used by other processes during a short idle wait of this process.

    On an idle machine it is close to 0; 1.0 means another process kept a whole core busy.
    """
    with OtherCpu() as other:
        time.sleep(seconds)
    return other.cores or 0.0


def wait_for_quiet(limit_s: float = 90.0, threshold: float = QUIET_CORES) -> dict[str, float]:
    """Wait (at most ``limit_s``) until other processes use less than ``threshold`` cores.

    Other people's test runs share this machine; a section started while one of them keeps a
    core busy measures that contention. Returns what it saw, for the report.
    """
    start = time.monotonic()
    busy = busy_elsewhere(1.0)
    while busy >= threshold and time.monotonic() - start < limit_s:
        busy = busy_elsewhere(2.0)
    return {"waited_s": round(time.monotonic() - start, 1), "busy_cores": round(busy, 2)}


def _busy_seconds() -> float:
    """CPU seconds all processors spent busy since boot (from /proc/stat, 10 ms ticks)."""
    with open("/proc/stat") as stat:
        # user nice system idle iowait irq softirq steal (guest time is already in user/nice)
        fields = [int(x) for x in stat.readline().split()[1:9]]
    idle = fields[3] + fields[4]
    return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of a running process (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class OtherCpu:
    """Cores used by *other* processes during a ``with`` block: the whole machine's busy time
    minus this process (all its threads), its reaped children (wrk) and ``pids`` (our servers).

    The kernel counts in 10 ms ticks, so over a fraction of a second the figure is good to about
    0.05 cores. ``cores`` is None where /proc is not available.
    """

    def __init__(self, pids: Callable[[], list[int]] | None = None) -> None:
        self.pids = pids or (lambda: [])
        self.cores: float | None = None
        self._start: tuple[float, float, float] | None = None

    def _ours(self) -> float:
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return (
            time.process_time()
            + children.ru_utime
            + children.ru_stime
            + sum(process_cpu_seconds(pid) for pid in self.pids())
        )

    def __enter__(self) -> OtherCpu:
        try:
            self._start = (_busy_seconds(), self._ours(), time.perf_counter())
        except OSError:  # pragma: no cover - not on Linux
            self._start = None
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._start is None:
            return
        busy, ours, wall = self._start
        elapsed = time.perf_counter() - wall
        others = (_busy_seconds() - busy) - (self._ours() - ours)
        self.cores = max(0.0, others / elapsed) if elapsed > 0 else 0.0
