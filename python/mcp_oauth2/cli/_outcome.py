"""What a command hands back: its report, its JSON result and its exit code (documented here)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from mcp_oauth2.cli._output import Report

__all__ = ["ExitCode", "Result", "UsageError"]


class ExitCode(IntEnum):
    """The exit status of ``mcp-oauth2`` (listed in ``--help`` and the documentation)."""

    OK = 0
    """The token is valid; the configuration and the keys are usable; the token was minted."""
    FAILED = 1
    """A check failed: the token is invalid, or the configuration would fail at run time."""
    USAGE = 2
    """The command line cannot be used: a bad option or value, unreadable input, a missing extra."""
    UNAVAILABLE = 3
    """The issuer's metadata or keys could not be fetched or used, so nothing could be verified."""
    INTERNAL = 4
    """An unexpected error inside the command (a bug; please report it)."""


class UsageError(Exception):
    """A problem with what the user typed: printed as one line naming the fix, exit code 2."""


@dataclass(slots=True)
class Result:
    report: Report
    data: dict[str, Any]
    exit_code: ExitCode
    stdout_text: str | None = None
    """When set, the only text on standard output (the report then goes to standard error), so
    ``TOKEN=$(mcp-oauth2 token ...)`` captures just the token."""
    shown: bool = False
    """The command has printed its output itself (``token --serve`` prints before it waits)."""
