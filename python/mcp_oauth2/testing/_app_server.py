"""``AppServer``: any ASGI app (an MCP server, say) served on loopback for a test, with its
lifespan, from ``with`` or ``async with``."""

from __future__ import annotations

import socket
from typing import Final, Literal

import anyio.to_thread
from starlette.types import ASGIApp

from mcp_oauth2.testing._loopback import LoopbackServer, bind_loopback

__all__ = ["AppServer"]

# Seconds uvicorn gives open responses (an SSE stream a client left open) once stopping.
_GRACEFUL_SHUTDOWN: Final = 1


class AppServer:
    """``app`` served by uvicorn on ``sock`` (a fresh loopback socket if None) from a thread.

        sock = bind_loopback()                  # the port is known before the app is built
        app = build_app(audience=url_of(sock) + "/mcp")
        with AppServer(app, sock) as base_url:  # or: async with ...
            ...

    Binding the socket first means no other process can take the port between choosing it and
    listening on it. The server runs its own event loop in a daemon thread, with the app's
    lifespan, without signal handlers. ``async with`` waits for start and stop in a worker
    thread, so the app may call back into servers running in the caller's event loop.
    """

    def __init__(
        self,
        app: ASGIApp,
        sock: socket.socket | None = None,
        *,
        lifespan: Literal["on", "off", "auto"] = "on",
    ) -> None:
        self.sock = sock if sock is not None else bind_loopback()
        self._runner = LoopbackServer(
            app, self.sock, lifespan=lifespan, graceful_shutdown=_GRACEFUL_SHUTDOWN
        )
        self.url = self._runner.url

    def start(self) -> str:
        """Start and wait (blocking) until the server listens; returns its base URL."""
        self._runner.start_thread()
        return self.url

    async def start_async(self) -> str:
        """Like ``start``, waiting in a worker thread so the event loop keeps running."""
        return await anyio.to_thread.run_sync(self.start)

    def stop(self) -> None:
        """Stop the server (running the app's lifespan shutdown) and close the socket."""
        self._runner.stop_thread()

    async def stop_async(self) -> None:
        """Like ``stop``, waiting in a worker thread so the event loop keeps running."""
        await anyio.to_thread.run_sync(self.stop)

    def __enter__(self) -> str:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def __aenter__(self) -> str:
        try:
            return await self.start_async()
        except BaseException:
            await self.stop_async()
            raise

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop_async()
