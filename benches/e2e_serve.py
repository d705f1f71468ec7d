"""uvicorn's command line, with TCP_NODELAY kept on connections accepted under ``--workers``.

uvicorn 0.54 binds the listening socket for ``--workers N`` with ``socket.socket(family=...)``,
which leaves ``proto`` at 0; accepted sockets inherit it, and asyncio only sets TCP_NODELAY on
sockets that say IPPROTO_TCP. Nagle's algorithm then holds each response's body until the
client's delayed ACK: about 40 ms per keep-alive request on Linux (Kludex/uvicorn#3149, open).
The single-process path is not affected (asyncio binds from getaddrinfo, which says TCP).

The end-to-end benchmark runs ``--workers 2`` both as shipped and through this wrapper, which
re-labels the bound socket as TCP (the fix proposed upstream) and then runs the usual CLI::

    python e2e_serve.py e2e_app:protected_app --factory --workers 2 --port 8000
"""

from __future__ import annotations

import socket

from uvicorn.config import Config
from uvicorn.main import main as uvicorn_cli

_bind_socket = Config.bind_socket


def _bind_tcp_socket(self: Config) -> socket.socket:
    sock = _bind_socket(self)
    if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.proto == 0:
        fixed = socket.socket(sock.family, sock.type, socket.IPPROTO_TCP, fileno=sock.detach())
        fixed.set_inheritable(True)
        return fixed
    return sock


if __name__ == "__main__":
    Config.bind_socket = _bind_tcp_socket  # type: ignore[method-assign]
    uvicorn_cli()
