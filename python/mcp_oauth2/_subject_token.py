"""The caller's own bearer token while its request is served: kept where only the token exchanger
reads it, and dropped when the request ends.

``OAuth2Middleware`` wraps the ``Authorization`` header of each admitted request into a
``Subject`` (with the user it was admitted as), puts it into the ASGI scope under
``SUBJECT_SCOPE_KEY`` and, around the call of the application, into a context variable; when the
request ends it empties it and takes it out of the scope. So the token is never on
``request.user`` (nor anywhere a ``repr``, a log line, a metric or an error reads): a ``Subject``
shows no token in its ``repr``, cannot be pickled, and has no public reader. ``TokenExchanger``
(``_token_exchange``) is the one code that reads it, to send it as the subject token of an
exchange (RFC 8693) and never anywhere else.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from contextvars import ContextVar, Token
from typing import Any, Final, NoReturn

from mcp_oauth2._rust import AuthenticatedUser, bearer_token

__all__ = ["SUBJECT_SCOPE_KEY", "Subject", "enter_subject", "leave_subject", "subject_of"]

SUBJECT_SCOPE_KEY: Final = "mcp_oauth2.subject"
"""The ASGI scope key under which ``OAuth2Middleware`` keeps the request's ``Subject``."""


class Subject:
    """The credentials an admitted request came with, until the request ends."""

    __slots__ = ("_authorization", "_token", "sender_constrained", "user")

    def __init__(
        self, authorization: bytes, user: AuthenticatedUser, *, sender_constrained: bool = False
    ) -> None:
        self._authorization: bytes | None = authorization
        self._token: str | None = None
        self.user = user
        """The user the request was admitted as (who the token is about)."""
        self.sender_constrained = sender_constrained
        """Whether the token came with a DPoP proof (RFC 9449): bound to a key the client
        holds, which this server cannot prove possession of to anyone else."""

    def token(self) -> str | None:
        """The bearer token, or None once the request has ended (for ``TokenExchanger`` only).
        Read from the header at the first call (a request that exchanges nothing pays
        nothing)."""
        if self._token is None and self._authorization is not None:
            self._token = bearer_token(self._authorization)
        return self._token

    def drop(self) -> None:
        self._authorization = self._token = None

    def __repr__(self) -> str:
        return f"Subject(user={self.user!r}, token=<withheld>)"

    def __reduce__(self) -> NoReturn:
        raise TypeError("a request's credentials are not to be pickled")

    def __copy__(self) -> Subject:
        return self  # one holder of the credentials, emptied once

    def __deepcopy__(self, memo: dict[int, Any]) -> Subject:
        return self


_SUBJECT: Final = ContextVar[Subject | None]("mcp_oauth2.subject", default=None)


def enter_subject(scope: Mapping[str, Any]) -> Token[Subject | None]:
    """Make the request's ``Subject`` (if the middleware admitted it with a token) the current
    one; give the result to ``leave_subject`` when the request is done."""
    subject = scope.get(SUBJECT_SCOPE_KEY)
    return _SUBJECT.set(subject if isinstance(subject, Subject) else None)


def leave_subject(scope: MutableMapping[str, Any], entered: Token[Subject | None]) -> None:
    """The request is done: empty its ``Subject``, take it out of the scope, forget it here."""
    subject = scope.pop(SUBJECT_SCOPE_KEY, None)
    if subject is not None:
        subject.drop()
    _SUBJECT.reset(entered)


def subject_of(request_or_scope: object = None) -> Subject | None:
    """The ``Subject`` of a Starlette request (or websocket), of an ASGI scope, or (None) of the
    request being served."""
    found: object
    if request_or_scope is None:
        found = _SUBJECT.get()
    else:
        scope = getattr(request_or_scope, "scope", request_or_scope)
        found = scope.get(SUBJECT_SCOPE_KEY) if isinstance(scope, Mapping) else None
    return found if isinstance(found, Subject) else None
