"""Lists that show a caller only what it may use: the MCP SDK's own answers to ``tools/list``,
``prompts/list``, ``resources/list`` and ``resources/templates/list``, with the entries the caller
may not use taken out. Nothing is rebuilt: every other member of the answer, of each entry and of
the JSON-RPC envelope stays as the SDK wrote it (``nextCursor`` included, so a page may come out
shorter, or empty, while the next one is still offered), except a ``cacheScope`` of ``public``
(MCP 2026-07-28, SEP-2549), which becomes ``private``: the filtered list is this caller's own.

``ListFilter`` wraps ``send`` for one request. It knows the ids of the request's list calls and
changes only the JSON-RPC results answering one of them, in both of the SDK's answer forms:

- JSON (``application/json``): the whole answer is held (up to ``MAX_ANSWER_BYTES``), filtered,
  and sent with its new ``Content-Length``;
- SSE (``text/event-stream``): events pass one by one as they come (notifications and keep-alive
  comments untouched); an event carrying a list answer is held until it is complete, then sent
  with its ``data`` filtered.

It fails closed: an answer it cannot read (a compressed body, JSON that does not parse, an event
over the limit) is not passed on; the request is answered with 500 ``unprotected`` instead, or,
when an SSE stream has already started, the stream ends without that event. Other answers
(errors, 202, any other content type) pass untouched.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

from starlette.types import Message, Send

__all__ = ["LIST_MEMBERS", "MAX_ANSWER_BYTES", "ListFilter", "id_key", "list_calls"]

logger = logging.getLogger("mcp_oauth2.policy")

LIST_MEMBERS: Final[Mapping[str, tuple[str, str]]] = {
    "tools/list": ("tools", "name"),
    "prompts/list": ("prompts", "name"),
    "resources/list": ("resources", "uri"),
    "resources/templates/list": ("resourceTemplates", "uriTemplate"),
}
"""Each list method: the member of its result holding the entries, and the entry's key."""
MAX_ANSWER_BYTES: Final = 16 * 1024 * 1024
"""The largest list answer (or SSE event) held to be filtered."""
# An SSE event ends at a blank line; lines end with CRLF, LF or CR.
_EVENT_END: Final = re.compile(rb"\r\n\r\n|\n\n|\r\r|\r\n\n|\n\r\n")
_LINE_END: Final = re.compile(rb"\r\n|\r|\n")

IdKey = tuple[str, object]
# Whether the caller may use an entry of a list answered for a list method.
Keep = Callable[[str, str], bool]


def id_key(value: object) -> IdKey | None:
    """A JSON-RPC id as a key that tells ``1`` from ``"1"`` (None for what is not an id)."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    return (type(value).__name__, value)


class _UnfilterableError(Exception):
    """An answer that should be filtered cannot be read."""


class ListFilter:
    """``send`` for one request whose list calls (``calls``: id to list methods) are answered
    with only the entries ``keep(method, key)`` allows. ``fail(send)`` answers in place of an
    answer that cannot be filtered, before anything of it was sent."""

    def __init__(
        self,
        calls: Mapping[IdKey, frozenset[str]],
        keep: Keep,
        send: Send,
        fail: Callable[[Send], Awaitable[None]],
    ) -> None:
        self.calls = calls
        self.keep = keep
        self._send = send
        self._fail = fail
        self._mode: str | None = None  # "json", "sse" or "pass", from the answer's start
        self._start: Message | None = None
        self._held = bytearray()
        self._closed = False

    async def __call__(self, message: Message) -> None:
        if self._closed:
            return
        kind = message["type"]
        if kind == "http.response.start":
            await self._started(message)
        elif kind == "http.response.body" and self._mode == "json":
            await self._json_body(message)
        elif kind == "http.response.body" and self._mode == "sse":
            await self._sse_body(message)
        else:
            await self._send(message)

    async def _started(self, message: Message) -> None:
        headers = list(message.get("headers", []))
        content_type = _header(headers, b"content-type").split(b";", 1)[0].strip().lower()
        encoding = _header(headers, b"content-encoding").strip().lower()
        if message.get("status") != 200 or content_type not in (
            b"application/json",
            b"text/event-stream",
        ):
            self._mode = "pass"
            await self._send(message)
            return
        if encoding not in (b"", b"identity"):
            logger.error(
                "a list answer is %s-encoded, so MCPPolicy cannot filter it: put compression "
                "outside MCPPolicy",
                encoding.decode("latin-1")[:20],
            )
            self._closed = True
            await self._fail(self._send)
            return
        if content_type == b"application/json":
            self._mode, self._start = "json", message
            return
        self._mode = "sse"
        # Events may change length: the stream goes without one (chunked).
        start = dict(message)
        start["headers"] = [(n, v) for n, v in headers if n.lower() != b"content-length"]
        await self._send(start)

    async def _json_body(self, message: Message) -> None:
        self._held += message.get("body", b"")
        if len(self._held) > MAX_ANSWER_BYTES:
            logger.error("a list answer is over %d bytes; not sent", MAX_ANSWER_BYTES)
            self._closed = True
            await self._fail(self._send)
            return
        if message.get("more_body", False):
            return
        try:
            body = self._filtered_json(bytes(self._held))
        except _UnfilterableError:
            self._closed = True
            await self._fail(self._send)
            return
        start = self._start or {"type": "http.response.start", "status": 200, "headers": []}
        headers = [(n, v) for n, v in start.get("headers", []) if n.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await self._send({**start, "headers": headers})
        await self._send({"type": "http.response.body", "body": body, "more_body": False})

    def _filtered_json(self, body: bytes) -> bytes:
        try:
            answer = json.loads(body)
        except ValueError:
            logger.error("a list answer is not JSON, so it cannot be filtered; not sent")
            raise _UnfilterableError from None
        items = answer if isinstance(answer, list) else [answer]
        if not any(self._filter(item) for item in items):
            return body
        return json.dumps(answer, separators=(",", ":"), ensure_ascii=False).encode()

    async def _sse_body(self, message: Message) -> None:
        self._held += message.get("body", b"")
        more = message.get("more_body", False)
        out = bytearray()
        while (end := _EVENT_END.search(self._held)) is not None:
            event = bytes(self._held[: end.end()])
            del self._held[: end.end()]
            out += self._filtered_event(event)
        if len(self._held) > MAX_ANSWER_BYTES:
            logger.error("an SSE event is over %d bytes; the stream ends", MAX_ANSWER_BYTES)
            self._closed = True
            await self._send({"type": "http.response.body", "body": bytes(out)})
            return
        if not more and self._held:
            out += self._filtered_event(bytes(self._held))
            self._held.clear()
        if out or not more:
            await self._send({"type": "http.response.body", "body": bytes(out), "more_body": more})

    def _filtered_event(self, event: bytes) -> bytes:
        """One SSE event (with its blank line), its ``data`` filtered when it answers a list
        call; an event that does, but cannot be read, is dropped."""
        lines = _LINE_END.split(event)
        data = [line[5:].removeprefix(b" ") for line in lines if line.startswith(b"data:")]
        if not data:
            return event
        try:
            answer = json.loads(b"\n".join(data))
        except ValueError:
            return event  # not JSON-RPC: nothing of ours
        if not self._filter(answer):
            return event
        newline = _LINE_END.search(event)
        end = newline.group() if newline else b"\n"
        kept = [line for line in lines if line and not line.startswith(b"data:")]
        text = json.dumps(answer, separators=(",", ":"), ensure_ascii=False).encode()
        return end.join([*kept, b"data: " + text]) + end + end

    def _filter(self, answer: object) -> bool:
        """Takes out of ``answer`` (a JSON-RPC message, changed in place) the entries the caller
        may not use, when it answers a list call; whether it does."""
        if not isinstance(answer, dict):
            return False
        key = id_key(answer.get("id"))
        methods = self.calls.get(key) if key is not None else None
        result = answer.get("result")
        if not methods or not isinstance(result, dict):
            return False
        if result.get("cacheScope", "private") != "private":
            # The answer is now this caller's own (SEP-2549): no shared cache may reuse it.
            result["cacheScope"] = "private"
        for method in sorted(methods):
            member, entry_key = LIST_MEMBERS[method]
            entries = result.get(member)
            if isinstance(entries, list):
                result[member] = [
                    entry
                    for entry in entries
                    if isinstance(entry, dict)
                    and isinstance(entry.get(entry_key), str)
                    and self.keep(method, entry[entry_key])
                ]
        return True


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes:
    return next((value for key, value in headers if key.lower() == name), b"")


def list_calls(messages: list[dict[str, Any]]) -> dict[IdKey, frozenset[str]]:
    """The list calls among a body's messages: id to the list methods called with it."""
    calls: dict[IdKey, frozenset[str]] = {}
    for message in messages:
        method = message.get("method")
        key = id_key(message.get("id"))
        if isinstance(method, str) and method in LIST_MEMBERS and key is not None:
            calls[key] = calls.get(key, frozenset()) | {method}
    return calls
