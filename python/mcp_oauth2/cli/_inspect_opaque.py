"""``mcp-oauth2 inspect TOKEN`` for an opaque token: what the introspection endpoint (RFC 7662)
says about it, and whether this server would accept it.

The endpoint is asked once, as the middleware asks it (the same client authentication, limits
and discovery), past any cache. The native validator then explains the answer
(``TokenValidator.trace_introspection``, with the middleware's scope rules): each rule it applied,
in its order and words, and the verdict it came to, on the middleware's own code path.

The answer is never printed as received: an endpoint that echoes the request would show the
token and the client's credentials. Only the RFC 7662 members are shown (long values cut), and
the names of the others. An answer that is not a JSON object is "unavailable" (exit code 3).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from mcp_oauth2._access import AccessControl
from mcp_oauth2._config import OAuth2Config
from mcp_oauth2._introspection import IntrospectionSettings, Introspector
from mcp_oauth2.cli._delegation import add_delegation
from mcp_oauth2.cli._human import relative, timestamp
from mcp_oauth2.cli._outcome import ExitCode, Result
from mcp_oauth2.cli._output import Checks, Document, Fields, Heading, Report, Verdict
from mcp_oauth2.cli._verdict import checks_of, report_acceptance, report_refusal
from mcp_oauth2.errors import IntrospectionUnavailableError, TokenValidationError

__all__ = ["ask_once", "run_inspect_opaque"]

# The members of an answer that are shown (RFC 7662 section 2.2, and token_use); of the others,
# only the names.
SHOWN_MEMBERS = (
    "active",
    "scope",
    "client_id",
    "username",
    "token_type",
    "token_use",
    "exp",
    "iat",
    "nbf",
    "sub",
    "aud",
    "iss",
    "jti",
)
# Longest text shown of one member's value.
SHOWN_CHARS = 200


def run_inspect_opaque(
    token: str, config: OAuth2Config, report: Report, data: dict[str, Any], now: float
) -> Result:
    """Ask the endpoint about ``token``, explain the answer, give the verdict."""
    introspector, body, failure = ask_once(config, token, report)
    data.update(verified=False, valid=False, user=None, checks=[], introspection=None)
    if isinstance(failure, TokenValidationError):  # a 400-class answer: the token is refused
        code = report_refusal(report, data, failure)
        data.update(verified=True, exit_code=int(code))
        return Result(report, data, code)
    answer = _lenient_object(body) if body is not None else None
    if failure is None and answer is None:
        size = len(body or b"")
        failure = IntrospectionUnavailableError(
            f"the endpoint's answer ({size} bytes) is not a JSON object"
        )
    if failure is not None:
        return _unavailable(report, data, failure)
    assert body is not None
    assert answer is not None
    shown = shown_answer(answer)
    report.add(Heading("Answer"), Document(shown))
    data["introspection"] = shown
    try:
        steps, outcome = introspector.trace(body, AccessControl.from_config(config).rules)
    except ValueError as problem:  # the native reader's word: not one JSON object
        return _unavailable(report, data, IntrospectionUnavailableError(str(problem)))
    checks = checks_of(steps, _Hints(answer, now).hint)
    report.add(Heading("Checks"), Checks(checks))
    data["checks"] = [check.as_json() for check in checks]
    if isinstance(outcome, TokenValidationError):
        add_delegation(report, data, answer, verified=False)
        code = report_refusal(report, data, outcome)
    else:
        user = outcome[0] if isinstance(outcome, tuple) else outcome
        add_delegation(report, data, user.claims, verified=True)
        code = report_acceptance(report, data, user)
    data.update(verified=True, valid=code == ExitCode.OK, exit_code=int(code))
    return Result(report, data, code)


def _unavailable(
    report: Report, data: dict[str, Any], failure: IntrospectionUnavailableError
) -> Result:
    """The endpoint could not be asked, or its answer was not one JSON object: nothing verified."""
    report.add(Verdict(False, f"NOT VERIFIED: {failure.code}: {failure.detail}"))
    data["verdict"] = {"status": 503, "code": failure.code, "detail": failure.detail}
    data["exit_code"] = int(ExitCode.UNAVAILABLE)
    return Result(report, data, ExitCode.UNAVAILABLE)


class _Hints:
    """What only the command knows beside a check of the trace: times in words, the setting."""

    def __init__(self, answer: dict[str, Any], now: float) -> None:
        self.answer = answer
        self.now = now

    def hint(self, check: str, status: str) -> str | None:
        if check == "required" and status == "fail":
            return "MCP_OAUTH2_INTROSPECTION_REQUIRE_AUDIENCE=false allows an answer without aud"
        value = self.answer.get(check) if check in ("exp", "nbf", "iat") else None
        if status == "not_reached" or isinstance(value, bool) or not isinstance(value, int | float):
            return None
        return f"{timestamp(float(value))}, {relative(float(value), self.now)}"


def shown_answer(answer: dict[str, Any]) -> dict[str, Any]:
    """What may be shown of an introspection answer: its RFC 7662 members (long values cut),
    and the names of the others (their values might be anything the endpoint echoed)."""
    shown = {name: _cut(answer[name]) for name in SHOWN_MEMBERS if name in answer}
    others = sorted(name[:SHOWN_CHARS] for name in answer if name not in SHOWN_MEMBERS)
    if others:
        shown["(other members, values not shown)"] = others[:50]
    return shown


def _cut(value: Any) -> Any:
    if isinstance(value, str):
        return value if len(value) <= SHOWN_CHARS else value[:SHOWN_CHARS] + "..."
    if isinstance(value, list):
        return [_cut(item) for item in value[:20]]
    if isinstance(value, dict):
        return "(an object)"
    return value


def ask_once(
    config: OAuth2Config, token: str, report: Report
) -> tuple[Introspector, bytes | None, IntrospectionUnavailableError | TokenValidationError | None]:
    """Ask the endpoint of ``config`` about ``token`` once, as the middleware would, and report
    the endpoint and the client: the answer's body, or why there is none."""
    introspector = Introspector(config.token_validator(), IntrospectionSettings.from_config(config))
    body, failure = asyncio.run(_ask(introspector, token))
    settings = introspector.settings
    report.add(
        Heading("Introspection (RFC 7662)"),
        Fields(
            [
                ("endpoint", introspector.endpoint or "not discovered"),
                ("client", f"{settings.client_id} ({settings.auth_method})"),
            ]
        ),
    )
    return introspector, body, failure


async def _ask(
    introspector: Introspector, token: str
) -> tuple[bytes | None, IntrospectionUnavailableError | TokenValidationError | None]:
    try:
        return await introspector.ask(token), None
    except (IntrospectionUnavailableError, TokenValidationError) as failure:
        return None, failure
    finally:
        await introspector.aclose()


def _lenient_object(body: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None
