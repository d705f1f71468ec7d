"""A second, independent client: the TypeScript MCP SDK (``@modelcontextprotocol/sdk``) on node,
against the demo server and against ``MCPPolicy``'s public and protected tools (``policy_server``).

``tests/ts_client`` pins the SDK (``package.json`` and the committed ``package-lock.json``);
``npm ci`` installs it into ``tests/ts_client/node_modules`` the first time. ``client.mjs``
connects with ``StreamableHTTPClientTransport`` and an ``Authorization`` header, calls tools and
prints one JSON line. Skipped only when ``node`` or ``npm`` is not installed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from demo import ADMIN_SCOPE, TOOLS_SCOPE, build_demo_app, demo_config
from mcp_oauth2.testing import DEFAULT_CLIENT_ID, AppServer, LocalIssuer, bind_loopback, url_of
from policy_server import (
    DEPLOYER,
    EVERY_TOOL,
    NOTES,
    OPS,
    PUBLIC_TOOLS,
    build_policy_app,
    policy_config,
)

pytestmark = pytest.mark.timeout(150)  # the first run includes `npm ci`

CLIENT_DIR = Path(__file__).parent / "ts_client"
SDK_DIR = CLIENT_DIR / "node_modules" / "@modelcontextprotocol" / "sdk"
NODE_TIMEOUT = 20
NPM_CI_TIMEOUT = 120


@pytest.fixture(scope="module")
def node() -> str:
    """The node binary, with the pinned SDK installed (``npm ci`` when it is missing)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are needed for the TypeScript SDK client (install Node >= 20)")
    if not SDK_DIR.is_dir():
        completed = subprocess.run(  # noqa: S603 - npm from PATH, fixed arguments
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=CLIENT_DIR,
            capture_output=True,
            text=True,
            timeout=NPM_CI_TIMEOUT,
            check=False,
        )
        assert completed.returncode == 0, f"npm ci failed:\n{completed.stdout}{completed.stderr}"
    return node


@dataclass
class Stack:
    issuer: LocalIssuer
    url: str

    @property
    def mcp_url(self) -> str:
        return self.url + "/mcp"


@pytest.fixture(scope="module", params=[True, False], ids=["json", "sse"])
def stack(request: pytest.FixtureRequest) -> Iterator[Stack]:
    issuer = LocalIssuer()
    with issuer.serve():
        sock = bind_loopback()
        app = build_demo_app(demo_config(issuer.issuer, url_of(sock)), json_response=request.param)
        with AppServer(app, sock) as url:
            yield Stack(issuer, url)


@dataclass
class Run:
    returncode: int
    output: dict[str, Any]
    stderr: str


def run_client(node: str, url: str, token: str | None, *tools: str) -> Run:
    env = {key: value for key, value in os.environ.items() if key != "MCP_TOKEN"}
    if token is not None:
        env["MCP_TOKEN"] = token
    completed = subprocess.run(  # noqa: S603 - node from PATH, arguments built by the tests
        [node, "client.mjs", url, *tools],
        cwd=CLIENT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=NODE_TIMEOUT,
        check=False,
    )
    lines = completed.stdout.strip().splitlines()
    assert lines, f"no output (exit {completed.returncode}):\n{completed.stderr}"
    return Run(completed.returncode, json.loads(lines[-1]), completed.stderr)


def test_typescript_client_calls_whoami(node: str, stack: Stack) -> None:
    token = stack.issuer.mint(subject="ts-user", audience=stack.mcp_url, scopes=[TOOLS_SCOPE])
    run = run_client(node, stack.mcp_url, token)
    assert run.returncode == 0, run
    assert run.output["ok"] is True
    assert run.output["tools"] == ["admin_reset", "echo", "whoami"]
    whoami = run.output["results"]["whoami"]
    assert whoami["isError"] is False
    assert json.loads(whoami["text"]) == whoami["structured"]
    identity = dict(whoami["structured"])
    claims = identity.pop("claims")
    assert identity == {
        "subject": "ts-user",
        "client_id": DEFAULT_CLIENT_ID,
        "scopes": [TOOLS_SCOPE],
    }
    assert (claims["sub"], claims["aud"]) == ("ts-user", stack.mcp_url)


def test_typescript_client_without_token_fails_with_401(node: str, stack: Stack) -> None:
    run = run_client(node, stack.mcp_url, None)
    assert run.returncode != 0
    assert run.output == {"ok": False, "status": 401, "error": run.output["error"]}
    # The SDK reports the body of the answer: the middleware's missing-token refusal.
    assert run.output["error"].endswith(
        '{"error_description":"this resource needs a bearer token","code":"missing_token"}'
    )


def test_typescript_client_with_expired_token_fails_with_401(node: str, stack: Stack) -> None:
    token = stack.issuer.mint_expired(audience=stack.mcp_url, scopes=[TOOLS_SCOPE])
    run = run_client(node, stack.mcp_url, token)
    assert run.returncode != 0
    assert run.output["status"] == 401
    assert "expired" in run.output["error"]


def test_typescript_client_admin_tool_needs_admin_scope(node: str, stack: Stack) -> None:
    tools_only = stack.issuer.mint(audience=stack.mcp_url, scopes=[TOOLS_SCOPE])
    refused = run_client(node, stack.mcp_url, tools_only, "admin_reset")
    assert refused.returncode != 0
    assert refused.output["status"] == 403
    assert "insufficient_scope" in refused.output["error"]

    admin = stack.issuer.mint(
        subject="ts-admin", audience=stack.mcp_url, scopes=[TOOLS_SCOPE, ADMIN_SCOPE]
    )
    allowed = run_client(node, stack.mcp_url, admin, "admin_reset")
    assert allowed.returncode == 0, allowed
    assert allowed.output["results"]["admin_reset"]["text"] == "reset done by ts-admin"


# -- MCPPolicy: public and protected tools on one anonymous route --------------------------------


@pytest.fixture(scope="module", params=[True, False], ids=["json", "sse"])
def policy_stack(request: pytest.FixtureRequest) -> Iterator[Stack]:
    issuer = LocalIssuer()
    with issuer.serve():
        sock = bind_loopback()
        config = policy_config(issuer.issuer, url_of(sock) + "/mcp")
        with AppServer(build_policy_app(config, json_response=request.param), sock) as url:
            yield Stack(issuer, url)


def test_typescript_client_without_token_sees_and_calls_the_public_tool(
    node: str, policy_stack: Stack
) -> None:
    run = run_client(node, policy_stack.mcp_url, None, "weather")
    assert run.returncode == 0, run
    assert run.output["tools"] == PUBLIC_TOOLS
    assert run.output["results"]["weather"]["text"] == "sunny in Paris"
    refused = run_client(node, policy_stack.mcp_url, None, "search_notes")
    assert refused.returncode != 0
    assert refused.output["status"] == 401
    assert "missing_token" in refused.output["error"]


def test_typescript_client_by_privilege(node: str, policy_stack: Stack) -> None:
    low = policy_stack.issuer.mint(audience=policy_stack.mcp_url, claims={"tenant": "acme"})
    seen = run_client(node, policy_stack.mcp_url, low, "weather")
    assert seen.output["tools"] == ["tenant_report", "weather"]
    denied = run_client(node, policy_stack.mcp_url, low, "deploy")
    assert denied.output["status"] == 403
    assert "access_denied" in denied.output["error"]
    full = policy_stack.issuer.mint(
        subject="ts-full",
        audience=policy_stack.mcp_url,
        scopes=[NOTES, OPS],
        claims={"tenant": "acme", "roles": [DEPLOYER]},
    )
    allowed = run_client(node, policy_stack.mcp_url, full, "deploy", "search_notes")
    assert allowed.returncode == 0, allowed
    assert allowed.output["tools"] == EVERY_TOOL
    assert allowed.output["results"]["deploy"]["text"] == "api deployed by ts-full"
