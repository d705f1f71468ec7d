"""``BearerRecorder``: an ASGI wrapper that keeps the bearer token of every request reaching an
app, before anything judges it; for tests that a downstream API never receives a caller's own
token (only one exchanged for it)."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["BearerRecorder"]


class BearerRecorder:
    """``app`` as it is, with ``tokens``: the credentials of each ``Authorization: Bearer``
    header of each HTTP request, in the order they arrived (refused requests included)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.tokens: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name == b"authorization":
                    scheme, _, credentials = value.decode("latin-1").partition(" ")
                    if scheme.lower() == "bearer":
                        self.tokens.append(credentials.strip())
        await self.app(scope, receive, send)
