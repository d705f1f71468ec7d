"""The JSON-RPC messages of an MCP POST body, read the way the MCP SDK would read them, for the
policy to judge before the SDK sees them.

- ``read_body``: the whole body, bounded (``BodyTooLargeError`` as soon as it is over), or None
  when the client went away before it was complete.
- ``messages``: what each of the SDK's two JSON parsers (``json.loads`` and
  ``pydantic_core.from_json``, which its transports use) makes of the body, each message once
  per parser: a body both read the same way (nearly every body) gives each message once, a body
  they read differently gives both readings, and the policy judges every one. Only a body that
  both refuse yields none: the SDK cannot read a call from it either, and answers its own
  JSON-RPC parse error. A body nested too deeply for Python's parser to finish is
  ``BodyTooDeepError``.
- ``replay``: the body handed on to the app unchanged, as one message.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pydantic_core
from starlette.types import Message, Receive

__all__ = ["BodyTooDeepError", "BodyTooLargeError", "messages", "read_body", "replay"]


class BodyTooLargeError(Exception):
    """The body exceeds the limit: it cannot be checked (413)."""


class BodyTooDeepError(Exception):
    """The body is nested too deeply for Python's JSON parser to finish (400)."""


def messages(body: bytes) -> list[dict[str, Any]]:
    """Every JSON-RPC message (an object) in ``body`` as either parser reads it: one for a
    single message, each of a batch, then those of the other parser if it read them otherwise."""
    readings: list[Any] = []
    try:
        readings.append(json.loads(body))
    except RecursionError:
        raise BodyTooDeepError from None
    except ValueError:  # invalid JSON (UnicodeDecodeError included)
        pass
    with contextlib.suppress(ValueError):  # invalid JSON, or deeper than its recursion limit
        other = pydantic_core.from_json(body)
        if not readings or other != readings[0]:
            readings.append(other)
    found: list[dict[str, Any]] = []
    for reading in readings:
        batch = reading if isinstance(reading, list) else [reading]
        found.extend(message for message in batch if isinstance(message, dict))
    return found


async def read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body; None if the client disconnected before it was complete.

    Raises ``BodyTooLargeError`` as soon as the body exceeds ``limit``.
    """
    size = 0
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLargeError
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def replay(body: bytes, receive: Receive) -> Receive:
    """``receive`` for the app: the body that was read, as one message, then the real one."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
