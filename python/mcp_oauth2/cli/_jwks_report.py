"""``mcp-oauth2 jwks ISSUER_OR_URL``: the discovery trail, the keys, and how long they are cached.

The blocks built here (trail, key table, caching) are shared by ``inspect`` and ``check``.
"""

from __future__ import annotations

from typing import Any

from mcp_oauth2._cache_settings import CacheSettings
from mcp_oauth2._url_rules import require_fetchable_url
from mcp_oauth2.cli._human import duration
from mcp_oauth2.cli._key_table import KeyRow, caching, key_rows
from mcp_oauth2.cli._outcome import ExitCode, Result, UsageError
from mcp_oauth2.cli._output import Fields, Heading, Line, Report, Style, Table, Verdict
from mcp_oauth2.cli._trail import KeyFetch, fetch_keys_sync

__all__ = ["add_key_blocks", "fetch_exit_code", "fetch_json", "run_jwks"]


def run_jwks(source: str, *, timeout: float) -> Result:
    try:
        require_fetchable_url(source, "ISSUER_OR_URL")
        settings = CacheSettings(timeout=timeout)
    except ValueError as error:
        raise UsageError(str(error)) from None
    fetch = fetch_keys_sync(issuer=source, settings=settings, fall_back_to_jwks=True)
    rows = key_rows(fetch)
    cache = caching(fetch.headers, settings)
    report = Report()
    add_key_blocks(report, fetch, rows, cache, title=source)
    exit_code = fetch_exit_code(fetch)
    if fetch.ok:
        assert fetch.keys is not None
        report.add(Verdict(True, f"OK: {_count(len(fetch.keys), 'usable key')}"))
    else:
        report.add(Verdict(False, f"FAILED ({fetch.failure}): {fetch.detail}"))
    data = {"command": "jwks", "exit_code": int(exit_code), "source": source}
    data.update(fetch_json(fetch, rows, cache))
    return Result(report, data, exit_code)


def fetch_exit_code(fetch: KeyFetch) -> ExitCode:
    """3 when the keys could not be had; 1 for an issuer mismatch (a configuration to fix)."""
    if fetch.ok:
        return ExitCode.OK
    if fetch.failure == "issuer_mismatch":
        return ExitCode.FAILED
    return ExitCode.UNAVAILABLE


def fetch_json(fetch: KeyFetch, rows: list[KeyRow], cache: dict[str, Any]) -> dict[str, Any]:
    return {
        "issuer": fetch.issuer,
        "trail": [attempt.as_json() for attempt in fetch.attempts],
        "fetched_as_jwks": fetch.fell_back,
        "jwks_uri": fetch.jwks_uri,
        "keys": [row.as_json() for row in rows],
        "usable_keys": len(fetch.keys) if fetch.keys is not None else 0,
        "cache": cache or None,
        "error": (
            {"code": fetch.failure, "detail": fetch.detail, "reasons": list(fetch.reasons)}
            if fetch.failure is not None
            else None
        ),
    }


def add_key_blocks(
    report: Report,
    fetch: KeyFetch,
    rows: list[KeyRow],
    cache: dict[str, Any],
    *,
    title: str,
    compact: bool = False,
) -> None:
    """The trail, then (unless ``compact``) the key table and the caching headers."""
    report.add(Heading(f"Discovery trail for {title}" if fetch.attempts else f"Keys of {title}"))
    trail = []
    styles: list[Style] = []
    for attempt in fetch.attempts:
        note = "used" if attempt.used and attempt.problem is None else ""
        trail.append([attempt.purpose, "GET " + attempt.url, attempt.answer, note])
        styles.append(_attempt_style(attempt.used, attempt.problem, attempt.tried))
    if trail:
        report.add(Table(["for", "request", "answer", ""], trail, styles))
    if fetch.fell_back:
        report.add(Line("no metadata found there: the URL itself was fetched as a JWKS", "dim"))
    if fetch.jwks_uri is not None and fetch.issuer is not None:
        report.add(Line(f"jwks_uri: {fetch.jwks_uri}"))
    if fetch.failure is not None:
        report.add(Line(f"{fetch.failure}: {fetch.detail}", "fail"))
        unplaced = [
            r
            for r in fetch.reasons
            if not any(r.startswith(f"GET {a.url}") for a in fetch.attempts)
        ]
        if fetch.failure != "jwks_invalid":
            for reason in unplaced:
                report.add(Line(f"  {reason}", "fail"))
    if compact:
        if fetch.keys is not None:
            kids = ", ".join(fetch.keys.key_ids) or "no kid"
            report.add(Line(f"{_count(len(fetch.keys), 'usable key')}: {kids}"))
        return
    if rows:
        report.add(Heading("Keys"))
        table = [
            [
                row.kid or "-",
                row.kty or "-",
                row.alg or "-",
                row.size,
                row.use or "-",
                "yes" if row.usable else f"no: {row.reason}",
            ]
            for row in rows
        ]
        row_styles: list[Style] = ["ok" if row.usable else "fail" for row in rows]
        report.add(Table(["kid", "kty", "alg", "size", "use", "usable"], table, row_styles))
    if cache:
        report.add(Heading("Caching"))
        report.add(
            Fields(
                [
                    ("Cache-Control", cache["cache_control"] or "(none)"),
                    ("Expires", cache["expires"] or "(none; not used by the cache)"),
                    ("ETag", cache["etag"] or "(none)"),
                    ("Age", cache["age"] or "(none)"),
                    ("fresh for", cache["explanation"]),
                    (
                        "then",
                        f"refreshed in the background after {duration(cache['refresh_after'])}"
                        f"; served stale up to {duration(cache['stale_for'])} more while "
                        "refreshes fail (jwks_max_stale)",
                    ),
                ]
            )
        )


def _attempt_style(used: bool, problem: str | None, tried: bool) -> Style:
    if not tried:
        return "dim"
    if used and problem is None:
        return "ok"
    return "warn" if not used else "fail"


def _count(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"
