"""Measurements that need a process of their own (run as ``python probes.py KIND``).

``signatures``: the machine's two-core ceiling without any GIL. Reads one JSON line (``alg``,
``jwks``, ``token``) from stdin, prints ``ready``, then for each further line runs ``WORK`` calls
of ``KeySet.verify_signature`` and prints the elapsed nanoseconds. The thread test starts two such
processes and alternates rounds where one works with rounds where both do.

``sessions``: one ``TokenValidator`` serving many live sessions. Reads a JSON document (``jwks``,
``issuer``, ``audience``, ``tokens``, ``cache_size``, ``requests``, ``seed``) from stdin; each
session sends its first request, then ``requests`` more requests go to sessions picked at random;
prints, as JSON, the hit rate and the latency of those requests and the resident memory (VmRSS)
before the first request and after the last. A fresh process per cache size keeps one run's
allocations out of the next.
"""

from __future__ import annotations

import base64
import gc
import json
import random
import statistics
import sys
import time
from typing import Any

from mcp_oauth2.lowlevel import KeySet, TokenValidator


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise LookupError("VmRSS")


def signatures(work: int) -> None:
    spec = json.loads(sys.stdin.readline())
    keys = KeySet.from_jwks(spec["jwks"])
    signing_input, _, signature = spec["token"].rpartition(".")
    message = signing_input.encode("ascii")
    raw = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
    alg = spec["alg"]
    assert keys.verify_signature(alg, message, raw)
    print("ready", flush=True)
    for _ in sys.stdin:
        start = time.perf_counter_ns()
        for _ in range(work):
            keys.verify_signature(alg, message, raw)
        print(time.perf_counter_ns() - start, flush=True)


def sessions(spec: dict[str, Any]) -> dict[str, Any]:
    tokens: list[str] = spec["tokens"]
    keys = KeySet.from_jwks(spec["jwks"])
    validator = TokenValidator(spec["issuer"], spec["audience"], cache_size=spec["cache_size"])
    picks = random.Random(spec["seed"]).choices(range(len(tokens)), k=spec["requests"])
    # First-call allocations are not per-entry cost.
    validator.validate(tokens[0], keys)
    validator.cache_clear()
    gc.collect()
    before = rss_kib()
    for token in tokens:
        validator.validate(token, keys)
    after_start = validator.cache_info()
    latencies = []
    clock = time.perf_counter_ns
    for pick in picks:
        token = tokens[pick]
        start = clock()
        validator.validate(token, keys)
        latencies.append(clock() - start)
    gc.collect()
    after = rss_kib()
    info = validator.cache_info()
    hits = info["hits"] - after_start["hits"]
    latencies.sort()
    return {
        "cache_size": spec["cache_size"],
        "sessions": len(tokens),
        "requests": len(picks),
        "hit_rate": hits / len(picks),
        "mean_us": statistics.fmean(latencies) / 1000,
        "p50_us": latencies[len(latencies) // 2] / 1000,
        "p99_us": latencies[int(len(latencies) * 0.99)] / 1000,
        "rss_growth_kib": after - before,
        "cache_info": info,
    }


def main() -> None:
    kind = sys.argv[1]
    if kind == "signatures":
        signatures(int(sys.argv[2]))
    elif kind == "sessions":
        print(json.dumps(sessions(json.load(sys.stdin))))
    else:
        raise SystemExit(f"unknown probe {kind!r}")


if __name__ == "__main__":
    main()
