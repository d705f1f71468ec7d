"""Per token: mcp-oauth2 against the bare signature check and every peer, RS256 and ES256.

All the cases run interleaved, round by round, in one run (``harness.interleaved``); each case
then has its own pytest-benchmark entry (group ``per token <alg>``) whose rounds are its rounds
of that run, and whose ``extra_info`` holds its ratios to the floor and to PyJWT taken within
each round. Every library is first proven to do the whole job (``cases.check_library``).
"""

from __future__ import annotations

import functools
from typing import Any

import pytest

from cases import (
    BASELINE,
    EMPTY,
    FLOOR,
    ORDER,
    Tokens,
    check_library,
    empty_call,
    libraries,
)
from harness import Batch, Run, interleaved, record, timed
from mcp_oauth2.testing import LocalIssuer

ALGS = ("RS256", "ES256")
ROUNDS = 300
BATCH_NS = 2_000_000


@pytest.fixture(scope="module")
def per_token(issuer: LocalIssuer, full: bool) -> tuple[Run, dict[str, dict[str, bool]]]:
    cases: dict[str, Batch] = {}
    checks: dict[str, dict[str, bool]] = {}
    for alg in ALGS:
        tokens = Tokens.mint(issuer, alg)
        for library in libraries(issuer, alg, tokens):
            held = check_library(library, tokens)
            assert all(held.values()), f"{alg} {library.name} does less than a validation: {held}"
            checks[f"{alg}|{library.name}"] = held
            cases[f"{alg}|{library.name}"] = timed(functools.partial(library.validate, tokens.good))
    cases[EMPTY] = timed(functools.partial(empty_call().validate, "token"))
    fetches = issuer.jwks_requests
    run = interleaved(cases, rounds=ROUNDS, target_ns=BATCH_NS, full=full)
    # PyJWKClient keeps its key set: no fetch may happen while the cases are timed.
    assert issuer.jwks_requests == fetches
    return run, checks


@pytest.mark.parametrize("name", [n for n in ORDER if n != EMPTY])
@pytest.mark.parametrize("alg", ALGS)
def test_per_token(
    benchmark: Any, per_token: tuple[Run, dict[str, dict[str, bool]]], alg: str, name: str
) -> None:
    run, checks = per_token
    key = f"{alg}|{name}"
    if key not in run.samples:
        pytest.skip(f"{name} is not installed for this interpreter")
    benchmark.group = f"per token {alg}"
    record(
        benchmark,
        run,
        key,
        # Time over the floor's time, and PyJWT's time over this case's (its speed-up).
        vs_floor=run.paired(f"{alg}|{FLOOR}", key),
        speedup_vs_pyjwt=run.paired(key, f"{alg}|{BASELINE}"),
        checks=checks[key],
        conditions=run.conditions,
    )


def test_harness_overhead(benchmark: Any, per_token: tuple[Run, Any]) -> None:
    """The cost of the harness's own call (a lambda returning its argument)."""
    run, _ = per_token
    benchmark.group = "per token"
    record(benchmark, run, EMPTY)
