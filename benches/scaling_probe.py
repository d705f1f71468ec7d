"""The machine's own two-core ceiling: the bare signature check in separate processes (no GIL).

    python scaling_probe.py ALG WORK

Prints ``ready``; then, for each line read from stdin, runs ``WORK`` calls of
``KeySet.verify_signature`` and prints the elapsed nanoseconds; exits at end of input. The
thread-scaling test starts two such processes and alternates rounds where one of them works with
rounds where both do: if two processes do not reach 2x, no threading can either (the two virtual
CPUs share hardware, or the host is busy).
"""

from __future__ import annotations

import base64
import sys
import time
from collections.abc import Callable

from bench_material import Material
from mcp_oauth2 import KeySet


def verifier(alg: str) -> Callable[[], bool]:
    material = Material(alg)
    keys = KeySet.from_jwks(material.jwks)
    signing_input, _, signature = material.token.rpartition(".")
    message = signing_input.encode("ascii")
    raw = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
    return lambda: keys.verify_signature(alg, message, raw, kid=material.kid)


def run(call: Callable[[], bool], work: int) -> int:
    start = time.perf_counter_ns()
    for _ in range(work):
        call()
    return time.perf_counter_ns() - start


def main() -> None:
    alg, work = sys.argv[1], int(sys.argv[2])
    call = verifier(alg)
    assert call()
    print("ready", flush=True)
    for _ in sys.stdin:
        print(run(call, work), flush=True)


if __name__ == "__main__":
    main()
