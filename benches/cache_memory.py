"""The memory of the verified-token cache, measured from outside: resident memory (VmRSS) growth
of a fresh interpreter over 20,000 distinct cached tokens.

``python benches/cache_memory.py [authorize|validate]`` mints the tokens once (``LocalIssuer``
RS256 tokens of about 700 bytes: the claims every ``LocalIssuer`` token has, ``scope``
``mcp:tools``), then runs one fresh interpreter per cache size. Each sends every token once
through ``TokenValidator.authorize`` (the middleware's native call, which also keeps the
effective scopes on the user; the default) or ``TokenValidator.validate``, with the tokens
already in memory, and reports the growth of VmRSS. The
cache off is the control: (growth with room for every token - growth without a cache) / tokens
is the memory per entry; the default size (16,384) filled by the 20,000 tokens is the memory a
full default cache costs, all in.
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from probes import rss_kib

TOKENS = 20_000
AUDIENCE = "https://mcp.example.com/mcp"
ISSUER = "https://auth.example.com"
DEFAULT_CACHE = 16_384
CACHE_SIZES = (0, DEFAULT_CACHE, TOKENS)


def probe(tokens_file: str, cache_size: int, call: str) -> dict[str, Any]:
    """One fresh interpreter: every token once through ``call``, VmRSS before and after."""
    from mcp_oauth2.lowlevel import KeySet, ScopeRules, TokenValidator

    spec = json.loads(Path(tokens_file).read_text())
    tokens: list[str] = spec["tokens"]
    keys = KeySet.from_jwks(spec["jwks"])
    validator = TokenValidator(ISSUER, AUDIENCE, cache_size=cache_size)
    rules = ScopeRules()

    def send(token: str) -> None:
        if call == "authorize":
            validator.authorize(b"Bearer " + token.encode(), keys, rules)
        else:
            validator.validate(token, keys)

    # First-call allocations are not per-entry cost.
    send(tokens[0])
    validator.cache_clear()
    gc.collect()
    before = rss_kib()
    for token in tokens:
        send(token)
    gc.collect()
    after = rss_kib()
    return {
        "cache_size": cache_size,
        "entries": validator.cache_info()["size"],
        "growth_kib": after - before,
    }


def mint(path: Path) -> dict[str, Any]:
    from mcp_oauth2.testing import LocalIssuer

    issuer = LocalIssuer(issuer=ISSUER, default_audience=AUDIENCE)
    tokens = [
        issuer.mint(subject=f"user-{n}", expires_in=3600, scopes=["mcp:tools"])
        for n in range(TOKENS)
    ]
    spec = {"tokens": tokens, "jwks": issuer.jwks()}
    path.write_text(json.dumps(spec))
    return spec


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--probe":
        print(json.dumps(probe(sys.argv[2], int(sys.argv[3]), sys.argv[4])))
        return
    call = sys.argv[1] if len(sys.argv) > 1 else "authorize"
    if call not in ("authorize", "validate"):
        raise SystemExit("usage: cache_memory.py [authorize|validate]")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "tokens.json"
        spec = mint(path)
        mean = sum(len(t) for t in spec["tokens"]) / len(spec["tokens"])
        results = {}
        for size in CACHE_SIZES:
            answer = subprocess.run(  # noqa: S603 - our interpreter and this script
                [sys.executable, __file__, "--probe", str(path), str(size), call],
                capture_output=True,
                text=True,
                timeout=600,
                check=True,
            )
            results[size] = json.loads(answer.stdout)
    control = results[0]["growth_kib"]
    per_entry = (results[TOKENS]["growth_kib"] - control) * 1024 / results[TOKENS]["entries"]
    full = results[DEFAULT_CACHE]
    print(f"{TOKENS:,} tokens of {mean:.0f} bytes on average (RS256, LocalIssuer claims), {call}")
    for size, result in results.items():
        print(
            f"  cache_size={size:>6,}: {result['entries']:>6,} entries, "
            f"VmRSS growth {result['growth_kib'] / 1024:.1f} MiB"
        )
    print(f"memory per entry: {per_entry:,.0f} bytes")
    print(
        f"the default cache ({DEFAULT_CACHE:,}) full: {full['growth_kib'] / 1024:.1f} MiB all in, "
        f"{(full['growth_kib'] - control) / 1024:.1f} MiB over no cache"
    )


if __name__ == "__main__":
    main()
