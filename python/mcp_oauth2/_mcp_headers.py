"""The MCP request headers a server that reads the body must hold to it (MCP 2026-07-28,
SEP-2243): ``Mcp-Method`` mirrors the JSON-RPC ``method``, ``Mcp-Name`` the ``params.name``
(``tools/call``, ``prompts/get``) or ``params.uri`` (``resources/read``, ``resources/subscribe``,
``resources/unsubscribe``) of the body, and ``MCP-Protocol-Version`` the protocol version the
body's ``_meta`` names. An intermediary may route on the headers while the server acts on the
body, so a header that says something else than the body is refused (400, JSON-RPC -32020,
answered by ``AccessControl.header_mismatch``).

- A header that is present must match every message of the body (as either JSON parser reads
  it): its value trimmed of spaces and tabs (RFC 9110 section 5.5), compared case-sensitively;
  an ``Mcp-Name`` of the form ``=?base64?...?=`` is decoded first (canonical base64 of UTF-8,
  else refused). A header given twice, or holding anything but visible ASCII and spaces (a tab
  only around the value), is refused.
- A missing header is refused only where the request's protocol version requires it (2026-07-28
  and later; the version from ``MCP-Protocol-Version``, or else from the body's ``_meta``):
  ``MCP-Protocol-Version`` and ``Mcp-Method`` on every request, ``Mcp-Name`` on ``tools/call``,
  ``resources/read`` and ``prompts/get``. Notifications need none (the revision defines no
  header rules for them), and older protocol versions, which define no such headers, are not
  asked for them.

``Mcp-Param-*`` headers mirror tool arguments that a tool's input schema designates; the SDK,
which holds the schemas, checks those.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

__all__ = ["header_problem", "request_id"]

# The first protocol revision whose requests carry the headers.
HEADERS_REQUIRED_FROM: Final = "2026-07-28"
_VERSION_META: Final = "io.modelcontextprotocol/protocolVersion"
_DATE: Final = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_SENTINEL: Final = re.compile(r"^=\?base64\?(?P<payload>.*)\?=$")
_VERSION, _METHOD, _NAME = b"mcp-protocol-version", b"mcp-method", b"mcp-name"
_SHOWN: Final = {_VERSION: "MCP-Protocol-Version", _METHOD: "Mcp-Method", _NAME: "Mcp-Name"}
# Each method's body member that `Mcp-Name` mirrors; the ones a request must send it for.
NAME_SOURCE: Final[Mapping[str, str]] = {
    "tools/call": "name",
    "prompts/get": "name",
    "resources/read": "uri",
    "resources/subscribe": "uri",
    "resources/unsubscribe": "uri",
}
NAME_REQUIRED: Final = frozenset({"tools/call", "prompts/get", "resources/read"})


def header_problem(
    headers: Iterable[tuple[bytes, bytes]], messages: list[dict[str, Any]]
) -> str | None:
    """Why the MCP headers of a request do not fit its body ``messages`` (the words of a
    -32020 error, naming no value from the request), or None when they do."""
    headers = headers if isinstance(headers, list) else list(headers)
    table = dict(headers)  # the last of each name; repeats are looked for below
    found: dict[bytes, str] = {}
    for name, shown in _SHOWN.items():
        raw = table.get(name)
        if raw is None:
            continue
        if len(table) != len(headers) and [n for n, _ in headers].count(name) > 1:
            return f"the {shown} header appears more than once"
        # Trimmed of spaces and tabs (RFC 9110 section 5.5); then visible ASCII and spaces only.
        value = raw.decode("latin-1").strip(" \t")
        if not (value.isascii() and value.isprintable()):
            return f"the {shown} header holds characters a header value may not"
        found[name] = value
    version, method, named = found.get(_VERSION), found.get(_METHOD), found.get(_NAME)
    name_value = _decoded(named) if named is not None else None
    if named is not None and name_value is None:
        return "the Mcp-Name header is not canonical base64 of UTF-8 text"
    for message in messages:
        problem = _message_problem(message, version, method, named, name_value)
        if problem is not None:
            return problem
    return None


def _message_problem(
    message: dict[str, Any],
    version: str | None,
    method: str | None,
    named: str | None,
    name_value: str | None,
) -> str | None:
    """What is wrong with the headers for one message: a header that does not match it, else a
    header it needs that is missing."""
    body_method = message.get("method")
    params = message.get("params")
    params = params if isinstance(params, dict) else {}
    meta = params.get("_meta")
    body_version = meta.get(_VERSION_META) if isinstance(meta, dict) else None
    if version is not None and body_version is not None and body_version != version:
        return "the MCP-Protocol-Version header does not match the body's protocol version"
    if method is not None and body_method != method:
        return "the Mcp-Method header does not match the body's method"
    if named is not None:
        source = _name_source(body_method, params)
        if source is None or params.get(source) != name_value:
            return "the Mcp-Name header does not match the body's name or uri"
    if None not in (version, method, named):
        return None  # every header there, and each matches
    if "id" not in message or not isinstance(body_method, str):
        return None  # not a request: the revision has no header rules for it
    if not _requires_headers(version or body_version):
        return None
    return _missing(version, method, named, body_method, params)


def _missing(
    version: str | None,
    method: str | None,
    named: str | None,
    body_method: str,
    params: dict[str, Any],
) -> str | None:
    """The first header a request of a protocol version that requires them lacks."""
    if version is None:
        return "the MCP-Protocol-Version header is missing"
    if method is None:
        return "the Mcp-Method header is missing"
    if (
        named is None
        and body_method in NAME_REQUIRED
        and isinstance(params.get(NAME_SOURCE[body_method]), str)
    ):
        return "the Mcp-Name header is missing"
    return None


def _name_source(method: object, params: dict[str, Any]) -> str | None:
    """The body member ``Mcp-Name`` mirrors for ``method``: its own, or for another method the
    first of ``name``, ``uri`` and ``taskId`` that it has."""
    if isinstance(method, str) and method in NAME_SOURCE:
        return NAME_SOURCE[method]
    return next((member for member in ("name", "uri", "taskId") if member in params), None)


def _requires_headers(version: object) -> bool:
    return (
        isinstance(version, str)
        and _DATE.match(version) is not None
        and version >= HEADERS_REQUIRED_FROM
    )


def _decoded(value: str) -> str | None:
    """An ``Mcp-Name`` value as the client meant it: the value itself, or the UTF-8 text a
    ``=?base64?...?=`` value encodes (None when it is not canonical base64 of UTF-8)."""
    sentinel = _SENTINEL.match(value) if value.startswith("=?base64?") else None
    if sentinel is None:
        return value
    payload = sentinel.group("payload")
    try:
        decoded = base64.b64decode(payload, validate=True)
        if base64.b64encode(decoded).decode("ascii") != payload:
            return None
        return decoded.decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None


def request_id(messages: list[dict[str, Any]]) -> object:
    """The id to answer a refused request with: that of its one request, else None."""
    ids = {repr(message.get("id")) for message in messages if "id" in message}
    if len(ids) != 1:
        return None
    return next(message.get("id") for message in messages if "id" in message)
