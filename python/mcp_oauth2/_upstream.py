"""Calls to the authorization server: one bounded HTTP client per endpoint group, admission, and one
call in flight per key; what key fetches, discovery and introspection all go through.

- ``Upstream`` owns an ``httpx.AsyncClient`` with ``connections`` connections and a semaphore of
  the same size. A call first waits for a connection of its own (up to ``queue_wait``), and only
  then does its deadline start: time spent queueing behind other calls is never taken for the
  endpoint being slow. At most ``max_pending`` calls are admitted at once (in flight or queued);
  beyond that, and when the queue wait runs out, the call is refused with ``Saturated``, which
  is not an endpoint failure.
- ``SingleFlight`` runs one call per key at a time and shares it with every caller that asks
  meanwhile; a caller that gives up (a client disconnect, a timeout) does not cancel it.

How long to back off after failures is ``_backoff``'s; the HTTP rules of one exchange (HTTPS,
deadline, body cap, no redirects, identity coding, retries) are ``_http_fetch``'s.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine, Hashable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import httpx

from mcp_oauth2._http_fetch import (
    FetchedDocument,
    FetchError,
    FetchLimits,
    fetch_document,
    new_client,
)

__all__ = ["Saturated", "SingleFlight", "Upstream", "UpstreamLimits"]

Key = TypeVar("Key", bound=Hashable)
Value = TypeVar("Value")


@dataclass(frozen=True, slots=True)
class UpstreamLimits:
    """How an endpoint group is called: the bounds of each exchange and of the calls at once."""

    fetch: FetchLimits
    connections: int = 2
    """Connections to the endpoint, and calls in flight at once."""
    max_pending: int = 64
    """Calls admitted at once, in flight or waiting for a connection."""
    queue_wait: float | None = None
    """Longest wait for a connection (default: the exchange's deadline)."""


class Saturated(FetchError):  # noqa: N818 - an answer to the caller, not the endpoint's failure
    """The call was not made: too many calls are admitted, or no connection came free in time.
    The endpoint is not to blame (it is not counted as a failure)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail, retryable=False)


class Upstream:
    """The calls to one endpoint group (a key server, an introspection endpoint) of an
    authorization server; share one per group and ``aclose()`` it at shutdown."""

    def __init__(self, limits: UpstreamLimits, *, client: httpx.AsyncClient | None = None) -> None:
        self.limits = limits
        self._client = client
        self._owns_client = client is None
        self._connections = asyncio.Semaphore(limits.connections)
        self.pending = 0
        """Calls admitted now (in flight or waiting for a connection)."""
        self.saturated = 0
        """Calls refused so far because too many were admitted or none got a connection."""

    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = new_client(self.limits.fetch.deadline, self.limits.connections)
        return self._client

    async def fetch(
        self,
        url: str,
        *,
        form: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> FetchedDocument:
        """``fetch_document`` once a connection is free; ``Saturated`` when the call cannot be
        made now, ``FetchError`` when the endpoint failed."""
        limits = self.limits
        if self.pending >= limits.max_pending:
            self.saturated += 1
            raise Saturated(f"{self.pending} calls to {url} admitted already (the limit)")
        self.pending += 1
        try:
            wait = limits.fetch.deadline if limits.queue_wait is None else limits.queue_wait
            try:
                async with asyncio.timeout(wait):
                    await self._connections.acquire()
            except TimeoutError:
                self.saturated += 1
                raise Saturated(f"no connection to {url} came free within {wait:g} s") from None
            try:
                return await fetch_document(
                    self.client(), url, limits.fetch, form=form, headers=headers
                )
            finally:
                self._connections.release()
        finally:
            self.pending -= 1

    async def aclose(self) -> None:
        """Close the client if this upstream made it."""
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None


class SingleFlight(Generic[Key, Value]):
    """One call per key at a time, shared by every caller that asks while it runs."""

    def __init__(self) -> None:
        self._calls: dict[Key, asyncio.Task[Value]] = {}

    def __len__(self) -> int:
        return len(self._calls)

    def running(self, key: Key) -> bool:
        task = self._calls.get(key)
        return task is not None and not task.done()

    def start(
        self, key: Key, call: Callable[[], Coroutine[Any, Any, Value]]
    ) -> asyncio.Task[Value]:
        """The call in flight for ``key``, or a new one made from ``call()``."""
        task = self._calls.get(key)
        if task is None or task.done():
            task = asyncio.get_running_loop().create_task(call())
            self._calls[key] = task
            task.add_done_callback(self._finished(key))
        return task

    async def join(self, key: Key, call: Callable[[], Coroutine[Any, Any, Value]]) -> Value:
        """The outcome of the call for ``key`` (started if none runs). Shielded: a caller that
        gives up does not cancel the call others are waiting on."""
        return await asyncio.shield(self.start(key, call))

    def _finished(self, key: Key) -> Callable[[asyncio.Task[Value]], None]:
        def finished(task: asyncio.Task[Value]) -> None:
            if self._calls.get(key) is task:
                del self._calls[key]
            if not task.cancelled():
                task.exception()  # retrieved: every waiter may have given up

        return finished

    async def aclose(self) -> None:
        """Cancel every call in flight and wait for them to end."""
        tasks = list(self._calls.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._calls.clear()
