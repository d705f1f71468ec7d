"""The ``mcp-oauth2`` command, run as the installed console script against real loopback issuers.

Every test starts the real executable in a subprocess (standard output piped, so not a
terminal) and reads its text, its ``--json`` document and its exit code.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

import token_factory
from mcp_oauth2 import OAuth2Config, __version__
from mcp_oauth2._resource_metadata import ResourceMetadata
from mcp_oauth2.testing import AppServer, LocalIssuer, bind_loopback, url_of

AUDIENCE = "http://127.0.0.1:8000/mcp"
SCRIPT = Path(sys.executable).parent / ("mcp-oauth2.exe" if os.name == "nt" else "mcp-oauth2")
ANSI = "\x1b"
TIMEOUT = 60


def run(
    *args: str,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    stdin: str | bytes | None = None,
) -> subprocess.CompletedProcess[str]:
    """The console script with ``args``; no ``MCP_OAUTH2_*`` from this process leaks in."""
    environ = {k: v for k, v in os.environ.items() if not k.upper().startswith("MCP_OAUTH2_")}
    environ.update(env or {})
    data = stdin.decode("latin-1") if isinstance(stdin, bytes) else stdin
    return subprocess.run(  # noqa: S603 - our own console script
        [str(SCRIPT), *args],
        input=data,
        capture_output=True,
        text=True,
        cwd=cwd,
        env=environ,
        timeout=TIMEOUT,
        check=False,
    )


def run_json(*args: str, cwd: Path, **options: Any) -> tuple[int, dict[str, Any]]:
    done = run(*args, "--json", cwd=cwd, **options)
    assert done.stderr == "", done.stderr
    return done.returncode, json.loads(done.stdout)


def check_named(document: dict[str, Any], name: str) -> dict[str, str]:
    (check,) = [c for c in document["checks"] if c["name"] == name]
    return dict(check)


@pytest.fixture(scope="module")
def issuer() -> Iterator[LocalIssuer]:
    """A served issuer with an RS256 and an ES256 key, shared by the module (no test changes it)."""
    local = LocalIssuer(default_audience=AUDIENCE)
    with local.serve():
        yield local


def verify_args(issuer: LocalIssuer) -> list[str]:
    return ["--issuer", issuer.issuer, "--audience", AUDIENCE]


# -- the executable ------------------------------------------------------------------------------


def test_console_script_is_installed_and_reports_its_version(tmp_path: Path) -> None:
    assert SCRIPT.is_file(), f"the console script is not installed at {SCRIPT}"
    done = run("--version", cwd=tmp_path)
    assert done.returncode == 0
    assert done.stdout.strip() == f"mcp-oauth2 {__version__}"


def test_help_lists_the_commands_and_the_exit_codes(tmp_path: Path) -> None:
    done = run("--help", cwd=tmp_path)
    assert done.returncode == 0
    for word in ("inspect", "jwks", "check", "token", "exit codes:", "3  the issuer's"):
        assert word in done.stdout
    for command in ("inspect", "jwks", "check", "token"):
        sub = run(command, "--help", cwd=tmp_path)
        assert sub.returncode == 0 and "exit codes:" in sub.stdout, command


def test_module_form_runs_the_same_command(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mcp_oauth2.cli", "--version"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == 0 and done.stdout.strip() == f"mcp-oauth2 {__version__}"


# -- inspect ---------------------------------------------------------------------------------------


def test_inspect_valid_token_passes_every_check(issuer: LocalIssuer, tmp_path: Path) -> None:
    token = issuer.mint(scopes=["mcp:tools"])
    done = run("inspect", token, *verify_args(issuer), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "UNVERIFIED" in done.stdout
    assert "VALID: this server would accept the token (user-1; mcp:tools)" in done.stdout
    assert re.search(
        r'pass\s+signature\s+verified with the key of kid "rs256-1" \(RS256\)', done.stdout
    )
    assert "FAIL" not in done.stdout

    code, document = run_json("inspect", token, *verify_args(issuer), cwd=tmp_path)
    assert code == 0
    assert document["valid"] is True and document["verified"] is True
    assert document["verdict"] == {"status": 200, "code": "ok"}
    assert document["user"]["subject"] == "user-1"
    assert document["user"]["scopes"] == ["mcp:tools"]
    assert document["claims"]["iss"] == issuer.issuer
    assert document["header"]["kid"] == "rs256-1"
    assert {c["status"] for c in document["checks"]} <= {"pass", "skip"}
    assert [c["name"] for c in document["checks"]] == [
        "size", "format", "segments", "header", "alg", "extensions", "typ", "encoding", "route",
        "key", "signature", "payload", "dates", "exp", "nbf", "iat", "required", "iss", "aud",
        "id_token", "types", "scopes", "roles", "scope_rules",
    ]  # fmt: skip
    assert check_named(document, "key")["detail"] == 'kid "rs256-1" names a key that fits RS256'
    assert re.search(r"UTC, in (4 min \d+ s|5 min)$", check_named(document, "exp")["hint"])
    trail = document["keys"]["trail"]
    assert trail[0]["statuses"] == [200] and trail[0]["used"] is True
    assert trail[-1]["purpose"] == "jwks" and trail[-1]["statuses"] == [200]


def test_inspect_expired_token_says_how_long_ago(issuer: LocalIssuer, tmp_path: Path) -> None:
    token = issuer.mint_expired()
    done = run("inspect", token, *verify_args(issuer), cwd=tmp_path)
    assert done.returncode == 1
    assert re.search(
        r"FAIL\s+exp\s+token expired \d+ s ago \(.* UTC, 2 h( \d+ s)? ago\)", done.stdout
    ), done.stdout
    assert "INVALID: 401 invalid_token, code expired" in done.stdout

    code, document = run_json("inspect", token, *verify_args(issuer), cwd=tmp_path)
    assert code == 1 and document["valid"] is False
    assert document["verdict"]["code"] == "expired"
    assert document["verdict"]["error"] == "invalid_token"
    assert check_named(document, "signature")["status"] == "pass"  # verified before the claims
    assert check_named(document, "aud")["status"] == "not_reached"  # checked after exp


def test_inspect_wrong_audience_names_both(issuer: LocalIssuer, tmp_path: Path) -> None:
    token = issuer.mint_for_audience(["https://other.example/mcp", "https://third.example"])
    code, document = run_json("inspect", token, *verify_args(issuer), cwd=tmp_path)
    assert code == 1
    assert document["verdict"]["code"] == "invalid_audience"
    aud = check_named(document, "aud")
    assert aud["status"] == "fail"
    assert aud["detail"] == "audience does not include this server"
    assert aud["hint"].startswith(
        'aud is ["https://other.example/mcp", "https://third.example"]; '
        f"this server expects {AUDIENCE}"
    )


def test_inspect_audience_with_a_trailing_slash_says_so(
    issuer: LocalIssuer, tmp_path: Path
) -> None:
    token = issuer.mint_for_audience(AUDIENCE + "/")
    code, document = run_json("inspect", token, *verify_args(issuer), cwd=tmp_path)
    assert code == 1
    assert "differ only in a trailing slash" in check_named(document, "aud")["hint"]


def test_inspect_unknown_kid_lists_the_issuers_keys(issuer: LocalIssuer, tmp_path: Path) -> None:
    token = issuer.mint(kid="abc")
    done = run("inspect", token, *verify_args(issuer), cwd=tmp_path)
    assert done.returncode == 1
    assert "kid abc is not among the issuer's 2 keys: rs256-1, es256-1" in done.stdout
    _, document = run_json("inspect", token, *verify_args(issuer), cwd=tmp_path)
    assert document["verdict"]["code"] == "key_not_found"
    assert check_named(document, "key")["status"] == "fail"
    assert check_named(document, "key")["detail"] == "no trusted key has the token's key id"
    # Nothing after the key is checked.
    assert check_named(document, "exp")["status"] == "not_reached"
    assert check_named(document, "signature")["status"] == "not_reached"


def test_inspect_bad_signature(issuer: LocalIssuer, tmp_path: Path) -> None:
    token = issuer.mint_untrusted()
    code, document = run_json("inspect", token, *verify_args(issuer), cwd=tmp_path)
    assert code == 1
    assert document["verdict"]["code"] == "invalid_signature"
    assert check_named(document, "key")["status"] == "pass"
    signature = check_named(document, "signature")
    assert signature["status"] == "fail"
    assert signature["detail"] == "the token's signature is invalid"
    assert "signed by another key under the same kid" in signature["hint"]
    assert check_named(document, "iss")["status"] == "not_reached"


def test_inspect_other_issuer_with_trailing_slash(issuer: LocalIssuer, tmp_path: Path) -> None:
    token = issuer.mint(claims={"iss": issuer.issuer + "/"})
    code, document = run_json("inspect", token, *verify_args(issuer), cwd=tmp_path)
    assert code == 1
    assert document["verdict"]["code"] == "invalid_issuer"
    assert "differ only in a trailing slash" in check_named(document, "iss")["hint"]


def test_inspect_missing_sub_and_null_claims_follow_the_validator(
    issuer: LocalIssuer, tmp_path: Path
) -> None:
    """``required_claims`` are the validator's, not assumed by the command."""
    token = issuer.mint(subject=None)
    code, document = run_json("inspect", token, *verify_args(issuer), cwd=tmp_path)
    required = check_named(document, "required")
    if required["status"] == "fail":
        assert (code, required["detail"]) == (1, "token lacks the required claim 'sub'")
    else:
        assert code == 0 and "sub" not in required["detail"]

    # LocalIssuer drops None claims: sign a JSON null with the suite's PyJWT factory.
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps(token_factory.jwks_for(["rsa-1"])))
    now = int(time.time())
    token = token_factory.mint(
        "RS256", token_factory.make_claims(azp=None, iat=now, nbf=now, exp=now + 600), key="rsa-1"
    )
    code, document = run_json(
        "inspect", token, "--issuer", token_factory.ISSUER, "--audience", token_factory.AUDIENCE,
        "--jwks-file", str(keys), cwd=tmp_path,
    )  # fmt: skip
    assert code == 1 and document["verdict"]["code"] == "invalid_claim"
    assert check_named(document, "types") == {
        "name": "types",
        "status": "fail",
        "detail": "invalid claim: 'azp' must be a string",
        "hint": None,
    }

    token = issuer.mint(claims={"jti": 5})
    code, document = run_json("inspect", token, *verify_args(issuer), cwd=tmp_path)
    assert code == 1 and document["verdict"]["code"] == "invalid_claim"
    assert check_named(document, "types")["detail"] == "invalid claim: 'jti' must be a string"


def test_inspect_with_several_issuers_fetches_only_the_tokens(
    issuer: LocalIssuer, tmp_path: Path
) -> None:
    """As in the Authenticator, the token's iss picks the key source; an untrusted one is
    refused before any key is fetched."""
    gone = bind_loopback()
    unreachable = url_of(gone)
    gone.close()
    issuers = ["--issuer", unreachable, "--issuer", issuer.issuer, "--audience", AUDIENCE]
    code, document = run_json("inspect", issuer.mint(), *issuers, cwd=tmp_path)
    assert code == 0, document["checks"]
    assert document["keys"]["issuer"] == issuer.issuer

    token = issuer.mint(claims={"iss": "https://elsewhere.example"})
    code, document = run_json("inspect", token, *issuers, cwd=tmp_path)
    assert code == 1
    assert document["verdict"]["code"] == "invalid_issuer"
    assert document["keys"] is None
    route = check_named(document, "route")
    assert (route["status"], route["detail"]) == ("fail", document["verdict"]["description"])
    assert check_named(document, "signature")["status"] == "not_reached"


def test_inspect_required_scope_is_the_middlewares_403(issuer: LocalIssuer, tmp_path: Path) -> None:
    token = issuer.mint(scopes=["mcp:tools"])
    args = [*verify_args(issuer), "--require-scope", "mcp:admin"]
    code, document = run_json("inspect", token, *args, cwd=tmp_path)
    assert code == 1
    assert document["verdict"]["status"] == 403
    assert document["verdict"]["code"] == "insufficient_scope"
    rules = check_named(document, "scope_rules")
    assert rules["detail"] == "token lacks the required scope(s): mcp:admin"
    assert "MCP_OAUTH2_REQUIRED_SCOPES" in rules["hint"]


def test_inspect_clock_skew_beyond_the_leeway(issuer: LocalIssuer, tmp_path: Path) -> None:
    future = int(time.time()) + 600
    token = issuer.mint(issued_at=future)
    code, document = run_json("inspect", token, *verify_args(issuer), cwd=tmp_path)
    assert code == 1
    assert document["verdict"]["code"] == "not_yet_valid"
    assert "is this machine's clock" in check_named(document, "nbf")["hint"]
    assert check_named(document, "iat")["status"] == "not_reached"  # checked after nbf
    code, document = run_json(
        "inspect", token, *verify_args(issuer), "--leeway", "900", cwd=tmp_path
    )
    assert code == 0, document["checks"]
    nbf = check_named(document, "nbf")
    assert nbf["status"] == "pass"
    assert re.fullmatch(r"valid in \d+ s, within the leeway of 900 s", nbf["detail"])


@pytest.mark.parametrize(
    ("token", "problem"),
    [
        ("not-a-token", "1 segment(s)"),
        ("a.b", "2 segment(s)"),
        ("a.b.c.d.e", "encrypted token (JWE)"),
        ("bm90IGpzb24.e30.c2ln", "header"),
    ],
)
def test_inspect_malformed_input(
    issuer: LocalIssuer, tmp_path: Path, token: str, problem: str
) -> None:
    decoded = run("inspect", token, cwd=tmp_path)
    assert decoded.returncode == 1
    assert problem in decoded.stdout
    code, document = run_json("inspect", token, *verify_args(issuer), cwd=tmp_path)
    assert code == 1
    assert document["verdict"]["code"] == "malformed"
    (failed,) = [check for check in document["checks"] if check["status"] == "fail"]
    assert failed["name"] in ("segments", "header")
    assert failed["detail"] == document["verdict"]["description"]


def test_inspect_payload_that_is_not_json(issuer: LocalIssuer, tmp_path: Path) -> None:
    """The validator parses the payload only after the signature: that verdict comes first."""
    token = "eyJhbGciOiJSUzI1NiJ9.bm90IGpzb24.c2ln"
    decoded = run("inspect", token, cwd=tmp_path)
    assert decoded.returncode == 1
    assert "payload: not base64url-encoded JSON object" in decoded.stdout
    code, document = run_json("inspect", token, *verify_args(issuer), cwd=tmp_path)
    assert code == 1
    assert document["verdict"]["code"] == "invalid_signature"
    assert check_named(document, "payload")["status"] == "not_reached"
    assert document["decode_problem"] == "payload: not base64url-encoded JSON object"


def test_inspect_without_configuration_only_decodes(issuer: LocalIssuer, tmp_path: Path) -> None:
    token = issuer.mint()
    done = run("inspect", token, cwd=tmp_path)
    assert done.returncode == 0
    assert "UNVERIFIED" in done.stdout and "Not verified" in done.stdout
    code, document = run_json("inspect", token, cwd=tmp_path)
    assert code == 0 and document["verified"] is False and document["valid"] is None
    assert document["claims"]["sub"] == "user-1"


def test_inspect_reads_standard_input_and_the_environment(
    issuer: LocalIssuer, tmp_path: Path
) -> None:
    token = issuer.mint()
    env = {"MCP_OAUTH2_ISSUER": issuer.issuer, "MCP_OAUTH2_AUDIENCE": AUDIENCE}
    done = run("inspect", "-", cwd=tmp_path, env=env, stdin=f"Bearer {token}\n")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "VALID" in done.stdout


def test_inspect_keys_unavailable_is_exit_code_3(tmp_path: Path) -> None:
    closed = LocalIssuer(default_audience=AUDIENCE)
    with closed.serve():
        token = closed.mint()
    # The issuer has stopped listening: nothing answers on its port.
    code, document = run_json(
        "inspect", token, "--issuer", closed.issuer, "--audience", AUDIENCE, cwd=tmp_path
    )
    assert code == 3
    assert document["verified"] is False
    assert document["verdict"]["code"] == "discovery_failed"
    assert check_named(document, "signature")["status"] == "not_reached"
    assert all(attempt["statuses"] == [] for attempt in document["keys"]["trail"])


def introspection_env(issuer: LocalIssuer, token_format: str = "auto") -> dict[str, str]:  # noqa: S107
    """The configuration of a server introspecting at ``issuer`` (the secret from the
    environment only, as the command takes it)."""
    return {
        "MCP_OAUTH2_ISSUER": issuer.issuer,
        "MCP_OAUTH2_AUDIENCE": AUDIENCE,
        "MCP_OAUTH2_TOKEN_FORMAT": token_format,
        "MCP_OAUTH2_CLIENT_ID": issuer.introspection_client_id,
        "MCP_OAUTH2_CLIENT_SECRET": issuer.introspection_client_secret,
    }


def test_inspect_explains_an_introspection_result(issuer: LocalIssuer, tmp_path: Path) -> None:
    token = issuer.mint_opaque(subject="olive", scopes=["read"])
    code, document = run_json("inspect", token, cwd=tmp_path, env=introspection_env(issuer))
    assert code == 0
    assert document["kind"] == "opaque"
    assert document["introspection"]["active"] is True
    assert document["user"]["subject"] == "olive"
    assert {c["name"]: c["status"] for c in document["checks"]} == {
        "active": "pass",
        "token_use": "skip",
        "token_type": "pass",
        "payload": "pass",
        "dates": "pass",
        "exp": "pass",
        "nbf": "pass",
        "iat": "pass",
        "required": "pass",
        "iss": "pass",
        "aud": "pass",
        "id_token": "skip",
        "types": "pass",
        "scopes": "pass",
        "roles": "pass",
        "scope_rules": "pass",
    }
    # JWTs are still inspected as JWTs under auto.
    code, jwt_document = run_json(
        "inspect", issuer.mint(), cwd=tmp_path, env=introspection_env(issuer)
    )
    assert (code, jwt_document.get("kind")) == (0, None)


def test_inspect_an_inactive_or_audience_less_answer(issuer: LocalIssuer, tmp_path: Path) -> None:
    env = introspection_env(issuer, "opaque")
    code, document = run_json("inspect", "opq_never-issued", cwd=tmp_path, env=env)
    assert code == 1
    assert document["verdict"]["code"] == "inactive_token"
    assert check_named(document, "active")["status"] == "fail"
    assert check_named(document, "aud")["status"] == "not_reached"
    done = run("inspect", issuer.mint_opaque(claims={"aud": None}), cwd=tmp_path, env=env)
    assert done.returncode == 1
    assert "code missing_claim" in done.stdout
    assert "INTROSPECTION_REQUIRE_AUDIENCE" in done.stdout
    assert issuer.introspection_client_secret not in done.stdout + done.stderr


def test_inspect_introspection_unavailable_is_exit_code_3(tmp_path: Path) -> None:
    closed = LocalIssuer(default_audience=AUDIENCE)
    with closed.serve():
        token = closed.mint_opaque()
    code, document = run_json("inspect", token, cwd=tmp_path, env=introspection_env(closed))
    assert code == 3
    assert document["verdict"]["code"] == "introspection_unavailable"
    assert closed.introspection_client_secret not in json.dumps(document)


def test_inspect_never_shows_what_an_endpoint_echoes(issuer: LocalIssuer, tmp_path: Path) -> None:
    """An endpoint that echoes the request would show the token and the client's credentials:
    only the RFC 7662 members are shown, and the names of the others."""
    issuer.introspection_fault = "echo"
    token = issuer.mint_opaque(subject="olive")
    env = introspection_env(issuer, "opaque")
    code, document = run_json("inspect", token, cwd=tmp_path, env=env)
    done = run("inspect", token, cwd=tmp_path, env=env)
    issuer.introspection_fault = None
    assert code == 0 and done.returncode == 0
    secret = issuer.introspection_client_secret
    for shown in (json.dumps(document), done.stdout + done.stderr):
        assert secret not in shown
        assert "Basic " not in shown
        assert token not in shown
    assert document["introspection"]["sub"] == "olive"
    assert document["introspection"]["(other members, values not shown)"] == [
        "authorization",
        "token",
        "token_type_hint",
    ]


@pytest.mark.parametrize("fault", ["html", "invalid_json", "nested_json"])
def test_inspect_an_unusable_answer_is_exit_code_3(
    issuer: LocalIssuer, tmp_path: Path, fault: str
) -> None:
    issuer.introspection_fault = fault
    try:
        code, document = run_json(
            "inspect", issuer.mint_opaque(), cwd=tmp_path, env=introspection_env(issuer, "opaque")
        )
    finally:
        issuer.introspection_fault = None
    assert code == 3
    assert document["verdict"]["code"] == "introspection_unavailable"
    assert "Sign in" not in json.dumps(document)  # the answer itself is never printed


# -- jwks ------------------------------------------------------------------------------------------


def _without_oauth_metadata(app: ASGIApp) -> ASGIApp:
    """Answers 404 at the RFC 8414 location, so discovery must go on to OpenID Connect."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(
            "/.well-known/oauth-authorization-server"
        ):
            await PlainTextResponse("not found", status_code=404)(scope, receive, send)
            return
        await app(scope, receive, send)

    return wrapped


def test_jwks_trail_goes_past_a_404(tmp_path: Path) -> None:
    sock = bind_loopback()
    local = LocalIssuer(url_of(sock), default_audience=AUDIENCE, cache_max_age=30)
    with AppServer(_without_oauth_metadata(local.app), sock, lifespan="off"):
        done = run("jwks", local.issuer, cwd=tmp_path)
        code, document = run_json("jwks", local.issuer, cwd=tmp_path)
    assert done.returncode == 0, done.stdout
    assert re.search(r"GET \S+/\.well-known/oauth-authorization-server\s+404", done.stdout)
    assert re.search(r"GET \S+/\.well-known/openid-configuration\s+200\s+used", done.stdout)
    assert code == 0
    trail = document["trail"]
    assert [a["purpose"] for a in trail] == ["metadata", "metadata", "jwks"]
    assert trail[0]["statuses"] == [404] and trail[0]["problem"] == "HTTP 404"
    assert trail[1]["statuses"] == [200] and trail[1]["used"] is True
    assert document["jwks_uri"] == local.issuer + "/jwks.json"
    assert [(k["kid"], k["kty"], k["alg"], k["size"], k["usable"]) for k in document["keys"]] == [
        ("rs256-1", "RSA", "RS256", "2048-bit", True),
        ("es256-1", "EC", "ES256", "P-256", True),
    ]
    cache = document["cache"]
    assert cache["cache_control"] == "max-age=30"
    assert cache["fresh_for"] == 60  # raised to jwks_min_max_age
    assert "raised to jwks_min_max_age" in cache["explanation"]


def test_jwks_accepts_a_jwks_url(issuer: LocalIssuer, tmp_path: Path) -> None:
    url = issuer.base_url + issuer.jwks_path
    code, document = run_json("jwks", url, cwd=tmp_path)
    assert code == 0
    assert document["fetched_as_jwks"] is True
    assert document["trail"][-1] == {
        "url": url,
        "purpose": "jwks",
        "tried": True,
        "statuses": [200],
        "problem": None,
        "used": True,
    }
    assert document["usable_keys"] == 2


def test_jwks_unusable_keys_say_why(tmp_path: Path) -> None:
    local = LocalIssuer(default_audience=AUDIENCE)
    with local.serve():
        local.fault = "no_usable_keys"
        done = run("jwks", local.issuer, cwd=tmp_path)
        code, document = run_json("jwks", local.issuer, cwd=tmp_path)
    assert done.returncode == 3
    assert "FAILED (jwks_invalid)" in done.stdout
    assert code == 3
    assert document["error"]["code"] == "jwks_invalid"
    rows = document["keys"]
    assert len(rows) == 2 and not any(row["usable"] for row in rows)
    assert rows[0]["kty"] == "oct" and rows[0]["reason"]
    assert rows[1]["size"] == "1024-bit" and "2048" in rows[1]["reason"]


def test_jwks_unreachable_is_exit_code_3(tmp_path: Path) -> None:
    sock = bind_loopback()
    url = url_of(sock)
    sock.close()  # nothing listens there now
    code, document = run_json("jwks", url, "--timeout", "2", cwd=tmp_path)
    assert code == 3
    assert document["error"]["code"] in ("discovery_failed", "jwks_unavailable")
    assert all(a["problem"] and "ConnectError" in a["problem"] for a in document["trail"])


# -- check -----------------------------------------------------------------------------------------


def test_check_passes_and_prints_the_resource_metadata(issuer: LocalIssuer, tmp_path: Path) -> None:
    env = {
        "MCP_OAUTH2_ISSUER": issuer.issuer,
        "MCP_OAUTH2_AUDIENCE": AUDIENCE,
        "MCP_OAUTH2_REQUIRED_SCOPES": "mcp:tools",
    }
    done = run("check", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stdout
    assert "OK: the configuration, the issuer and its keys are usable" in done.stdout
    code, document = run_json("check", cwd=tmp_path, env=env)
    assert code == 0 and document["ok"] is True and document["problems"] == []
    expected = ResourceMetadata(
        OAuth2Config(issuer=issuer.issuer, audience=AUDIENCE, required_scopes=["mcp:tools"])
    )
    assert document["resource_metadata"] == {"url": expected.url, "document": expected.document}
    assert document["sources"][0]["usable_keys"] == 2


def test_check_asks_the_introspection_endpoint(issuer: LocalIssuer, tmp_path: Path) -> None:
    code, document = run_json("check", cwd=tmp_path, env=introspection_env(issuer, "opaque"))
    assert code == 0, document["problems"]
    assert document["introspection"] == {"ok": True, "problems": []}
    assert document["sources"] == []  # no keys are fetched when every token is introspected
    assert issuer.introspection_client_secret not in json.dumps(document)
    code, document = run_json("check", cwd=tmp_path, env=introspection_env(issuer, "auto"))
    assert code == 0 and document["sources"][0]["usable_keys"] == 2
    wrong = {**introspection_env(issuer, "opaque"), "MCP_OAUTH2_CLIENT_SECRET": "x"}
    done = run("check", cwd=tmp_path, env=wrong)
    assert done.returncode == 3
    assert "introspection_unavailable" in done.stdout and "HTTP 401" in done.stdout


def test_check_reads_an_env_file_only_when_named(issuer: LocalIssuer, tmp_path: Path) -> None:
    """Like the server, ``check`` reads no ``.env`` of its own accord: it says that ``./.env``
    is not read (naming how to read it); ``--env-file .env`` reads it, as ``uvicorn
    --env-file`` does."""
    (tmp_path / ".env").write_text(
        f"DATABASE_URL=postgres://elsewhere\nMCP_OAUTH2_ISSUER={issuer.issuer}\n"
        f"MCP_OAUTH2_AUDIENCE={AUDIENCE}\nMCP_OAUTH2_REQUIRED_SCOPE=mcp:tools\n"
    )
    code, document = run_json("check", cwd=tmp_path)
    assert code == 1 and document["env_file"] is None
    assert document["problems"][0].startswith("issuer (MCP_OAUTH2_ISSUER): required")
    assert document["warnings"][0] == (
        ".env sets MCP_OAUTH2_AUDIENCE, MCP_OAUTH2_ISSUER, MCP_OAUTH2_REQUIRED_SCOPE but is not "
        "read: the server reads the process environment only; check it with `mcp-oauth2 check "
        "--env-file .env` and start the server with `uvicorn --env-file .env ...`"
    )
    code, document = run_json("check", "--env-file", ".env", cwd=tmp_path)
    assert code == 0
    assert document["env_file"] == ".env"
    assert document["warnings"] == [
        "MCP_OAUTH2_REQUIRED_SCOPE is not a setting of mcp-oauth2 and is ignored; "
        "did you mean MCP_OAUTH2_REQUIRED_SCOPES?"
    ]
    # The environment wins over the file.
    code, document = run_json(
        "check", "--env-file", ".env", cwd=tmp_path, env={"MCP_OAUTH2_ISSUER": issuer.issuer + "/"}
    )
    assert code == 1
    # A .env without MCP_OAUTH2_* lines is none of the command's business.
    (tmp_path / ".env").write_text("DATABASE_URL=postgres://elsewhere\n")
    env = {"MCP_OAUTH2_ISSUER": issuer.issuer, "MCP_OAUTH2_AUDIENCE": AUDIENCE}
    code, document = run_json("check", cwd=tmp_path, env=env)
    assert code == 0 and document["warnings"] == []


def test_check_fails_on_an_issuer_with_a_trailing_slash(
    issuer: LocalIssuer, tmp_path: Path
) -> None:
    env = {"MCP_OAUTH2_ISSUER": issuer.issuer + "/", "MCP_OAUTH2_AUDIENCE": AUDIENCE}
    done = run("check", cwd=tmp_path, env=env)
    assert done.returncode == 1
    assert f"set MCP_OAUTH2_ISSUER={issuer.issuer}" in done.stdout
    code, document = run_json("check", cwd=tmp_path, env=env)
    assert code == 1 and document["ok"] is False
    assert document["sources"][0]["error"]["code"] == "issuer_mismatch"
    assert document["problems"][0].startswith("issuer_mismatch: MCP_OAUTH2_ISSUER is")


def test_check_configuration_errors_one_line_each(tmp_path: Path) -> None:
    env = {
        "MCP_OAUTH2_ISSUER": "http://auth.example.com",
        "MCP_OAUTH2_LEEWAY": "soon",
    }
    done = run("check", cwd=tmp_path, env=env)
    assert done.returncode == 1
    assert "Traceback" not in done.stdout + done.stderr
    lines = [line.strip() for line in done.stdout.splitlines()]
    assert any(
        line.startswith("issuer (MCP_OAUTH2_ISSUER): issuer uses plain http:// for a non-loopback")
        for line in lines
    )
    assert (
        "audience (MCP_OAUTH2_AUDIENCE): required; e.g. "
        "MCP_OAUTH2_AUDIENCE=https://mcp.example.com/mcp" in done.stdout
    )
    assert any(line.startswith("leeway (MCP_OAUTH2_LEEWAY): ") for line in lines)
    code, document = run_json("check", cwd=tmp_path, env=env)
    assert code == 1 and len(document["problems"]) == 3


def test_check_no_usable_keys_is_exit_code_3(tmp_path: Path) -> None:
    local = LocalIssuer(default_audience=AUDIENCE)
    with local.serve():
        local.fault = "no_usable_keys"
        env = {"MCP_OAUTH2_ISSUER": local.issuer, "MCP_OAUTH2_AUDIENCE": AUDIENCE}
        done = run("check", cwd=tmp_path, env=env)
    assert done.returncode == 3
    assert "jwks_invalid" in done.stdout
    assert re.search(r"rsa-1024\s+RSA\s+RS256\s+1024-bit\s+sig\s+no: RSA modulus", done.stdout)
    assert "FAILED: 1 problem; requests would be refused at run time" in done.stdout


def test_check_unreachable_issuer_is_exit_code_3(tmp_path: Path) -> None:
    sock = bind_loopback()
    url = url_of(sock)
    sock.close()
    env = {
        "MCP_OAUTH2_ISSUER": url,
        "MCP_OAUTH2_AUDIENCE": AUDIENCE,
    }
    code, document = run_json("check", cwd=tmp_path, env=env)
    assert code == 3
    assert document["sources"][0]["error"]["code"] == "discovery_failed"


# -- token -----------------------------------------------------------------------------------------


def test_token_round_trip_with_a_key_file(tmp_path: Path) -> None:
    keys = tmp_path / "keys.json"
    done = run(
        "token", "--audience", AUDIENCE, "--scope", "mcp:tools mcp:read", "--alg", "ES256",
        "--lifetime", "15m", "--jwks-out", str(keys), cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    assert token.count(".") == 2 and "\n" not in token  # stdout is the token alone
    assert "Token (from a local test issuer" in done.stderr
    code, document = run_json(
        "inspect", token, "--issuer", "https://local-issuer.invalid", "--audience", AUDIENCE,
        "--jwks-file", str(keys), "--require-scope", "mcp:read", cwd=tmp_path,
    )  # fmt: skip
    assert code == 0, document["checks"]
    assert document["header"]["alg"] == "ES256"
    assert document["user"]["scopes"] == ["mcp:read", "mcp:tools"]
    assert 14 * 60 < document["claims"]["exp"] - document["claims"]["iat"] <= 15 * 60


def test_token_serve_round_trip(tmp_path: Path) -> None:
    environ = {k: v for k, v in os.environ.items() if not k.upper().startswith("MCP_OAUTH2_")}
    with subprocess.Popen(  # noqa: S603
        [str(SCRIPT), "token", "--serve", "--json", "--audience", AUDIENCE, "--sub", "alice"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=environ,
    ) as server:
        try:
            assert server.stdout is not None
            first = json.loads(server.stdout.readline())
            assert first["serving"] is True and first["subject"] == "alice"
            assert re.fullmatch(r"http://127\.0\.0\.1:[0-9]+", first["issuer"])
            code, document = run_json(
                "inspect", first["token"], "--issuer", first["issuer"], "--audience", AUDIENCE,
                cwd=tmp_path,
            )  # fmt: skip
            assert code == 0, document["checks"]
            assert document["user"]["subject"] == "alice"
        finally:
            server.send_signal(signal.SIGINT)
            assert server.wait(timeout=TIMEOUT) == 0
            assert server.stderr is not None
            assert "Traceback" not in server.stderr.read()


def test_token_serve_on_a_busy_port_is_a_usage_error(tmp_path: Path) -> None:
    busy = bind_loopback()
    try:
        port = str(busy.getsockname()[1])
        done = run("token", "--audience", AUDIENCE, "--serve", "--port", port, cwd=tmp_path)
    finally:
        busy.close()
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and f"--port {port}: cannot listen there" in done.stderr


def test_token_without_the_testing_extra_says_how_to_install_it(tmp_path: Path) -> None:
    # The testing extra is missing when cryptography cannot be imported.
    program = (
        "import sys; sys.modules['cryptography'] = None\n"
        "from mcp_oauth2.cli import main\n"
        f"sys.exit(main(['token', '--audience', {AUDIENCE!r}]))\n"
    )
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-c", program],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert "pip install 'mcp-oauth2[testing]'" in done.stderr


# -- how the command ends -------------------------------------------------------------------------


def test_a_closed_pipe_ends_the_command_quietly(tmp_path: Path) -> None:
    """The reader went away before anything was written (`mcp-oauth2 ... | head` after head
    exited): exit code 1, and no traceback or "Exception ignored" on standard error."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(  # noqa: S603 - our own console script
            [str(SCRIPT), "token", "--audience", AUDIENCE, "--json"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
            timeout=TIMEOUT,
            check=False,
        )
    finally:
        os.close(write_end)
    assert done.returncode == 1
    assert done.stderr == ""


def test_an_interrupt_ends_the_command_with_130(tmp_path: Path) -> None:
    local = LocalIssuer(default_audience=AUDIENCE)
    with local.serve():
        local.fault = "hang"  # the key request never ends while the issuer serves
        with subprocess.Popen(  # noqa: S603 - our own console script
            [str(SCRIPT), "jwks", local.issuer, "--timeout", str(TIMEOUT)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
        ) as command:
            deadline = time.monotonic() + TIMEOUT
            while local.jwks_requests == 0 and command.poll() is None:
                assert time.monotonic() < deadline, "the command never asked for the keys"
                time.sleep(0.02)
            command.send_signal(signal.SIGINT)
            out, err = command.communicate(timeout=TIMEOUT)
    assert command.returncode == 130, out + err
    assert err == "mcp-oauth2 jwks: interrupted\n"


# -- usage errors and output modes ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "fix"),
    [
        ([], "give a command: inspect, jwks, check or token"),
        (["frobnicate"], "invalid choice"),
        (["inspect"], "the following arguments are required: TOKEN"),
        (["inspect", "   "], "pass the token, or '-'"),
        (["inspect", "a\udcff.b.c"], "not UTF-8 text"),
        (["inspect", "a.b.c", "--leeway", "-5"], "whole number of seconds from 0 to 3600"),
        (["inspect", "a.b.c", "--algorithm", "HS256"], "invalid choice"),
        (["inspect", "a.b.c", "--issuer", "https://a.example"], "MCP_OAUTH2_AUDIENCE"),
        (
            ["inspect", "a.b.c", "--issuer", "http://a.example", "--audience", AUDIENCE],
            "--issuer: issuer uses plain http://",
        ),
        (["inspect", "a.b.c", "--env-file", "missing.env"], "is not a file"),
        (["jwks", "ftp://example.com"], "must be an absolute https:// URL"),
        (["jwks", "http://auth.example.com"], "use https://"),
        (["jwks", "https://a.example", "--timeout", "zero"], "number of seconds"),
        (["check", "--env-file", "missing.env"], "is not a file"),
        (["token"], "give --audience URL"),
        (["token", "--audience", AUDIENCE, "--lifetime", "soon"], "use seconds (3600) or 90s"),
        (["token", "--audience", AUDIENCE, "--port", "80"], "--port works with --serve only"),
        (["token", "--audience", AUDIENCE, "--alg", "none"], "invalid choice"),
        (["token", "--audience", AUDIENCE, "--issuer", "issuer"], "must be an absolute https://"),
        (["token", "--audience", AUDIENCE, "--serve", "--issuer", AUDIENCE], "--port"),
        (["--colour"], "unrecognized arguments"),
    ],
)
def test_a_bad_argument_is_one_line_naming_the_fix(
    tmp_path: Path, args: list[str], fix: str
) -> None:
    done = run(*args, cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert fix in done.stderr
    assert done.stderr.startswith("mcp-oauth2")


def test_binary_standard_input_is_a_usage_error(tmp_path: Path) -> None:
    done = subprocess.run(  # noqa: S603
        [str(SCRIPT), "inspect", "-"],
        input=b"\xff\xfe\x00garbage",
        capture_output=True,
        cwd=tmp_path,
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.decode().count("\n") == 1
    assert b"not UTF-8" in done.stderr


def test_piped_output_has_no_escape_sequences(issuer: LocalIssuer, tmp_path: Path) -> None:
    env = {"MCP_OAUTH2_ISSUER": issuer.issuer, "MCP_OAUTH2_AUDIENCE": AUDIENCE}
    # A hostile token: terminal control sequences in its claims and header.
    token = issuer.mint(
        subject="\x1b]0;owned\x07\x1b[31mred",
        headers={"x": "\x1b[2J"},
        claims={"aud": ["\x1b[1m", AUDIENCE]},
    )
    outputs = [
        run("inspect", token, cwd=tmp_path, env=env),
        run("inspect", token, cwd=tmp_path),
        run("jwks", issuer.issuer, cwd=tmp_path),
        run("check", cwd=tmp_path, env=env),
        run("token", "--audience", AUDIENCE, cwd=tmp_path),
    ]
    for done in outputs:
        assert done.returncode == 0, done.stdout + done.stderr
        assert ANSI not in done.stdout and ANSI not in done.stderr
    assert "\\u001b]0;owned" in outputs[0].stdout  # shown, escaped


def test_color_always_uses_rich_and_never_lets_a_token_drive_the_terminal(
    issuer: LocalIssuer, tmp_path: Path
) -> None:
    pytest.importorskip("rich")
    token = issuer.mint(subject="\x1b]0;owned\x07", claims={"jti": "\x1b[2J"})
    env = {"MCP_OAUTH2_ISSUER": issuer.issuer, "MCP_OAUTH2_AUDIENCE": AUDIENCE}
    done = run("inspect", token, "--color", "always", cwd=tmp_path, env=env)
    assert done.returncode == 0
    assert "\x1b[" in done.stdout  # rich's colours
    assert "\x1b]0;" not in done.stdout and "\x1b[2J" not in done.stdout
    assert "\x07" not in done.stdout


def test_without_rich_the_output_is_plain_text(issuer: LocalIssuer, tmp_path: Path) -> None:
    program = (
        "import sys; sys.modules['rich'] = None\n"
        "from mcp_oauth2.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-c", program, "jwks", issuer.issuer, "--color", "always"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert ANSI not in done.stdout
    assert re.search(r"rs256-1\s+RSA\s+RS256\s+2048-bit\s+sig\s+yes", done.stdout)


def test_json_members_are_documented(issuer: LocalIssuer, tmp_path: Path) -> None:
    """Every member of every ``--json`` document is named on the documentation's CLI page."""
    page = (Path(__file__).resolve().parent.parent / "docs" / "cli.md").read_text()
    env = {"MCP_OAUTH2_ISSUER": issuer.issuer, "MCP_OAUTH2_AUDIENCE": AUDIENCE}
    documents = [
        run_json("inspect", issuer.mint(), cwd=tmp_path, env=env)[1],
        run_json("jwks", issuer.issuer, cwd=tmp_path)[1],
        run_json("check", cwd=tmp_path, env=env)[1],
        run_json("token", "--audience", AUDIENCE, cwd=tmp_path)[1],
    ]
    inspected, listed, checked, _ = documents
    nested = [
        inspected["keys"],
        inspected["checks"][0],
        inspected["verdict"],
        inspected["user"],
        listed["trail"][0],
        listed["keys"][0],
        listed["cache"],
        checked["resource_metadata"],
    ]
    for document in [*documents, *nested]:
        for member in document:
            assert f"`{member}`" in page or f'"{member}"' in page, member
