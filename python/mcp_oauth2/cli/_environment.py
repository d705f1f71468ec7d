"""The command's view of a deployment's configuration: ``MCP_OAUTH2_*`` variables, and an env
file when given one.

The configuration is built exactly as the middleware builds it, ``OAuth2Config()`` over the
process environment. Like the library, the command reads no ``.env`` file of its own accord: with
``--env-file FILE`` it adds the file's ``MCP_OAUTH2_*`` lines the way ``uvicorn --env-file`` or
``docker run --env-file`` would add them (a variable already set in the environment wins; other
lines of the file are ignored, so a ``.env`` shared with the application works). Validation
errors become one line per problem, never the input values themselves (which could be secrets)
beyond what the library's own messages quote.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dotenv import dotenv_values
from pydantic import ValidationError

from mcp_oauth2._config import OAuth2Config

__all__ = [
    "PREFIX",
    "ConfigError",
    "load_config",
    "load_env_file",
    "unknown_variables",
    "unread_env_file",
]

PREFIX = "MCP_OAUTH2_"


class ConfigError(Exception):
    """The configuration cannot be used; ``lines`` has one plain sentence per problem."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("; ".join(lines))
        self.lines = lines


def env_name(field: str) -> str:
    return PREFIX + field.upper()


def load_env_file(path: Path) -> list[str]:
    """Put the file's ``MCP_OAUTH2_*`` values into ``os.environ`` (unless already set).

    Returns the names it set. Raises ``ConfigError`` when the file cannot be read.
    """
    try:
        values = dotenv_values(path, encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError([f"cannot read {path}: {error}"]) from None
    added = []
    for name, value in values.items():
        if value is None or not name.upper().startswith(PREFIX):
            continue
        if name.upper() not in (key.upper() for key in os.environ):
            os.environ[name] = value
            added.append(name)
    return added


def unread_env_file(path: Path) -> str | None:
    """A warning when ``path`` (``./.env``) has ``MCP_OAUTH2_*`` lines that were not read: the
    server does not read them either."""
    try:
        names = [name for name in dotenv_values(path) if name.upper().startswith(PREFIX)]
    except (OSError, UnicodeDecodeError):
        return None
    if not names:
        return None
    return (
        f"{path} sets {', '.join(sorted(names)[:3])}{', ...' if len(names) > 3 else ''} but is "
        f"not read: the server reads the process environment only; check it with "
        f"`mcp-oauth2 check --env-file {path}` and start the server with "
        f"`uvicorn --env-file {path} ...`"
    )


def unknown_variables(environ: Mapping[str, str] | None = None) -> list[str]:
    """``MCP_OAUTH2_*`` variables that name no setting (a typo is silently ignored otherwise)."""
    known = {env_name(field) for field in OAuth2Config.model_fields}
    lines = []
    for name in sorted(environ if environ is not None else os.environ):
        upper = name.upper()
        if upper.startswith(PREFIX) and upper not in known:
            guess = difflib.get_close_matches(upper, known, n=1)
            hint = f"; did you mean {guess[0]}?" if guess else ""
            lines.append(f"{name} is not a setting of mcp-oauth2 and is ignored{hint}")
    return lines


def load_config(
    overrides: Mapping[str, Any] | None = None, flags: Mapping[str, str] | None = None
) -> OAuth2Config:
    """``OAuth2Config(**overrides)`` over the environment; ``ConfigError`` if it is invalid.

    ``flags`` maps a field given on the command line to its option (``issuer`` -> ``--issuer``),
    so a problem is reported under the name the user typed.
    """
    try:
        return OAuth2Config(**dict(overrides or {}))
    except ValidationError as error:
        raise ConfigError(describe(error, flags or {})) from None


def describe(error: ValidationError, flags: Mapping[str, str]) -> list[str]:
    """One line per problem as the library words it (``<setting> (<variable>): ...``), or,
    for a setting given on the command line, under the option the user typed."""
    lines = []
    for problem in error.errors(include_url=False, include_input=False):
        message = str(problem.get("msg", "invalid")).removeprefix("Value error, ")
        for line in message.splitlines():
            taught = _TAUGHT.match(line)
            if taught is not None and taught["field"] in flags:
                line = f"{flags[taught['field']]}: {taught['what']}"
            lines.append(line)
    return lines


# A line of a configuration error: "<setting> (<variable>): <what is wrong; e.g. ...>".
_TAUGHT = re.compile(r"^(?P<field>[a-z_]+) \(MCP_OAUTH2_[A-Z_]+\): (?P<what>.*)$")
