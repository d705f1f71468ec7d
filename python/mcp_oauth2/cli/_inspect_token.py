"""``mcp-oauth2 inspect TOKEN``: what a token says, and whether this server would accept it.

An opaque token (``token_format`` ``opaque``, or ``auto`` and not a JWS) is explained from its
introspection instead (``_inspect_opaque``).

Without a configuration the token is only decoded, and labelled UNVERIFIED. With one (options or
``MCP_OAUTH2_*``) the issuer's keys are fetched as the middleware fetches them and the token is
validated by the real ``TokenValidator`` (plus the middleware's ``required_scopes`` rule): the
verdict is always theirs. Each check is then explained in plain words. The explanations are
computed here from the decoded token, in the order the validator applies the checks; a check the
validator passed is shown as passed, the one it stopped at as failed, and checks after a failed
signature as not reached (their claims are unverified, so they only say what would happen).
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
from mcp_oauth2._rust import (
    AuthenticatedUser,
    KeySet,
    TokenValidator,
    introspected,
    peek_header,
    peek_issuer,
)
from mcp_oauth2.cli._environment import ConfigError, load_config
from mcp_oauth2.cli._human import duration, relative, timestamp
from mcp_oauth2.cli._inspect_opaque import run_inspect_opaque
from mcp_oauth2.cli._jwks_report import add_key_blocks, fetch_exit_code, fetch_json
from mcp_oauth2.cli._key_table import KeyRow, caching, key_rows
from mcp_oauth2.cli._outcome import ExitCode, Result, UsageError
from mcp_oauth2.cli._output import (
    Check,
    Checks,
    Document,
    Fields,
    Heading,
    Line,
    Report,
    Status,
    Verdict,
)
from mcp_oauth2.cli._trail import KeyFetch, fetch_keys_sync
from mcp_oauth2.cli._verdict import (
    error_code,
    error_description,
    report_acceptance,
    report_refusal,
    with_required_scopes,
)
from mcp_oauth2.errors import (
    InvalidIssuerError,
    JWKSError,
    MCPOAuth2Error,
    TokenValidationError,
)

__all__ = ["MAX_INPUT_BYTES", "read_token", "run_inspect"]

MAX_INPUT_BYTES = 1024 * 1024
"""Input beyond this is not a token (the validator's own limit is far lower)."""

SUPPORTED = (
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
)  # fmt: skip
# The most actors of an act chain shown, and the longest text shown of each.
_LONGEST_CHAIN = 8
_SHOWN_PARTY = 120
# The claims whose type the validator checks, and the type it wants.
NUMERIC = ("exp", "nbf", "iat")
STRINGS = ("iss", "sub", "jti", "client_id", "azp")
# Validator error code -> the check that explains it.
CHECK_OF_CODE = {
    "token_too_large": "size",
    "malformed": "structure",
    "unsupported_algorithm": "alg",
    "algorithm_not_allowed": "alg",
    "invalid_type": "typ",
    "key_not_found": "key",
    "invalid_signature": "signature",
    "expired": "exp",
    "not_yet_valid": "nbf",
    "issued_in_future": "iat",
    "missing_claim": "claims",
    "invalid_claim": "claims",
    "invalid_issuer": "iss",
    "invalid_audience": "aud",
    "insufficient_scope": "scopes",
}
# The order the validator works in; the claim checks all run on the verified payload.
STAGE = {
    "size": 0,
    "structure": 1,
    "alg": 2,
    "typ": 3,
    "key": 4,
    "signature": 5,
    "exp": 6,
    "nbf": 6,
    "iat": 6,
    "claims": 6,
    "iss": 6,
    "aud": 6,
    "scopes": 7,
}
VERIFIED_STAGE = 6


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
    parts = token.split(".")
    problem = None
    header: dict[str, Any] | None = None
    try:
        header = peek_header(token, max(len(token.encode()), 1))
    except MCPOAuth2Error as error:
        problem = f"header: {getattr(error, 'description', error)}"
        header = _lenient_object(parts[0]) if len(parts) >= 2 else None
    claims = _lenient_object(parts[1]) if len(parts) >= 2 else None
    if claims is None and problem is None:
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
        if introspected(token, config.token_format):
            opaque = {"command": "inspect", "kind": "opaque", "verified": False, "valid": None}
            return run_inspect_opaque(token, config, report, opaque, now)
    decoded = decode(token)
    data: dict[str, Any] = {
        "command": "inspect",
        "verified": False,
        "valid": None,
        "header": decoded.header,
        "claims": decoded.claims,
        "delegation": dict(delegation_rows(decoded.claims or {})),
        "decode_problem": decoded.problem,
    }
    _add_decoded(report, decoded, now)
    if config is None:
        return _unverified(report, data, decoded)
    validator = config.token_validator()
    fetch, source, rows, error = _key_source(report, data, config, token, jwks_file)
    user: AuthenticatedUser | None = None
    if fetch.keys is not None:
        user, error = _validate(token, config, validator, fetch.keys, now)
    explainer = _Explainer(token, decoded, config, validator, fetch, rows, source, now)
    checks = explainer.checks(error, keys_available=fetch.keys is not None)
    report.add(Heading("Checks"), Checks(checks))
    data["checks"] = [check.as_json() for check in checks]
    code = _verdict(report, data, error, fetch, user)
    data.setdefault("user", None)
    data.update(verified=fetch.keys is not None, valid=code == ExitCode.OK, exit_code=int(code))
    return Result(report, data, code)


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
    return Result(report, data, code)


def _key_source(
    report: Report,
    data: dict[str, Any],
    config: OAuth2Config,
    token: str,
    jwks_file: Path | None,
) -> tuple[KeyFetch, str, list[KeyRow], MCPOAuth2Error | None]:
    """The keys the middleware would use for ``token`` (reported), or why there are none."""
    claimed = peek_issuer(token, max(len(token.encode()), 1))
    if jwks_file is None and config.jwks_uri is None and claimed not in config.issuer:
        # Like the Authenticator: an untrusted iss cannot pick a key source; it is refused
        # before any key is fetched (with one issuer, the validator says so after the keys).
        if len(config.issuer) > 1:
            data["keys"] = None
            return KeyFetch(issuer=None), "no issuer", [], InvalidIssuerError()
        issuer = config.issuer[0]
    else:
        issuer = claimed or config.issuer[0]
    fetch, source = _keys_for(config, issuer, jwks_file)
    rows = key_rows(fetch)
    cache = caching(fetch.headers, config.cache_settings())
    add_key_blocks(report, fetch, rows, cache, title=source, compact=True)
    data["keys"] = fetch_json(fetch, rows, cache)
    return fetch, source, rows, None


def _validate(
    token: str, config: OAuth2Config, validator: TokenValidator, keys: KeySet, now: float
) -> tuple[AuthenticatedUser | None, MCPOAuth2Error | None]:
    """The validator's verdict, then the middleware's rule for ``required_scopes``."""
    try:
        user = validator.validate(token, keys, now=now)
    except TokenValidationError as failure:
        return None, failure
    return with_required_scopes(config, user)


def _verdict(
    report: Report,
    data: dict[str, Any],
    error: MCPOAuth2Error | None,
    fetch: KeyFetch,
    user: AuthenticatedUser | None,
) -> ExitCode:
    """The last line: invalid (and why), not verified (no keys), or valid (and for whom)."""
    if error is not None:
        return report_refusal(report, data, error)
    if fetch.keys is None or user is None:
        report.add(Verdict(False, f"NOT VERIFIED: no usable keys ({fetch.failure})"))
        data["verdict"] = {"code": fetch.failure, "detail": fetch.detail}
        return fetch_exit_code(fetch)
    return report_acceptance(report, data, user)


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
        delegation = delegation_rows(decoded.claims)
        if delegation:
            report.add(Line("delegation (RFC 8693)"), Fields(delegation))


def delegation_rows(claims: Mapping[str, Any]) -> list[tuple[str, str]]:
    """What ``act`` (who acts for the subject, earlier actors nested) and ``may_act`` (who may
    act for it) say, in words (RFC 8693 sections 4.1 and 4.4)."""
    rows = []
    if "act" in claims:
        chain: list[str] = []
        act = claims["act"]
        while isinstance(act, Mapping) and len(chain) < _LONGEST_CHAIN:
            chain.append(_party(act))
            act = act.get("act")
        words = "; before it, ".join(chain) if chain else "not an object: no actor named"
        rows.append(("act", f"acting for the subject: {words}"))
    if "may_act" in claims:
        may_act = claims["may_act"]
        named = _party(may_act) if isinstance(may_act, Mapping) else "not an object: nobody"
        rows.append(("may_act", f"may act for the subject: {named}"))
    return rows


def _party(claims: Mapping[str, Any]) -> str:
    """An actor as its claims name it: ``sub`` (and ``iss``), else the whole object."""
    sub, iss = claims.get("sub"), claims.get("iss")
    if not isinstance(sub, str):
        return json.dumps(claims, default=str)[:_SHOWN_PARTY]
    return sub[:_SHOWN_PARTY] + (f" (iss {str(iss)[:_SHOWN_PARTY]})" if iss is not None else "")


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _quoted(values: Sequence[str]) -> str:
    return ", ".join(values) if values else "none"


class _Explainer:
    """Explains each check of one token against one configuration, in the validator's order."""

    def __init__(
        self,
        token: str,
        decoded: Decoded,
        config: OAuth2Config,
        validator: TokenValidator,
        fetch: KeyFetch,
        rows: list[KeyRow],
        source: str,
        now: float,
    ) -> None:
        self.token = token
        self.decoded = decoded
        self.header = decoded.header or {}
        self.claims = decoded.claims or {}
        self.config = config
        self.validator = validator
        self.fetch = fetch
        self.rows = rows
        self.keys_name = "the issuer's" if fetch.issuer else "the"
        if not fetch.issuer and fetch.jwks_uri is None:
            self.keys_name = "the file's"
        self.now = now
        self.leeway = validator.leeway

    def checks(self, error: MCPOAuth2Error | None, *, keys_available: bool) -> list[Check]:
        computed = [
            ("size", self.size()),
            ("structure", self.structure()),
            ("alg", self.alg()),
            ("typ", self.typ()),
            ("key", self.key() if keys_available else ("not_reached", "no keys to look in")),
            ("signature", self.signature(error) if keys_available else ("not_reached", "")),
            ("exp", self.exp()),
            ("nbf", self.nbf()),
            ("iat", self.iat()),
            ("claims", self.required_and_types()),
            ("iss", self.iss()),
            ("aud", self.aud()),
            ("scopes", self.scopes()),
        ]
        failed = CHECK_OF_CODE.get(error_code(error)) if error is not None else None
        # Checks from this stage on were not reached by a verification (math.inf: all were).
        unreached: float = math.inf
        if failed is not None and STAGE[failed] < VERIFIED_STAGE:
            unreached = STAGE[failed] + 1
        elif not keys_available:
            unreached = STAGE["key"]
        out: list[Check] = []
        for name, (status, detail) in computed:
            final: Status = status
            if name == failed:
                final = "fail"
                assert error is not None
                # Where this explanation saw no problem, the validator's own words say what it was.
                if status != "fail" or not detail:
                    detail = error_description(error)
            elif STAGE[name] >= unreached and status != "skip":
                # Nothing verified the token this far: its claims are only what it says.
                if status in ("pass", "fail", "warn"):
                    detail = f"would {'pass' if status == 'warn' else status}: {detail}"
                final = "not_reached"
            elif status == "fail" and error is None:
                # The validator accepted the token: its word is the verdict.
                final = "warn"
                detail = f"accepted by the validator, but: {detail}"
            out.append(Check(name, final, detail or "not checked"))
        return out

    # -- the checks ------------------------------------------------------------------------

    def size(self) -> tuple[Status, str]:
        size = len(self.token.encode())
        limit = self.validator.max_token_bytes
        if size > limit:
            return "fail", f"{size:,} bytes is over the limit of {limit:,} (the limit)"
        return "pass", f"{size:,} bytes; the limit is {limit:,}"

    def structure(self) -> tuple[Status, str]:
        if self.decoded.problem is not None:
            return "fail", self.decoded.problem
        return "pass", "three base64url segments; header and payload are JSON objects"

    def alg(self) -> tuple[Status, str]:
        alg = self.header.get("alg")
        allowed = self.validator.algorithms
        if not isinstance(alg, str):
            return "fail", "the header has no alg (string)"
        name = "EdDSA" if alg == "Ed25519" else alg
        if alg.lower() == "none" or alg.lower().startswith("hs"):
            return "fail", f"alg {alg} is never accepted (unsigned or shared-secret tokens)"
        if name not in SUPPORTED:
            return "fail", f"alg {alg} is not a signature algorithm mcp-oauth2 supports"
        if name not in allowed:
            return "fail", (
                f"alg {alg} is not allowed; this server allows {_quoted(allowed)} "
                "(MCP_OAUTH2_ALGORITHMS)"
            )
        return "pass", f"{alg} is allowed ({_quoted(allowed)})"

    def typ(self) -> tuple[Status, str]:
        typ = self.header.get("typ")
        accepted = self.validator.accepted_types
        if accepted is None:
            return "skip", f"not checked (accepted_types is not set); typ is {typ or 'absent'}"
        if not isinstance(typ, str):
            return "fail", f"typ is absent; this server accepts {_quoted(accepted)}"
        lower = typ.strip().lower()
        rest = lower.removeprefix("application/")
        normal = rest if "/" not in rest else lower
        if normal in accepted:
            return "pass", f"typ {typ} is accepted"
        return "fail", (
            f"typ is {typ}; this server accepts {_quoted(accepted)} (MCP_OAUTH2_ACCEPTED_TYPES)"
        )

    def _usable(self) -> list[KeyRow]:
        return [row for row in self.rows if row.usable]

    def key(self) -> tuple[Status, str]:
        keys = self.fetch.keys
        assert keys is not None
        alg = self.header.get("alg")
        alg = "EdDSA" if alg == "Ed25519" else alg
        kid = self.header.get("kid")
        among = (
            f"{self.keys_name} only key"
            if len(keys) == 1
            else f"one of {self.keys_name} {len(keys)} keys"
        )
        count = f"{self.keys_name} {len(keys)} key{'s' if len(keys) != 1 else ''}"
        usable = self._usable()
        if "kid" in self.header and not isinstance(kid, str):
            return "fail", "kid is not a string"
        if isinstance(kid, str):
            named = [row for row in usable if row.kid == kid]
            if not named:
                broken = [row for row in self.rows if row.kid == kid and not row.usable]
                if broken:
                    return "fail", (
                        f"kid {kid} names a key that is published but cannot be used: "
                        f"{broken[0].reason}"
                    )
                listed = ", ".join(keys.key_ids) or "none with a kid"
                return "fail", (
                    f"kid {kid} is not among {count}: {listed} (a key rotation? the "
                    "middleware refetches the keys at once for a key id it has not asked for)"
                )
            fitting = [row for row in named if isinstance(alg, str) and row.fits(alg)]
            if not fitting:
                row = named[0]
                return "fail", f"kid {kid} is a {row.kty} {row.size} key, which cannot verify {alg}"
            row = fitting[0]
            return "pass", f"kid {kid} is {among} ({row.kty} {row.size})"
        fitting = [row for row in usable if isinstance(alg, str) and row.fits(alg)]
        if len(fitting) == 1:
            name = fitting[0].kid or f"#{fitting[0].index}"
            return "pass", f"no kid; the only one of {count} that fits {alg} is {name}"
        if not fitting:
            return "fail", f"no kid, and none of {count} fits {alg}"
        return "fail", f"no kid, and {len(fitting)} of {count} fit {alg}: the token must name one"

    def signature(self, error: MCPOAuth2Error | None) -> tuple[Status, str]:
        code = error_code(error) if error is not None else None
        kid = self.header.get("kid")
        which = f"key {kid}" if isinstance(kid, str) else "the selected key"
        if code == "invalid_signature":
            return "fail", (
                f"the signature does not verify with {which}: the token was changed, or signed "
                "by another key under the same kid (an issuer that restarted with new keys?)"
            )
        if code is not None and STAGE[CHECK_OF_CODE.get(code, "scopes")] < STAGE["signature"]:
            return "not_reached", ""
        return "pass", f"verified with {which} ({self.header.get('alg')})"

    def _claim_absent(self, name: str) -> tuple[Status, str] | None:
        if name not in self.claims:
            if name in self.validator.required_claims:
                return "fail", f"no {name} claim, and {name} is required"
            return "skip", f"no {name} claim"
        value = self.claims[name]
        if value is None:
            return "fail", f"{name} is null"
        if not _is_number(value):
            return "fail", f"{name} is not a number (NumericDate): {json.dumps(value)[:60]}"
        return None

    def exp(self) -> tuple[Status, str]:
        absent = self._claim_absent("exp")
        if absent is not None:
            return absent
        exp = float(self.claims["exp"])
        if self.now >= exp + self.leeway:
            return "fail", (
                f"expired {duration(self.now - exp)} ago, at {timestamp(exp)} "
                f"(leeway {self.leeway} s)"
            )
        if self.now >= exp:
            return "warn", (
                f"expired {duration(self.now - exp)} ago, still accepted for "
                f"{duration(exp + self.leeway - self.now)} within the leeway of {self.leeway} s"
            )
        return "pass", f"expires {relative(exp, self.now)}, at {timestamp(exp)}"

    def nbf(self) -> tuple[Status, str]:
        absent = self._claim_absent("nbf")
        if absent is not None:
            return absent
        nbf = float(self.claims["nbf"])
        if self.now + self.leeway < nbf:
            return "fail", (
                f"not valid until {timestamp(nbf)}, {relative(nbf, self.now)}, beyond the leeway "
                f"of {self.leeway} s: is this machine's clock (or the issuer's) wrong?"
            )
        if self.now < nbf:
            return "warn", f"valid {relative(nbf, self.now)}; accepted within the leeway"
        return "pass", f"valid since {timestamp(nbf)} ({relative(nbf, self.now)})"

    def iat(self) -> tuple[Status, str]:
        absent = self._claim_absent("iat")
        if absent is not None:
            return absent
        iat = float(self.claims["iat"])
        if iat > self.now + self.leeway:
            return "fail", (
                f"issued {duration(iat - self.now)} in the future ({timestamp(iat)}): the clocks "
                f"of this machine and the issuer differ by more than the leeway of {self.leeway} s"
            )
        if iat > self.now:
            return "warn", f"issued {duration(iat - self.now)} in the future, within the leeway"
        return "pass", f"issued {relative(iat, self.now)}, at {timestamp(iat)}"

    def required_and_types(self) -> tuple[Status, str]:
        required = [
            "iss",
            "aud",
            *(c for c in self.validator.required_claims if c not in ("iss", "aud")),
        ]
        missing = [name for name in required if name not in self.claims]
        problems = []
        if missing:
            problems.append(f"missing {', '.join(missing)}")
        checked = (*NUMERIC, *STRINGS, "aud", "scope", "scp", *required)
        nulls = [
            name
            for name in dict.fromkeys(checked)
            if name in self.claims and self.claims[name] is None
        ]
        if nulls:
            problems.append(f"null {', '.join(nulls)} (a claim is a value or absent, never null)")
        for name in NUMERIC:
            value = self.claims.get(name)
            if value is not None and not _is_number(value):
                problems.append(f"{name} is not a number")
        for name in STRINGS:
            value = self.claims.get(name)
            if value is not None and not isinstance(value, str):
                problems.append(f"{name} is not a string")
        aud = self.claims.get("aud")
        if aud is not None and not (
            isinstance(aud, str) or (isinstance(aud, list) and all(isinstance(a, str) for a in aud))
        ):
            problems.append("aud is not a string or an array of strings")
        scope_claim = self.claims.get("scope")
        if scope_claim is not None and not isinstance(scope_claim, str):
            problems.append("scope is not a space-separated string")
        scp = self.claims.get("scp")
        if scp is not None and not (
            isinstance(scp, str) or (isinstance(scp, list) and all(isinstance(s, str) for s in scp))
        ):
            problems.append("scp is not a string or an array of strings")
        if problems:
            return "fail", f"{'; '.join(problems)} (required: {', '.join(required)})"
        return "pass", f"required claims present ({', '.join(required)}); types are valid"

    def iss(self) -> tuple[Status, str]:
        iss = self.claims.get("iss")
        trusted = self.validator.issuers
        if not isinstance(iss, str):
            return "fail", f"no iss (string); this server trusts {_quoted(trusted)}"
        if iss in trusted:
            return "pass", f"{iss} is trusted"
        hint = ""
        near = [t for t in trusted if t.rstrip("/") == iss.rstrip("/")]
        if near:
            hint = (
                f" (they differ only in a trailing slash: the issuer identifier must match "
                f"exactly; if the issuer's metadata says {iss}, set MCP_OAUTH2_ISSUER={iss})"
            )
        return "fail", f"iss is {iss}; this server trusts {_quoted(trusted)}{hint}"

    def aud(self) -> tuple[Status, str]:
        aud = self.claims.get("aud")
        expected = self.validator.audiences
        wanted = " or ".join(expected)
        if aud is None:
            return "fail", f"no aud claim; this server expects {wanted}"
        values = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        shown = json.dumps(aud)[:300]
        matches = [v for v in values if isinstance(v, str) and v in expected]
        if matches:
            return "pass", f"aud is {shown}; includes {matches[0]}"
        near = [
            v
            for e in expected
            for v in values
            if isinstance(v, str) and e.rstrip("/") == v.rstrip("/")
        ]
        if near:
            return "fail", (
                f"aud is {shown}; this server expects {wanted}: they differ only in a trailing "
                "slash, and audiences must match exactly (set MCP_OAUTH2_AUDIENCE to the "
                "server's canonical URI, and have clients ask for exactly that resource)"
            )
        return "fail", (
            f"aud is {shown}; this server expects {wanted}: the token was issued for another "
            f"resource (the client should ask the authorization server with resource="
            f"{expected[0]})"
        )

    def scopes(self) -> tuple[Status, str]:
        granted: list[str] = []
        scope_claim = self.claims.get("scope")
        if isinstance(scope_claim, str):
            granted += [name for name in scope_claim.split(" ") if name]
        scp = self.claims.get("scp")
        if isinstance(scp, str):
            granted += [s for s in scp.split(" ") if s]
        elif isinstance(scp, list):
            granted += [s for s in scp if isinstance(s, str)]
        granted = list(dict.fromkeys(granted))
        required = self.config.required_scopes
        has = " ".join(granted) or "none"
        if not required:
            return "skip", f"no scopes required (MCP_OAUTH2_REQUIRED_SCOPES); the token has {has}"
        missing = AccessControl.from_config(self.config).missing_scopes(granted, required)
        if missing:
            return "fail", (
                f"the token has {has}; this server requires {' '.join(required)}; "
                f"missing {' '.join(missing)} (answered 403 insufficient_scope)"
            )
        return "pass", f"the token has {has}; required {' '.join(required)}"
