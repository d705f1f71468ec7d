"""``MCPPolicy`` in process, with hand-made ASGI messages and answers no SDK sends on purpose:
which rule applies to which operation (resources by URI, template and prefix; completions;
batches; the two JSON parsers), the SEP-2243 header checks, the list filter on JSON and SSE
answers cut at any byte, and what it refuses to build or to pass on. The caller is a real token
validated by the native core; the wrapped app is a recorder that answers as told."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from starlette.authentication import AuthCredentials, UnauthenticatedUser
from starlette.types import Message, Scope

from mcp_oauth2 import (
    PUBLIC,
    AuthenticatedUser,
    Call,
    MCPPolicy,
    OAuth2Config,
    OAuth2Middleware,
    require,
    require_roles,
    require_scopes,
)
from mcp_oauth2._access import ACCESS_SCOPE_KEY
from mcp_oauth2._list_filter import MAX_ANSWER_BYTES
from mcp_oauth2.errors import ConfigurationError
from mcp_oauth2.lowlevel import KeySet
from mcp_oauth2.testing import LocalIssuer
from test_tool_scopes import Recorder

pytestmark = pytest.mark.anyio

ISSUER = LocalIssuer("https://issuer.example.com")
AUDIENCE = "https://mcp.example.com/mcp"
CONFIG = OAuth2Config.model_validate({"issuer": [ISSUER.issuer], "audience": [AUDIENCE]})
ACCESS = OAuth2Middleware(lambda s, r, t: None, CONFIG).access  # type: ignore[arg-type,return-value]
KEYS = KeySet.from_jwks(ISSUER.jwks())


def caller(*scopes: str, **claims: Any) -> AuthenticatedUser:
    token = ISSUER.mint(audience=AUDIENCE, scopes=scopes, claims=claims)
    return CONFIG.token_validator().validate(token, KEYS)


def json_answer(document: Any, *headers: tuple[bytes, bytes]) -> list[Message]:
    body = json.dumps(document).encode()
    start_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *headers,
    ]
    return [
        {"type": "http.response.start", "status": 200, "headers": start_headers},
        {"type": "http.response.body", "body": body},
    ]


def sse_answer(events: list[Any], cut: Callable[[bytes], list[bytes]]) -> list[Message]:
    stream = b"".join(
        b"event: message\r\ndata: " + json.dumps(event).encode() + b"\r\n\r\n" for event in events
    )
    stream = b": ping\r\n\r\n" + stream
    pieces = cut(stream)
    headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-store")]
    return [
        {"type": "http.response.start", "status": 200, "headers": headers},
        *(
            {"type": "http.response.body", "body": piece, "more_body": i + 1 < len(pieces)}
            for i, piece in enumerate(pieces)
        ),
    ]


def scope_for(user: AuthenticatedUser | None, headers: list[tuple[bytes, bytes]] = []) -> Scope:  # noqa: B006
    return {
        "type": "http",
        "method": "POST",
        "path": "/mcp",
        "headers": headers,
        ACCESS_SCOPE_KEY: ACCESS,
        "user": user if user is not None else UnauthenticatedUser(),
        "auth": AuthCredentials(list(user.scopes) if user else []),
    }


@dataclass
class Sent:
    status: int
    headers: dict[bytes, bytes]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


async def run(app: MCPPolicy, scope: Scope, body: Any) -> Sent:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    pending: list[Message] = [{"type": "http.request", "body": raw}]
    sent: list[Message] = []

    async def receive() -> Message:
        return pending.pop() if pending else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = sent[0]
    return Sent(
        start["status"],
        dict(start.get("headers", [])),
        b"".join(m.get("body", b"") for m in sent[1:]),
    )


def call(method: str, id_: Any = 1, **params: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id_, "method": method, "params": params}


# -- which rule applies ------------------------------------------------------------------------

RESOURCES = {
    "docs://readme": PUBLIC,
    "docs://*": require_scopes("docs:read"),
    "tenants://{tenant}/reports/{+path}": require(
        lambda user, call: call.arguments["tenant"] == user.claims.get("tenant")
    ),
    "files://{name}": require_scopes("files:read"),
    "files://{name}.secret": require_roles("auditor"),
}


@pytest.mark.parametrize(
    ("uri", "scopes", "status"),
    [
        ("docs://readme", (), 200),  # the exact key wins over the prefix
        ("docs://other", (), 403),
        ("docs://other", ("docs:read",), 200),
        ("tenants://acme/reports/2026/q1.pdf", (), 200),  # variables decoded, {+path} takes /
        ("tenants://ac%6De/reports/x", (), 200),
        ("tenants://globex/reports/x", (), 403),
        ("files://a", ("files:read",), 200),
        # Two templates match: both apply.
        ("files://x.secret", ("files:read",), 403),
        # No template matches (a slash {name} does not take), but the templates' prefix does:
        # both templates apply, the role too.
        ("files://a/b", ("files:read",), 403),
        ("other://x", (), 200),  # default: any token
    ],
)
async def test_resources_by_exact_uri_template_and_prefix(
    uri: str, scopes: tuple[str, ...], status: int
) -> None:
    app = MCPPolicy(Recorder(), resources=RESOURCES)
    sent = await run(
        app, scope_for(caller(*scopes, tenant="acme")), call("resources/read", uri=uri)
    )
    assert sent.status == status, sent.body


async def test_completions_prompts_and_unknown_methods() -> None:
    app = MCPPolicy(
        Recorder(),
        prompts={"plan": require_scopes("plan")},
        resources={"files://{name}": require_scopes("files:read")},
        default=require_roles("member"),
    )
    low = caller()
    prompt_ref = {"type": "ref/prompt", "name": "plan"}
    resource_ref = {"type": "ref/resource", "uri": "files://{name}"}
    argument = {"name": "x", "value": ""}
    assert (await run(app, scope_for(low), call("prompts/get", name="plan"))).status == 403
    completion = call("completion/complete", ref=prompt_ref, argument=argument)
    assert (await run(app, scope_for(low), completion)).status == 403
    completion = call("completion/complete", ref=resource_ref, argument=argument)
    assert (await run(app, scope_for(low), completion)).status == 403
    # Unknown methods and unlisted names fall to `default`; plumbing needs nothing.
    assert (await run(app, scope_for(low), call("tasks/get", taskId="t"))).status == 403
    assert (await run(app, scope_for(caller(roles=["member"])), call("tasks/get"))).status == 200
    assert (await run(app, scope_for(None), call("ping"))).status == 200
    notification = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    assert (await run(app, scope_for(None), notification)).status == 200


async def test_a_batch_passes_only_when_every_operation_does() -> None:
    recorder = Recorder()
    app = MCPPolicy(recorder, tools={"open": PUBLIC, "admin": require_scopes("admin")})
    batch = [call("tools/call", 1, name="open"), call("tools/call", 2, name="admin")]
    sent = await run(app, scope_for(caller()), batch)
    assert sent.status == 403 and recorder.calls == []
    assert (await run(app, scope_for(caller("admin")), batch)).status == 200
    assert recorder.calls == [json.dumps(batch).encode()]


@pytest.mark.parametrize(
    "body",
    [
        # Duplicate keys: both of the SDK's parsers keep the last one.
        b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"open","name":"admin"}}',
        # Escapes decode to the same name.
        b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"\\u0061dmin"}}',
        b'{"jsonrpc":"2.0","id":1,"method":"tools\\/call","params":{"name":"admin"}}',
        # Deeper than pydantic_core reads, within json.loads: still judged.
        json.dumps(call("tools/call", name="admin", arguments={"x": [[[]]]}))
        .replace("[[[]]]", "[" * 300 + "]" * 300)
        .encode(),
    ],
)
async def test_every_reading_of_the_body_is_judged(body: bytes) -> None:
    recorder = Recorder()
    app = MCPPolicy(recorder, tools={"open": PUBLIC, "admin": require_scopes("admin")})
    assert (await run(app, scope_for(caller()), body)).status == 403
    assert recorder.calls == []


async def test_a_call_without_a_name_is_judged_by_default() -> None:
    app = MCPPolicy(Recorder(), tools={"open": PUBLIC})
    for params in ({}, {"name": 7}, {"name": None}):
        sent = await run(app, scope_for(None), call("tools/call", **params))
        assert sent.status == 401


# -- SEP-2243 ----------------------------------------------------------------------------------

MODERN = [(b"mcp-protocol-version", b"2026-07-28")]


@pytest.mark.parametrize(
    ("headers", "message", "problem"),
    [
        (
            [(b"mcp-method", b"tools/list"), (b"mcp-method", b"tools/list")],
            call("tools/list"),
            "appears more than once",
        ),
        (
            [(b"mcp-method", b"tools/\xfflist")],
            call("tools/list"),
            "characters a header value may not",
        ),
        (
            [(b"mcp-method", b"tools/call"), (b"mcp-name", b"x")],
            call("tools/call", name="y"),
            "Mcp-Name header does not match",
        ),
        (
            [(b"mcp-method", b"resources/read"), (b"mcp-name", b"docs://b")],
            call("resources/read", uri="docs://a"),
            "Mcp-Name header does not match",
        ),
        (
            [(b"mcp-method", b"ping"), (b"mcp-name", b"x")],
            call("ping"),
            "Mcp-Name header does not match",
        ),
        (
            [(b"mcp-method", b"tools/call")],
            call("resources/read", uri="docs://a"),
            "Mcp-Method header does not match",
        ),
        # The version from the body's _meta: the headers are required, the version header first.
        (
            [],
            call("tools/list", _meta={"io.modelcontextprotocol/protocolVersion": "2026-07-28"}),
            "MCP-Protocol-Version header is missing",
        ),
        (
            [(b"mcp-protocol-version", b"2025-11-25")],
            call("tools/list", _meta={"io.modelcontextprotocol/protocolVersion": "2026-07-28"}),
            "does not match the body's protocol version",
        ),
        (
            [*MODERN, (b"mcp-method", b"prompts/get")],
            call("prompts/get", name="p"),
            "Mcp-Name header is missing",
        ),
    ],
)
async def test_mcp_headers_must_match_the_body(
    headers: list[tuple[bytes, bytes]], message: dict[str, Any], problem: str
) -> None:
    recorder = Recorder()
    sent = await run(MCPPolicy(recorder, default=PUBLIC), scope_for(None, headers), message)
    assert sent.status == 400 and recorder.calls == []
    error = sent.json()["error"]
    assert error["code"] == -32020 and problem in error["message"], error


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ([], call("tools/list")),  # no version: nothing required
        ([(b"mcp-protocol-version", b"2025-11-25")], call("tools/call", name="x")),
        ([*MODERN], {"jsonrpc": "2.0", "method": "notifications/x"}),  # no header rules for them
        ([*MODERN, (b"mcp-method", b"tools/list")], call("tools/list")),
        (
            [*MODERN, (b"mcp-method", b"tasks/get"), (b"mcp-name", b"t1")],
            call("tasks/get", taskId="t1"),
        ),
        (
            [*MODERN, (b"mcp-method", b"tools/call"), (b"mcp-name", b"=?base64?w6l0w6k=?=")],
            call("tools/call", name="été"),
        ),
        ([(b"mcp-protocol-version", b"DRAFT")], call("tools/list")),
    ],
)
async def test_mcp_headers_that_fit(headers: list[tuple[bytes, bytes]], message: Any) -> None:
    sent = await run(MCPPolicy(Recorder(), default=PUBLIC), scope_for(None, headers), message)
    assert sent.status == 200, sent.body


# -- lists ---------------------------------------------------------------------------------------

TOOLS = {"open": PUBLIC, "notes": require_scopes("notes"), "ops": require_roles("ops")}
TOOL_LIST = {
    "tools": [{"name": "open"}, {"name": "notes", "x": 1}, {"name": "ops"}, {"noname": 1}, 3],
    "nextCursor": "c2",
    "ttlMs": 1000,
    "cacheScope": "public",
}


async def test_a_json_list_answer_is_filtered_in_place() -> None:
    answer = {"jsonrpc": "2.0", "id": "L", "result": TOOL_LIST}
    recorder = Recorder(json_answer(answer, (b"x-other", b"kept")))
    app = MCPPolicy(recorder, tools=TOOLS)
    sent = await run(app, scope_for(caller("notes")), call("tools/list", "L"))
    assert sent.json() == {
        "jsonrpc": "2.0",
        "id": "L",
        "result": {
            "tools": [{"name": "open"}, {"name": "notes", "x": 1}],
            "nextCursor": "c2",
            "ttlMs": 1000,
            "cacheScope": "private",
        },
    }
    assert sent.headers[b"content-length"] == str(len(sent.body)).encode()
    assert sent.headers[b"x-other"] == b"kept"
    # Another id (1 is not "1"), or filtering off: untouched, byte for byte.
    other = {"jsonrpc": "2.0", "id": 1, "result": TOOL_LIST}
    app = MCPPolicy(Recorder(json_answer(other)), tools=TOOLS)
    assert (await run(app, scope_for(None), call("tools/list", "1"))).json() == other
    app = MCPPolicy(Recorder(json_answer(answer)), tools=TOOLS, filter_lists=False)
    assert (await run(app, scope_for(None), call("tools/list", "L"))).json() == answer


@pytest.mark.parametrize(
    "cut",
    [
        lambda b: [b],
        lambda b: [b[i : i + 1] for i in range(len(b))],
        lambda b: [b[:10], b[10:37], b[37:]],
    ],
    ids=["whole", "byte-by-byte", "pieces"],
)
async def test_an_sse_list_answer_is_filtered_event_by_event(
    cut: Callable[[bytes], list[bytes]],
) -> None:
    progress = {"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progress": 1}}
    answer = {"jsonrpc": "2.0", "id": 4, "result": TOOL_LIST}
    app = MCPPolicy(Recorder(sse_answer([progress, answer], cut)), tools=TOOLS)
    sent = await run(app, scope_for(None), call("tools/list", 4))
    assert b"content-length" not in sent.headers
    events = [e for e in sent.body.split(b"\r\n\r\n") if e]
    assert events[0] == b": ping"
    assert json.loads(events[1].split(b"data: ", 1)[1]) == progress
    assert events[2].startswith(b"event: message\r\ndata: ")
    assert json.loads(events[2].split(b"data: ", 1)[1])["result"]["tools"] == [{"name": "open"}]


@pytest.mark.parametrize("method", ["prompts/list", "resources/list", "resources/templates/list"])
async def test_every_list_is_filtered(method: str) -> None:
    member, key, entries = {
        "prompts/list": ("prompts", "name", ["p-open", "p-closed"]),
        "resources/list": ("resources", "uri", ["r://open", "r://closed"]),
        "resources/templates/list": ("resourceTemplates", "uriTemplate", ["t://{a}", "c://{a}"]),
    }[method]
    answer = {"jsonrpc": "2.0", "id": 1, "result": {member: [{key: e} for e in entries]}}
    app = MCPPolicy(
        Recorder(json_answer(answer)),
        prompts={"p-open": PUBLIC},
        resources={"r://open": PUBLIC, "t://{a}": PUBLIC},
    )
    sent = await run(app, scope_for(None), call(method))
    assert sent.json()["result"][member] == [{key: entries[0]}]


async def test_an_answer_it_cannot_filter_is_not_sent(caplog: pytest.LogCaptureFixture) -> None:
    answer = {"jsonrpc": "2.0", "id": 1, "result": TOOL_LIST}
    gzip = json_answer(answer, (b"content-encoding", b"gzip"))
    plain = json_answer(answer)[0]
    for messages, words in [
        (gzip, "gzip-encoded"),
        ([plain, {"type": "http.response.body", "body": b"{not json"}], "not JSON"),
    ]:
        recorder = Recorder(messages)
        sent = await run(MCPPolicy(recorder, tools=TOOLS), scope_for(None), call("tools/list"))
        assert sent.status == 500 and sent.json()["code"] == "unprotected"
        assert b"notes" not in sent.body and words in caplog.text
    # An SSE event over the limit: the stream ends without it.
    huge = {"jsonrpc": "2.0", "id": 1, "result": {"tools": [{"name": "x" * MAX_ANSWER_BYTES}]}}
    recorder = Recorder(
        sse_answer([huge], lambda b: [b[i : i + (1 << 20)] for i in range(0, len(b), 1 << 20)])
    )
    sent = await run(MCPPolicy(recorder, tools=TOOLS), scope_for(None), call("tools/list"))
    assert sent.status == 200 and b"xxxx" not in sent.body


async def test_errors_and_other_answers_pass_untouched() -> None:
    error = {"jsonrpc": "2.0", "id": 1, "error": {"code": -32601, "message": "no"}}
    app = MCPPolicy(Recorder(json_answer(error)), tools=TOOLS)
    assert (await run(app, scope_for(None), call("tools/list"))).json() == error
    accepted: list[Message] = [
        {"type": "http.response.start", "status": 202, "headers": []},
        {"type": "http.response.body", "body": b""},
    ]
    app = MCPPolicy(Recorder(accepted), tools=TOOLS)
    assert (await run(app, scope_for(None), call("tools/list"))).status == 202


# -- configuration -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"tools": {"t": ["scope"]}}, "tools['t'] must be a requirement"),
        ({"tools": {"": PUBLIC}}, "is not a name"),
        ({"tools": ["t"]}, "must be a mapping"),
        ({"default": None}, "default must be a requirement"),
        ({"resources": {"files://{a}{b": PUBLIC}}, "not a URI template"),
        ({"resources": {"files://{a}/{a}": PUBLIC}}, "twice"),
        ({"resources": {"files://{/path*}": PUBLIC}}, "not a URI template"),
        ({"resources": {"{scheme}://x": PUBLIC}}, "must start with its scheme"),
        ({"max_body_bytes": 0}, "at least 1"),
        ({"max_body_bytes": "4MB"}, "number of bytes"),
    ],
)
def test_bad_policies_are_refused_when_built(options: dict[str, Any], words: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(words)):
        MCPPolicy(Recorder(), **options)


def test_tool_scopes_is_the_shorthand() -> None:
    from mcp_oauth2 import ToolScopes

    shorthand = ToolScopes(Recorder(), {"admin": ["mcp:admin"]}, max_body_bytes=10)
    assert isinstance(shorthand, MCPPolicy)
    assert repr(shorthand.tools["admin"]) == "require_scopes('mcp:admin')"
    assert shorthand.default is PUBLIC and shorthand.filter_lists is False
    assert shorthand.max_body_bytes == 10
    assert Call("tools/call").arguments == {}
