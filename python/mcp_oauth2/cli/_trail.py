"""Fetching an issuer's metadata and keys the way the middleware does, recording every URL tried.

The work is done by the library's own code, so the command sees what a server would see:
``_discovery.discover_jwks_uri`` (same URL order, same ``issuer`` rule, same URL rules),
``_http_fetch.fetch_document`` (same bounds, retries and refusals) and ``KeySet.from_jwks``. An
httpx event hook only listens: it notes each request and the status of each answer, which the
report shows as the discovery trail.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from mcp_oauth2._cache_settings import CacheSettings
from mcp_oauth2._discovery import discover_jwks_uri, metadata_urls
from mcp_oauth2._http_fetch import FetchError, fetch_document, new_client
from mcp_oauth2._rust import KeySet
from mcp_oauth2.errors import IssuerMismatchError, JWKSError

__all__ = ["Attempt", "KeyFetch", "fetch_keys"]

Purpose = Literal["metadata", "jwks"]
# How each failure is classified: the error codes of the middleware's 503 answers.
FailureCode = Literal["discovery_failed", "issuer_mismatch", "jwks_unavailable", "jwks_invalid"]


@dataclass(slots=True)
class Attempt:
    """One URL of the trail and what it answered."""

    url: str
    purpose: Purpose
    statuses: list[int] = field(default_factory=list)
    problem: str | None = None
    used: bool = False
    tried: bool = True

    @property
    def answer(self) -> str:
        """``"200"``, ``"404"``, ``"503, 503, 503"``, the error, or ``"not tried"``."""
        if not self.tried:
            return "not tried"
        parts = [", ".join(str(status) for status in self.statuses)] if self.statuses else []
        if self.problem is not None and not (self.statuses and _is_status_only(self.problem)):
            parts.append(self.problem)
        return " ".join(parts) if parts else "no answer"

    def as_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "purpose": self.purpose,
            "tried": self.tried,
            "statuses": list(self.statuses),
            "problem": self.problem,
            "used": self.used,
        }


def _is_status_only(problem: str) -> bool:
    return problem.startswith("HTTP ") and problem[5:8].isdigit() and len(problem) == 8


@dataclass(slots=True)
class KeyFetch:
    """The outcome of fetching one key source, with its trail."""

    issuer: str | None
    """The issuer whose metadata was read (None when a JWKS URL was given)."""
    attempts: list[Attempt] = field(default_factory=list)
    jwks_uri: str | None = None
    body: bytes | None = None
    headers: httpx.Headers | None = None
    keys: KeySet | None = None
    failure: FailureCode | None = None
    detail: str | None = None
    reasons: tuple[str, ...] = ()
    fell_back: bool = False
    """The given URL was not an issuer with metadata and was fetched as a JWKS instead."""

    @property
    def ok(self) -> bool:
        return self.keys is not None

    @property
    def reached(self) -> bool:
        """Whether any server answered at all (False: nothing could be reached)."""
        return any(attempt.statuses for attempt in self.attempts)

    def document(self) -> Any:
        """The JWKS document as parsed JSON (None when there is none or it is not JSON)."""
        if self.body is None:
            return None
        try:
            return json.loads(self.body)
        except (ValueError, RecursionError):
            return None


class _Recorder:
    """Listens to a client's requests and answers (it never changes them)."""

    def __init__(self) -> None:
        self.requested: list[str] = []
        self.statuses: dict[str, list[int]] = {}

    async def on_request(self, request: httpx.Request) -> None:
        self.requested.append(str(request.url))

    async def on_response(self, response: httpx.Response) -> None:
        self.statuses.setdefault(str(response.request.url), []).append(response.status_code)

    def attempt(self, url: str, purpose: Purpose) -> Attempt:
        key = str(httpx.URL(url))
        return Attempt(
            url=url,
            purpose=purpose,
            statuses=list(self.statuses.get(key, [])),
            tried=key in self.requested,
        )


async def fetch_keys(
    *,
    issuer: str | None = None,
    jwks_uri: str | None = None,
    settings: CacheSettings | None = None,
    fall_back_to_jwks: bool = False,
) -> KeyFetch:
    """Discover (from ``issuer``) or take ``jwks_uri``, fetch the JWKS and parse it.

    With ``fall_back_to_jwks``, an ``issuer`` for which no metadata URL answered 200 is fetched
    itself as a JWKS (the ``jwks`` command accepts either).
    """
    settings = settings or CacheSettings()
    recorder = _Recorder()
    client = new_client(settings.timeout)
    hooks: dict[str, list[Callable[[Any], Awaitable[None]]]] = {
        "request": [recorder.on_request],
        "response": [recorder.on_response],
    }
    client.event_hooks = hooks
    result = KeyFetch(issuer=issuer)
    async with client:
        if issuer is not None:
            jwks_uri = await _discover(client, issuer, settings, recorder, result)
            if jwks_uri is None and fall_back_to_jwks and not _metadata_answered(result):
                result.fell_back = True
                result.issuer = None
                result.failure = result.detail = None
                result.reasons = ()
                jwks_uri = issuer
            if jwks_uri is None:
                return result
        assert jwks_uri is not None
        result.jwks_uri = jwks_uri
        await _fetch_jwks(client, jwks_uri, settings, recorder, result)
    return result


def _metadata_answered(result: KeyFetch) -> bool:
    return any(200 in attempt.statuses for attempt in result.attempts)


async def _discover(
    client: httpx.AsyncClient,
    issuer: str,
    settings: CacheSettings,
    recorder: _Recorder,
    result: KeyFetch,
) -> str | None:
    try:
        jwks_uri = await discover_jwks_uri(
            lambda url: fetch_document(client, url, settings.fetch_limits), issuer
        )
    except JWKSError as error:
        jwks_uri = None
        result.failure = (
            "issuer_mismatch" if isinstance(error, IssuerMismatchError) else ("discovery_failed")
        )
        result.detail = error.detail
        result.reasons = error.reasons
    urls = metadata_urls(issuer)
    attempts = [recorder.attempt(url, "metadata") for url in urls]
    for attempt in attempts:
        # Discovery words its problems "GET <url>: <what>"; attach each to its URL.
        prefix = f"GET {attempt.url}: "
        for reason in result.reasons:
            if reason.startswith(prefix):
                attempt.problem = reason[len(prefix) :]
    if jwks_uri is not None:
        tried = [attempt for attempt in attempts if attempt.tried]
        if tried:
            tried[-1].used = True  # discovery stops at the first document it can use
        for attempt in tried[:-1]:
            if attempt.problem is None:
                last = attempt.statuses[-1] if attempt.statuses else None
                attempt.problem = (
                    "no answer" if last is None else "not used" if last == 200 else f"HTTP {last}"
                )
    result.attempts.extend(attempts)
    return jwks_uri


async def _fetch_jwks(
    client: httpx.AsyncClient,
    jwks_uri: str,
    settings: CacheSettings,
    recorder: _Recorder,
    result: KeyFetch,
) -> None:
    try:
        document = await fetch_document(client, jwks_uri, settings.fetch_limits)
    except FetchError as error:
        attempt = recorder.attempt(jwks_uri, "jwks")
        prefix = f"GET {jwks_uri}: "
        text = str(error)
        attempt.problem = text[len(prefix) :] if text.startswith(prefix) else text
        result.attempts.append(attempt)
        result.failure = "jwks_unavailable"
        result.detail = text
        return
    attempt = recorder.attempt(jwks_uri, "jwks")
    attempt.used = True
    result.attempts.append(attempt)
    result.body = document.body
    result.headers = document.headers
    try:
        result.keys = KeySet.from_jwks(document.body)
    except JWKSError as error:
        attempt.problem = error.detail
        result.failure = "jwks_invalid"
        result.detail = error.detail
        result.reasons = error.reasons


def fetch_keys_sync(**options: Any) -> KeyFetch:
    """``fetch_keys`` from synchronous code (the command runs no other event loop)."""
    return asyncio.run(fetch_keys(**options))
