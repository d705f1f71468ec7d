"""Hypothesis fuzzing of the ASGI layer: ``OAuth2Middleware`` in front of ``ToolScopes``.

Arbitrary header lists (raw bytes, duplicates, odd casing, non-ASCII), ``Authorization`` values,
tokens (random, and valid ones mutated) and ``ToolScopes`` bodies (random JSON, deep nesting,
bodies over the limit, bodies in many ASGI messages, invalid UTF-8) go through the real
middleware and ``ToolScopes`` in an in-process ASGI call; a smaller set goes over real HTTP to the
same app under uvicorn. For every request:

- no exception escapes, the answer completes within a timeout, and it is never a 500 (nor a 503:
  the keys here are static, so a 503 could only be an internal error);
- the protected app is reached only with exactly one ``Authorization`` header carrying, as a
  bearer token, one of the valid tokens minted here with the required scope, and only with the
  admin scope when either of the MCP SDK's JSON parsers finds an ``admin_reset`` call in the
  body; the app then receives the body unchanged.

``FUZZ_EXAMPLES`` scales the number of examples (default: a run of well under a minute).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import re
import string
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pydantic_core
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route
from starlette.types import Message, Receive, Scope, Send

from mcp_oauth2 import OAuth2Config, OAuth2Middleware, ToolScopes
from mcp_oauth2.lowlevel import StaticKeys
from mcp_oauth2.testing import AppServer, LocalIssuer

AUDIENCE = "https://mcp.example.com/mcp"
TOOLS, ADMIN = "mcp:tools", "mcp:admin"
BODY_LIMIT = 16 * 1024
CALL_TIMEOUT = 10.0
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "1"))
FUZZ = settings(
    max_examples=400 * EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

ISSUER = LocalIssuer("https://issuer.example.com", default_audience=AUDIENCE)
# Valid tokens by the scopes they carry; every other string is invalid.
VALID: dict[str, frozenset[str]] = {}
for _scopes in ((TOOLS,), (TOOLS, ADMIN), (ADMIN,), ()):
    for _alg in ("RS256", "ES256"):
        VALID[ISSUER.mint(scopes=_scopes, algorithm=_alg)] = frozenset(_scopes)
VALID_TOKENS = sorted(VALID)
INVALID_TOKENS = [
    ISSUER.mint_expired(scopes=[TOOLS, ADMIN]),
    ISSUER.mint_for_audience("https://other.example.com/mcp", scopes=[TOOLS, ADMIN]),
    ISSUER.mint_untrusted(scopes=[TOOLS, ADMIN]),
    ISSUER.mint_without_audience(scopes=[TOOLS, ADMIN]),
    ISSUER.mint(scopes=[TOOLS, ADMIN], kid="unknown-kid"),
    ISSUER.mint(scopes=[TOOLS, ADMIN], claims={"iss": "https://evil.example.com"}),
    ISSUER.mint(scopes=[TOOLS, ADMIN], headers={"alg": "none"}),
]


@dataclass
class Reached:
    """What the protected app saw."""

    requests: list[tuple[Scope, bytes]] = field(default_factory=list)


REACHED = Reached()


async def protected(scope: Scope, receive: Receive, send: Send) -> None:
    body = b""
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        body += message.get("body", b"")
        if not message.get("more_body", False):
            break
    REACHED.requests.append((scope, body))
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"reached"})


async def health(_: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


def build_app() -> Starlette:
    app = Starlette(
        routes=[
            Route("/health", health),
            Mount(
                "/", app=ToolScopes(protected, {"admin_reset": [ADMIN]}, max_body_bytes=BODY_LIMIT)
            ),
        ]
    )
    config = OAuth2Config.model_validate(
        {
            "issuer": [ISSUER.issuer],
            "audience": [AUDIENCE],
            "required_scopes": [TOOLS],
            "exempt_routes": ["/health", "OPTIONS *"],
        }
    )
    app.add_middleware(OAuth2Middleware, config=config, key_sources=StaticKeys(ISSUER.jwks()))
    return app


APP = build_app()


# -- the oracle ---------------------------------------------------------------------------------

# Whitespace around the field value is not part of it (RFC 9110 section 5.5: OWS is space or tab;
# the middleware strips ASCII whitespace), so the token ends before any trailing tab too.
BEARER = re.compile(rb"\s*(?i:bearer) +(\S+)\s*", re.DOTALL)


def granted_scopes(headers: list[tuple[bytes, bytes]]) -> frozenset[str] | None:
    """The scopes of the one valid bearer token the headers carry, or None."""
    values = [value for name, value in headers if name == b"authorization"]
    if len(values) != 1:
        return None
    match = BEARER.fullmatch(values[0])
    if match is None:
        return None
    try:
        token = match.group(1).decode("ascii")
    except UnicodeDecodeError:
        return None
    return VALID.get(token)


def calls_admin(body: bytes) -> bool:
    """Whether either JSON parser the MCP SDK uses finds a ``tools/call`` of ``admin_reset``."""
    values: list[Any] = []
    with contextlib.suppress(ValueError, RecursionError):
        values.append(json.loads(body))
    with contextlib.suppress(ValueError):
        values.append(pydantic_core.from_json(body))
    for value in values:
        for call in value if isinstance(value, list) else [value]:
            if isinstance(call, dict) and call.get("method") == "tools/call":
                params = call.get("params")
                if isinstance(params, dict) and params.get("name") == "admin_reset":
                    return True
    return False


def exempt(method: str, path: str) -> bool:
    return path in ("/health", "/health/") or method == "OPTIONS"


def check(
    method: str, path: str, headers: list[tuple[bytes, bytes]], body: bytes, status: int
) -> None:
    assert status not in (500, 503), status
    reached = REACHED.requests
    if not reached:
        return
    assert len(reached) == 1
    scope, seen_body = reached[0]
    assert seen_body == body  # ToolScopes replays the body unchanged
    if exempt(method, path):
        return
    scopes = granted_scopes(headers)
    assert scopes is not None, "reached without exactly one valid bearer token"
    assert TOOLS in scopes
    assert scope["user"].is_authenticated
    if method == "POST" and calls_admin(body):
        assert ADMIN in scopes, "an admin_reset call reached the app without mcp:admin"


# -- driving one request in process -------------------------------------------------------------


async def drive(
    method: str,
    path: str,
    headers: list[tuple[bytes, bytes]],
    chunks: list[bytes],
) -> int:
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "https",
        "path": path,
        "raw_path": path.encode("utf-8", "surrogateescape"),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("mcp.example.com", 443),
    }
    pending: list[Message] = [
        {"type": "http.request", "body": chunk, "more_body": i + 1 < len(chunks)}
        for i, chunk in enumerate(chunks or [b""])
    ]
    pending.reverse()
    sent: list[Message] = []

    async def receive() -> Message:
        if pending:
            return pending.pop()
        await asyncio.sleep(0)
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await asyncio.wait_for(APP(scope, receive, send), CALL_TIMEOUT)
    starts = [m for m in sent if m["type"] == "http.response.start"]
    assert len(starts) == 1, sent[:3]
    assert sent[-1]["type"] == "http.response.body" and not sent[-1].get("more_body", False)
    return int(starts[0]["status"])


def run(method: str, path: str, headers: list[tuple[bytes, bytes]], chunks: list[bytes]) -> None:
    REACHED.requests.clear()
    status = asyncio.run(drive(method, path, headers, chunks))
    check(method, path, headers, b"".join(chunks), status)


# -- strategies -----------------------------------------------------------------------------------

B64URL = string.ascii_letters + string.digits + "-_"
ODD = ".=+/ ~\t\x00\xe9"


@st.composite
def mutated_token(draw: st.DrawFn) -> str:
    """A valid token changed in one of the ways a forger or a broken client would."""
    token = draw(st.sampled_from(VALID_TOKENS))
    head, payload, signature = token.split(".")
    kind = draw(
        st.sampled_from(
            ["flip", "insert", "delete", "truncate", "swap", "duplicate", "empty", "pad", "space"]
        )
    )
    if kind == "flip":
        i = draw(st.integers(0, len(token) - 1))
        c = draw(st.sampled_from(B64URL + ODD).filter(lambda c: c != token[i]))
        return token[:i] + c + token[i + 1 :]
    if kind == "insert":
        i = draw(st.integers(0, len(token)))
        return token[:i] + draw(st.text(B64URL + ODD, min_size=1, max_size=3)) + token[i:]
    if kind == "delete":
        i = draw(st.integers(0, len(token) - 1))
        return token[:i] + token[i + 1 :]
    if kind == "truncate":
        return token[: draw(st.integers(0, len(token) - 1))]
    if kind == "swap":
        return ".".join([payload, head, signature])
    if kind == "duplicate":
        return ".".join([head, payload, payload, signature])
    if kind == "empty":
        parts = [head, payload, signature]
        parts[draw(st.integers(0, 2))] = ""
        return ".".join(parts)
    if kind == "pad":
        parts = [head, payload, signature]
        i = draw(st.integers(0, 2))
        parts[i] += draw(st.sampled_from(["=", "==", "==="]))
        return ".".join(parts)
    i = draw(st.integers(1, len(token) - 1))
    return token[:i] + draw(st.sampled_from([" ", "\t", "\n", "%20"])) + token[i:]


tokens = st.one_of(
    st.sampled_from(VALID_TOKENS),
    st.sampled_from(INVALID_TOKENS),
    mutated_token(),
    st.text(B64URL + ".", max_size=300),
    st.text(max_size=50),
)


@st.composite
def authorization_value(draw: st.DrawFn) -> bytes:
    token = draw(tokens)
    scheme = draw(st.sampled_from(["Bearer", "bearer", "BEARER", "bEaReR", "Basic", "Bearer:", ""]))
    gap = draw(st.sampled_from([" ", "  ", "\t", "", " \t "]))
    around = draw(st.sampled_from(["", " ", "\t", "\r\n", "\x00"]))
    value = f"{around}{scheme}{gap}{token}{around}".encode("utf-8", "surrogatepass")
    if draw(st.booleans()):
        return value
    # Raw bytes: non-ASCII, control characters, truncation.
    return draw(st.sampled_from([value + b"\xff", value[: len(value) // 2], b"\xc3" + value]))


header_names = st.one_of(
    st.sampled_from([b"authorization", b"Authorization", b"AUTHORIZATION", b"x-forwarded-for"]),
    st.binary(min_size=1, max_size=20),
)


@st.composite
def header_list(draw: st.DrawFn) -> list[tuple[bytes, bytes]]:
    headers: list[tuple[bytes, bytes]] = []
    for _ in range(draw(st.integers(0, 3))):
        headers.append((b"authorization", draw(authorization_value())))
    for _ in range(draw(st.integers(0, 4))):
        headers.append((draw(header_names), draw(st.binary(max_size=60))))
    headers.append((b"content-type", b"application/json"))
    return draw(st.permutations(headers))


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)
tool_names = st.sampled_from(["admin_reset", "echo", "whoami", "Admin_reset", "admin_reset "])
methods_jsonrpc = st.sampled_from(["tools/call", "tools/list", "initialize", "TOOLS/CALL"])


@st.composite
def body(draw: st.DrawFn) -> bytes:
    name = draw(tool_names)
    call: dict[str, Any] = {
        "jsonrpc": "2.0",
        "id": draw(st.integers(0, 2**31)),
        "method": draw(methods_jsonrpc),
        "params": {"name": name, "arguments": draw(json_values)},
    }
    kind = draw(
        st.sampled_from(
            ["call", "batch", "random", "nested", "huge", "badutf8", "duplicate", "escaped"]
        )
    )
    if kind == "call":
        return json.dumps(call).encode()
    if kind == "batch":
        return json.dumps([call, draw(json_values)]).encode()
    if kind == "random":
        return json.dumps(draw(json_values)).encode()
    if kind == "nested":
        depth = draw(st.integers(1, 7_000))
        text = json.dumps({**call, "params": {"name": name, "x": "@"}})
        return text.replace('"@"', "[" * depth + "]" * depth).encode()
    if kind == "huge":
        padding = "p" * draw(st.integers(BODY_LIMIT - 200, BODY_LIMIT + 200))
        return json.dumps({**call, "padding": padding}).encode()
    if kind == "badutf8":
        raw = json.dumps(call).encode()
        i = draw(st.integers(0, len(raw)))
        return raw[:i] + draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80"])) + raw[i:]
    if kind == "duplicate":
        # A second "params" member, before or after the first: every reading is checked.
        inner = json.dumps(call)[1:-1]
        extra = '"params": ' + json.dumps({"name": draw(tool_names)})
        members = [inner, extra] if draw(st.booleans()) else [extra, inner]
        return ("{" + ", ".join(members) + "}").encode()
    escaped = json.dumps(call).replace("admin_reset", "admin\\u005freset")
    return escaped.encode()


@st.composite
def chunked(draw: st.DrawFn, data: bytes) -> list[bytes]:
    pieces = draw(st.integers(1, 200))
    if pieces == 1 or len(data) < 2:
        return [data]
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=pieces)))
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


paths = st.sampled_from(
    ["/mcp", "/mcp", "/mcp/", "/health", "/health/", "/health/../mcp", "//mcp", "/x%2Fy", "/"]
)
http_methods = st.sampled_from(["POST", "POST", "GET", "OPTIONS", "DELETE", "post", "PUT"])


# -- the in-process properties ------------------------------------------------------------------


@FUZZ
@given(method=http_methods, path=paths, headers=header_list(), data=st.data())
def test_requests_never_fail_open_or_crash(
    method: str, path: str, headers: list[tuple[bytes, bytes]], data: st.DataObject
) -> None:
    raw = data.draw(body()) if method in ("POST", "PUT") else b""
    run(method, path, headers, data.draw(chunked(raw)))


@FUZZ
@given(token=st.sampled_from(VALID_TOKENS), raw=body(), data=st.data())
def test_tool_calls_with_valid_tokens_are_checked(
    token: str, raw: bytes, data: st.DataObject
) -> None:
    headers = [
        (b"authorization", f"Bearer {token}".encode()),
        (b"content-type", b"application/json"),
    ]
    run("POST", "/mcp", headers, data.draw(chunked(raw)))


def test_valid_requests_do_reach_the_app() -> None:
    """The properties above are not met by refusing everything."""
    admin = next(t for t, s in VALID.items() if s == {TOOLS, ADMIN})
    tools = next(t for t, s in VALID.items() if s == {TOOLS})
    call = json.dumps(
        {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "admin_reset"}}
    )
    for token, expected in ((admin, 1), (tools, 0)):
        REACHED.requests.clear()
        headers = [(b"authorization", f"Bearer {token}".encode())]
        status = asyncio.run(drive("POST", "/mcp", headers, [call.encode()]))
        assert len(REACHED.requests) == expected
        assert status == (200 if expected else 403)


# -- the same app over real HTTP (uvicorn) ---------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with AppServer(build_app()) as url:
        yield url


# What an HTTP client can put on the wire: visible ASCII, spaces and tabs, no CR/LF or NUL.
wire_text = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E) | st.just("\t"), max_size=80
)


@settings(max_examples=60 * EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    auth=st.lists(
        st.one_of(
            st.builds(
                lambda t: f"Bearer {t}", tokens.filter(lambda t: t.isascii() and t.isprintable())
            ),
            wire_text,
        ),
        max_size=2,
    ),
    raw=body(),
    path=st.sampled_from(["/mcp", "/health", "/mcp/", "/other"]),
)
def test_over_uvicorn(server: str, auth: list[str], raw: bytes, path: str) -> None:
    REACHED.requests.clear()
    # HTTP drops whitespace around a header value (RFC 9110 section 5.5); h11 will not send it.
    values = [a.strip(" \t") for a in auth]
    headers = [("content-type", "application/json"), *(("authorization", v) for v in values)]
    with httpx.Client(timeout=CALL_TIMEOUT) as http:
        response = http.post(server + path, content=raw, headers=headers)
    wire_headers = [(n.encode(), v.encode()) for n, v in headers]
    check("POST", path, wire_headers, raw, response.status_code)


def test_whitespace_around_the_header_value_is_not_part_of_the_token() -> None:
    """Found by the fuzz test above: a valid token with tabs around the field value passes (they
    are optional whitespace, RFC 9110 section 5.5), and the oracle agrees."""
    token = next(iter(VALID))
    headers = [(b"authorization", b"\tBearer " + token.encode() + b"\t")]
    assert granted_scopes(headers) == VALID[token]
    REACHED.requests.clear()
    run("GET", "/mcp", headers, [b""])
    assert len(REACHED.requests) == 1
