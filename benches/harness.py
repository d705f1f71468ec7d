"""The measuring engine under pytest-benchmark: interleaved rounds, and the machine's other work.

pytest-benchmark times one case to completion before the next starts, so a slow drift of the
machine (another process, a frequency change) lands on whole cases and skews their ratios: on the
development VM, eight repeated measurements of the RS256 uncached/floor ratio spread over 1.8
percentage points (standard deviation 0.7) timed that way, and over 0.6 (0.2) interleaved. Here
every round times one batch of each case in turn, in rotating order, so all the cases compared
with one another see the same conditions; each case's per-round times are then handed to its own
pytest-benchmark entry (``record``), so the usual table, ``--benchmark-json`` and
``--benchmark-compare`` work on them, and ratios are taken within each round (``Run.paired``).

A case is a function ``batch(n) -> nanoseconds`` that runs ``n`` iterations and times them itself
(so an asynchronous case times its loop inside the event loop, leaving the loop's start out).
"""

from __future__ import annotations

import asyncio
import os
import resource
import statistics
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

Batch = Callable[[int], int]

# Other processes using more than this many cores make a block of rounds "disturbed".
QUIET_CORES = 0.25


@dataclass
class Run:
    """Per-call microseconds of each case, one value per kept round (aligned across cases)."""

    samples: dict[str, list[float]]
    batches: dict[str, int]
    conditions: dict[str, Any] = field(default_factory=dict)

    def median(self, name: str) -> float:
        return statistics.median(self.samples[name])

    def paired(self, reference: str, name: str) -> float:
        """Median over rounds of name/reference: a ratio measured within each round."""
        pairs = zip(self.samples[name], self.samples[reference], strict=True)
        return statistics.median(n / r for n, r in pairs)

    def quartiles(self, name: str) -> tuple[float, float]:
        values = self.samples[name]
        if len(values) < 2:
            return values[0], values[0]
        q = statistics.quantiles(values, n=4)
        return q[0], q[2]


def record(benchmark: Any, run: Run, name: str, **extra: Any) -> None:
    """Hand one case's rounds of an interleaved run to its pytest-benchmark entry.

    pytest-benchmark has no public call for times measured elsewhere; ``_make_stats`` is the
    step its own ``pedantic`` mode uses to open the entry that each round's time goes into, and
    ``_mode`` what it sets to mark the fixture used (pytest-benchmark 5.3, locked in uv.lock).
    """
    benchmark.extra_info.update(extra)
    if benchmark.disabled:
        benchmark.pedantic(lambda: None)  # the smoke run: the case ran once, in the run
        return
    batch = run.batches[name]
    # As `pedantic` does: the fixture counts as used, and its entry holds the rounds.
    benchmark._mode = "harness.record(...)"
    stats = benchmark._make_stats(batch)
    for per_call_us in run.samples[name]:
        stats.update(per_call_us * batch / 1e6)


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

    return lambda n: loop.run_until_complete(many(n))


def calibrate(batch: Batch, target_ns: int, limit: int = 1 << 20) -> int:
    """The iteration count for which one batch takes about ``target_ns``."""
    batch(1)  # first-call effects (lazy imports, caches, key fetches)
    n = 1
    while n < limit:
        elapsed = batch(n)
        if elapsed >= target_ns:
            break
        n = min(limit, max(2 * n, min(10 * n, int(n * target_ns / max(elapsed, 1)))))
    return max(1, n)


def interleaved(
    cases: Mapping[str, Batch], *, rounds: int, target_ns: int, full: bool, block: int = 10
) -> Run:
    """Time every case once per round, in rotating order.

    Rounds run in blocks of ``block``; a block during which other processes used more than
    QUIET_CORES is set aside and more blocks run, until ``rounds`` quiet rounds were collected
    or three times as many were tried. If fewer than a third came out quiet, every round counts
    and the run is marked disturbed. Without ``full`` each case runs exactly once.
    """
    names = list(cases)
    if not full:
        for name in names:
            cases[name](1)
        return Run({n: [1.0] for n in names}, dict.fromkeys(names, 1))
    quiet = wait_for_quiet()
    load_before = os.getloadavg()
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
                    block_samples[name].append(cases[name](sizes[name]) / sizes[name] / 1000)
                index += 1
        busy = other.cores or 0.0
        others.append(busy)
        for name in names:
            (kept if busy <= QUIET_CORES else discarded)[name].extend(block_samples[name])
    disturbed = len(kept[names[0]]) < rounds / 3
    if disturbed:
        for name in names:
            kept[name].extend(discarded[name])
    conditions = {
        "rounds_kept": len(kept[names[0]]),
        "rounds_discarded": 0 if disturbed else len(discarded[names[0]]),
        "other_cores_median": round(statistics.median(others), 2),
        "other_cores_max": round(max(others), 2),
        "disturbed": disturbed,
        "quiet": quiet,
        "load_before": load_before,
        "load_after": os.getloadavg(),
    }
    return Run(kept, sizes, conditions)


def wait_for_quiet(limit_s: float = 90.0) -> dict[str, float]:
    """Wait (at most ``limit_s``) until other processes use less than QUIET_CORES.

    Other people's test runs share this machine; a section started while one of them keeps a
    core busy measures that contention. Returns what it saw, for the report.
    """
    start = time.monotonic()
    busy = busy_elsewhere(1.0)
    while busy >= QUIET_CORES and time.monotonic() - start < limit_s:
        busy = busy_elsewhere(2.0)
    return {"waited_s": round(time.monotonic() - start, 1), "busy_cores": round(busy, 2)}


def busy_elsewhere(seconds: float) -> float:
    """Cores used by other processes while this one sleeps ``seconds``."""
    with OtherCpu() as other:
        time.sleep(seconds)
    return other.cores or 0.0


def _busy_seconds() -> float:
    """CPU seconds all processors spent busy since boot (from /proc/stat)."""
    with open("/proc/stat") as stat:
        # user nice system idle iowait irq softirq steal (guest time is already in user/nice)
        fields = [int(x) for x in stat.readline().split()[1:9]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of a running process (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class OtherCpu:
    """Cores used by *other* processes during a ``with`` block: the machine's busy time minus
    this process (all its threads), its reaped children (wrk) and ``pids`` (our servers).

    The kernel counts in 10 ms ticks, so over a fraction of a second the figure is good to about
    0.05 cores. ``cores`` is None where /proc is not available.
    """

    def __init__(self, pids: Callable[[], list[int]] | None = None) -> None:
        self.pids = pids or (lambda: [])
        self.cores: float | None = None
        self._start: tuple[float, float, float] | None = None

    def _ours(self) -> float:
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        own = time.process_time() + children.ru_utime + children.ru_stime
        return own + sum(process_cpu_seconds(pid) for pid in self.pids())

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
