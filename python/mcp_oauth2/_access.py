"""Who may pass, and how a refusal reads: effective scopes, missing scopes, and every answer given
in place of the application's (400, 401, 403, 413, 500 and 503).

``AccessControl`` is built once from the configuration by ``OAuth2Middleware``, which puts it into
every request's ASGI scope under ``ACCESS_SCOPE_KEY``; ``MCPPolicy`` (and ``ToolScopes``, its
shorthand) and ``OAuth2Bearer`` take it from there, and ``MCPTokenVerifier`` builds its own. So
the scope rules (``required_scopes``, ``scope_implications`` applied transitively) and the
wording of every refusal have this one owner.
The scope arithmetic itself is the native ``ScopeRules`` it holds (``rules``), which the
middleware also hands to ``TokenValidator.authorize``: the rules are computed in one place,
whether a request is admitted natively or a tool or endpoint asks here.

Refusals follow RFC 6750: a JSON body ``{"error", "error_description", "code"}`` (the 401 to a
request without a token has no ``error``, section 3.1) and, on the answers about the token (400,
401, 403), a ``WWW-Authenticate: Bearer`` challenge naming the RFC 9728 resource metadata and the
scopes to ask for, never ``offline_access`` (a client's way to ask for a refresh token, not a
resource's requirement: MCP 2026-07-28, SEP-2207). A caller refused by a rule that more scopes
would not satisfy (a role, a claim, a custom check) gets 403 ``access_denied`` with no challenge,
so that a client does not loop on step-up. A request whose MCP headers do not match its body gets
400 with a JSON-RPC error (-32020, SEP-2243). Every value placed into the header is a
quoted-string with backslash and quote escaped and characters outside printable ASCII dropped, so
nothing can break out of its parameter or start a new header line. Descriptions come from the
errors' client-safe ``description``.

Every refusal is answered through ``AccessControl.refuse``, which also logs it: one INFO line on
the ``mcp_oauth2.refusals`` logger per refused request, with the method, the path, the status, the
``code`` and the description, never the token nor any header (``RefusalLog``). A flood of bad
requests cannot flood the log: at most ``REFUSAL_LINES_PER_SECOND`` lines a second, and the next
line says how many were left out.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final
from urllib.parse import quote as percent_encode

from starlette.types import Receive, Scope, Send

from mcp_oauth2._resource_metadata import metadata_url
from mcp_oauth2._rust import ScopeRules
from mcp_oauth2.errors import (
    AuthorizationError,
    AuthorizationServerUnavailableError,
    InsufficientScopeError,
)

if TYPE_CHECKING:
    from mcp_oauth2._config import OAuth2Config

__all__ = [
    "ACCESS_SCOPE_KEY",
    "REFUSAL_LINES_PER_SECOND",
    "AccessControl",
    "Refusal",
    "RefusalLog",
    "RefusalRaised",
    "access_of",
    "quote",
    "unprotected",
]

logger = logging.getLogger("mcp_oauth2.access")
refusal_logger = logging.getLogger("mcp_oauth2.refusals")

ACCESS_SCOPE_KEY: Final = "mcp_oauth2.access"
"""The ASGI scope key under which ``OAuth2Middleware`` hands its ``AccessControl`` to the app
(also on the lifespan scope, so that what it wraps can tell at startup that it is protected)."""
REFUSAL_LINES_PER_SECOND: Final = 10
"""At most this many refusal lines are logged per second (per ``AccessControl``)."""
# RFC 6455 section 7.4.1: the endpoint is terminating the connection for a policy violation.
WS_POLICY_VIOLATION: Final = 1008
# The longest path a refusal line shows, and the characters it shows unescaped.
_LOGGED_PATH_CHARS: Final = 200
_PATH_SAFE: Final = "/:@!$&'()*+,;=-._~"
# Seconds between two ERROR lines about requests refused for want of OAuth2Middleware.
UNPROTECTED_LOG_INTERVAL: Final = 60.0
# Never challenged for (SEP-2207): the scope a client adds to get a refresh token.
OFFLINE_ACCESS: Final = "offline_access"
# SEP-2243: the JSON-RPC error of a request whose MCP headers do not match its body.
HEADER_MISMATCH: Final = -32020
# What a denied caller lacked (``Decision.missing``), in words a client may read.
_DENIED: Final = {
    "role": "this operation needs a role the token does not carry",
    "claim": "this operation needs a claim value the token does not carry",
    "check": "this operation is not allowed for this caller",
}
_unprotected_logged: dict[str, float] = {}


def access_of(scope: Scope, who: str) -> AccessControl | None:
    """The ``AccessControl`` that ``OAuth2Middleware`` put into ``scope``; None (logged at
    ERROR, once a minute per ``who``) when no middleware ran in front of ``who``: then ``who``
    cannot judge the request and must not pass it on (answer ``unprotected()``)."""
    access = scope.get(ACCESS_SCOPE_KEY)
    if isinstance(access, AccessControl):
        return access
    now = time.monotonic()
    last = _unprotected_logged.get(who)
    if last is None or now - last >= UNPROTECTED_LOG_INTERVAL:
        _unprotected_logged[who] = now
        logger.error("%s", unprotected_reason(who))
    return None


def unprotected_reason(who: str) -> str:
    """Why ``who`` refuses every request without ``OAuth2Middleware`` in front."""
    return (
        f"{who} refuses every request: OAuth2Middleware did not run before it, so it cannot "
        "tell who the caller is or which scopes the token grants (the MCP SDK's own auth "
        "runs inside the MCP app, after it). Add app.add_middleware(OAuth2Middleware, "
        f"config=...) to the application that {who} is mounted in."
    )


def unprotected() -> Refusal:
    """500 for a request that could not be judged because ``OAuth2Middleware`` is missing:
    a server misconfiguration, never passed on."""
    body = _body(
        "server_error",
        "the server cannot check this request's authorization (misconfigured)",
        "unprotected",
    )
    return _refusal(500, body, None)


def quote(value: str) -> str:
    """``value`` as an RFC 9110 quoted-string, printable ASCII only."""
    printable = "".join(ch for ch in value if " " <= ch <= "~")
    return '"' + printable.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True, slots=True)
class Refusal:
    """A complete answer refusing the request: status, headers (with Content-Length), body."""

    status: int
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes
    code: str = ""
    """The body's ``code`` (a fixed word: ``missing_token``, ``expired``, ...), for metrics."""
    description: str = ""
    """The body's ``error_description`` (client-safe words), for the log line."""

    async def send(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        await send({"type": "http.response.body", "body": self.body})


class RefusalRaised(Exception):  # noqa: N818 - not an error: an answer on its way out
    """Carries a refusal from code that cannot answer by itself (a FastAPI dependency) out to
    ``OAuth2Middleware``, which sends it.

    FastAPI's exception middleware handles ``HTTPException`` and the handlers an application
    registers for its own classes; this one passes through it unhandled (a handler for
    ``Exception`` sits outside, in Starlette's ``ServerErrorMiddleware``). FastAPI resolves
    dependencies before the endpoint runs, so no response has started when it arrives.
    """

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.status)
        self.refusal = refusal


class RefusalLog:
    """The log line of each refused request, at most ``per_second`` lines a second.

    A line reads ``refused POST /mcp: 401 invalid_audience (audience does not include this
    server)``; the path is the request's, percent-encoded where it is not printable and cut at
    200 characters, so a request cannot write anything else into the log. When lines were left
    out, the next line logged ends with how many. Nothing is computed while the logger is off.
    """

    def __init__(
        self,
        per_second: int = REFUSAL_LINES_PER_SECOND,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``clock`` (monotonic seconds) paces the lines; injectable for tests."""
        self.per_second = per_second
        self._clock = clock
        self._window_start = -1.0
        self._logged = 0
        self._left_out = 0

    def record(self, refusal: Refusal, scope: Scope) -> None:
        """Log the refusal of the request ``scope`` describes (unless over the rate)."""
        left_out = self._admit_line()
        if left_out is None:
            return
        method = scope.get("method", "GET") if scope["type"] == "http" else "WEBSOCKET"
        path = percent_encode(str(scope.get("path", ""))[:_LOGGED_PATH_CHARS], safe=_PATH_SAFE)
        refusal_logger.info(
            "refused %s %s: %d %s (%s)%s",
            method,
            path,
            refusal.status,
            refusal.code,
            refusal.description,
            _left_out_note(left_out),
        )

    def record_token(self, code: str, description: str, answer: str) -> None:
        """Log a token refused where no request is at hand (the SDK's token verifier), with the
        ``answer`` the client gets instead."""
        left_out = self._admit_line()
        if left_out is not None:
            refusal_logger.info(
                "refused a bearer token: %s (%s); %s%s",
                code,
                description,
                answer,
                _left_out_note(left_out),
            )

    def _admit_line(self) -> int | None:
        """None when no line may be logged now (the logger is off, or this second's lines are
        spent); else the number of lines left out since the last one."""
        if not refusal_logger.isEnabledFor(logging.INFO):
            return None
        now = self._clock()
        if self._window_start < 0 or now - self._window_start >= 1.0:
            self._window_start, self._logged = now, 0
        if self._logged >= self.per_second:
            self._left_out += 1
            return None
        self._logged += 1
        left_out, self._left_out = self._left_out, 0
        return left_out


def _left_out_note(left_out: int) -> str:
    return f"; {left_out} more refused, not logged" if left_out else ""


class AccessControl:
    """The scope rules of one protected resource, and every refusal it answers with.

    ``required_scopes`` is also the ``scope`` of a challenge that names no other, which a client
    then asks the authorization server for: not ``scopes_supported``, since a least-privilege
    client that may not have every supported scope would otherwise be refused by its
    authorization server and could never connect.
    """

    def __init__(
        self,
        resource_metadata_url: str,
        *,
        required_scopes: Iterable[str] = (),
        scope_implications: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        self.resource_metadata_url = resource_metadata_url
        self.rules = ScopeRules(scope_implications or {}, tuple(required_scopes))
        self.required_scopes: tuple[str, ...] = self.rules.required
        self.log = RefusalLog()

    @classmethod
    def from_config(cls, config: OAuth2Config) -> AccessControl:
        return cls(
            metadata_url(config.resource_uri),
            required_scopes=config.required_scopes,
            scope_implications=config.scope_implications,
        )

    # -- scopes ---------------------------------------------------------------------------------

    def effective_scopes(self, granted: Iterable[str]) -> frozenset[str]:
        """The granted scopes plus every scope they imply (``scope_implications``)."""
        return self.rules.effective(granted)

    def missing_scopes(self, granted: Iterable[str], needed: Iterable[str]) -> tuple[str, ...]:
        """The needed scopes the granted ones (with implications) do not cover, in order, each
        once."""
        needed = tuple(needed)
        if not needed:
            return ()  # the common case on every request: no scope required
        return self.rules.missing(granted, needed)

    def every_scope_needed(self, needed: Iterable[str] = ()) -> tuple[str, ...]:
        """``required_scopes`` and then ``needed``, each once: the ``scope`` of a 403 challenge,
        so that a client stepping up asks for everything this request needs."""
        return tuple(dict.fromkeys((*self.required_scopes, *needed)))

    # -- refusals: answering one, then one method per kind ----------------------------------------

    async def refuse(self, refusal: Refusal, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer ``refusal`` in place of the application, and log it (``RefusalLog``): every
        refusal goes out here. A WebSocket handshake is closed before it is accepted (the server
        answers it with 403)."""
        self.log.record(refusal, scope)
        if scope["type"] != "websocket":
            await refusal.send(send)
            return
        message = await receive()
        if message["type"] == "websocket.connect":
            reason = "authentication required" if refusal.status == 401 else "not authorized"
            await send({"type": "websocket.close", "code": WS_POLICY_VIOLATION, "reason": reason})

    def missing_token(self, needed: Iterable[str] = ()) -> Refusal:
        """401 without an ``error`` (RFC 6750 section 3.1): the client sent no token, so there is
        no error to name, in the header or in the JSON body. The challenge names
        ``required_scopes`` and then ``needed`` (what this request needs besides)."""
        body = {"error_description": "this resource needs a bearer token", "code": "missing_token"}
        needed = tuple(needed)
        scopes = self.every_scope_needed(needed) if needed else None
        return _refusal(401, body, self._challenge(scopes=scopes))

    def invalid(self, error: AuthorizationError) -> Refusal:
        """The answer an error carries: 400 ``invalid_request``, 401 ``invalid_token`` or 403
        ``insufficient_scope`` (challenging for the scopes it says are required)."""
        scopes = error.required_scopes if isinstance(error, InsufficientScopeError) else None
        challenge = self._challenge(error.error, error.description, scopes)
        return _refusal(
            error.status_code, _body(error.error, error.description, error.code), challenge
        )

    def scope_refusal(self, granted: Iterable[str], needed: Iterable[str]) -> Refusal | None:
        """403 ``insufficient_scope`` when the granted scopes (with implications) do not cover
        ``needed``, challenging for every scope needed; None when they do."""
        missing = self.missing_scopes(granted, needed)
        if not missing:
            return None
        return self.invalid(
            InsufficientScopeError.lacking(missing, self.every_scope_needed(needed))
        )

    def unavailable(self, error: AuthorizationServerUnavailableError) -> Refusal:
        """503 with ``Retry-After`` and no challenge: keys cannot be had right now, so nothing can
        be verified, and there is nothing the client could fix."""
        body = _body("temporarily_unavailable", error.description, error.code)
        return _refusal(503, body, None, (b"retry-after", str(error.retry_after).encode()))

    def access_denied(self, missing: str = "check") -> Refusal:
        """403 ``access_denied`` for a caller refused by a rule more scopes would not satisfy
        (``missing``: ``role``, ``claim`` or ``check``): no challenge and no ``scope``, so a
        client does not try to step up."""
        description = _DENIED.get(missing, _DENIED["check"])
        return _refusal(403, _body("access_denied", description, "access_denied"), None)

    def header_mismatch(self, request_id: object, what: str) -> Refusal:
        """400 with a JSON-RPC error -32020 (SEP-2243) for a request whose ``Mcp-Method``,
        ``Mcp-Name`` or ``MCP-Protocol-Version`` header is missing where required or does not
        match the body. ``what`` is fixed words (no value from the request); ``request_id`` is
        echoed when it is a JSON-RPC id (a string or an integer)."""
        echoed = request_id if isinstance(request_id, str | int) else None
        if isinstance(echoed, bool) or (isinstance(echoed, str) and len(echoed) > 200):
            echoed = None
        message = f"Header mismatch: {what}"
        error = {"code": HEADER_MISMATCH, "message": message}
        document = {"jsonrpc": "2.0", "id": echoed, "error": error}
        return _answer(400, document, None, code="header_mismatch", description=message)

    def body_too_large(self, limit: int) -> Refusal:
        """413 for a body too large to be checked (``MCPPolicy``): not about the token, so no
        challenge."""
        description = f"the request body exceeds the {limit}-byte limit of the tool-scope check"
        return _refusal(413, _body("invalid_request", description, "body_too_large"), None)

    def body_too_deep(self) -> Refusal:
        """400 for a body nested too deeply for the JSON parser to finish (``MCPPolicy``)."""
        description = "the request body is nested too deeply to be checked"
        return _refusal(400, _body("invalid_request", description, "invalid_request"), None)

    def _challenge(
        self,
        error: str | None = None,
        description: str | None = None,
        scopes: Iterable[str] | None = None,
    ) -> str:
        params = [f"resource_metadata={quote(self.resource_metadata_url)}"]
        names = tuple(self.required_scopes if scopes is None else scopes)
        names = tuple(name for name in names if name != OFFLINE_ACCESS)
        if names:
            params.append(f"scope={quote(' '.join(names))}")
        if error is not None:
            params.append(f"error={quote(error)}")
        if description:
            params.append(f"error_description={quote(description)}")
        return "Bearer " + ", ".join(params)


def _body(error: str, description: str, code: str) -> dict[str, str]:
    return {"error": error, "error_description": description, "code": code}


def _refusal(
    status: int,
    body: Mapping[str, str],
    challenge: str | None,
    *extra: tuple[bytes, bytes],
) -> Refusal:
    return _answer(
        status,
        body,
        challenge,
        *extra,
        code=body.get("code", ""),
        description=body.get("error_description", ""),
    )


def _answer(
    status: int,
    document: Mapping[str, object],
    challenge: str | None,
    *extra: tuple[bytes, bytes],
    code: str,
    description: str,
) -> Refusal:
    content = json.dumps(document, separators=(",", ":")).encode()
    headers = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]
    if challenge is not None:
        headers.append((b"www-authenticate", challenge.encode("ascii")))
    headers += [*extra, (b"content-length", str(len(content)).encode())]
    return Refusal(status, tuple(headers), content, code, description)
