"""What an MCP operation requires of its caller, and the verdict for one call: requirements over
scopes, roles, claims and custom checks, combined with ``&`` and ``|``.

- ``require_scopes(*scopes)``: a token whose scopes, with ``scope_implications`` applied, cover
  every one (``require_scopes()`` alone: any token). The arithmetic is the native ``ScopeRules``
  of the request's ``AccessControl``, the same engine the middleware admits with.
- ``require_roles(*roles)``: a token carrying every role (``AuthenticatedUser.roles``).
- ``require_claim(path, *values)``: the claim at ``path`` (dotted as ``roles_claims`` are, read
  natively by ``claim_values``) equals one of ``values``, or is a list holding one.
- ``require(check)``: ``check(user, call)`` returns True; ``call`` has ``method``, ``name`` and
  ``arguments``, for rules on arguments.
- ``PUBLIC``: no token needed.

A verdict (``Decision``) is one of three, because a client must be told differently:

- ``allow``;
- ``step_up``: a token with more scopes would pass (or, for a caller without a token, any token
  with these scopes might): 401 or 403 ``insufficient_scope`` naming ``scopes``, every scope the
  operation needs;
- ``deny``: more scopes would not help (a role, a claim, a custom check): 403 ``access_denied``
  without a scope, so that a client does not loop on step-up.

``a & b`` denies when either denies, else steps up (for the scopes of both) when either does;
``a | b`` allows when either allows, else steps up for the first alternative that could pass with
more scopes, else denies. Requirements are immutable and shared between requests; they refuse
``bool()``, so that ``a and b`` (which would silently mean ``b``) is an error.
"""

from __future__ import annotations

import inspect
import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, Literal, NamedTuple

from mcp_oauth2._rust import AuthenticatedUser, claim_values
from mcp_oauth2.errors import ConfigurationError

if TYPE_CHECKING:
    from mcp_oauth2._access import AccessControl

__all__ = [
    "PUBLIC",
    "Call",
    "Decision",
    "Requirement",
    "all_of",
    "any_of",
    "require",
    "require_claim",
    "require_roles",
    "require_scopes",
]

logger = logging.getLogger("mcp_oauth2.policy")

# RFC 6749 section 3.3 scope-token (as OAuth2Config checks scopes).
_SCOPE_TOKEN: Final = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+$")
_OFFLINE_ACCESS: Final = "offline_access"
_NO_ARGUMENTS: Final[Mapping[str, Any]] = MappingProxyType({})

Outcome = Literal["allow", "step_up", "deny"]
ClaimValue = str | int | bool


# Both are built on every call: named tuples (immutable, and several times cheaper to make than
# frozen dataclasses).
class Call(NamedTuple):
    """One operation of an MCP request, as a custom check sees it.

    ``method`` is the JSON-RPC method (``tools/call``, ``prompts/get``, ``resources/read``...);
    ``name`` the tool or prompt name, or the resource URI (None for other methods);
    ``arguments`` the call's arguments (a tool's or a prompt's; for a resource matched by a
    URI template, the template's variables, percent-decoded), read-only.
    """

    method: str
    name: str | None = None
    arguments: Mapping[str, Any] = _NO_ARGUMENTS


class Decision(NamedTuple):
    """The verdict on one call: ``outcome``, the scopes the call needs along the way that was
    judged (every one, for a challenge), and for a denial what was missing (``role``,
    ``claim``, ``check``)."""

    outcome: Outcome
    scopes: tuple[str, ...] = ()
    missing: str = ""

    @property
    def allowed(self) -> bool:
        return self.outcome == "allow"


ALLOW: Final = Decision("allow")


class Requirement(ABC):
    """What a caller needs for an operation; combine with ``&`` (both) and ``|`` (either)."""

    __slots__ = ()

    @abstractmethod
    def decide(
        self,
        user: AuthenticatedUser | None,
        call: Call,
        access: AccessControl,
        *,
        listing: bool = False,
    ) -> Decision:
        """The verdict for ``call`` by ``user`` (None: a caller without a token), scopes judged
        by ``access``'s rules. ``listing``: the question is whether to show the operation in a
        list, where no call and so no arguments exist: custom checks are not asked then (the
        call itself is checked when it is made)."""

    def __and__(self, other: object) -> Requirement:
        if not isinstance(other, Requirement):
            return NotImplemented
        return _Combined((*_parts(self, every=True), *_parts(other, every=True)), every=True)

    def __or__(self, other: object) -> Requirement:
        if not isinstance(other, Requirement):
            return NotImplemented
        return _Combined((*_parts(self, every=False), *_parts(other, every=False)), every=False)

    def __bool__(self) -> bool:
        raise TypeError("combine requirements with & and |, not 'and' and 'or'")


def _parts(requirement: Requirement, *, every: bool) -> tuple[Requirement, ...]:
    """A combination's parts when it combines the same way (flattened), else itself."""
    if isinstance(requirement, _Combined) and requirement.every == every:
        return requirement.parts
    return (requirement,)


def all_of(decisions: Iterable[Decision]) -> Decision:
    """The verdict of several requirements that must all hold: a denial wins (more scopes would
    not help; the rest not asked); else a step-up for every scope of all of them; else
    allowed."""
    scopes: tuple[str, ...] = ()
    stepping_up = False
    for decision in decisions:
        if decision.outcome == "deny":
            return decision
        if decision.outcome == "step_up":
            stepping_up = True
        if decision.scopes:
            merged = (*scopes, *decision.scopes)
            scopes = tuple(dict.fromkeys(merged)) if scopes else decision.scopes
    if stepping_up:
        return Decision("step_up", scopes)
    return Decision("allow", scopes) if scopes else ALLOW


def any_of(decisions: Iterable[Decision]) -> Decision:
    """The verdict of alternatives: allowed when one allows (the rest not asked); else the
    step-up of the first that more scopes could satisfy; else a denial."""
    fixable: Decision | None = None
    denied: Decision | None = None
    for decision in decisions:
        if decision.outcome == "allow":
            return decision
        if decision.outcome == "step_up":
            fixable = fixable or decision
        else:
            denied = denied or decision
    return fixable or denied or Decision("deny", missing="check")


@dataclass(frozen=True, slots=True, repr=False)
class _Combined(Requirement):
    """``&`` (``every``) or ``|`` of ``parts``, asked in order, lazily: a part is not asked once
    the verdict cannot change."""

    parts: tuple[Requirement, ...]
    every: bool

    def decide(
        self,
        user: AuthenticatedUser | None,
        call: Call,
        access: AccessControl,
        *,
        listing: bool = False,
    ) -> Decision:
        decisions = (part.decide(user, call, access, listing=listing) for part in self.parts)
        return all_of(decisions) if self.every else any_of(decisions)

    def __repr__(self) -> str:
        grouped = (f"({p!r})" if isinstance(p, _Combined) else repr(p) for p in self.parts)
        return (" & " if self.every else " | ").join(grouped)


@dataclass(frozen=True, slots=True, repr=False)
class _Public(Requirement):
    def decide(
        self,
        user: AuthenticatedUser | None,
        call: Call,
        access: AccessControl,
        *,
        listing: bool = False,
    ) -> Decision:
        return ALLOW

    def __repr__(self) -> str:
        return "PUBLIC"


PUBLIC: Final[Requirement] = _Public()
"""No token needed: a caller without one may run the operation (on an anonymous route)."""


_ANY_TOKEN: Final = Decision("step_up")


class _OfCaller(Requirement):
    """A requirement on the caller's token: a caller without one must get a token
    (``without_token``: any token, unless the requirement names scopes); a caller with one is
    judged by ``judge``."""

    __slots__ = ()

    @property
    def without_token(self) -> Decision:
        return _ANY_TOKEN

    def decide(
        self,
        user: AuthenticatedUser | None,
        call: Call,
        access: AccessControl,
        *,
        listing: bool = False,
    ) -> Decision:
        if user is None:
            return self.without_token
        return self.judge(user, call, access, listing)

    @abstractmethod
    def judge(
        self, user: AuthenticatedUser, call: Call, access: AccessControl, listing: bool
    ) -> Decision:
        """The verdict for a caller with a token."""


@dataclass(frozen=True, slots=True, repr=False)
class _Scopes(_OfCaller):
    scopes: tuple[str, ...]
    # The two verdicts, made once (this runs on every call).
    allowed: Decision
    lacking: Decision

    @property
    def without_token(self) -> Decision:
        return self.lacking

    def judge(
        self, user: AuthenticatedUser, call: Call, access: AccessControl, listing: bool
    ) -> Decision:
        if self.scopes and access.rules.missing(user.scopes, self.scopes):
            return self.lacking
        return self.allowed

    def __repr__(self) -> str:
        return f"require_scopes({', '.join(map(repr, self.scopes))})"


def require_scopes(*scopes: str) -> Requirement:
    """A token whose scopes cover every one of ``scopes`` (``scope_implications`` applied); with
    none, any valid token."""
    for scope in scopes:
        if not isinstance(scope, str) or not _SCOPE_TOKEN.match(scope):
            raise ConfigurationError(
                f"require_scopes: {scope!r} is not a scope token (printable ASCII without "
                "spaces, quotes or backslashes), e.g. require_scopes('mcp:admin')"
            )
        if scope == _OFFLINE_ACCESS:
            raise ConfigurationError(
                "require_scopes: 'offline_access' is how a client asks for a refresh token, "
                "never what an operation needs (MCP 2026-07-28, SEP-2207)"
            )
    distinct = tuple(dict.fromkeys(scopes))
    return _Scopes(distinct, Decision("allow", distinct), Decision("step_up", distinct))


@dataclass(frozen=True, slots=True, repr=False)
class _Roles(_OfCaller):
    roles: frozenset[str]
    shown: tuple[str, ...]

    def judge(
        self, user: AuthenticatedUser, call: Call, access: AccessControl, listing: bool
    ) -> Decision:
        if self.roles <= user.roles:
            return ALLOW
        return Decision("deny", missing="role")

    def __repr__(self) -> str:
        return f"require_roles({', '.join(map(repr, self.shown))})"


def require_roles(*roles: str) -> Requirement:
    """A token carrying every one of ``roles`` (``AuthenticatedUser.roles``, read from
    ``roles_claims``)."""
    for role in roles:
        if not isinstance(role, str) or not role:
            raise ConfigurationError(
                f"require_roles: {role!r} is not a role name (a non-empty str)"
            )
    return _Roles(frozenset(roles), tuple(dict.fromkeys(roles)))


@dataclass(frozen=True, slots=True, repr=False)
class _Claim(_OfCaller):
    path: str
    values: tuple[ClaimValue, ...]
    # Each value with its type: equal and of the same JSON type (`1` is not `true`, nor "1").
    typed: frozenset[tuple[type, ClaimValue]]

    def judge(
        self, user: AuthenticatedUser, call: Call, access: AccessControl, listing: bool
    ) -> Decision:
        for found in claim_values(user, self.path):
            for item in found if isinstance(found, tuple) else (found,):
                if type(item) in _CLAIM_TYPES and (type(item), item) in self.typed:
                    return ALLOW
        return Decision("deny", missing="claim")

    def __repr__(self) -> str:
        return f"require_claim({', '.join(map(repr, (self.path, *self.values)))})"


_CLAIM_TYPES: Final = (str, int, bool)


def require_claim(path: str, *values: ClaimValue) -> Requirement:
    """The claim at ``path`` (a name, dotted for nesting: ``org.id``) equals one of ``values``,
    or is a list holding one. Compared with their JSON types: a string is never a number."""
    if not isinstance(path, str) or not path or len(path) > 256:
        raise ConfigurationError(f"require_claim: {path!r} is not a claim path, e.g. 'tenant'")
    if not values:
        raise ConfigurationError(
            f"require_claim({path!r}): give the values it may have, e.g. "
            f"require_claim({path!r}, 'acme')"
        )
    for value in values:
        if not isinstance(value, str | int | bool):
            raise ConfigurationError(
                f"require_claim({path!r}): {value!r} is not a str, int or bool"
            )
    return _Claim(path, values, frozenset((type(value), value) for value in values))


@dataclass(frozen=True, slots=True, repr=False)
class _Check(_OfCaller):
    check: Callable[[AuthenticatedUser, Call], bool]

    def judge(
        self, user: AuthenticatedUser, call: Call, access: AccessControl, listing: bool
    ) -> Decision:
        if listing:
            return ALLOW
        try:
            passed = self.check(user, call)
        except Exception:
            # Fail closed, and say so: a check that raises refuses the call.
            logger.exception("the check %r raised on %s; the call is refused", self, call.method)
            return Decision("deny", missing="check")
        return ALLOW if passed is True else Decision("deny", missing="check")

    def __repr__(self) -> str:
        return f"require({getattr(self.check, '__qualname__', type(self.check).__name__)})"


def require(check: Callable[[AuthenticatedUser, Call], bool]) -> Requirement:
    """``check(user, call)`` must return True (exactly: anything else, or an exception, refuses
    the call). It runs for callers with a token only, on every call it guards."""
    if not callable(check):
        raise ConfigurationError(f"require: {check!r} is not callable")
    if inspect.iscoroutinefunction(check):
        raise ConfigurationError(
            "require: the check must be a plain function returning a bool, not a coroutine "
            "function (it runs on every call, before the operation)"
        )
    return _Check(check)
