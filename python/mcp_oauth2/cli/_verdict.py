"""The checks and the last line of ``mcp-oauth2 inspect``, for a JWT or an introspected token
alike: the native validator's trace as checks, then refused (the answer a server would send, and
why) or accepted (for whom, with which scopes)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

from mcp_oauth2._rust import AuthenticatedUser
from mcp_oauth2.cli._outcome import ExitCode
from mcp_oauth2.cli._output import Check, Report, Status, Verdict
from mcp_oauth2.errors import MCPOAuth2Error

__all__ = [
    "checks_of",
    "error_code",
    "error_description",
    "error_status",
    "report_acceptance",
    "report_refusal",
]

STATUSES = ("pass", "fail", "skip", "not_reached")


def checks_of(
    steps: Sequence[tuple[str, str, str]],
    hint: Callable[[str, str], str | None] = lambda check, status: None,
) -> list[Check]:
    """The steps of a native trace (``TokenValidator.trace``) as checks, each with the hint
    ``hint(check, status)`` gives it (what only the command knows)."""
    checks = []
    for name, status, detail in steps:
        if status not in STATUSES:
            raise ValueError(f"a trace step of unknown status {status!r}")
        checks.append(Check(name, cast(Status, status), detail, hint(name, status)))
    return checks


def report_refusal(report: Report, data: dict[str, Any], error: MCPOAuth2Error) -> ExitCode:
    """The verdict for a refused token (JWT or introspected): its answer and why."""
    status, kind = error_status(error)
    code, description = error_code(error), error_description(error)
    report.add(Verdict(False, f"INVALID: {status} {kind}, code {code}: {description}"))
    data["verdict"] = {
        "status": status,
        "error": kind,
        "code": code,
        "description": description,
    }
    return ExitCode.FAILED


def report_acceptance(report: Report, data: dict[str, Any], user: AuthenticatedUser) -> ExitCode:
    """The verdict for an accepted token (JWT or introspected): for whom, with which scopes."""
    who = user.display_name or "no subject"
    scopes = " ".join(sorted(user.scopes)) or "no scopes"
    report.add(Verdict(True, f"VALID: this server would accept the token ({who}; {scopes})"))
    data["verdict"] = {"status": 200, "code": "ok"}
    data["user"] = {
        "subject": user.subject,
        "username": user.username,
        "client_id": user.client_id,
        "issuer": user.issuer,
        "audience": list(user.audience),
        "scopes": sorted(user.scopes),
        "expires_at": user.expires_at,
    }
    return ExitCode.OK


def error_status(error: MCPOAuth2Error) -> tuple[int, str]:
    return int(getattr(error, "status_code", 401)), str(getattr(error, "error", "invalid_token"))


def error_code(error: MCPOAuth2Error) -> str:
    return str(getattr(error, "code", "invalid_token"))


def error_description(error: MCPOAuth2Error) -> str:
    return str(getattr(error, "description", error))
