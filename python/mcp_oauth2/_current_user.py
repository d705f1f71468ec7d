"""The caller of the request being served: ``current_user()``, for MCP tools and any code a
request reaches.

``OAuth2Middleware`` puts the request's ``AuthenticatedUser`` (None on an exempt route) into a
context variable around the call of the application and resets it afterwards. Context variables
follow the request wherever its work goes: into tasks started from it (asyncio copies the context
into every new task), into worker threads of ``anyio.to_thread`` and Starlette's thread pool, and,
in the ``mcp`` 2.x SDK, into the handler of each JSON-RPC message, which its transports start in
the context of the HTTP request that carried the message (not in that of the session's task,
which may have been started by an earlier request of another token). So two requests served at
once each see their own caller.

With the SDK's own auth (``MCPTokenVerifier``) the middleware is not there; the SDK keeps the
``AccessToken`` of the request in its own context variable, and the verifier's tokens carry the
user they were made from. ``mcp_sdk`` registers the lookup when it is imported (it is always
imported when the verifier is used), so this module never imports the SDK.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar, Token
from typing import Final

from mcp_oauth2._rust import AuthenticatedUser

__all__ = ["current_user", "enter_request", "leave_request", "read_sdk_auth_with"]

_CALLER: Final = ContextVar[AuthenticatedUser | None]("mcp_oauth2.current_user", default=None)
# How to read the user from the MCP SDK's auth context (set by ``mcp_sdk``); empty until then.
_SDK_LOOKUP: list[Callable[[], AuthenticatedUser | None]] = []


def current_user() -> AuthenticatedUser | None:
    """The ``AuthenticatedUser`` of the request being served, or None when it is anonymous (an
    exempt route) or no request is being served.

    Call it from an MCP tool, resource or prompt, from a route, or from anything they call: it
    needs no argument and no ``Context``. Behind ``OAuth2Middleware`` it is the user the
    middleware authenticated (``request.user``); behind the SDK's own auth with
    ``MCPTokenVerifier``, the user the verifier made the request's ``AccessToken`` from.
    """
    user = _CALLER.get()
    if user is None and _SDK_LOOKUP:
        return _SDK_LOOKUP[0]()
    return user


def enter_request(user: object) -> Token[AuthenticatedUser | None]:
    """Make ``user`` the current user (None unless it is an ``AuthenticatedUser``); give the
    token to ``leave_request`` when the request is done."""
    return _CALLER.set(user if isinstance(user, AuthenticatedUser) else None)


def leave_request(token: Token[AuthenticatedUser | None]) -> None:
    _CALLER.reset(token)


def read_sdk_auth_with(lookup: Callable[[], AuthenticatedUser | None]) -> None:
    """Where ``current_user()`` looks when the middleware set no user (``mcp_sdk`` calls it once,
    with its reader of the SDK's auth context)."""
    _SDK_LOOKUP[:] = [lookup]
