"""RFC 6750 answers: the ``WWW-Authenticate: Bearer`` challenge and its JSON body.

Every value placed into the header is a quoted-string with backslash and quote escaped, and
characters outside printable ASCII dropped, so nothing can break out of its parameter or start a
new header line. Descriptions come from the errors' client-safe ``description``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from starlette.types import Send

from mcp_oauth2.errors import AuthorizationError, JWKSUnavailableError

__all__ = ["MISSING_TOKEN_BODY", "Challenge", "Refusal", "json_refusal", "send_response"]

MISSING_TOKEN_BODY: Final[Mapping[str, str]] = {
    "error_description": "this resource needs a bearer token",
    "code": "missing_token",
}
"""The JSON body of the 401 to a request without a token: no ``error`` member."""


def quote(value: str) -> str:
    printable = "".join(ch for ch in value if " " <= ch <= "~")
    return '"' + printable.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True, slots=True)
class Refusal:
    """A complete answer refusing the request."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


class Challenge:
    """Builds the 400/401/403/503 answers for one protected resource.

    ``scopes`` is the ``scope`` of a challenge that names no other: the scopes every request
    needs (``required_scopes``), which a client then asks the authorization server for. Not
    ``scopes_supported``: a least-privilege client that may not have every supported scope would
    otherwise be refused by its authorization server and could never connect.
    """

    def __init__(self, resource_metadata_url: str, scopes: Iterable[str] = ()) -> None:
        self.resource_metadata_url = resource_metadata_url
        self.scopes = tuple(scopes)

    def header(
        self,
        *,
        error: str | None = None,
        description: str | None = None,
        scopes: Iterable[str] | None = None,
    ) -> str:
        params = [f"resource_metadata={quote(self.resource_metadata_url)}"]
        scope_list = tuple(self.scopes if scopes is None else scopes)
        if scope_list:
            params.append(f"scope={quote(' '.join(scope_list))}")
        if error is not None:
            params.append(f"error={quote(error)}")
        if description:
            params.append(f"error_description={quote(description)}")
        return "Bearer " + ", ".join(params)

    def missing_token(self) -> Refusal:
        """401 without an ``error`` (RFC 6750 section 3.1): the client sent no token, so there is
        no error to name, in the header or in the JSON body."""
        return Refusal(401, self._headers(self.header()), _json(MISSING_TOKEN_BODY))

    def for_error(self, error: AuthorizationError, scopes: Iterable[str] | None = None) -> Refusal:
        """401 ``invalid_token``, 403 ``insufficient_scope`` or 400 ``invalid_request``."""
        header = self.header(error=error.error, description=error.description, scopes=scopes)
        body = {"error": error.error, "error_description": error.description, "code": error.code}
        return Refusal(error.status_code, self._headers(header), _json(body))

    def unavailable(self, error: JWKSUnavailableError) -> Refusal:
        """503 with ``Retry-After``: keys cannot be had right now, so nothing can be verified."""
        body = {
            "error": "temporarily_unavailable",
            "error_description": error.description,
            "code": error.code,
        }
        headers = self._headers(None)
        headers.append((b"retry-after", str(error.retry_after).encode()))
        return Refusal(503, headers, _json(body))

    @staticmethod
    def _headers(www_authenticate: str | None) -> list[tuple[bytes, bytes]]:
        headers = [
            (b"content-type", b"application/json"),
            (b"cache-control", b"no-store"),
        ]
        if www_authenticate is not None:
            headers.append((b"www-authenticate", www_authenticate.encode("ascii")))
        return headers


def json_refusal(status: int, error: str, description: str, code: str) -> Refusal:
    """A refusal that is not about the token (no ``WWW-Authenticate``), in the same JSON shape."""
    body = {"error": error, "error_description": description, "code": code}
    return Refusal(status, Challenge._headers(None), _json(body))


def _json(body: Mapping[str, str]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


async def send_response(
    send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
