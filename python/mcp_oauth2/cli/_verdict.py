"""The last line of ``mcp-oauth2 inspect``, for a JWT or an introspected token alike: refused
(the answer a server would send, and why) or accepted (for whom, with which scopes)."""

from __future__ import annotations

from typing import Any

from mcp_oauth2._access import AccessControl
from mcp_oauth2._config import OAuth2Config
from mcp_oauth2._rust import AuthenticatedUser
from mcp_oauth2.cli._outcome import ExitCode
from mcp_oauth2.cli._output import Report, Verdict
from mcp_oauth2.errors import InsufficientScopeError, MCPOAuth2Error

__all__ = [
    "error_code",
    "error_description",
    "error_status",
    "report_acceptance",
    "report_refusal",
    "with_required_scopes",
]


def with_required_scopes(
    config: OAuth2Config, user: AuthenticatedUser
) -> tuple[AuthenticatedUser | None, MCPOAuth2Error | None]:
    """After the token's own verdict, the middleware's rule for ``required_scopes``: the user,
    or the 403 a server configured by ``config`` would answer."""
    access = AccessControl.from_config(config)
    missing = access.missing_scopes(user.scopes, access.required_scopes)
    if missing:
        return None, InsufficientScopeError.lacking(missing, access.every_scope_needed())
    return user, None


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
