"""Per-tool scopes for an MCP endpoint, enforced at the HTTP layer.

A JSON-RPC ``tools/call`` travels in a POST body, so the middleware alone cannot tell which tool
is called. ``ToolScopes`` wraps the MCP app: for a POST from an authenticated caller it reads the
body (bounded), and when a call names a tool whose scopes the token lacks it answers 403
``insufficient_scope`` with ``WWW-Authenticate: Bearer ... scope="<all scopes needed>"``, the
step-up challenge of the MCP authorization specification. Otherwise it replays the body to the
MCP app unchanged.

It fails closed: a request it cannot judge is never forwarded.

- Without ``OAuth2Middleware`` in front (the MCP SDK's own auth, ``MCPTokenVerifier``, runs
  inside the MCP app, after ``ToolScopes``, so it cannot serve), every request is refused with
  500 ``unprotected`` and the reason is logged at ERROR, at startup when ``ToolScopes`` sees the
  application's lifespan and on requests.
- An anonymous caller (a route in ``exempt_routes``) calling a tool that needs scopes: 401 with
  a challenge for those scopes.
- Over ``max_body_bytes``: 413 ``body_too_large`` (the body is not read further).
- The client went away before the body was complete: nothing is forwarded.
- Nested too deeply for Python's JSON parser to finish: 400 ``invalid_request``.
- Otherwise the body is parsed twice, by ``json.loads`` and by ``pydantic_core.from_json``, the
  two parsers the MCP SDK's transports use, and every value either produces is checked. Only a
  body that both refuse as invalid JSON goes on unchecked, since the SDK cannot read a tool call
  from it either; it answers its own JSON-RPC parse error.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any

import pydantic_core
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mcp_oauth2._access import ACCESS_SCOPE_KEY, access_of, unprotected, unprotected_reason
from mcp_oauth2._rust import AuthenticatedUser

__all__ = ["ToolScopes"]

logger = logging.getLogger("mcp_oauth2.tool_scopes")


class _BodyTooLargeError(Exception):
    """The body exceeds the limit: it cannot be checked (413)."""


class _BodyTooDeepError(Exception):
    """The body is nested too deeply for Python's JSON parser to finish (400)."""


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
        if scope["type"] == "lifespan" and ACCESS_SCOPE_KEY not in scope:
            logger.error("%s", unprotected_reason("ToolScopes"))
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        access = access_of(scope, "ToolScopes")
        if access is None:
            await unprotected().send(send)
            return
        if scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        try:
            body = await _read_body(receive, self.max_body_bytes)
            if body is None:
                return  # the client disconnected mid-body: nothing to check, nothing to forward
            needed = self._needed(body)
        except _BodyTooLargeError:
            await access.refuse(access.body_too_large(self.max_body_bytes), scope, receive, send)
            return
        except _BodyTooDeepError:
            await access.refuse(access.body_too_deep(), scope, receive, send)
            return
        user = scope.get("user")
        if isinstance(user, AuthenticatedUser):
            refusal = access.scope_refusal(user.scopes, needed)
        else:  # an exempt route: no token, so no scopes
            refusal = access.missing_token(needed) if needed else None
        if refusal is not None:
            await access.refuse(refusal, scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)

    def _needed(self, body: bytes) -> tuple[str, ...]:
        """The scopes of every tool the body calls, each once."""
        needed: list[str] = []
        for payload in _parsed(body):
            calls = payload if isinstance(payload, list) else [payload]
            for call in calls:
                if isinstance(call, dict) and call.get("method") == "tools/call":
                    params = call.get("params")
                    name = params.get("name") if isinstance(params, dict) else None
                    if isinstance(name, str):
                        needed.extend(self.tool_scopes.get(name, ()))
        return tuple(dict.fromkeys(needed))


def _parsed(body: bytes) -> list[Any]:
    """What each of the SDK's JSON parsers makes of ``body`` (nothing for a parser refusing it)."""
    values: list[Any] = []
    try:
        values.append(json.loads(body))
    except RecursionError:
        raise _BodyTooDeepError from None
    except ValueError:  # invalid JSON (UnicodeDecodeError included)
        pass
    with contextlib.suppress(ValueError):  # invalid JSON, or deeper than its recursion limit
        values.append(pydantic_core.from_json(body))
    return values


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body; None if the client disconnected before it was complete.

    Raises ``_BodyTooLargeError`` as soon as the body exceeds ``limit``.
    """
    size = 0
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _BodyTooLargeError
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """``receive`` for the app: the body that was read, as one message, then the real one."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
