"""Serving an ASGI app under uvicorn on a loopback socket, from a daemon thread or as a task of
the running event loop, stopped by its owner: the one runner of ``LocalIssuer`` and ``AppServer``.

uvicorn takes over SIGINT and SIGTERM while it runs on the main thread (a server run as a task
of a test's event loop) and re-raises them afterwards. These servers are stopped by their owner,
so they leave the test runner's handlers alone. The hook is ``capture_signals`` since uvicorn
0.29 (the extra requires 0.30 or later).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Final, Literal

import uvicorn
from starlette.types import ASGIApp

__all__ = ["HOST", "LoopbackServer", "bind_loopback", "stop_tasks", "url_of"]

HOST: Final = "127.0.0.1"
_START_TIMEOUT: Final = 10.0
_STOP_TIMEOUT: Final = 5.0


def bind_loopback(port: int = 0) -> socket.socket:
    """A listening TCP socket on 127.0.0.1 (``port`` 0: a free port).

    Binding before uvicorn starts means no other process can take the port in between.
    SO_REUSEADDR lets a server listen again on its port while old connections linger in
    TIME_WAIT (on Windows that option would allow port stealing, so it is left off there).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if os.name != "nt":
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


class _Uvicorn(uvicorn.Server):
    """uvicorn that leaves signal handling alone and says when it listens."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        # Set at shutdown: hanging requests (the issuer's "hang" fault) answer, so that shutdown
        # need not wait for them.
        self.release = asyncio.Event()
        self.ready = threading.Event()  # set once listening; waited on from other threads
        # Whether the task has begun at all, and whether the listeners must close as soon as
        # uvicorn has opened them (a server told to stop listening before it started).
        self.running = False
        self.refuse_on_start = False

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self.running = True
        await super().serve(sockets=sockets)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.refuse_on_start:
            self.close_listeners()
        self.ready.set()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.release.set()
        await super().shutdown(sockets=sockets)

    def close_listeners(self) -> None:
        """Stop accepting connections now (the port refuses); call on the server's loop."""
        for server in getattr(self, "servers", ()):
            server.close()


class LoopbackServer:
    """``app`` under uvicorn on the listening socket ``sock``, run by ``start_thread`` or
    ``start_task``; ``graceful_shutdown`` is how long open responses get once stopping."""

    def __init__(
        self,
        app: ASGIApp,
        sock: socket.socket,
        *,
        lifespan: Literal["on", "off", "auto"],
        graceful_shutdown: int,
    ) -> None:
        config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            log_config=None,  # leave the process's logging configuration alone
            lifespan=lifespan,
            loop="asyncio",
            http="h11",
            timeout_graceful_shutdown=graceful_shutdown,
        )
        self.server = _Uvicorn(config)
        self.sock = sock
        self.url = url_of(sock)
        self.thread: threading.Thread | None = None
        self.task: asyncio.Task[None] | None = None
        self.error: BaseException | None = None

    # -- from a thread ----------------------------------------------------------------------------

    def start_thread(self) -> None:
        """Serve from a daemon thread with its own event loop; return once listening."""

        def run() -> None:
            try:
                self.server.run(sockets=[self.sock])
            except BaseException as error:  # reported below, by the waiting side
                self.error = error

        self.thread = threading.Thread(target=run, name=f"uvicorn {self.url}", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + _START_TIMEOUT
        while not self.server.ready.wait(0.01):
            if not self.thread.is_alive():
                raise RuntimeError(f"the server at {self.url} did not start") from self.error
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server at {self.url} did not start in time")

    def stop_thread(self) -> None:
        """Stop a thread-run server (uvicorn notices within 0.1 s) and close the socket."""
        thread = self.thread
        if thread is not None and thread.is_alive():
            self.server.should_exit = True
            thread.join(_STOP_TIMEOUT)
            if thread.is_alive():
                self.server.force_exit = True
                thread.join(_STOP_TIMEOUT)
        self.sock.close()
        if thread is not None and thread.is_alive():
            raise RuntimeError(f"the server at {self.url} did not stop")

    # -- as a task of the running loop ------------------------------------------------------------

    def start_task(self, loop: asyncio.AbstractEventLoop, name: str) -> None:
        """Serve as a task of ``loop``; ``wait_started`` waits until it listens."""
        self.task = loop.create_task(self.server.serve(sockets=[self.sock]), name=name)

    async def wait_started(self) -> None:
        assert self.task is not None
        deadline = time.monotonic() + _START_TIMEOUT
        while not self.server.ready.is_set():
            if self.task.done():
                raise RuntimeError(f"the server at {self.url} did not start") from (
                    None if self.task.cancelled() else self.task.exception()
                )
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server at {self.url} did not start in time")
            await asyncio.sleep(0.005)

    def stop_listening_task(self) -> None:
        """Refuse connections from now on and let the task wind down (``stop_tasks`` waits for
        it); call on the serving loop."""
        server = self.server
        if self.task is not None and not server.running:
            self.task.cancel()  # never started: nothing to wind down
            self.sock.close()
        elif server.started:
            server.close_listeners()
        else:
            server.refuse_on_start = True
        server.should_exit = True


async def stop_tasks(servers: Iterable[LoopbackServer]) -> None:
    """Stop task-run servers, waiting a bounded time, and close their sockets; raise if a server
    failed while it ran."""
    servers = list(servers)
    tasks = {server.task for server in servers if server.task is not None}
    for server in servers:
        server.server.should_exit = True
    if tasks:
        _, pending = await asyncio.wait(tasks, timeout=_STOP_TIMEOUT)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=_STOP_TIMEOUT)
    for server in servers:
        server.sock.close()
    for task in tasks:
        if task.done() and not task.cancelled() and task.exception() is not None:
            raise RuntimeError("a loopback server failed") from task.exception()
