"""Shared material for the benchmarks, and the ratio report printed at the end of a run.

Every benchmark belongs to a group (one per algorithm and scenario); within a group the PyJWT
case is the baseline, and the summary prints each case's median and its speed-up over PyJWT.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

ISSUER = "https://auth.example.com"
AUDIENCE = "https://mcp.example.com/mcp"
BASELINE = "pyjwt"
RESULTS = Path(__file__).parent / "results"


def _claims() -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "user-1",
        "client_id": "client-1",
        "scope": "mcp:tools mcp:read",
        "iat": now,
        "exp": now + 3600,
        "jti": "b3a1c9",
    }


class Material:
    """One algorithm's private key, public key, JWKS document and a token signed with it."""

    def __init__(self, alg: str) -> None:
        self.alg = alg
        self.kid = f"{alg.lower()}-key"
        if alg == "RS256":
            self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            jwk = json.loads(RSAAlgorithm.to_jwk(self.private.public_key()))
        else:
            self.private = ec.generate_private_key(ec.SECP256R1())
            jwk = json.loads(ECAlgorithm.to_jwk(self.private.public_key()))
        self.public = self.private.public_key()
        self.jwks = {"keys": [{**jwk, "kid": self.kid, "use": "sig"}]}
        self.token = self.mint()

    def mint(self, **extra: Any) -> str:
        return jwt.encode(
            {**_claims(), **extra}, self.private, algorithm=self.alg, headers={"kid": self.kid}
        )


@pytest.fixture(scope="session", params=["RS256", "ES256"])
def material(request: pytest.FixtureRequest) -> Material:
    return Material(request.param)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    session = getattr(config, "_benchmarksession", None)
    if session is None or session.disabled or not session.benchmarks:
        return
    groups: dict[str, dict[str, float]] = {}
    for bench in session.benchmarks:
        if bench.stats is None:
            continue
        case = bench.name.split("[")[0].removeprefix("test_")
        groups.setdefault(bench.group or "", {})[case] = bench.stats.median
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
    report = "\n".join(lines)
    terminalreporter.write_sep("=", "speed-up against PyJWT (same run)")
    terminalreporter.write_line(report)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "validation.md").write_text(report + "\n")
