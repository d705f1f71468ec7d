"""One bounded HTTP exchange for a small document: a GET of a JWKS or of authorization-server
metadata, or the form POST of an RFC 7662 introspection or of a token request.

Bounded in every way a hostile or broken server could stretch it: one total deadline across all
attempts, a body cap enforced while streaming, no redirects, only status 200 (the body of a 4xx
answer to a form POST is kept on the error, for the RFC 6749 error it holds), and a few retries
(with exponential backoff and jitter) for connection errors and 5xx answers only.

The request asks for ``Accept-Encoding: identity`` and an answer in any other content coding is
refused unread: the body is read raw, so the byte cap bounds what arrives and what is kept alike
(a 600-byte ``Content-Encoding: gzip, gzip`` answer can otherwise inflate to hundreds of MB).
Key and metadata documents are a few KB; compressing them saves nothing worth that risk.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from mcp_oauth2._backoff import pause

__all__ = ["FetchError", "FetchLimits", "FetchedDocument", "fetch_document", "new_client"]

ACCEPT = "application/jwk-set+json, application/json;q=0.9"
USER_AGENT = "mcp-oauth2"
# ASCII digits only, and few enough that int() is cheap ("²".isdigit() is True too).
DECIMAL = re.compile(r"[0-9]{1,18}")
# First retry after about 0.1 s, then 0.2 s, ... (``_backoff.pause``), within the deadline.
RETRY_BASE_DELAY = 0.1
RETRY_MAX_DELAY = 2.0


@dataclass(frozen=True, slots=True)
class FetchLimits:
    """The bounds of one fetch."""

    deadline: float
    """Seconds for the whole fetch, retries included."""
    max_bytes: int
    """Largest body accepted, counted as received."""
    retries: int
    """Extra attempts after a connection error or a 5xx answer."""


@dataclass(frozen=True, slots=True)
class FetchedDocument:
    body: bytes
    headers: httpx.Headers


class FetchError(Exception):
    """A fetch that failed. ``str()`` is for logs (it names the URL), never for clients."""

    def __init__(self, detail: str, *, retryable: bool, status: int | None = None) -> None:
        super().__init__(detail)
        self.retryable = retryable
        self.status = status
        """The HTTP status of an answer other than 200 (None when there was no answer)."""
        self.body = b""
        """The body of a 4xx answer to a form POST (within the byte cap; else empty): where an
        OAuth endpoint puts its RFC 6749 error. Never part of ``str()``."""


def new_client(timeout: float, connections: int = 2) -> httpx.AsyncClient:
    """A client for one endpoint group: connection reuse, at most ``connections`` connections,
    never following redirects."""
    return httpx.AsyncClient(
        follow_redirects=False,
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        timeout=httpx.Timeout(timeout),
        headers={"Accept": ACCEPT, "Accept-Encoding": "identity", "User-Agent": USER_AGENT},
    )


async def fetch_document(
    client: httpx.AsyncClient,
    url: str,
    limits: FetchLimits,
    *,
    form: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> FetchedDocument:
    """GET ``url`` (or POST ``form`` to it, form-encoded); raise ``FetchError`` unless it answers
    200 within the limits. ``headers`` are added to the client's."""
    deadline = limits.deadline
    method = "GET" if form is None else "POST"
    try:
        async with asyncio.timeout(deadline):
            attempt = 0
            while True:
                try:
                    return await _request_once(client, method, url, limits.max_bytes, form, headers)
                except FetchError as error:
                    if not error.retryable or attempt >= limits.retries:
                        raise
                attempt += 1
                await asyncio.sleep(pause(attempt, first=RETRY_BASE_DELAY, cap=RETRY_MAX_DELAY))
    except TimeoutError:
        detail = f"{method} {url}: no complete answer within {deadline:g} s"
        raise FetchError(detail, retryable=False) from None


async def _request_once(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    max_bytes: int,
    form: Mapping[str, str] | None,
    headers: Mapping[str, str] | None,
) -> FetchedDocument:
    request = f"{method} {url}"
    try:
        async with client.stream(
            method, url, data=form, headers=headers, follow_redirects=False
        ) as response:
            status = response.status_code
            if status == 200:
                return FetchedDocument(await _body(response, request, max_bytes), response.headers)
            where = response.headers.get("location", "")
            hint = f" (redirect to {where[:200]!r} not followed)" if 300 <= status < 400 else ""
            error = FetchError(
                f"{request}: HTTP {status}{hint}", retryable=status >= 500, status=status
            )
            if 400 <= status < 500 and form is not None:
                # The answer of an OAuth endpoint to a POST: its RFC 6749 error, if it gives one.
                with contextlib.suppress(FetchError):  # unreadable: the status says enough
                    error.body = await _body(response, request, max_bytes)
            raise error
    except httpx.TransportError as error:
        kind = type(error).__name__
        raise FetchError(f"{request}: {kind}: {error}", retryable=True) from error
    except httpx.HTTPError as error:  # a protocol-level answer httpx cannot use
        kind = type(error).__name__
        raise FetchError(f"{request}: {kind}: {error}", retryable=False) from error


async def _body(response: httpx.Response, request: str, max_bytes: int) -> bytes:
    """The body as received, within ``max_bytes``, in identity coding only."""
    coding = response.headers.get("content-encoding", "identity").strip().lower()
    if coding not in ("", "identity"):
        raise FetchError(
            f"{request}: Content-Encoding {coding[:100]!r} refused (asked for identity)",
            retryable=False,
        )
    declared = response.headers.get("content-length", "")
    if DECIMAL.fullmatch(declared) and int(declared) > max_bytes:
        raise FetchError(
            f"{request}: body of {declared} bytes exceeds the {max_bytes}-byte limit",
            retryable=False,
        )
    body = bytearray()
    # Raw bytes: nothing is decoded, so the cap counts exactly what the server sent.
    async for chunk in response.aiter_raw():
        body += chunk
        if len(body) > max_bytes:
            raise FetchError(f"{request}: body exceeds the {max_bytes}-byte limit", retryable=False)
    return bytes(body)
