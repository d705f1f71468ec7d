"""DPoP replay protection: each proof (its key and ``jti``) is accepted once, for as long as it
could pass the time check (RFC 9449 section 11.1).

``ReplayCheck.first_use(proof)`` records a proof that passed every other check, and refuses one
it has seen (``proof.replayed()``: 401 ``invalid_dpop_proof``). A proof it cannot record is never
accepted: the request is answered 503 with ``Retry-After`` (``DPoPReplayUnavailableError``).

- ``MemoryReplayStore`` (the default): this process's memory, at most ``MEMORY_CAPACITY`` proofs.
  Each is kept until its ``iat`` leaves the window (about ``dpop_max_age`` seconds), so the
  capacity is about 218 proofs a second sustained with the default window of 300 s. When it is
  full of proofs still in their window, a new proof is refused with 503 until the oldest
  expires: never accepted unrecorded. It protects one process only: behind several workers or
  replicas, a proof replayed to another process passes there.
- ``RedisReplayStore`` (``dpop_replay_store="redis://..."``, the ``redis`` extra): one atomic
  ``SET key 1 NX EX ttl`` per proof, shared by every process that uses the same Redis. Redis is
  an outside call: its failures back off (``_backoff.Backoff``, as the key server's do), and
  meanwhile every DPoP request is answered 503 without a call.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, Protocol

from mcp_oauth2._backoff import Backoff
from mcp_oauth2._rust import DPoPProof
from mcp_oauth2.errors import ConfigurationError, DPoPReplayUnavailableError

if TYPE_CHECKING:
    from mcp_oauth2._config import OAuth2Config

__all__ = [
    "MEMORY_CAPACITY",
    "MemoryReplayStore",
    "RedisReplayStore",
    "ReplayCheck",
    "ReplayStore",
]

logger = logging.getLogger("mcp_oauth2.dpop")

MEMORY_CAPACITY: Final = 65_536
"""Proofs the in-process store holds: about 14 MiB when full (the process's growth measured
over 65,536 recorded proofs: their 32-byte keys, expiries and the heap; see the DPoP page)."""
# Redis: the longest a call may take, connections at once, the pauses after failures.
REDIS_TIMEOUT: Final = 1.0
REDIS_CONNECTIONS: Final = 32
FIRST_BACKOFF: Final = 1.0
MAX_BACKOFF: Final = 30.0
# Keys in Redis: this prefix and the proof's replay key in hex (never the jti itself).
REDIS_PREFIX: Final = "mcp-oauth2:dpop:"


class ReplayStore(Protocol):
    """Where proofs are recorded."""

    async def add(self, key: bytes, ttl: int) -> bool:
        """Record ``key`` for ``ttl`` seconds: True when it was not recorded already; raises
        ``DPoPReplayUnavailableError`` when it cannot tell."""

    async def aclose(self) -> None: ...


class MemoryReplayStore:
    """Proofs recorded in this process: a dict of key to expiry and a heap of expiries, the
    expired removed as new ones arrive."""

    def __init__(
        self, capacity: int = MEMORY_CAPACITY, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.capacity = capacity
        self._clock = clock
        self._expiry: dict[bytes, float] = {}
        self._heap: list[tuple[float, bytes]] = []
        self._full_logged = False

    def __len__(self) -> int:
        return len(self._expiry)

    async def add(self, key: bytes, ttl: int) -> bool:
        now = self._clock()
        heap, expiry = self._heap, self._expiry
        while heap and heap[0][0] <= now:
            del expiry[heapq.heappop(heap)[1]]
        if key in expiry:
            return False
        if len(expiry) >= self.capacity:
            wait = heap[0][0] - now
            if not self._full_logged:
                self._full_logged = True
                logger.error(
                    "the in-process DPoP replay cache is full (%d proofs in their window): "
                    "DPoP requests are refused with 503; set dpop_replay_store to a Redis",
                    self.capacity,
                )
            raise DPoPReplayUnavailableError(
                f"the in-process DPoP replay cache is full ({self.capacity} proofs)",
                retry_after=math.ceil(wait),
            )
        self._full_logged = False
        expiry[key] = when = now + ttl
        heapq.heappush(heap, (when, key))
        return True

    async def aclose(self) -> None:
        self._expiry.clear()
        self._heap.clear()


class RedisReplayStore:
    """Proofs recorded in Redis, shared by every process that uses it."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = REDIS_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        try:
            from redis.asyncio import BlockingConnectionPool, Redis
        except ImportError as error:
            raise ConfigurationError(
                "dpop_replay_store (MCP_OAUTH2_DPOP_REPLAY_STORE) needs redis-py: "
                f'pip install "mcp-oauth2[redis]" ({error})'
            ) from None
        # A blocking pool: a call waits (up to the timeout) for one of the connections, so a
        # burst of requests is never taken for Redis failing.
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=REDIS_CONNECTIONS,
            timeout=timeout,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
        )
        self._redis: Any = Redis(connection_pool=pool)
        self._timeout = timeout
        self._clock = clock
        self.backoff = Backoff(first=FIRST_BACKOFF, cap=MAX_BACKOFF)

    async def add(self, key: bytes, ttl: int) -> bool:
        from redis.exceptions import RedisError

        now = self._clock()
        if self.backoff.backing_off(now):
            raise DPoPReplayUnavailableError(
                "the DPoP replay store (Redis) is backing off after failures",
                retry_after=self.backoff.retry_after(now),
            )
        try:
            async with asyncio.timeout(self._timeout):
                created = await self._redis.set(REDIS_PREFIX + key.hex(), b"1", nx=True, ex=ttl)
        except (RedisError, OSError, TimeoutError) as error:
            failures = self.backoff.failures
            wait = self.backoff.failed(now, self._clock())
            if self.backoff.failures != failures:  # one line per failure episode
                logger.warning(
                    "the DPoP replay store (Redis) failed (%s: %s); DPoP requests answer 503 "
                    "for %.1f s",
                    type(error).__name__,
                    error,
                    wait,
                )
            raise DPoPReplayUnavailableError(
                f"the DPoP replay store (Redis) failed: {type(error).__name__}",
                retry_after=math.ceil(wait),
            ) from None
        self.backoff.succeeded()
        return bool(created)

    async def aclose(self) -> None:
        # The pool was handed to the client, which therefore leaves it open unless told.
        await self._redis.aclose(close_connection_pool=True)


class ReplayCheck:
    """Each proof accepted once: the one owner of the replay decision."""

    def __init__(self, store: ReplayStore, *, clock: Callable[[], float] = time.time) -> None:
        """``clock`` (unix seconds) turns a proof's ``expires_at`` into how long it is kept."""
        self.store = store
        self._clock = clock

    @classmethod
    def from_config(cls, config: OAuth2Config) -> ReplayCheck | None:
        """The check ``config`` describes: None when DPoP is off; in Redis when
        ``dpop_replay_store`` is set, else in this process's memory."""
        if config.dpop == "off":
            return None
        url = config.dpop_replay_store
        store: ReplayStore = (
            MemoryReplayStore() if url is None else RedisReplayStore(url.get_secret_value())
        )
        return cls(store)

    async def first_use(self, proof: DPoPProof) -> None:
        """Record ``proof``; raise its ``replayed()`` refusal when it was recorded before, and
        ``DPoPReplayUnavailableError`` when the store cannot tell."""
        ttl = max(1, math.ceil(proof.expires_at - self._clock()))
        if not await self.store.add(proof.replay_key, ttl):
            raise proof.replayed()

    async def aclose(self) -> None:
        await self.store.aclose()
