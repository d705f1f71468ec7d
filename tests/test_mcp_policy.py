"""``MCPPolicy`` end to end with the official ``mcp`` SDK client over real HTTP on loopback.

The server (``policy_server``) has a public tool, a scope-protected tool, a role-protected tool,
a tool with an argument rule, a public and a protected resource and a protected prompt, on an
anonymous route, in both of the SDK's answer forms (JSON and SSE). Three callers: anonymous, a
low-privilege token (a tenant claim, no scopes, no roles) and a full one; each is driven through
the handshake-era session (``ClientSession``, 2025-11-25) and the 2026-07-28 client, which sends
the ``Mcp-Method``/``Mcp-Name`` headers. What each sees in the four lists and what each call
answers is checked, with the HTTP answers recorded and the server's run counters read, so that
"refused" means the tool did not run.
"""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import httpx2
import pytest
from mcp.client import ClientSession
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolResult, TextContent

from mcp_oauth2.testing import AppServer, LocalIssuer, bind_loopback, url_of
from policy_server import (
    DEPLOYER,
    EVERY_TOOL,
    NOTES,
    OPS,
    PUBLIC_TOOLS,
    build_policy_app,
    policy_config,
)
from test_mcp_e2e import challenge

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


@dataclass
class Stack:
    issuer: LocalIssuer
    url: str
    runs: Counter[str]

    @property
    def mcp_url(self) -> str:
        return self.url + "/mcp"

    def token(self, *scopes: str, **claims: Any) -> str:
        return self.issuer.mint(
            subject="caller", audience=self.mcp_url, scopes=scopes, claims=claims
        )


@pytest.fixture(scope="module", params=[True, False], ids=["json", "sse"])
def stack(request: pytest.FixtureRequest) -> Iterator[Stack]:
    issuer = LocalIssuer()
    with issuer.serve():
        sock = bind_loopback()
        runs: Counter[str] = Counter()
        config = policy_config(issuer.issuer, url_of(sock) + "/mcp")
        app = build_policy_app(config, json_response=request.param, runs=runs)
        with AppServer(app, sock) as url:
            yield Stack(issuer, url, runs)


CALLERS = ["anonymous", "low", "full"]


def token_of(stack: Stack, caller: str) -> str | None:
    if caller == "anonymous":
        return None
    if caller == "low":
        return stack.token(tenant="acme")
    return stack.token(NOTES, OPS, tenant="acme", roles=[DEPLOYER])


@dataclass
class Caller:
    """One of the SDK's clients with a token (or none), keeping every HTTP answer."""

    url: str
    token: str | None
    modern: bool
    responses: list[httpx2.Response] = field(default_factory=list)

    async def _record(self, response: httpx2.Response) -> None:
        await response.aread()
        self.responses.append(response)

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[Any]:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else None
        async with httpx2.AsyncClient(
            headers=headers, timeout=20, event_hooks={"response": [self._record]}
        ) as http:
            if self.modern:
                transport = streamable_http_client(self.url, http_client=http)
                async with Client(transport, mode="2026-07-28", cache=None) as client:
                    yield client
            else:
                async with (
                    streamable_http_client(self.url, http_client=http) as (read, write),
                    ClientSession(read, write) as session,
                ):
                    await session.initialize()
                    yield session

    def refusal(self, since: int) -> httpx2.Response:
        refused = [r for r in self.responses[since:] if r.status_code >= 400]
        assert len(refused) == 1, [r.status_code for r in self.responses[since:]]
        return refused[0]


def text(result: CallToolResult) -> str:
    return "".join(block.text for block in result.content if isinstance(block, TextContent))


async def lists(session: Any) -> dict[str, list[str]]:
    tools = await session.list_tools()
    resources = await session.list_resources()
    templates = await session.list_resource_templates()
    prompts = await session.list_prompts()
    return {
        "tools": sorted(tool.name for tool in tools.tools),
        "resources": sorted(str(resource.uri) for resource in resources.resources),
        "templates": sorted(t.uri_template for t in templates.resource_templates),
        "prompts": sorted(prompt.name for prompt in prompts.prompts),
    }


SEEN = {
    "anonymous": {
        "tools": PUBLIC_TOOLS,
        "resources": ["docs://readme"],
        "templates": [],
        "prompts": [],
    },
    # The argument rule is not judged in a list (there are no arguments yet): shown.
    "low": {
        "tools": ["tenant_report", "weather"],
        "resources": ["docs://readme"],
        "templates": [],
        "prompts": [],
    },
    "full": {
        "tools": EVERY_TOOL,
        "resources": ["docs://readme"],
        "templates": ["notes://{note_id}"],
        "prompts": ["summarize_notes"],
    },
}


@pytest.mark.parametrize("modern", [False, True], ids=["2025-11-25", "2026-07-28"])
@pytest.mark.parametrize("caller", CALLERS)
async def test_each_caller_sees_what_it_may_use(stack: Stack, caller: str, modern: bool) -> None:
    client = Caller(stack.mcp_url, token_of(stack, caller), modern)
    async with client.session() as session:
        assert await lists(session) == SEEN[caller]
    assert all(r.status_code < 400 for r in client.responses)


# (tool, arguments) -> what each caller gets: "ok", or the status and body code of the refusal
# with the challenge's scope (None: no challenge at all).
CALLS: dict[tuple[str, str], dict[str, tuple[int, str, str | None] | str]] = {
    ("weather", "{}"): {"anonymous": "ok", "low": "ok", "full": "ok"},
    ("search_notes", "{}"): {
        "anonymous": (401, "missing_token", NOTES),
        "low": (403, "insufficient_scope", NOTES),
        "full": "ok",
    },
    # More scopes would not give the role: no step-up for the low caller.
    ("deploy", "{}"): {
        "anonymous": (401, "missing_token", OPS),
        "low": (403, "access_denied", None),
        "full": "ok",
    },
    ("tenant_report", '{"tenant": "acme"}'): {
        "anonymous": (401, "missing_token", ""),
        "low": "ok",
        "full": "ok",
    },
    ("tenant_report", '{"tenant": "globex"}'): {
        "anonymous": (401, "missing_token", ""),
        "low": (403, "access_denied", None),
        "full": (403, "access_denied", None),
    },
}


@pytest.mark.parametrize("modern", [False, True], ids=["2025-11-25", "2026-07-28"])
@pytest.mark.parametrize("caller", CALLERS)
async def test_each_call_answers_by_the_policy(stack: Stack, caller: str, modern: bool) -> None:
    client = Caller(stack.mcp_url, token_of(stack, caller), modern)
    async with client.session() as session:
        for (tool, arguments), outcomes in CALLS.items():
            expected = outcomes[caller]
            before, mark = stack.runs[tool], len(client.responses)
            if expected == "ok":
                result = await session.call_tool(tool, json.loads(arguments))
                assert not result.is_error, (tool, text(result))
                assert stack.runs[tool] == before + 1
                continue
            assert isinstance(expected, tuple)
            status, code, scope = expected
            with pytest.raises(MCPError):
                await session.call_tool(tool, json.loads(arguments))
            refusal = client.refusal(mark)
            assert (refusal.status_code, refusal.json()["code"]) == (status, code), tool
            if scope is None:
                assert "www-authenticate" not in refusal.headers, tool
            else:
                params = challenge(refusal)
                assert params.get("scope", "") == scope, (tool, params)
                assert params["resource_metadata"].endswith(
                    "/.well-known/oauth-protected-resource/mcp"
                )
            assert stack.runs[tool] == before, f"{tool} ran for {caller}"


@pytest.mark.parametrize("caller", CALLERS)
async def test_resources_and_prompts_follow_the_policy(stack: Stack, caller: str) -> None:
    client = Caller(stack.mcp_url, token_of(stack, caller), modern=False)
    async with client.session() as session:
        readme = await session.read_resource("docs://readme")
        assert readme.contents[0].text == "public readme"
        before, mark = stack.runs["note"], len(client.responses)
        if caller == "full":
            note = await session.read_resource("notes://7")
            assert note.contents[0].text == "note 7"
            prompt = await session.get_prompt("summarize_notes", {"topic": "q3"})
            assert "q3" in prompt.messages[0].content.text
            return
        with pytest.raises(MCPError):
            await session.read_resource("notes://7")
        refusal = client.refusal(mark)
        assert refusal.status_code == (401 if caller == "anonymous" else 403)
        assert challenge(refusal)["scope"] == NOTES
        assert stack.runs["note"] == before
        mark = len(client.responses)
        with pytest.raises(MCPError):
            await session.get_prompt("summarize_notes", {"topic": "q3"})
        assert client.refusal(mark).status_code == (401 if caller == "anonymous" else 403)


async def test_a_token_with_the_scope_but_not_the_role_is_not_asked_to_step_up(
    stack: Stack,
) -> None:
    """The client already holds every scope ``deploy`` names; only the role is missing. A 403
    ``insufficient_scope`` would send it into a step-up loop; ``access_denied`` does not."""
    client = Caller(stack.mcp_url, stack.token(OPS, tenant="acme", roles=["viewer"]), False)
    async with client.session() as session:
        mark = len(client.responses)
        with pytest.raises(MCPError):
            await session.call_tool("deploy", {})
    refusal = client.refusal(mark)
    assert refusal.status_code == 403
    assert refusal.json() == {
        "error": "access_denied",
        "error_description": "this operation needs a role the token does not carry",
        "code": "access_denied",
    }
    assert "www-authenticate" not in refusal.headers


async def test_a_bad_token_on_the_anonymous_route_is_still_401(stack: Stack) -> None:
    expired = stack.issuer.mint_expired(audience=stack.mcp_url)
    async with httpx.AsyncClient() as http:
        response = await http.post(
            stack.mcp_url,
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            headers={
                "Authorization": f"Bearer {expired}",
                "Accept": "application/json, text/event-stream",
            },
        )
    assert response.status_code == 401
    assert response.json()["code"] == "expired"
