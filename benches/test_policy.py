"""What ``MCPPolicy`` adds to one ``tools/call``, against ``ToolScopes``, in process.

Every case is the same authenticated POST of a 2026-07-28 ``tools/call`` (``MCP-Protocol-Version``,
``Mcp-Method`` and ``Mcp-Name`` headers, the request ``_meta``) through ``OAuth2Middleware``, with
warm key and token caches, to a minimal ASGI app that answers 200, called directly and
interleaved round by round (``harness``):

- no policy (the middleware alone);
- ``ToolScopes`` with one tool's scopes, the called tool one of them;
- ``MCPPolicy`` with five rules (a scope rule, a role rule, a claim rule, a custom check and
  ``PUBLIC``), the called tool under its scope rule;
- the same policy, the called tool under all four kinds of rule at once
  (``require_scopes & require_roles & require_claim & require(check)``).

The entries record the paired per-call difference to ``ToolScopes`` (``over``): the added cost
per ``tools/call``. Group ``policy``.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from cases import AUDIENCE
from harness import Batch, Run, interleaved, record, timed_async
from mcp_oauth2 import (
    PUBLIC,
    AuthenticatedUser,
    Call,
    MCPPolicy,
    OAuth2Config,
    OAuth2Middleware,
    ToolScopes,
    require,
    require_claim,
    require_roles,
    require_scopes,
)
from mcp_oauth2.lowlevel import JWKSCache
from mcp_oauth2.testing import LocalIssuer
from test_request_path import Recorder, paired_difference

ROUNDS = 300
BATCH_NS = 3_000_000
JSON_HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"11")]

NO_POLICY = "tools/call, middleware only"
TOOL_SCOPES = "tools/call + ToolScopes"
POLICY = "tools/call + MCPPolicy (5 rules; a scope rule)"
POLICY_ALL = "tools/call + MCPPolicy (5 rules; scope & role & claim & check)"
CASES = (NO_POLICY, TOOL_SCOPES, POLICY, POLICY_ALL)


async def minimal(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": JSON_HEADERS})
    await send({"type": "http.response.body", "body": b'{"ok":true}'})


def same_tenant(user: AuthenticatedUser, call: Call) -> bool:
    return call.arguments.get("tenant") == user.claims.get("tenant")


def policy(app: Any) -> MCPPolicy:
    return MCPPolicy(
        app,
        tools={
            "search": require_scopes("mcp:tools"),
            "deploy": require_roles("deployer"),
            "billing": require_claim("plan", "pro"),
            "report": require_scopes("mcp:tools")
            & require_roles("analyst")
            & require_claim("plan", "pro")
            & require(same_tenant),
            "weather": PUBLIC,
        },
    )


def tool_call(tool: str) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """The body and MCP headers of a 2026-07-28 ``tools/call`` of ``tool``."""
    meta = {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    params = {"name": tool, "arguments": {"tenant": "acme", "query": "q3"}, "_meta": meta}
    body = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": params}
    headers = [
        (b"mcp-protocol-version", b"2026-07-28"),
        (b"mcp-method", b"tools/call"),
        (b"mcp-name", tool.encode()),
    ]
    return json.dumps(body).encode(), headers


def post_scope(token: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/mcp",
        "raw_path": b"/mcp",
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"127.0.0.1:8000"),
            (b"content-type", b"application/json"),
            (b"accept", b"application/json, text/event-stream"),
            (b"authorization", b"Bearer " + token.encode()),
            *headers,
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


@pytest.fixture(scope="module")
def policy_loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture(scope="module")
def policy_run(issuer: LocalIssuer, policy_loop: asyncio.AbstractEventLoop, full: bool) -> Run:
    loop = policy_loop
    claims = {"roles": ["analyst", "deployer"], "plan": "pro", "tenant": "acme"}
    token = issuer.mint(expires_in=3600, scopes=["mcp:tools"], claims=claims)
    jwks_uri = issuer.metadata()["jwks_uri"]
    config = OAuth2Config(issuer=issuer.issuer, audience=AUDIENCE, jwks_uri=jwks_uri)
    source = JWKSCache(jwks_uri=jwks_uri, settings=config.cache_settings())
    apps = {
        NO_POLICY: OAuth2Middleware(minimal, config, key_sources=source),
        TOOL_SCOPES: OAuth2Middleware(
            ToolScopes(minimal, {"search": ["mcp:tools"]}), config, key_sources=source
        ),
        POLICY: OAuth2Middleware(policy(minimal), config, key_sources=source),
        POLICY_ALL: OAuth2Middleware(policy(minimal), config, key_sources=source),
    }
    tools = {NO_POLICY: "search", TOOL_SCOPES: "search", POLICY: "search", POLICY_ALL: "report"}
    answers = Recorder()

    def caller(name: str, token: str = token) -> Callable[[], Any]:
        body, headers = tool_call(tools[name])
        scope = post_scope(token, headers)
        request = {"type": "http.request", "body": body, "more_body": False}

        async def receive() -> dict[str, Any]:
            return request

        return lambda: apps[name](dict(scope), receive, answers.send)

    cases: dict[str, Batch] = {name: timed_async(loop, caller(name)) for name in CASES}
    try:
        run = interleaved(cases, rounds=ROUNDS, target_ns=BATCH_NS, full=full)
        # Every call was admitted: nothing was refused or short-circuited.
        assert set(answers.statuses) == {200}, answers.statuses
        # The rules are really applied: a token without the claims is refused by the policy.
        answers.statuses.clear()
        plain = issuer.mint(expires_in=3600, scopes=["mcp:tools"])
        loop.run_until_complete(caller(POLICY_ALL, plain)())
        loop.run_until_complete(caller(TOOL_SCOPES, issuer.mint(expires_in=3600))())
        assert answers.statuses == Counter({403: 2}), answers.statuses
    finally:
        loop.run_until_complete(source.aclose())
    return run


@pytest.mark.parametrize("name", CASES)
def test_policy(benchmark: Any, policy_run: Run, name: str) -> None:
    benchmark.group = "policy"
    run = policy_run
    extra: dict[str, Any] = {"conditions": run.conditions}
    if name in (POLICY, POLICY_ALL):
        extra["over"] = {"app": TOOL_SCOPES, "paired_us": paired_difference(run, name, TOOL_SCOPES)}
    if name == TOOL_SCOPES:
        extra["over"] = {"app": NO_POLICY, "paired_us": paired_difference(run, name, NO_POLICY)}
    record(benchmark, run, name, **extra)
