"""``mcp-oauth2 token``: a development token from a local test issuer (``LocalIssuer``).

Without ``--serve`` the issuer exists only for this command: the token is printed, and the keys
that verify it can be written with ``--jwks-out`` (for ``inspect --jwks-file``, or ``StaticKeys``
in tests). With ``--serve`` the issuer keeps running on loopback, serving its metadata and JWKS,
so a server configured with ``MCP_OAUTH2_ISSUER=<its URL>`` accepts the token, until Ctrl-C.
Needs the ``testing`` extra (cryptography and uvicorn).
"""

from __future__ import annotations

import functools
import json
import signal
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from mcp_oauth2._url_rules import require_identifier_url
from mcp_oauth2.cli._human import duration, timestamp
from mcp_oauth2.cli._outcome import ExitCode, Result, UsageError
from mcp_oauth2.cli._output import Fields, Heading, Line, Report

if TYPE_CHECKING:
    from mcp_oauth2.testing import LocalIssuer

__all__ = ["MISSING_EXTRA", "OFFLINE_ISSUER", "run_token"]

OFFLINE_ISSUER = "https://local-issuer.invalid"
"""The ``iss`` of tokens minted without ``--serve`` (``.invalid`` is reserved: RFC 2606)."""

MISSING_EXTRA = "mcp-oauth2 token needs the testing extra: pip install 'mcp-oauth2[testing]'"


def _local_issuer_class() -> type[LocalIssuer]:
    try:
        from mcp_oauth2.testing import LocalIssuer
    except ImportError:
        raise UsageError(MISSING_EXTRA) from None
    return LocalIssuer


def run_token(
    *,
    audience: Sequence[str],
    scopes: Sequence[str],
    subject: str | None,
    lifetime: int,
    algorithm: str,
    issuer_url: str | None,
    serve: bool,
    port: int,
    jwks_out: Path | None,
    show: Callable[[Result], None],
) -> Result:
    """Mint one token; with ``serve``, ``show`` it and keep the issuer running until a signal."""
    local_issuer = _local_issuer_class()
    if serve:
        if issuer_url is not None:
            raise UsageError(
                "--issuer cannot be used with --serve: the served issuer is "
                "http://127.0.0.1:<port> (choose the port with --port)"
            )
        issuer_url = f"http://127.0.0.1:{port}" if port else None
    elif port:
        raise UsageError("--port works with --serve only")
    elif issuer_url is not None:
        try:
            require_identifier_url(issuer_url, "--issuer")  # the iss claim; nothing is fetched
        except ValueError as error:
            raise UsageError(str(error)) from None
    issuer = local_issuer(
        issuer_url if serve else issuer_url or OFFLINE_ISSUER,
        default_audience=list(audience),
        algorithms=(algorithm,),
    )
    mint = functools.partial(
        _minted, issuer, audience, scopes, subject, lifetime, algorithm, jwks_out
    )
    if not serve:
        return mint(serving=False)
    try:
        with issuer.serve():
            result = mint(serving=True)
            show(result)
            _wait_for_stop()
    except (OSError, RuntimeError) as error:
        cause = error if isinstance(error, OSError) else error.__cause__
        if not isinstance(cause, OSError):
            raise
        raise UsageError(f"--port {port}: cannot listen there ({cause.strerror})") from None
    return Result(Report(), {}, ExitCode.OK, shown=True)


def _minted(
    issuer: LocalIssuer,
    audience: Sequence[str],
    scopes: Sequence[str],
    subject: str | None,
    lifetime: int,
    algorithm: str,
    jwks_out: Path | None,
    *,
    serving: bool,
) -> Result:
    token: str = issuer.mint(
        subject=subject,
        audience=audience[0] if len(audience) == 1 else list(audience),
        scopes=list(scopes),
        expires_in=lifetime,
        algorithm=algorithm,
    )
    jwks = issuer.jwks()
    if jwks_out is not None:
        try:
            jwks_out.write_text(json.dumps(jwks, indent=2) + "\n", encoding="utf-8")
        except OSError as error:
            raise UsageError(f"--jwks-out: cannot write {jwks_out}: {error.strerror}") from None
    expires_at = int(time.time()) + lifetime
    data: dict[str, Any] = {
        "command": "token",
        "exit_code": 0,
        "token": token,
        "issuer": issuer.issuer,
        "serving": serving,
        "audience": list(audience),
        "subject": subject,
        "scopes": list(scopes),
        "alg": algorithm,
        "kid": issuer.current_kid(algorithm),
        "expires_at": expires_at,
        "jwks": jwks,
        "jwks_file": str(jwks_out) if jwks_out is not None else None,
    }
    report = Report()
    report.add(Heading("Token (from a local test issuer: for development only)"))
    if serving:
        report.add(Line(token))
    rows = [
        ("issuer", issuer.issuer + ("  (serving until Ctrl-C)" if serving else "  (not running)")),
        ("audience", ", ".join(audience)),
        ("subject", subject or "(none)"),
        ("scopes", " ".join(scopes) or "(none)"),
        ("alg / kid", f"{algorithm} / {data['kid']}"),
        ("expires", f"{timestamp(expires_at)} (in {duration(lifetime)})"),
    ]
    if jwks_out is not None:
        rows.append(("keys", f"written to {jwks_out}"))
    report.add(Fields(rows))
    report.add(Heading("To trust it"))
    aud = audience[0]
    if serving:
        report.add(
            Line(f"export MCP_OAUTH2_ISSUER={issuer.issuer} MCP_OAUTH2_AUDIENCE={aud}"),
            Line(f"mcp-oauth2 inspect <token> --issuer {issuer.issuer} --audience {aud}"),
        )
    else:
        keys = str(jwks_out) if jwks_out is not None else "keys.json (with --jwks-out keys.json)"
        report.add(
            Line(
                f"mcp-oauth2 inspect <token> --issuer {issuer.issuer} --audience {aud} "
                f"--jwks-file {keys}"
            ),
            Line("in tests: OAuth2Middleware(app, config, key_sources=StaticKeys(Path(...)))"),
            Line("the keys die with this command: use --serve for a server that discovers them"),
        )
    # Without --serve the token alone goes to standard output, the rest to standard error.
    return Result(report, data, ExitCode.OK, stdout_text=None if serving else token)


def _wait_for_stop() -> None:
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stop.wait(0.5):
            pass
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
