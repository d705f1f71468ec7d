"""``mcp-oauth2 check``: a deployment's pre-flight, from its ``MCP_OAUTH2_*`` configuration.

It validates the configuration as ``OAuth2Config()`` does at startup, discovers each issuer and
fetches its keys as the key caches will (unless ``token_format`` is ``opaque``), asks the
introspection endpoint about a random probe token when tokens are introspected (an inactive
answer shows the endpoint and the client's credentials work), and prints the RFC 9728 document
the middleware will serve (built by the middleware's own ``ResourceMetadata``). Anything that
would make requests fail at run time makes the exit code non-zero; doubtful but workable settings
are warnings.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from mcp_oauth2._config import OAuth2Config
from mcp_oauth2._resource_metadata import ResourceMetadata
from mcp_oauth2.cli._environment import (
    ConfigError,
    load_config,
    load_env_file,
    unknown_variables,
    unread_env_file,
)
from mcp_oauth2.cli._inspect_opaque import ask_once
from mcp_oauth2.cli._jwks_report import add_key_blocks, fetch_exit_code, fetch_json
from mcp_oauth2.cli._key_table import KeyRow, caching, key_rows
from mcp_oauth2.cli._outcome import ExitCode, Result, UsageError
from mcp_oauth2.cli._output import Document, Fields, Heading, Line, Report, Verdict
from mcp_oauth2.cli._trail import KeyFetch, fetch_keys_sync
from mcp_oauth2.errors import InactiveTokenError, TokenValidationError

__all__ = ["DOT_ENV", "run_check"]

DOT_ENV = Path(".env")
"""Not read unless named by ``--env-file``; ``check`` warns when it has ``MCP_OAUTH2_*`` lines."""
# What the verdict names as usable, by token_format.
_USABLE = {
    "jwt": "its keys",
    "opaque": "its introspection endpoint",
    "auto": "its keys and its introspection endpoint",
}


def run_check(env_file: Path | None) -> Result:
    """Check the configuration of the environment, after ``env_file``'s lines when given."""
    report = Report()
    data: dict[str, Any] = {"command": "check", "env_file": _load(env_file)}
    warnings = unknown_variables()
    if env_file is None and DOT_ENV.is_file() and (unread := unread_env_file(DOT_ENV)):
        warnings.insert(0, unread)
    report.add(Heading("Configuration"))
    if data["env_file"]:
        report.add(Line(f"environment, then {data['env_file']} (the environment wins)", "dim"))
    try:
        config = load_config()
    except ConfigError as problem:
        return _unusable(report, data, problem, warnings)
    report.add(Fields(_summary(config)))
    exit_code, problems, sources = _check_server(report, config, data)
    metadata = ResourceMetadata(config)
    report.add(Heading(f"Protected resource metadata (RFC 9728), served at {metadata.url}"))
    report.add(Document(metadata.document))
    warnings += _warnings(config)
    if warnings:
        report.add(Heading("Warnings"))
        for line in warnings:
            report.add(Line(line, "warn"))
    if exit_code == ExitCode.OK:
        usable = _USABLE[config.token_format]
        report.add(Verdict(True, f"OK: the configuration, the issuer and {usable} are usable"))
    else:
        what = "problem" if len(problems) == 1 else "problems"
        count = f"{len(problems)} {what}" if problems else "the keys are unavailable"
        report.add(Verdict(False, f"FAILED: {count}; requests would be refused at run time"))
    data.update(
        exit_code=int(exit_code),
        ok=exit_code == ExitCode.OK,
        config=config.model_dump(mode="json"),
        problems=problems,
        warnings=warnings,
        sources=sources,
        resource_metadata={"url": metadata.url, "document": metadata.document},
    )
    return Result(report, data, exit_code)


def _load(env_file: Path | None) -> str | None:
    """Read ``env_file`` into the environment; its name, or None when none is given."""
    if env_file is None:
        return None
    if not env_file.is_file():
        raise UsageError(f"--env-file: {env_file} is not a file")
    try:
        load_env_file(env_file)
    except ConfigError as problem:
        raise UsageError(problem.lines[0]) from None
    return str(env_file)


def _unusable(
    report: Report, data: dict[str, Any], problem: ConfigError, warnings: list[str]
) -> Result:
    """The configuration does not validate: one line per problem, and nothing fetched."""
    for line in problem.lines:
        report.add(Line(line, "fail"))
    for line in warnings:
        report.add(Line(line, "warn"))
    report.add(Verdict(False, f"FAILED: {len(problem.lines)} configuration problem(s)"))
    data.update(
        exit_code=int(ExitCode.FAILED),
        ok=False,
        config=None,
        problems=problem.lines,
        warnings=warnings,
        sources=[],
        resource_metadata=None,
    )
    return Result(report, data, ExitCode.FAILED)


def _check_sources(
    report: Report, config: OAuth2Config
) -> tuple[ExitCode, list[str], list[dict[str, Any]]]:
    """Fetch the keys of each source the middleware would use (the jwks_uri, or each issuer),
    report them, and say what would fail."""
    settings = config.cache_settings()
    if config.jwks_uri is not None:
        targets = [(config.jwks_uri, fetch_keys_sync(jwks_uri=config.jwks_uri, settings=settings))]
    else:
        targets = [(url, fetch_keys_sync(issuer=url, settings=settings)) for url in config.issuer]
    exit_code, problems, sources = ExitCode.OK, [], []
    for title, fetch in targets:
        rows = key_rows(fetch)
        cache = caching(fetch.headers, settings)
        add_key_blocks(report, fetch, rows, cache, title=title)
        source_problems = _source_problems(fetch, rows, config, title)
        for line in source_problems:
            report.add(Line(line, "fail"))
        problems += source_problems
        sources.append({"source": title, **fetch_json(fetch, rows, cache)})
        code = fetch_exit_code(fetch)
        if code == ExitCode.OK and source_problems:
            code = ExitCode.FAILED
        exit_code = max(exit_code, code)
    return exit_code, problems, sources


def _check_server(
    report: Report, config: OAuth2Config, data: dict[str, Any]
) -> tuple[ExitCode, list[str], list[dict[str, Any]]]:
    """The keys (unless every token is introspected) and the introspection endpoint (when
    tokens are introspected), each reported, with what would fail."""
    exit_code, problems, sources = ExitCode.OK, list[str](), list[dict[str, Any]]()
    if config.token_format.verifies_locally:
        exit_code, problems, sources = _check_sources(report, config)
    if config.token_format.introspects:
        code, found = _check_introspection(report, config)
        exit_code, problems = max(exit_code, code), problems + found
        data["introspection"] = {"ok": not found, "problems": found}
    return exit_code, problems, sources


def _check_introspection(report: Report, config: OAuth2Config) -> tuple[ExitCode, list[str]]:
    """Ask the endpoint about a random probe token: it must answer, accept this client, and
    say the probe is not active."""
    probe = "mcp-oauth2-check-" + secrets.token_urlsafe(16)
    introspector, body, failure = ask_once(config, probe, report)
    if isinstance(failure, TokenValidationError):
        line = f"a random probe token is refused ({failure.description}): endpoint and client work"
        report.add(Line(line, "ok"))
        return ExitCode.OK, []
    if failure is not None or body is None:
        detail = failure.detail if failure is not None else "no answer"
        line = f"introspection_unavailable: {detail}: every opaque token would be answered 503"
        report.add(Line(line, "fail"))
        return ExitCode.UNAVAILABLE, [line]
    try:
        introspector.check(body)
    except InactiveTokenError:
        report.add(
            Line("a random probe token is answered inactive: endpoint and client work", "ok")
        )
        return ExitCode.OK, []
    except (TokenValidationError, ValueError) as error:
        line = f"the endpoint's answer to a random probe token is unusable: {error}"
    else:
        line = "the endpoint says a random probe token is active: it cannot be trusted"
    report.add(Line(line, "fail"))
    return ExitCode.FAILED, [line]


def _summary(config: OAuth2Config) -> list[tuple[str, str]]:
    rows = [
        ("issuer", ", ".join(config.issuer)),
        ("audience", ", ".join(config.audience)),
        ("jwks_uri", config.jwks_uri or "(discovered from the issuer)"),
        ("algorithms", ", ".join(config.algorithms)),
        ("leeway", f"{config.leeway} s"),
        ("required_scopes", " ".join(config.required_scopes) or "(none)"),
    ]
    if config.exempt_routes:
        rows.append(("exempt_routes", ", ".join(config.exempt_routes)))
    if config.accepted_types is not None:
        rows.append(("accepted_types", ", ".join(config.accepted_types)))
    if config.token_format.introspects:
        rows.append(("token_format", config.token_format))
    return rows


def _source_problems(
    fetch: KeyFetch, rows: list[KeyRow], config: OAuth2Config, title: str
) -> list[str]:
    """What about this key source would make every request fail."""
    if fetch.failure == "issuer_mismatch":
        return [_mismatch_hint(fetch, title)]
    if fetch.failure is not None:
        return [f"{title}: {fetch.failure}: every request would be answered 503"]
    usable = [row for row in rows if row.usable]
    if not any(row.fits(alg) for row in usable for alg in config.algorithms) and usable:
        return [
            f"{title}: none of the usable keys fits the allowed algorithms "
            f"({', '.join(config.algorithms)}): every token would be refused; set "
            f"MCP_OAUTH2_ALGORITHMS to the issuer's algorithm"
        ]
    return []


def _mismatch_hint(fetch: KeyFetch, issuer: str) -> str:
    named = None
    for reason in fetch.reasons:
        marker = "metadata names issuer "
        if marker in reason:
            named = reason.split(marker, 1)[1].strip().strip("'\"")
            break
    if named is not None and named.rstrip("/") == issuer.rstrip("/"):
        return (
            f"issuer_mismatch: MCP_OAUTH2_ISSUER is {issuer} but the metadata says {named}; "
            f"they must match exactly (RFC 8414): set MCP_OAUTH2_ISSUER={named}"
        )
    said = f" but the metadata says {named}" if named else ""
    return f"issuer_mismatch: MCP_OAUTH2_ISSUER is {issuer}{said}; they must match exactly"


def _warnings(config: OAuth2Config) -> list[str]:
    warnings = []
    if config.resource is not None and config.resource not in config.audience:
        warnings.append(
            f"resource {config.resource} is not one of the audiences: clients will ask for "
            "tokens this server refuses"
        )
    supported = config.scopes_supported
    if supported is not None:
        unlisted = [s for s in config.required_scopes if s not in supported]
        if unlisted:
            warnings.append(
                f"required scope(s) {' '.join(unlisted)} missing from scopes_supported: clients "
                "reading the metadata will not know to ask for them"
            )
    return warnings
