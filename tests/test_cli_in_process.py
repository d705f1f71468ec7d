"""The ``mcp-oauth2`` command's less common outcomes, run in this process through ``main()``
against real loopback servers: what ``check`` says about a configuration that validates but would
not work as meant, discovery documents ``jwks`` cannot use, unreadable files and bad option
values, and the words of its time helpers.

Running ``main()`` here costs no interpreter start per case; tests/test_cli.py runs the console
script itself (and how it ends on an interrupt or a closed pipe).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mcp_oauth2.cli import main
from mcp_oauth2.cli._human import duration, relative, timestamp
from mcp_oauth2.testing import AppServer, LocalIssuer, bind_loopback, url_of

AUDIENCE = "http://127.0.0.1:8000/mcp"
METADATA_PATHS = ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration")


@pytest.fixture(autouse=True)
def environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No ``MCP_OAUTH2_*`` variable from outside, none left behind (``--env-file`` sets them in
    ``os.environ``), and a working directory without a ``.env``."""
    saved = dict(os.environ)
    for name in [name for name in os.environ if name.upper().startswith("MCP_OAUTH2_")]:
        del os.environ[name]
    monkeypatch.chdir(tmp_path)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="module")
def issuer() -> Iterator[LocalIssuer]:
    """A served issuer with an RS256 and an ES256 key (no test changes it)."""
    local = LocalIssuer(default_audience=AUDIENCE)
    with local.serve():
        yield local


def run_json(
    capsys: pytest.CaptureFixture[str], *args: str, env: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    """``main([*args, "--json"])`` with ``env`` added to the environment: the exit code and the
    document (nothing may go to standard error)."""
    os.environ.update(env or {})
    code = main([*args, "--json"])
    out, err = capsys.readouterr()
    assert err == "", err
    return code, json.loads(out)


def run_text(
    capsys: pytest.CaptureFixture[str], *args: str, env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    os.environ.update(env or {})
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@contextmanager
def serving(routes: list[Route]) -> Iterator[str]:
    """A Starlette app of ``routes`` on loopback; its base URL, known before it starts."""
    sock = bind_loopback()
    with AppServer(Starlette(routes=routes), sock):
        yield url_of(sock)


def metadata_route(document: Callable[[], dict[str, Any]]) -> list[Route]:
    async def metadata(request: Request) -> JSONResponse:
        return JSONResponse(document())

    return [Route(path, metadata) for path in METADATA_PATHS]


# -- check: configurations that validate but would not work as meant -------------------------------


def test_check_reads_the_keys_at_the_configured_jwks_uri(
    capsys: pytest.CaptureFixture[str], issuer: LocalIssuer
) -> None:
    jwks_uri = issuer.metadata()["jwks_uri"]
    before = sum(issuer.requests[path] for path in METADATA_PATHS)
    env = {"MCP_OAUTH2_ISSUER": issuer.issuer, "MCP_OAUTH2_AUDIENCE": AUDIENCE}
    code, document = run_json(capsys, "check", env={**env, "MCP_OAUTH2_JWKS_URI": jwks_uri})
    assert code == 0, document["problems"]
    assert [source["source"] for source in document["sources"]] == [jwks_uri]
    assert document["sources"][0]["usable_keys"] == 2
    # The keys come from jwks_uri itself: no discovery.
    assert sum(issuer.requests[path] for path in METADATA_PATHS) == before


def test_check_fails_when_no_key_fits_the_allowed_algorithms(
    capsys: pytest.CaptureFixture[str], issuer: LocalIssuer
) -> None:
    env = {
        "MCP_OAUTH2_ISSUER": issuer.issuer,
        "MCP_OAUTH2_AUDIENCE": AUDIENCE,
        "MCP_OAUTH2_ALGORITHMS": "EdDSA",
    }
    code, document = run_json(capsys, "check", env=env)
    assert code == 1 and document["ok"] is False
    (problem,) = document["problems"]
    assert "none of the usable keys fits the allowed algorithms (EdDSA)" in problem
    assert "MCP_OAUTH2_ALGORITHMS" in problem
    assert document["sources"][0]["usable_keys"] == 2  # the keys themselves are fine


def test_check_shows_the_settings_that_shape_requests_and_warns_about_the_metadata(
    capsys: pytest.CaptureFixture[str], issuer: LocalIssuer
) -> None:
    env = {
        "MCP_OAUTH2_ISSUER": issuer.issuer,
        "MCP_OAUTH2_AUDIENCE": AUDIENCE,
        "MCP_OAUTH2_EXEMPT_ROUTES": "/health",
        "MCP_OAUTH2_ACCEPTED_TYPES": "at+jwt",
        # Clients are told to ask for tokens for another resource, and not for mcp:tools.
        "MCP_OAUTH2_RESOURCE": "http://127.0.0.1:8000/other",
        "MCP_OAUTH2_REQUIRED_SCOPES": "mcp:tools",
        "MCP_OAUTH2_SCOPES_SUPPORTED": "mcp:read",
    }
    code, out, _ = run_text(capsys, "check", env=env)
    assert code == 0, out  # workable, so warnings only
    assert "exempt_routes" in out and "/health" in out
    assert "accepted_types" in out and "at+jwt" in out
    code, document = run_json(capsys, "check")
    assert code == 0 and document["problems"] == []
    assert document["warnings"] == [
        "resource http://127.0.0.1:8000/other is not one of the audiences: clients will ask for "
        "tokens this server refuses",
        "required scope(s) mcp:tools missing from scopes_supported: clients reading the "
        "metadata will not know to ask for them",
    ]


def test_check_names_the_issuer_the_metadata_names(capsys: pytest.CaptureFixture[str]) -> None:
    local = LocalIssuer(default_audience=AUDIENCE)
    with local.serve():
        local.metadata_issuer = "https://elsewhere.example.com"
        env = {"MCP_OAUTH2_ISSUER": local.issuer, "MCP_OAUTH2_AUDIENCE": AUDIENCE}
        code, document = run_json(capsys, "check", env=env)
    assert code == 1
    assert document["sources"][0]["error"]["code"] == "issuer_mismatch"
    # Not the same issuer written differently, so no "set MCP_OAUTH2_ISSUER=" hint.
    assert document["problems"] == [
        f"issuer_mismatch: MCP_OAUTH2_ISSUER is {local.issuer} but the metadata says "
        "https://elsewhere.example.com; they must match exactly"
    ]


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        ("active", "the endpoint says a random probe token is active: it cannot be trusted"),
        ("unusable", "the endpoint's answer to a random probe token is unusable: "),
    ],
)
def test_check_refuses_an_endpoint_whose_answer_to_a_random_token_is_not_inactive(
    capsys: pytest.CaptureFixture[str], answer: str, problem: str
) -> None:
    base: list[str] = []
    asked: list[str] = []

    async def introspect(request: Request) -> JSONResponse:
        asked.append(str((await request.form()).get("token")))
        claims: dict[str, Any] = {
            "active": True,
            "iss": base[0],
            "aud": AUDIENCE,
            "sub": "anyone",
            "client_id": "someone",
            "exp": int(time.time()) + 600,
        }
        if answer == "unusable":
            claims["exp"] = "tomorrow"
        return JSONResponse(claims)

    with serving([Route("/introspect", introspect, methods=["POST"])]) as url:
        base.append(url)
        env = {
            "MCP_OAUTH2_ISSUER": url,
            "MCP_OAUTH2_AUDIENCE": AUDIENCE,
            "MCP_OAUTH2_TOKEN_FORMAT": "opaque",
            "MCP_OAUTH2_INTROSPECTION_ENDPOINT": url + "/introspect",
            "MCP_OAUTH2_CLIENT_ID": "resource-server",
            "MCP_OAUTH2_CLIENT_SECRET": "not-a-real-secret",
        }
        code, document = run_json(capsys, "check", env=env)
    assert code == 1 and document["ok"] is False
    (found,) = document["problems"]
    assert found.startswith(problem), found
    assert document["introspection"] == {"ok": False, "problems": [found]}
    (probe,) = asked
    assert probe.startswith("mcp-oauth2-check-")  # a random token, never a real one


def test_config_problems_come_with_the_warnings(capsys: pytest.CaptureFixture[str]) -> None:
    env = {
        "MCP_OAUTH2_ISSUER": "https://auth.example.com",
        "MCP_OAUTH2_AUDIENCE": AUDIENCE,
        "MCP_OAUTH2_LEEWAY": "soon",
        "MCP_OAUTH2_REQUIRED_SCOPE": "mcp:tools",
    }
    code, out, _ = run_text(capsys, "check", env=env)
    assert code == 1
    assert "MCP_OAUTH2_LEEWAY" in out
    assert "MCP_OAUTH2_REQUIRED_SCOPE is not a setting of mcp-oauth2" in out
    assert "FAILED: 1 configuration problem(s)" in out


# -- files and option values -----------------------------------------------------------------------


@pytest.mark.parametrize("command", [["check"], ["inspect", "a.b.c"]])
def test_an_unreadable_env_file_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, command: list[str]
) -> None:
    (tmp_path / "latin1.env").write_bytes(b"MCP_OAUTH2_ISSUER=https://auth.example.com/\xe9\n")
    code, out, err = run_text(capsys, *command, "--env-file", "latin1.env")
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and "cannot read latin1.env" in err, err
    assert "MCP_OAUTH2_ISSUER" not in os.environ


@pytest.mark.parametrize(
    ("args", "fix"),
    [
        (["--lifetime", "400d"], "'400d' must be between 1 s and 366 d"),
        (["--lifetime", "0"], "'0' must be between 1 s and 366 d"),
        (["--serve", "--port", "70000"], "'70000' is not a port number (0 to 65535)"),
    ],
)
def test_out_of_range_values_are_usage_errors(
    capsys: pytest.CaptureFixture[str], args: list[str], fix: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["token", "--audience", AUDIENCE, *args])
    assert exited.value.code == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and fix in err, err


def test_token_takes_its_audiences_from_the_environment(capsys: pytest.CaptureFixture[str]) -> None:
    audiences = [AUDIENCE, "https://mcp.example.com/mcp"]
    env = {"MCP_OAUTH2_AUDIENCE": json.dumps(audiences)}
    code, document = run_json(capsys, "token", env=env)
    assert code == 0 and document["audience"] == audiences
    env = {"MCP_OAUTH2_AUDIENCE": f"{AUDIENCE}, https://mcp.example.com/mcp"}
    code, document = run_json(capsys, "token", env=env)
    assert code == 0 and document["audience"] == audiences
    # A JSON array that does not parse names no audience (never the text as one audience).
    code, out, err = run_text(capsys, "token", env={"MCP_OAUTH2_AUDIENCE": "[not json"})
    assert code == 2 and out == ""
    assert "give --audience URL" in err


# -- jwks: metadata documents that cannot be used --------------------------------------------------


@pytest.mark.parametrize(
    ("jwks_uri", "problem"),
    [
        (None, "metadata has no jwks_uri"),
        ("https://user:secret@auth.example.com/jwks", "must not carry credentials in the URL"),
        ("https://auth.example.com/jwks#keys", "must not have a fragment"),
        ("https://[::1/jwks", "is not a valid URL"),
    ],
)
def test_jwks_says_why_a_metadata_document_is_not_used(
    capsys: pytest.CaptureFixture[str], jwks_uri: str | None, problem: str
) -> None:
    base: list[str] = []

    def document() -> dict[str, Any]:
        metadata = {"issuer": base[0]}
        return metadata if jwks_uri is None else {**metadata, "jwks_uri": jwks_uri}

    with serving(metadata_route(document)) as url:
        base.append(url)
        code, result = run_json(capsys, "jwks", url, "--timeout", "5")
    assert code == 3
    assert result["error"]["code"] == "discovery_failed"
    assert result["fetched_as_jwks"] is False  # the metadata answered: no guessing it is a JWKS
    assert result["usable_keys"] == 0
    problems = [attempt["problem"] for attempt in result["trail"]]
    assert len(problems) == len(METADATA_PATHS)
    assert all(problem in text for text in problems), problems
    assert "secret" not in json.dumps(result)  # a URL's credentials are never repeated


def jwks_route(body: bytes) -> list[Route]:
    async def jwks(request: Request) -> Response:
        return Response(body, media_type="application/json")

    return [Route("/jwks.json", jwks)]


@pytest.mark.parametrize(
    ("body", "sizes", "reason"),
    [
        # Each key unusable on its own: the table says what it could read of each.
        (
            b'{"keys": [{"kty": "RSA", "kid": "not-base64", "n": "A", "e": "AQAB"},'
            b' {"kty": "RSA", "kid": "too-long", "n": "' + b"A" * 5000 + b'", "e": "AQAB"}]}',
            ["?", "?"],
            None,
        ),
        # A duplicate member: the whole document is refused, so is every key in it.
        (
            b'{"keys": [], "keys": [{"kty": "EC", "kid": "p256", "crv": "P-256"}]}',
            ["P-256"],
            "the document was refused",
        ),
        (b"<html>not a key set</html>", [], None),
    ],
)
def test_jwks_lists_the_keys_of_a_document_it_cannot_use(
    capsys: pytest.CaptureFixture[str], body: bytes, sizes: list[str], reason: str | None
) -> None:
    with serving(jwks_route(body)) as url:
        code, result = run_json(capsys, "jwks", url + "/jwks.json", "--timeout", "5")
    assert code == 3
    assert result["fetched_as_jwks"] is True  # no metadata there: the URL is the key set's
    assert result["error"]["code"] == "jwks_invalid"
    assert result["usable_keys"] == 0
    assert [key["size"] for key in result["keys"]] == sizes
    assert all(key["usable"] is False and key["reason"] for key in result["keys"])
    if reason is not None:
        assert all(key["reason"] == reason for key in result["keys"])


def test_token_says_when_it_cannot_write_the_key_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    target = tmp_path / "missing" / "keys.json"
    code, out, err = run_text(capsys, "token", "--audience", AUDIENCE, "--jwks-out", str(target))
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and f"--jwks-out: cannot write {target}" in err, err
    assert not target.parent.exists()


# -- the words of times and durations --------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (0.2, "0 s"),
        (0.7, "under 1 s"),
        (59.9, "59 s"),
        (192, "3 min 12 s"),
        (-192, "3 min 12 s"),
        (7205, "2 h"),
        (90_061, "1 d 1 h"),
    ],
)
def test_durations_read_as_words(seconds: float, words: str) -> None:
    assert duration(seconds) == words


def test_moments_read_relative_to_now_and_as_dates() -> None:
    now = 1_800_000_000.0
    assert relative(now + 0.4, now) == "now"
    assert relative(now - 0.9, now) == "now"
    assert relative(now + 288, now) == "in 4 min 48 s"
    assert relative(now - 192, now) == "3 min 12 s ago"
    assert timestamp(0) == "1970-01-01 00:00:00 UTC"
    assert timestamp(1e20) == "1e+20 (not a representable date)"
    assert timestamp(float("nan")) == "nan (not a representable date)"
