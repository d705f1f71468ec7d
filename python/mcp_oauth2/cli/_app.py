"""The ``mcp-oauth2`` command line: arguments, dispatch, output mode and exit codes.

argparse (standard library) parses the arguments, so the command needs nothing beyond the base
install; a bad argument is one line naming the fix (``ArgumentParser.error`` is overridden to
drop the usage dump), and no error reaches the user as a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from mcp_oauth2._rust import __version__
from mcp_oauth2.cli._outcome import ExitCode, Result, UsageError
from mcp_oauth2.cli._output import ColorChoice, printable, render, write_json

__all__ = ["build_parser", "main"]

PROG = "mcp-oauth2"
ALGORITHMS = (
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
)  # fmt: skip

EXIT_CODES = """\
exit codes:
  0  ok: the token is valid, the configuration and keys are usable, a token was minted
  1  a check failed: the token is invalid, or the configuration would fail at run time
  2  usage: a bad option or value, unreadable input, or a missing extra
  3  the issuer's metadata or keys could not be fetched or used (nothing was verified)
  4  internal error (a bug: please report it)"""

DESCRIPTION = """\
Check bearer tokens, key sets and configurations the way mcp-oauth2's middleware does.
'mcp-oauth2 COMMAND --help' describes each command.

Output is coloured with tables on a terminal when the 'cli' extra (rich) is installed, plain
text otherwise or when piped; --json prints one JSON document for scripts."""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line naming the fix, exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(ExitCode.USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _duration(text: str) -> int:
    """Seconds from ``3600``, ``90s``, ``15m``, ``2h`` or ``1d``."""
    match = re.fullmatch(r"\s*([0-9]{1,9})\s*([smhd]?)\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration: use seconds (3600) or 90s, 15m, 2h, 1d"
        )
    seconds = int(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
    if not 1 <= seconds <= 366 * 86400:
        raise argparse.ArgumentTypeError(f"{text!r} must be between 1 s and 366 d")
    return seconds


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.1 <= value <= 120:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds from 0.1 to 120")
    return value


def _leeway(text: str) -> int:
    if not text.isdigit() or int(text) > 3600:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a whole number of seconds from 0 to 3600"
        )
    return int(text)


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0 to 65535)")
    return int(text)


# An argument: its names, and the keywords of ``add_argument``.
_Argument = tuple[tuple[str, ...], dict[str, Any]]

_OUTPUT: tuple[_Argument, ...] = (
    (
        ("--json",),
        dict(
            action="store_true",
            help="print one JSON document (the documented schema) instead of text",
        ),
    ),
    (
        ("--color",),
        dict(
            choices=("auto", "always", "never"),
            default="auto",
            help="colour and tables: auto (on a terminal, with rich), always, never",
        ),
    ),
)

_INSPECT: tuple[_Argument, ...] = (
    (
        ("token",),
        dict(
            metavar="TOKEN",
            help="the token ('Bearer ' prefix allowed), or - to read standard input",
        ),
    ),
    (
        ("--dpop",),
        dict(
            metavar="PROOF",
            help="a DPoP proof (the DPoP header) sent with TOKEN: explain its checks too",
        ),
    ),
    (
        ("--method",),
        dict(default="POST", metavar="METHOD", help="the request's method for --dpop (POST)"),
    ),
    (
        ("--url",),
        dict(metavar="URL", help="the request's URL for --dpop (this server's resource URL)"),
    ),
    (
        ("--issuer",),
        dict(
            action="append",
            metavar="URL",
            help="trusted issuer (repeatable); default MCP_OAUTH2_ISSUER",
        ),
    ),
    (
        ("--audience",),
        dict(
            action="append",
            metavar="URL",
            help="this server's resource URI (repeatable); default MCP_OAUTH2_AUDIENCE",
        ),
    ),
    (
        ("--jwks-uri",),
        dict(metavar="URL", help="fetch the keys here instead of discovering them from the issuer"),
    ),
    (
        ("--jwks-file",),
        dict(type=Path, metavar="FILE", help="verify with the keys in this JWKS file (no network)"),
    ),
    (
        ("--token-format",),
        dict(
            choices=("jwt", "opaque", "auto"),
            help="jwt, opaque (introspect) or auto; default MCP_OAUTH2_TOKEN_FORMAT. The client "
            "secret for introspection is read from MCP_OAUTH2_CLIENT_SECRET only",
        ),
    ),
    (
        ("--introspection-endpoint",),
        dict(
            metavar="URL",
            help="RFC 7662 endpoint; default MCP_OAUTH2_INTROSPECTION_ENDPOINT, else discovered",
        ),
    ),
    (
        ("--client-id",),
        dict(metavar="ID", help="default MCP_OAUTH2_CLIENT_ID"),
    ),
    (
        ("--algorithm",),
        dict(
            action="append",
            choices=ALGORITHMS,
            metavar="ALG",
            help="allowed algorithm (repeatable); default MCP_OAUTH2_ALGORITHMS",
        ),
    ),
    (
        ("--leeway",),
        dict(
            type=_leeway,
            metavar="SECONDS",
            help="clock skew allowed for exp, nbf, iat; default MCP_OAUTH2_LEEWAY",
        ),
    ),
    (
        ("--require-scope",),
        dict(
            action="append",
            metavar="SCOPE",
            help="scope every request needs (repeatable); default MCP_OAUTH2_REQUIRED_SCOPES",
        ),
    ),
    (
        ("--env-file",),
        dict(type=Path, metavar="FILE", help="read MCP_OAUTH2_* settings from this file too"),
    ),
)

_JWKS: tuple[_Argument, ...] = (
    (("source",), dict(metavar="ISSUER_OR_URL", help="an issuer, or a JWKS URL")),
    (
        ("--timeout",),
        dict(
            type=_seconds,
            default=5.0,
            metavar="SECONDS",
            help="total deadline of each fetch, retries included (default 5)",
        ),
    ),
)

_CHECK: tuple[_Argument, ...] = (
    (
        ("--env-file",),
        dict(
            type=Path,
            metavar="FILE",
            help="read MCP_OAUTH2_* lines from this file, as uvicorn --env-file does (no file "
            "is read without it, as the server reads none); variables already in the "
            "environment win",
        ),
    ),
)

_TOKEN: tuple[_Argument, ...] = (
    (
        ("--audience",),
        dict(
            action="append",
            metavar="URL",
            help="aud of the token (repeatable); default MCP_OAUTH2_AUDIENCE",
        ),
    ),
    (
        ("--scope",),
        dict(
            action="append",
            metavar="SCOPE",
            default=[],
            help="scope to grant (repeatable, or space-separated)",
        ),
    ),
    (
        ("--sub",),
        dict(default="user-1", metavar="SUBJECT", help="sub of the token (default user-1)"),
    ),
    (
        ("--lifetime",),
        dict(
            type=_duration,
            default=3600,
            metavar="DURATION",
            help="validity: seconds, or 90s, 15m, 2h, 1d (default 1h)",
        ),
    ),
    (
        ("--alg",),
        dict(
            choices=ALGORITHMS,
            default="RS256",
            metavar="ALG",
            help=f"signing algorithm: {', '.join(ALGORITHMS)} (default RS256)",
        ),
    ),
    (
        ("--issuer",),
        dict(
            metavar="URL",
            help="iss of the token without --serve (default https://local-issuer.invalid)",
        ),
    ),
    (
        ("--serve",),
        dict(action="store_true", help="keep the issuer running on 127.0.0.1 and print its URL"),
    ),
    (
        ("--port",),
        dict(
            type=_port,
            default=0,
            metavar="PORT",
            help="with --serve: the port to listen on (default: a free one)",
        ),
    ),
    (
        ("--jwks-out",),
        dict(
            type=Path,
            metavar="FILE",
            help="write the public keys (JWKS) that verify the token to FILE",
        ),
    ),
)

# Each command: its one-line help, its description, and its arguments.
_COMMANDS: dict[str, tuple[str, str, tuple[_Argument, ...]]] = {
    "inspect": (
        "decode a token and, given a configuration, validate it and explain each check",
        "Decode TOKEN (labelled UNVERIFIED). With --issuer and --audience, or the MCP_OAUTH2_* "
        "variables, fetch the issuer's keys as the middleware does, validate the token with the "
        "real validator, and explain every check.",
        _INSPECT,
    ),
    "jwks": (
        "show the discovery trail, the keys and their caching for an issuer or JWKS URL",
        "Discover ISSUER_OR_URL's metadata (RFC 8414, then OpenID Connect), fetch its JWKS and "
        "show each URL tried, each key (usable or why not) and the caching headers with the "
        "freshness the key cache would apply. A URL with no metadata is fetched as a JWKS itself.",
        _JWKS,
    ),
    "check": (
        "pre-flight a deployment: configuration, discovery, keys, RFC 9728 metadata",
        "Read the MCP_OAUTH2_* configuration from the environment (and --env-file), validate it "
        "as the middleware will, discover each issuer, fetch its keys, and print the RFC 9728 "
        "document the server will serve. Exits non-zero when requests would fail.",
        _CHECK,
    ),
    "token": (
        "mint a development token from a local test issuer (needs the testing extra)",
        "Mint a token signed by a local test issuer (mcp_oauth2.testing.LocalIssuer; pip install "
        "'mcp-oauth2[testing]'). Without --serve the issuer exists only for this command: the "
        "token goes to standard output, and --jwks-out writes the keys that verify it. With "
        "--serve the issuer keeps serving its metadata and keys on 127.0.0.1 until Ctrl-C, so a "
        "server configured with its URL accepts the token.",
        _TOKEN,
    ),
}


def build_parser() -> argparse.ArgumentParser:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = _Parser(
        prog=PROG, description=DESCRIPTION, epilog=EXIT_CODES, formatter_class=formatter
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    output = _Parser(add_help=False)
    _add_arguments(output, _OUTPUT)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (summary, description, arguments) in _COMMANDS.items():
        command = commands.add_parser(
            name,
            parents=[output],
            formatter_class=formatter,
            epilog=EXIT_CODES,
            help=summary,
            description=description,
        )
        _add_arguments(command, arguments)
    return parser


def _add_arguments(parser: argparse.ArgumentParser, arguments: Sequence[_Argument]) -> None:
    for names, options in arguments:
        parser.add_argument(*names, **options)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit code (the console script exits with it)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.error("give a command: inspect, jwks, check or token")
    command = f"{PROG} {args.command}"
    try:
        result = _dispatch(args, lambda shown: _emit(shown, args))
        if not result.shown:
            _emit(result, args)
        return int(result.exit_code)
    except UsageError as error:
        sys.stderr.write(f"{command}: error: {printable(error)}\n")
        return int(ExitCode.USAGE)
    except KeyboardInterrupt:
        sys.stderr.write(f"{command}: interrupted\n")
        return 130
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as other command-line tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return int(ExitCode.FAILED)
    except Exception as error:  # never a traceback for the user
        name = type(error).__name__
        detail = printable(error)[:300]
        sys.stderr.write(f"{command}: internal error ({name}: {detail}); please report it\n")
        return int(ExitCode.INTERNAL)


def _emit(result: Result, args: argparse.Namespace) -> None:
    if args.json:
        # `token --serve` prints while it keeps running: one line, so a script can read it.
        write_json(result.data, sys.stdout, compact=args.command == "token" and args.serve)
    elif result.stdout_text is not None:
        render(result.report, args.color, sys.stderr)
        sys.stdout.write(result.stdout_text + "\n")
        sys.stdout.flush()
    else:
        color: ColorChoice = args.color
        render(result.report, color)


def _dispatch(args: argparse.Namespace, show: Callable[[Result], None]) -> Result:
    if args.command == "inspect":
        return _inspect(args)
    if args.command == "jwks":
        from mcp_oauth2.cli._jwks_report import run_jwks

        return run_jwks(args.source, timeout=args.timeout)
    if args.command == "check":
        from mcp_oauth2.cli._check_config import run_check

        return run_check(args.env_file)
    from mcp_oauth2.cli._mint import run_token

    audience = args.audience or _env_list("MCP_OAUTH2_AUDIENCE")
    if not audience:
        raise UsageError(
            "give --audience URL (the resource URI of the server that will accept the token, "
            "e.g. --audience http://127.0.0.1:8000/mcp) or set MCP_OAUTH2_AUDIENCE"
        )
    scopes = [scope for value in args.scope for scope in value.split() if scope]
    return run_token(
        audience=audience,
        scopes=scopes,
        subject=args.sub or None,
        lifetime=args.lifetime,
        algorithm=args.alg,
        issuer_url=args.issuer,
        serve=args.serve,
        port=args.port,
        jwks_out=args.jwks_out,
        show=show,
    )


def _inspect(args: argparse.Namespace) -> Result:
    from mcp_oauth2.cli._environment import ConfigError, load_env_file
    from mcp_oauth2.cli._inspect_token import run_inspect

    if args.dpop is not None and args.token == "-":  # noqa: S105 - "-" is standard input
        raise UsageError("--dpop needs the token as an argument, not on standard input")
    if args.env_file is not None:
        if not args.env_file.is_file():
            raise UsageError(f"--env-file: {args.env_file} is not a file")
        try:
            load_env_file(args.env_file)
        except ConfigError as problem:
            raise UsageError(problem.lines[0]) from None
    overrides: dict[str, Any] = {}
    flags: dict[str, str] = {}
    for field, option, value in (
        ("issuer", "--issuer", args.issuer),
        ("audience", "--audience", args.audience),
        ("jwks_uri", "--jwks-uri", args.jwks_uri),
        ("algorithms", "--algorithm", args.algorithm),
        ("leeway", "--leeway", args.leeway),
        ("required_scopes", "--require-scope", args.require_scope),
        ("token_format", "--token-format", args.token_format),
        ("introspection_endpoint", "--introspection-endpoint", args.introspection_endpoint),
        ("client_id", "--client-id", args.client_id),
    ):
        if value is not None:
            overrides[field] = value
            flags[field] = option
    configured = any(
        name.upper() in ("MCP_OAUTH2_ISSUER", "MCP_OAUTH2_AUDIENCE") for name in os.environ
    )
    verify = configured or bool(
        {"issuer", "audience", "jwks_uri"} & overrides.keys() or args.jwks_file
    )
    result = run_inspect(
        args.token, overrides=overrides, flags=flags, verify=verify, jwks_file=args.jwks_file
    )
    if args.dpop is None:
        return result
    return _inspect_proof(args, result, verify, overrides, flags)


def _inspect_proof(
    args: argparse.Namespace,
    result: Result,
    verify: bool,
    overrides: dict[str, Any],
    flags: dict[str, str],
) -> Result:
    """``inspect --dpop``: the proof's checks after the token's."""
    from mcp_oauth2.cli._environment import ConfigError, load_config
    from mcp_oauth2.cli._inspect_dpop import add_proof_checks
    from mcp_oauth2.cli._inspect_token import read_token

    config = None
    if verify:
        try:
            config = load_config(overrides, flags)
        except ConfigError as problem:
            raise UsageError("; ".join(problem.lines)) from None
    url = args.url if args.url is not None else (config.resource_uri if config else None)
    if url is None:
        raise UsageError("--dpop needs --url (the request's URL), or a configuration")
    token = read_token(args.token)
    return add_proof_checks(result, token, args.dpop, args.method, url, config)


def _env_list(name: str) -> list[str]:
    """A list setting from the environment: a JSON array, or comma-separated values."""
    value = os.environ.get(name, "").strip()
    if value.startswith("["):
        try:
            parsed = json.loads(value)
        except ValueError:
            return []
        return [str(item) for item in parsed] if isinstance(parsed, list) else []
    return [part.strip() for part in value.split(",") if part.strip()]
