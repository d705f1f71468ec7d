"""Per-tool scopes for an MCP endpoint, enforced at the HTTP layer.

A JSON-RPC ``tools/call`` travels in a POST body, so the middleware alone cannot tell which tool
is called. ``ToolScopes`` wraps the MCP app: for a POST it reads the body (bounded), and when a
call names a tool whose scopes the token lacks it answers 403 ``insufficient_scope`` with
``WWW-Authenticate: Bearer ... scope="<all scopes needed>"``, the step-up challenge of the MCP
authorization specification. Otherwise it replays the body to the MCP app unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mcp_oauth2._rust import AuthenticatedUser
from mcp_oauth2.challenge import send_response
from mcp_oauth2.errors import InsufficientScopeError
from mcp_oauth2.middleware import SCOPE_KEY, OAuth2Middleware

__all__ = ["ToolScopes"]


class ToolScopes:
    def __init__(
        self,
        app: ASGIApp,
        tool_scopes: Mapping[str, Iterable[str]],
        *,
        max_body_bytes: int = 4 * 1024 * 1024,
    ) -> None:
        self.app = app
        self.tool_scopes = {tool: tuple(scopes) for tool, scopes in tool_scopes.items()}
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        middleware = scope.get(SCOPE_KEY)
        user = scope.get("user")
        if (
            scope["type"] != "http"
            or scope.get("method") != "POST"
            or not isinstance(middleware, OAuth2Middleware)
            or not isinstance(user, AuthenticatedUser)
        ):
            await self.app(scope, receive, send)
            return
        messages, body, complete = await _read_body(receive, self.max_body_bytes)
        if complete:
            needed = self._needed(body)
            if needed:
                effective = set(scope["auth"].scopes)
                missing = [s for s in needed if s not in effective]
                if missing:
                    all_needed = tuple(dict.fromkeys((*middleware.required_scopes, *needed)))
                    error = InsufficientScopeError(
                        f"this tool needs the scope(s): {' '.join(missing)}", all_needed
                    )
                    refusal = middleware.challenge.for_error(error, scopes=all_needed)
                    await send_response(send, refusal.status, refusal.headers, refusal.body)
                    return
        await self.app(scope, _replay(messages, receive), send)

    def _needed(self, body: bytes) -> tuple[str, ...]:
        try:
            payload: Any = json.loads(body)
        except ValueError:
            return ()  # not JSON: the MCP app answers with its own error
        calls = payload if isinstance(payload, list) else [payload]
        needed: list[str] = []
        for call in calls:
            if isinstance(call, dict) and call.get("method") == "tools/call":
                params = call.get("params")
                name = params.get("name") if isinstance(params, dict) else None
                if isinstance(name, str):
                    needed.extend(self.tool_scopes.get(name, ()))
        return tuple(dict.fromkeys(needed))


async def _read_body(receive: Receive, limit: int) -> tuple[list[Message], bytes, bool]:
    """Read request messages until the body is complete or over ``limit`` (then not inspected)."""
    messages: list[Message] = []
    size = 0
    chunks: list[bytes] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return messages, b"", False
        chunk = message.get("body", b"")
        size += len(chunk)
        chunks.append(chunk)
        if size > limit:
            return messages, b"", False
        if not message.get("more_body", False):
            return messages, b"".join(chunks), True


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay
