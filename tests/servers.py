"""Run an ASGI application under uvicorn on 127.0.0.1 for end-to-end tests.

    sock = bind_loopback()                  # the port is known before the app is built
    app = build_app(audience=url_of(sock) + "/mcp")
    with UvicornThread(app, sock) as base_url:          # or: async with ...
        ...

The socket is bound here (port 0: a free one) and handed to uvicorn, so no other process can take
the port between choosing it and listening on it. The server runs its own event loop in a daemon
thread, with the application's lifespan, and without signal handlers (the test runner keeps
Ctrl-C). ``async with`` waits for start and stop without blocking the test's event loop, so the
application may call back into servers that run in that loop (``LocalIssuer.serve_async``).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Literal

import anyio.to_thread
import uvicorn
from starlette.types import ASGIApp

__all__ = ["UvicornThread", "bind_loopback", "url_of"]

HOST = "127.0.0.1"
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
# Seconds uvicorn gives open responses (an SSE stream a client left open) once stopping.
GRACEFUL_SHUTDOWN = 1


def bind_loopback(port: int = 0) -> socket.socket:
    """A listening TCP socket on 127.0.0.1 (``port`` 0: a free port)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((HOST, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def url_of(sock: socket.socket) -> str:
    """``http://127.0.0.1:<port>`` of a bound socket."""
    return f"http://{HOST}:{sock.getsockname()[1]}"


class _Server(uvicorn.Server):
    """uvicorn that leaves signal handling alone: its owner stops it with ``should_exit``."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class UvicornThread:
    """``app`` served by uvicorn on ``sock`` (a fresh loopback socket if None) from a thread."""

    def __init__(
        self,
        app: ASGIApp,
        sock: socket.socket | None = None,
        *,
        lifespan: Literal["on", "off", "auto"] = "on",
    ) -> None:
        self.sock = sock if sock is not None else bind_loopback()
        self.url = url_of(self.sock)
        config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            log_config=None,  # leave the test run's logging configuration alone
            lifespan=lifespan,
            loop="asyncio",
            http="h11",
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN,
        )
        self.server = _Server(config)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name=f"uvicorn {self.url}", daemon=True)

    def _run(self) -> None:
        try:
            self.server.run(sockets=[self.sock])
        except BaseException as error:  # reported by the waiting side
            self.error = error

    def start(self) -> str:
        """Start and wait (blocking) until the server listens; returns its base URL."""
        self.thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError(f"the server at {self.url} did not start") from self.error
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server at {self.url} did not start in {START_TIMEOUT} s")
            time.sleep(0.005)
        return self.url

    async def start_async(self) -> str:
        """Like ``start``, waiting in a worker thread so the event loop keeps running."""
        return await anyio.to_thread.run_sync(self.start)

    def stop(self) -> None:
        """Stop the server (running the app's lifespan shutdown) and close the socket."""
        if self.thread.is_alive():
            self.server.should_exit = True
            self.thread.join(STOP_TIMEOUT)
            if self.thread.is_alive():
                self.server.force_exit = True
                self.thread.join(STOP_TIMEOUT)
        self.sock.close()
        if self.thread.is_alive():
            raise RuntimeError(f"the server at {self.url} did not stop")

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
