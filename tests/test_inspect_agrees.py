"""``mcp-oauth2 inspect`` and the middleware come to the same verdict on every token.

The command prints the native validator's trace of the middleware's own call, so they cannot
disagree by construction; these tests hold that construction to account. Each token (valid ones,
and one of each kind of refusal: malformed, algorithms, every way a key is missed, signatures,
times, claims, types, scopes) goes through ``OAuth2Middleware`` served by uvicorn (HTTP on
loopback) and through ``mcp-oauth2 inspect --json`` (run in process), both configured from the
same ``MCP_OAUTH2_*`` environment and the same keys; the answer's status, code and words must be
the verdict's.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from mcp_oauth2 import OAuth2Config, OAuth2Middleware
from mcp_oauth2.cli import main
from mcp_oauth2.lowlevel import StaticKeys
from mcp_oauth2.testing import AppServer, LocalIssuer
from refused_tokens import RefusedToken, accepted, refused
from token_factory import ISSUER

# The settings a case's validator options stand for.
VARIABLES = {
    "algorithms": "MCP_OAUTH2_ALGORITHMS",
    "required_scopes": "MCP_OAUTH2_REQUIRED_SCOPES",
    "accepted_types": "MCP_OAUTH2_ACCEPTED_TYPES",
}


async def ok(scope: Scope, receive: Receive, send: Send) -> None:
    """An application that answers 200 to whatever the middleware lets through."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            kind = message["type"].removeprefix("lifespan.")
            await send({"type": f"lifespan.{kind}.complete"})
            if kind == "shutdown":
                return
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b'{"code": "ok"}'})


def environment(case: RefusedToken) -> dict[str, str]:
    env = {"MCP_OAUTH2_ISSUER": ISSUER, "MCP_OAUTH2_AUDIENCE": ",".join(case.audiences)}
    for option, value in case.options.items():
        env[VARIABLES[option]] = ",".join(value)
    return env


def cases() -> list[RefusedToken]:
    now = int(time.time())
    # The size limit is fixed in a configuration (8192 bytes): a larger token stands for it.
    sized = RefusedToken("larger than 8192 bytes", "token_too_large", "a" * 9000)
    return [case for case in refused(now) if "max_token_bytes" not in case.options] + [
        sized,
        *accepted(now),
    ]


def inspect(
    token: str, env: Mapping[str, str], jwks_file: Path, monkeypatch: pytest.MonkeyPatch
) -> Any:
    with monkeypatch.context() as patched:
        for name, value in env.items():
            patched.setenv(name, value)
        return main(["inspect", token, "--jwks-file", str(jwks_file), "--json"])


def words(description: str | None) -> str | None:
    """A description with its numbers left out: the two are made a moment apart, and "expired
    30 s ago" may be "31 s" the next second."""
    return None if description is None else re.sub(r"\d+", "N", description)


def answer_of(response: httpx.Response) -> tuple[int, str, str | None]:
    body = response.json()
    return response.status_code, body["code"], words(body.get("error_description"))


def verdict_of(document: dict[str, Any]) -> tuple[int, str, str | None]:
    verdict = document["verdict"]
    return verdict["status"], verdict["code"], words(verdict.get("description"))


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ``MCP_OAUTH2_*`` of this process reaches either side."""
    for name in list(os.environ):
        if name.upper().startswith("MCP_OAUTH2_"):
            monkeypatch.delenv(name)


def test_inspect_gives_the_middlewares_answer_for_every_kind_of_token(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    clean_environment: None,
) -> None:
    compared = 0
    for case in cases():
        env = environment(case)
        jwks_file = tmp_path / "jwks.json"
        jwks_file.write_text(json.dumps(case.jwks()))
        with monkeypatch.context() as patched:
            for name, value in env.items():
                patched.setenv(name, value)
            config = OAuth2Config()
        app = OAuth2Middleware(ok, config, key_sources=StaticKeys(case.jwks()))
        with AppServer(app) as url, httpx.Client(base_url=url, timeout=30) as http:
            response = http.get("/", headers={"Authorization": f"Bearer {case.token}"})
        code = inspect(case.token, env, jwks_file, monkeypatch)
        document = json.loads(capsys.readouterr().out)
        answer = answer_of(response)
        assert verdict_of(document) == answer, (case.label, document["checks"])
        assert answer[1] == case.code, case.label
        assert code == (0 if case.code == "ok" else 1), case.label
        assert document["valid"] == (case.code == "ok")
        # The check that failed says what the client is told.
        failed = [check for check in document["checks"] if check["status"] == "fail"]
        assert [words(check["detail"]) for check in failed] == (
            [] if answer[2] is None else [answer[2]]
        )
        compared += 1
    assert compared == len(cases()) >= 30


def test_with_several_issuers_the_token_chooses_whose_keys_in_both(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    clean_environment: None,
    tmp_path: Path,
) -> None:
    audience = "https://mcp.example.com/mcp"
    first, second = LocalIssuer(default_audience=audience), LocalIssuer(default_audience=audience)
    with first.serve(), second.serve():
        env = {
            "MCP_OAUTH2_ISSUER": f"{first.issuer},{second.issuer}",
            "MCP_OAUTH2_AUDIENCE": audience,
        }
        with monkeypatch.context() as patched:
            for name, value in env.items():
                patched.setenv(name, value)
            config = OAuth2Config()
        tokens = {
            "first's": (first.mint(), "ok"),
            "second's, ES256": (second.mint(algorithm="ES256"), "ok"),
            "an untrusted iss": (first.mint(claims={"iss": "https://elsewhere"}), "invalid_issuer"),
            "no iss": (first.mint(claims={"iss": None}), "missing_claim"),
            "expired": (second.mint(expires_in=-3600), "expired"),
            "another audience": (first.mint(audience="https://other"), "invalid_audience"),
            "malformed": ("a.b", "malformed"),
        }
        app = OAuth2Middleware(ok, config)
        with AppServer(app) as url, httpx.Client(base_url=url, timeout=30) as http:
            for label, (token, expected) in tokens.items():
                response = http.get("/", headers={"Authorization": f"Bearer {token}"})
                with monkeypatch.context() as patched:
                    for name, value in env.items():
                        patched.setenv(name, value)
                    main(["inspect", token, "--json"])
                document = json.loads(capsys.readouterr().out)
                answer = answer_of(response)
                assert verdict_of(document) == answer, (label, document["checks"])
                assert answer[1] == expected, label
