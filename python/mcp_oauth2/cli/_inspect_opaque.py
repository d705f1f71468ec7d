"""``mcp-oauth2 inspect TOKEN`` for an opaque token: what the introspection endpoint (RFC 7662)
says about it, and whether this server would accept it.

The endpoint is asked once, as the middleware asks it (the same client authentication, limits
and discovery), past any cache. The verdict is the native validator's
(``TokenValidator.validate_introspection``) plus the middleware's ``required_scopes`` rule; each
check is then explained in plain words from the answer, in the order the rules apply.

The answer is never printed as received: an endpoint that echoes the request would show the
token and the client's credentials. Only the RFC 7662 members are shown (long values cut), and
the names of the others. An answer that is not a JSON object is "unavailable" (exit code 3).
"""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

from mcp_oauth2._access import AccessControl
from mcp_oauth2._config import OAuth2Config
from mcp_oauth2._introspection import IntrospectionSettings, Introspector
from mcp_oauth2._rust import AuthenticatedUser
from mcp_oauth2.cli._human import relative, timestamp
from mcp_oauth2.cli._outcome import ExitCode, Result
from mcp_oauth2.cli._output import Check, Checks, Document, Fields, Heading, Report, Status, Verdict
from mcp_oauth2.cli._verdict import report_acceptance, report_refusal, with_required_scopes
from mcp_oauth2.errors import (
    InactiveTokenError,
    IntrospectionUnavailableError,
    MCPOAuth2Error,
    TokenValidationError,
)

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
# Validator error code -> the check that explains it.
CHECK_OF_CODE = {
    "inactive_token": "active",
    "invalid_claim": "claims",
    "expired": "exp",
    "not_yet_valid": "nbf",
    "issued_in_future": "iat",
    "invalid_issuer": "iss",
    "missing_claim": "aud",
    "invalid_audience": "aud",
    "insufficient_scope": "scopes",
}


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
        report.add(Verdict(False, f"NOT VERIFIED: {failure.code}: {failure.detail}"))
        data["verdict"] = {"status": 503, "code": failure.code, "detail": failure.detail}
        data["exit_code"] = int(ExitCode.UNAVAILABLE)
        return Result(report, data, ExitCode.UNAVAILABLE)
    assert body is not None
    assert answer is not None
    shown = shown_answer(answer)
    report.add(Heading("Answer"), Document(shown))
    data["introspection"] = shown
    user, error = _verdict_of(introspector, config, body)
    checks = _Explainer(answer or {}, config, now).checks(error)
    report.add(Heading("Checks"), Checks(checks))
    data["checks"] = [check.as_json() for check in checks]
    code = _verdict(report, data, error, user)
    data.update(verified=True, valid=code == ExitCode.OK, exit_code=int(code))
    return Result(report, data, code)


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


def _verdict_of(
    introspector: Introspector, config: OAuth2Config, body: bytes
) -> tuple[AuthenticatedUser | None, MCPOAuth2Error | None]:
    try:
        user = introspector.check(body)
    except TokenValidationError as refusal:
        return None, refusal
    except ValueError as problem:
        return None, IntrospectionUnavailableError(str(problem))
    return with_required_scopes(config, user)


def _verdict(
    report: Report,
    data: dict[str, Any],
    error: MCPOAuth2Error | None,
    user: AuthenticatedUser | None,
) -> ExitCode:
    if error is not None or user is None:
        return report_refusal(report, data, error or InactiveTokenError())
    return report_acceptance(report, data, user)


def _lenient_object(body: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class _Explainer:
    """Explains each rule of ``validate_introspection`` for one answer, in its order."""

    def __init__(self, answer: dict[str, Any], config: OAuth2Config, now: float) -> None:
        self.answer = answer
        self.config = config
        self.now = now
        self.leeway = config.leeway

    def checks(self, error: MCPOAuth2Error | None) -> list[Check]:
        computed = [
            ("active", self.active()),
            ("token_use", self.token_use()),
            ("exp", self.time("exp")),
            ("nbf", self.time("nbf")),
            ("iat", self.time("iat")),
            ("iss", self.iss()),
            ("aud", self.aud()),
            ("claims", ("pass", "sub, username, client_id, scope: absent or of the right type")),
            ("scopes", self.scopes()),
        ]
        failed = CHECK_OF_CODE.get(str(getattr(error, "code", ""))) if error else None
        out = []
        for name, (status, detail) in computed:
            final: Status = status
            if failed == "active" and name != "active":
                # An inactive answer carries nothing more to check.
                final, detail = "not_reached", "the token is not active"
            elif name == failed:
                final = "fail"
                if status != "fail":
                    detail = str(getattr(error, "description", detail))
            elif status == "fail" and error is None:
                final = "warn"
            out.append(Check(name, final, detail))
        return out

    def active(self) -> tuple[Status, str]:
        value = self.answer.get("active")
        if value is True:
            return "pass", '"active": true'
        return "fail", (
            f'"active" is {json.dumps(value)}: only the JSON literal true is active '
            "(revoked, expired or unknown tokens answer false)"
        )

    def token_use(self) -> tuple[Status, str]:
        if "token_use" not in self.answer:
            return "skip", "absent"
        value = self.answer["token_use"]
        if value == "access_token":
            return "pass", "access_token"
        return "fail", f"{json.dumps(value)}: only access tokens are accepted"

    def time(self, name: str) -> tuple[Status, str]:
        value = self.answer.get(name)
        if value is None:
            return "skip", "absent"
        if not _is_number(value):
            return "fail", f"{name} must be a number (NumericDate)"
        moment = float(value)
        when = f"{timestamp(moment)} ({relative(moment, self.now)}; leeway {self.leeway} s)"
        late = {
            "exp": self.now >= moment + self.leeway,
            "nbf": self.now + self.leeway < moment,
            "iat": moment > self.now + self.leeway,
        }[name]
        return ("fail" if late else "pass"), when

    def iss(self) -> tuple[Status, str]:
        iss = self.answer.get("iss")
        if iss is None:
            return "skip", "absent (allowed in an introspection answer)"
        if iss in self.config.issuer:
            return "pass", f"{iss} is a configured issuer"
        return (
            "fail",
            f"{str(iss)[:200]} is not a configured issuer ({', '.join(self.config.issuer)})",
        )

    def aud(self) -> tuple[Status, str]:
        aud = self.answer.get("aud")
        ours = ", ".join(self.config.audience)
        if aud is None:
            if self.config.introspection_require_audience:
                return "fail", (
                    "absent: refused (MCP_OAUTH2_INTROSPECTION_REQUIRE_AUDIENCE=false allows it)"
                )
            return "warn", "absent: allowed by MCP_OAUTH2_INTROSPECTION_REQUIRE_AUDIENCE=false"
        values = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if any(value in self.config.audience for value in values):
            return "pass", f"includes this server ({ours})"
        return "fail", f"does not include this server ({ours})"

    def scopes(self) -> tuple[Status, str]:
        scope = self.answer.get("scope")
        granted = scope.split() if isinstance(scope, str) else []
        access = AccessControl.from_config(self.config)
        missing = access.missing_scopes(granted, access.required_scopes)
        if missing:
            return "fail", f"lacks the required scope(s): {' '.join(missing)}"
        return "pass", f"granted: {' '.join(granted) or 'none'}"
