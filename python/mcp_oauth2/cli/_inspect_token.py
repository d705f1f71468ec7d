"""``mcp-oauth2 inspect TOKEN``: what a token says, and whether this server would accept it.

An opaque token (``token_format`` ``opaque``, or ``auto`` and not a JWS) is explained from its
introspection instead (``_inspect_opaque``).

Without a configuration the token is only decoded, and labelled UNVERIFIED. With one (options or
``MCP_OAUTH2_*``) the issuer's keys are fetched as the middleware fetches them, and the native
validator explains itself (``TokenValidator.trace``): the checks of the middleware's own call
(``authorize``, with the middleware's scope rules), in the order it makes them, each passed,
failed, skipped or not reached, a failure in the words a client is told, and the verdict that
call comes to. Nothing here re-applies a rule, so the verdict cannot differ from the middleware's.
What the command adds is what only it knows: the decoded token with its times in words, the
discovery trail and the key table, and hints beside a check (the keys a ``kid`` is not among, an
issuer or audience that differs only in a trailing slash, the setting to change).
"""

from __future__ import annotations

import base64
import json
import math
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

from mcp_oauth2._access import AccessControl
from mcp_oauth2._config import OAuth2Config
from mcp_oauth2._rust import AuthenticatedUser, KeySet, Referral
from mcp_oauth2.cli._delegation import add_delegation
from mcp_oauth2.cli._environment import ConfigError, load_config
from mcp_oauth2.cli._human import relative, timestamp
from mcp_oauth2.cli._inspect_opaque import run_inspect_opaque
from mcp_oauth2.cli._jwks_report import add_key_blocks, fetch_exit_code, fetch_json
from mcp_oauth2.cli._key_table import KeyRow, caching, key_rows
from mcp_oauth2.cli._outcome import ExitCode, Result, UsageError
from mcp_oauth2.cli._output import Checks, Document, Fields, Heading, Line, Report, Verdict
from mcp_oauth2.cli._trail import KeyFetch, fetch_keys_sync
from mcp_oauth2.cli._verdict import checks_of, report_acceptance, report_refusal
from mcp_oauth2.errors import JWKSError, TokenValidationError

__all__ = ["MAX_INPUT_BYTES", "read_token", "run_inspect"]

MAX_INPUT_BYTES = 1024 * 1024
"""Input beyond this is not a token (the validator's own limit is far lower)."""

# What ``TokenValidator.trace`` hands back: the steps, and authorize_token's answer or refusal.
Steps = list[tuple[str, str, str]]
Outcome = tuple[AuthenticatedUser, tuple[str, ...]] | Referral | TokenValidationError


# -- input ------------------------------------------------------------------------------------


def read_token(argument: str) -> str:
    """The token from the argument, or standard input for ``-``; ``Bearer`` prefix removed."""
    if argument == "-":
        raw = sys.stdin.buffer.read(MAX_INPUT_BYTES + 1)
        if len(raw) > MAX_INPUT_BYTES:
            raise UsageError("standard input holds more than 1 MiB: that is not a token")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise UsageError("standard input is not UTF-8 text: give the token as text") from None
    else:
        text = argument
        try:
            size = len(text.encode("utf-8"))
        except UnicodeEncodeError:  # bytes that are not UTF-8 on the command line
            raise UsageError("the token is not UTF-8 text: give the token as text") from None
        if size > MAX_INPUT_BYTES:
            raise UsageError("the argument is longer than 1 MiB: that is not a token")
    token = text.strip()
    scheme, _, rest = token.partition(" ")
    if scheme.lower() == "bearer" and rest:
        token = rest.strip()
    if not token:
        where = "standard input is empty" if argument == "-" else "the token is empty"
        raise UsageError(f"{where}: pass the token, or '-' to read it from standard input")
    return token


@dataclass(frozen=True, slots=True)
class Decoded:
    """The token's parts decoded without any verification (for display and explanations)."""

    segments: int
    header: dict[str, Any] | None
    claims: dict[str, Any] | None
    problem: str | None


def decode(token: str) -> Decoded:
    """For display only: what the validator makes of the token is its trace's to say."""
    parts = token.split(".")
    problem = None
    header = _lenient_object(parts[0]) if len(parts) >= 2 else None
    claims = _lenient_object(parts[1]) if len(parts) >= 2 else None
    if header is None and len(parts) >= 2:
        problem = "header: not base64url-encoded JSON object"
    elif claims is None and len(parts) >= 2:
        problem = "payload: not base64url-encoded JSON object"
    if len(parts) == 5:
        problem = "five segments: an encrypted token (JWE); only signed tokens (JWS) are accepted"
    elif len(parts) != 3:
        problem = f"{len(parts)} segment(s); a signed token has three: header.payload.signature"
    return Decoded(len(parts), header, claims, problem)


def _lenient_object(segment: str) -> dict[str, Any] | None:
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        value = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


# -- the command ------------------------------------------------------------------------------


def run_inspect(
    token_argument: str,
    *,
    overrides: Mapping[str, Any],
    flags: Mapping[str, str],
    verify: bool,
    jwks_file: Path | None,
) -> Result:
    token = read_token(token_argument)
    now = time.time()
    report = Report()
    config: OAuth2Config | None = None
    if verify:
        try:
            config = load_config(overrides, flags)
        except ConfigError as problem:
            raise UsageError("; ".join(problem.lines)) from None
    decoded = decode(token)
    if config is not None:
        unkeyed = _unkeyed(config, token, now)
        if isinstance(unkeyed[1], Referral) and unkeyed[1].issuer is None:
            opaque = {"command": "inspect", "kind": "opaque", "verified": False, "valid": None}
            return run_inspect_opaque(token, config, report, opaque, now)
    data: dict[str, Any] = {
        "command": "inspect",
        "verified": False,
        "valid": None,
        "header": decoded.header,
        "claims": decoded.claims,
        "decode_problem": decoded.problem,
    }
    _add_decoded(report, decoded, now)
    if config is None:
        return _unverified(report, data, decoded)
    fetch, rows, (steps, outcome) = _traced(report, data, config, token, jwks_file, unkeyed, now)
    hints = _Hints(decoded, config, fetch, rows, now)
    checks = checks_of(steps, hints.hint)
    report.add(Heading("Checks"), Checks(checks))
    data["checks"] = [check.as_json() for check in checks]
    user = outcome[0] if isinstance(outcome, tuple) else None
    if user is not None:
        add_delegation(report, data, user.claims, verified=True)
    else:
        add_delegation(report, data, decoded.claims, verified=False)
    code = _verdict(report, data, outcome, fetch)
    data.setdefault("user", None)
    data.update(verified=fetch.keys is not None, valid=code == ExitCode.OK, exit_code=int(code))
    return Result(report, data, code)


def _unkeyed(config: OAuth2Config, token: str, now: float) -> tuple[Steps, Outcome]:
    """The middleware's call without keys: whether the token is one to introspect, and with
    keys per issuer, whose keys it needs (or its refusal before any key)."""
    rules = AccessControl.from_config(config).rules
    validator = config.token_validator()
    return validator.trace(token, {}, rules, token_format=config.token_format, now=now)


def _unverified(report: Report, data: dict[str, Any], decoded: Decoded) -> Result:
    """Decoding only: no issuer or audience to validate against."""
    report.add(
        Line(
            "Not verified. To validate it as a server would, give --issuer and --audience "
            "(or set MCP_OAUTH2_ISSUER and MCP_OAUTH2_AUDIENCE).",
            "dim",
        )
    )
    code = ExitCode.OK if decoded.problem is None else ExitCode.FAILED
    data.update(exit_code=int(code), checks=[], verdict=None, keys=None, user=None)
    add_delegation(report, data, decoded.claims, verified=False)
    return Result(report, data, code)


def _traced(
    report: Report,
    data: dict[str, Any],
    config: OAuth2Config,
    token: str,
    jwks_file: Path | None,
    unkeyed: tuple[Steps, Outcome],
    now: float,
) -> tuple[KeyFetch, list[KeyRow], tuple[Steps, Outcome]]:
    """The keys the middleware would use for ``token`` (reported), and the trace with them.

    Like the ``Authenticator``: one key source for every issuer (a JWKS URL or file, or a single
    issuer) gives its keys to the call; with a source per issuer, the call without keys names
    the issuer whose keys it needs (or refuses the token before any key is fetched).
    """
    validator = config.token_validator()
    rules = AccessControl.from_config(config).rules

    def trace(keys: KeySet | Mapping[str, KeySet]) -> tuple[Steps, Outcome]:
        return validator.trace(token, keys, rules, token_format=config.token_format, now=now)

    shared = jwks_file is not None or config.jwks_uri is not None or len(config.issuer) == 1
    issuer = config.issuer[0]
    if not shared:
        referral = unkeyed[1]
        if not isinstance(referral, Referral) or referral.issuer is None:
            data["keys"] = None  # refused before any key is fetched
            return KeyFetch(issuer=None), [], unkeyed
        issuer = referral.issuer
    fetch, source = _keys_for(config, issuer, jwks_file)
    rows = key_rows(fetch)
    cache = caching(fetch.headers, config.cache_settings())
    add_key_blocks(report, fetch, rows, cache, title=source, compact=True)
    data["keys"] = fetch_json(fetch, rows, cache)
    if fetch.keys is None:
        return fetch, rows, unkeyed
    return fetch, rows, trace(fetch.keys if shared else {issuer: fetch.keys})


def _verdict(report: Report, data: dict[str, Any], outcome: Outcome, fetch: KeyFetch) -> ExitCode:
    """The last line: invalid (and why), not verified (no keys), or valid (and for whom)."""
    if fetch.keys is None and data["keys"] is not None:
        report.add(Verdict(False, f"NOT VERIFIED: no usable keys ({fetch.failure})"))
        data["verdict"] = {"code": fetch.failure, "detail": fetch.detail}
        return fetch_exit_code(fetch)
    if isinstance(outcome, TokenValidationError):
        return report_refusal(report, data, outcome)
    if isinstance(outcome, Referral):  # keys of an issuer the call was not given: none at hand
        report.add(Verdict(False, f"NOT VERIFIED: no keys for {outcome.issuer}"))
        data["verdict"] = {"code": "jwks_unavailable", "detail": f"no keys for {outcome.issuer}"}
        return ExitCode.UNAVAILABLE
    return report_acceptance(report, data, outcome[0])


def _keys_for(config: OAuth2Config, issuer: str, jwks_file: Path | None) -> tuple[KeyFetch, str]:
    """The key set the middleware would use for a token of ``issuer``, and how to name it."""
    settings = config.cache_settings()
    if jwks_file is not None:
        try:
            body = jwks_file.read_bytes()
        except OSError as error:
            raise UsageError(f"--jwks-file: cannot read {jwks_file}: {error.strerror}") from None
        fetch = KeyFetch(issuer=None, body=body)
        try:
            fetch.keys = KeySet.from_jwks(body)
        except JWKSError as error:
            fetch.failure, fetch.detail, fetch.reasons = "jwks_invalid", error.detail, error.reasons
        return fetch, f"the key file {jwks_file}"
    if config.jwks_uri is not None:
        return fetch_keys_sync(jwks_uri=config.jwks_uri, settings=settings), config.jwks_uri
    return fetch_keys_sync(issuer=issuer, settings=settings), issuer


def _add_decoded(report: Report, decoded: Decoded, now: float) -> None:
    report.add(Heading("Token (UNVERIFIED: decoded without checking anything)"))
    if decoded.problem is not None:
        report.add(Line(f"cannot fully decode: {decoded.problem}", "fail"))
    if decoded.header is not None:
        report.add(Line("header"), Document(decoded.header))
    if decoded.claims is not None:
        report.add(Line("claims"), Document(decoded.claims))
        times = []
        for name in ("iat", "nbf", "exp"):
            value = decoded.claims.get(name)
            if _is_number(value):
                moment = float(value)
                times.append((name, f"{timestamp(moment)}  ({relative(moment, now)})"))
        if times:
            report.add(Fields(times))


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _quoted(values: Sequence[str]) -> str:
    return ", ".join(values) if values else "none"


class _Hints:
    """What only the command knows, beside a check of the trace: the key table, the settings and
    the token's times in words. A hint never changes a status; the trace's words stay as made."""

    def __init__(
        self,
        decoded: Decoded,
        config: OAuth2Config,
        fetch: KeyFetch,
        rows: list[KeyRow],
        now: float,
    ) -> None:
        self.header = decoded.header or {}
        self.claims = decoded.claims or {}
        self.config = config
        self.validator = config.token_validator()
        self.fetch = fetch
        self.rows = rows
        self.keys_name = "the issuer's" if fetch.issuer else "the"
        if not fetch.issuer and fetch.jwks_uri is None:
            self.keys_name = "the file's"
        self.now = now

    def hint(self, check: str, status: str) -> str | None:
        if status == "not_reached" and check == "key" and self.fetch.keys is None:
            return "no keys to look in"
        if check in ("exp", "nbf", "iat") and status in ("pass", "fail"):
            moment = self.moment(check)
            if status == "fail" and check in ("nbf", "iat") and moment is not None:
                return f"{moment}: is this machine's clock (or the issuer's) wrong?"
            return moment
        if status != "fail":
            return None
        method = getattr(self, f"failed_{check}", None)
        return method() if method is not None else None

    def moment(self, name: str) -> str | None:
        value = self.claims.get(name)
        if not _is_number(value):
            return None
        return f"{timestamp(float(value))}, {relative(float(value), self.now)}"

    def failed_alg(self) -> str:
        return f"this server allows {_quoted(self.validator.algorithms)} (MCP_OAUTH2_ALGORITHMS)"

    def failed_typ(self) -> str:
        accepted = self.validator.accepted_types or ()
        return f"this server accepts {_quoted(accepted)} (MCP_OAUTH2_ACCEPTED_TYPES)"

    def failed_key(self) -> str | None:
        keys = self.fetch.keys
        kid = self.header.get("kid")
        if keys is None:
            return None
        count = f"{self.keys_name} {len(keys)} key{'s' if len(keys) != 1 else ''}"
        if isinstance(kid, str):
            broken = [row for row in self.rows if row.kid == kid and not row.usable]
            if broken:
                reason = broken[0].reason
                return f"kid {kid} names a key that is published but cannot be used: {reason}"
            if kid not in keys:
                listed = ", ".join(keys.key_ids) or "none with a kid"
                return (
                    f"kid {kid} is not among {count}: {listed} (a key rotation? the middleware "
                    "refetches the keys at once for a key id it has not asked for)"
                )
        return f"see {count} above"

    def failed_signature(self) -> str:
        return (
            "the token was changed, or signed by another key under the same kid (an issuer "
            "that restarted with new keys?)"
        )

    def failed_route(self) -> str:
        return f"this server trusts {_quoted(self.validator.issuers)}"

    def failed_iss(self) -> str:
        iss = self.claims.get("iss")
        trusted = self.validator.issuers
        near = [t for t in trusted if isinstance(iss, str) and t.rstrip("/") == iss.rstrip("/")]
        if near:
            return (
                f"iss is {iss}; this server trusts {_quoted(trusted)}: they differ only in a "
                "trailing slash (the issuer identifier must match exactly; if the issuer's "
                f"metadata says {iss}, set MCP_OAUTH2_ISSUER={iss})"
            )
        return f"iss is {str(iss)[:200]}; this server trusts {_quoted(trusted)}"

    def failed_aud(self) -> str:
        aud = self.claims.get("aud")
        expected = self.validator.audiences
        wanted = " or ".join(expected)
        values = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        shown = json.dumps(aud)[:300]
        near = [
            v
            for e in expected
            for v in values
            if isinstance(v, str) and e.rstrip("/") == v.rstrip("/")
        ]
        if near:
            return (
                f"aud is {shown}; this server expects {wanted}: they differ only in a trailing "
                "slash, and audiences must match exactly (set MCP_OAUTH2_AUDIENCE to the "
                "server's canonical URI, and have clients ask for exactly that resource)"
            )
        return (
            f"aud is {shown}; this server expects {wanted}: the token was issued for another "
            f"resource (the client should ask the authorization server with resource="
            f"{expected[0]})"
        )

    def failed_required(self) -> str:
        required = [
            "iss",
            "aud",
            *(c for c in self.validator.required_claims if c not in ("iss", "aud")),
        ]
        return f"required: {', '.join(required)} (MCP_OAUTH2_REQUIRED_CLAIMS)"

    def failed_scope_rules(self) -> str:
        return (
            "answered 403 insufficient_scope (MCP_OAUTH2_REQUIRED_SCOPES, "
            "MCP_OAUTH2_SCOPE_IMPLICATIONS)"
        )
