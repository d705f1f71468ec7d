"""``mcp-oauth2 inspect --dpop PROOF --method POST --url URL TOKEN``: the checks of a DPoP proof
(RFC 9449 section 4.3) for that request and token, as the native core makes them.

Each line comes from ``DPoPPolicy.explain``, the same checks in the same order as the middleware
makes them: the first that fails is the refusal, those after it are not reached. The policy is
the configuration's algorithms and window (the defaults without one), for the resource at
``--url``; the binding is checked against the token's ``cnf.jkt`` as decoded (unverified unless
the token checks above passed). Nonces and replays are not checked: they need the server's state.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from mcp_oauth2._config import OAuth2Config
from mcp_oauth2._rust import DPoPPolicy
from mcp_oauth2.cli._outcome import ExitCode, Result, UsageError
from mcp_oauth2.cli._output import Checks, Heading
from mcp_oauth2.cli._verdict import checks_of

__all__ = ["add_proof_checks"]


def add_proof_checks(
    result: Result, token: str, proof: str, method: str, url: str, config: OAuth2Config | None
) -> Result:
    """``result`` (of ``inspect TOKEN``) with the proof's checks added; failed when one fails."""
    parts = urlsplit(url)
    try:
        if config is None:
            policy = DPoPPolicy("required", url)
        else:
            policy = DPoPPolicy(
                "required", url, algorithms=config.dpop_algorithms, max_age=config.dpop_max_age
            )
    except ValueError as error:
        raise UsageError(f"--url: {error}") from None
    steps = policy.explain(
        proof.strip(),
        method=method,
        path=parts.path or "/",
        access_token=token,
        confirmation=_confirmation(result.data.get("claims")),
    )
    checks = checks_of(steps)
    result.report.add(Heading("DPoP proof"), Checks(checks))
    result.data["dpop"] = [check.as_json() for check in checks]
    code = result.exit_code
    if code == ExitCode.OK and any(check.status == "fail" for check in checks):
        code = ExitCode.FAILED
    result.data["exit_code"] = int(code)
    return Result(result.report, result.data, code)


def _confirmation(claims: Any) -> str | None:
    """The decoded token's ``cnf.jkt``, if it has one."""
    cnf = claims.get("cnf") if isinstance(claims, dict) else None
    jkt = cnf.get("jkt") if isinstance(cnf, dict) else None
    return jkt if isinstance(jkt, str) else None
