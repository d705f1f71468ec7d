"""Fault injection for the local issuer: each way a key or metadata endpoint can misbehave, as the
HTTP answer that misbehaves.

A fault is None (normal answers), ``"status:NNN"`` (that status with a short text body), or one
of the named faults that ``LocalIssuer.fault`` documents.
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import re
import zlib
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import (
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)

from mcp_oauth2.testing._keys import compact_json, unusable_jwks

__all__ = [
    "BOMB_DECODED_BYTES",
    "HUGE_BODY_BYTES",
    "JWKS_ONLY_FAULTS",
    "MOVED",
    "NAMED_FAULTS",
    "NESTED_JSON_DEPTH",
    "check_fault",
    "fault_answer",
]

HUGE_BODY_BYTES: Final = 1024 * 1024
"""Body size of the ``"huge"`` fault: well above any sane limit for a JWKS or metadata document."""

BOMB_DECODED_BYTES: Final = 64 * 1024 * 1024
"""What the ``"gzip_bomb"`` fault's body (about a kilobyte on the wire) inflates to when decoded."""

NESTED_JSON_DEPTH: Final = 20_000
"""Array nesting of the ``"nested_json"`` fault: deeper than Python's recursion limit, 40 KB."""

NAMED_FAULTS: Final = (
    "html",
    "invalid_json",
    "empty",
    "huge",
    "redirect",
    "hang",
    "gzip_bomb",
    "bad_encoding",
    "nested_json",
    "wrong_content_type",
)
JWKS_ONLY_FAULTS: Final = ("no_usable_keys",)
# The ``"redirect"`` fault points below this prefix: the same document, served without faults.
MOVED: Final = "/moved"

_STATUS_FAULT_RE: Final = re.compile(r"status:([0-9]{3})")
_STREAM_CHUNK: Final = 64 * 1024


def check_fault(value: str | None, name: str, named: Sequence[str]) -> str | None:
    """``value`` if it names a fault of ``named`` (or a status); ``ValueError`` otherwise."""
    if value is None or value in named:
        return value
    status = _STATUS_FAULT_RE.fullmatch(value)
    if status and 200 <= int(status.group(1)) <= 599:
        return value
    raise ValueError(
        f"unknown {name} {value!r}: use None, 'status:NNN' (200-599) or one of {', '.join(named)}"
    )


async def fault_answer(
    fault: str,
    request: Request,
    document: Mapping[str, Any],
    *,
    media_type: str,
    empty: Mapping[str, Any],
    released: asyncio.Event,
) -> Response:
    """The answer of ``fault`` for a request whose normal answer is ``document``.

    ``empty`` is the ``"empty"`` fault's document; a ``"hang"`` answers once ``released`` is set.
    """
    if status := _STATUS_FAULT_RE.fullmatch(fault):
        code = int(status.group(1))
        body = "" if code in (204, 304) else f"injected fault: HTTP {code}\n"
        return PlainTextResponse(body, status_code=code)
    if fault == "hang":  # no answer until the server stops (a client gives up long before)
        await released.wait()
        return PlainTextResponse("the local issuer is shutting down\n", status_code=503)
    if fault == "redirect":
        target = request.url.replace(path=MOVED + request.url.path)
        return RedirectResponse(str(target), status_code=302)
    if fault == "huge":
        return StreamingResponse(_chunks(_padded(document)), media_type=media_type)
    if fault == "html":
        page = "<!doctype html><html><body><h1>Sign in</h1></body></html>\n"
        return Response(page, media_type="text/html; charset=utf-8")
    if fault == "wrong_content_type":  # the document itself, labelled as something else
        return Response(compact_json(document), media_type="text/plain; charset=utf-8")
    content, headers = _FIXED_BODIES[fault](document, empty)
    return Response(content, media_type=media_type, headers=headers)


def _invalid_json(document: Mapping[str, Any], _: Mapping[str, Any]) -> tuple[bytes, None]:
    return compact_json(document)[:-7], None


def _empty(_: Mapping[str, Any], empty: Mapping[str, Any]) -> tuple[bytes, None]:
    return compact_json(empty), None


def _no_usable_keys(*_: Mapping[str, Any]) -> tuple[bytes, None]:
    return compact_json(unusable_jwks()), None


def _bomb(*_: Mapping[str, Any]) -> tuple[bytes, dict[str, str]]:
    return _gzip_bomb(), {"Content-Encoding": "gzip, gzip"}


def _bad_encoding(
    document: Mapping[str, Any], _: Mapping[str, Any]
) -> tuple[bytes, dict[str, str]]:
    return compact_json(document), {"Content-Encoding": "gzip"}


def _nested(*_: Mapping[str, Any]) -> tuple[bytes, None]:
    return b"[" * NESTED_JSON_DEPTH + b"]" * NESTED_JSON_DEPTH, None


_Body = Callable[[Mapping[str, Any], Mapping[str, Any]], tuple[bytes, dict[str, str] | None]]
# The faults answered with a fixed body (and headers): 200 with the wrong content.
_FIXED_BODIES: Final[Mapping[str, _Body]] = {
    "invalid_json": _invalid_json,
    "empty": _empty,
    "no_usable_keys": _no_usable_keys,
    "gzip_bomb": _bomb,
    "bad_encoding": _bad_encoding,
    "nested_json": _nested,
}


def _padded(document: Mapping[str, Any]) -> bytes:
    """``document`` as JSON, padded with a junk member to exactly ``HUGE_BODY_BYTES``."""
    bare = compact_json({**document, "padding": ""})
    return compact_json({**document, "padding": "A" * (HUGE_BODY_BYTES - len(bare))})


@functools.cache
def _gzip_bomb() -> bytes:
    """``BOMB_DECODED_BYTES`` of zeros, gzipped twice (for ``Content-Encoding: gzip, gzip``)."""
    inner = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(1024 * 1024)
    parts = [inner.compress(zeros) for _ in range(BOMB_DECODED_BYTES // len(zeros))]
    once = b"".join(parts) + inner.flush()
    return gzip.compress(once, compresslevel=9)


async def _chunks(body: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(body), _STREAM_CHUNK):
        yield body[start : start + _STREAM_CHUNK]
