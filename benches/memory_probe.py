"""Resident memory of one ``TokenValidator`` validating many distinct tokens (run as a subprocess).

    python memory_probe.py TOKENS_FILE JWKS_FILE ISSUER AUDIENCE CACHE_SIZE

Reads every token first (so the token list is part of the baseline), then builds the key set and
the validator, validates each token once and prints, as JSON, the resident set size (VmRSS, from
/proc/self/status) at the baseline and after 1,000, 10,000, ... tokens, the peak (VmHWM) and the
cache counters. A fresh process per measurement keeps one run's allocations out of the next.
"""

from __future__ import annotations

import gc
import json
import sys
from pathlib import Path
from typing import Any

from mcp_oauth2 import KeySet, TokenValidator


def status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise LookupError(field)


def probe(
    tokens: list[str], jwks: str, issuer: str, audience: str, cache_size: int
) -> dict[str, Any]:
    keys = KeySet.from_jwks(jwks)
    validator = TokenValidator(issuer, audience, algorithms=["ES256"], cache_size=cache_size)
    # One validation before the baseline: first-call allocations are not per-entry cost.
    validator.validate(tokens[0], keys)
    validator.cache_clear()
    gc.collect()
    baseline = status_kib("VmRSS")
    checkpoints = {n for n in (1_000, 10_000, 100_000, 1_000_000) if n < len(tokens)}
    checkpoints.add(len(tokens))
    rss = {0: baseline}
    for count, token in enumerate(tokens, 1):
        user = validator.validate(token, keys)
        if count in checkpoints:
            rss[count] = status_kib("VmRSS")
    assert user.subject is not None
    gc.collect()
    return {
        "tokens": len(tokens),
        "cache_size": cache_size,
        "rss_kib": rss,
        "rss_after_gc_kib": status_kib("VmRSS"),
        "peak_kib": status_kib("VmHWM"),
        "cache_info": validator.cache_info(),
    }


def main() -> None:
    tokens_file, jwks_file, issuer, audience, cache_size = sys.argv[1:6]
    tokens = Path(tokens_file).read_text().split()
    jwks = Path(jwks_file).read_text()
    print(json.dumps(probe(tokens, jwks, issuer, audience, int(cache_size))))


if __name__ == "__main__":
    main()
