"""Per-operation authorization of an MCP endpoint: ``MCPPolicy``, the one owner of what a caller
may do there beyond what the middleware admits (``ToolScopes`` is its shorthand).

A JSON-RPC call travels in a POST body, so the middleware alone cannot tell which tool, prompt or
resource is asked for. ``MCPPolicy`` wraps the MCP app: it reads the body of every POST (bounded),
checks its MCP headers against it (SEP-2243, ``_mcp_headers``), judges every operation in it
against the requirement that applies (``_requirements``), and either answers the refusal through
the request's ``AccessControl`` or replays the body to the app unchanged; the SDK's answers to
list calls are then filtered to what the caller may use (``_list_filter``).

Which requirement applies:

- ``tools/call``: ``tools[name]``; ``prompts/get``: ``prompts[name]``;
- ``resources/read``, ``resources/subscribe``, ``resources/unsubscribe``: the most specific
  ``resources`` keys that match the URI: a key equal to it; else every URI template it matches
  (``files://{path}``: a variable takes one or more characters other than ``/``, ``?`` and
  ``#``; ``{+path}`` also takes ``/``), whose variables become the call's ``arguments``; else
  every prefix it starts with, which is a key ending in ``*`` (``docs://public/*``) and also a
  template's text before its first ``{``, so a URI a template's own matching might miss is never
  left to ``default``. Several keys at one level all apply;
- ``completion/complete``: the requirement of the prompt or resource it completes for;
- ``initialize``, ``ping``, notifications, ``logging/setLevel``, ``server/discover`` and the four
  list methods: nothing (the lists are filtered instead);
- anything else, and any tool, prompt or resource not named: ``default`` (``require_scopes()``:
  any valid token).

A body with several messages (a batch) passes only when every operation in it does.

It fails closed: a request it cannot judge is never forwarded.

- Without ``OAuth2Middleware`` in front (the MCP SDK's own auth, ``MCPTokenVerifier``, runs
  inside the MCP app, after ``MCPPolicy``, so it cannot serve), every request is refused with
  500 ``unprotected`` and the reason is logged at ERROR, at startup when ``MCPPolicy`` sees the
  application's lifespan and on requests.
- A caller without a token (``anonymous_routes``, ``exempt_routes``) calling an operation that
  needs one: 401 with a challenge for the operation's scopes. A token without them: 403
  ``insufficient_scope`` challenging for every scope the operation needs. A token that has them
  but lacks a role or claim, or fails a custom check: 403 ``access_denied``, no challenge.
- Over ``max_body_bytes``: 413 ``body_too_large`` (the body is not read further).
- The client went away before the body was complete: nothing is forwarded.
- Nested too deeply for Python's JSON parser to finish: 400 ``invalid_request``.
- Otherwise the body is parsed by both of the SDK's JSON parsers (``_mcp_body``) and every
  reading is judged. Only a body that both refuse as invalid JSON goes on unchecked, since the
  SDK cannot read a call from it either; it answers its own JSON-RPC parse error.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final
from urllib.parse import unquote

from starlette.types import ASGIApp, Receive, Scope, Send

from mcp_oauth2._access import (
    ACCESS_SCOPE_KEY,
    AccessControl,
    Refusal,
    access_of,
    unprotected,
    unprotected_reason,
)
from mcp_oauth2._list_filter import LIST_MEMBERS, ListFilter, list_calls
from mcp_oauth2._mcp_body import (
    BodyTooDeepError,
    BodyTooLargeError,
    messages,
    read_body,
    replay,
)
from mcp_oauth2._mcp_headers import header_problem, request_id
from mcp_oauth2._requirements import (
    Call,
    Decision,
    Requirement,
    all_of,
    require_scopes,
)
from mcp_oauth2._rust import AuthenticatedUser
from mcp_oauth2.errors import ConfigurationError

__all__ = ["ANY_TOKEN", "DEFAULT_MAX_BODY_BYTES", "MCPPolicy", "tool_requirements"]

logger = logging.getLogger("mcp_oauth2.policy")

DEFAULT_MAX_BODY_BYTES: Final = 4 * 1024 * 1024
ANY_TOKEN: Final = require_scopes()
"""``MCPPolicy``'s default requirement: any valid token."""
# Methods that name no operation: the protocol's own plumbing, and the lists (filtered).
_PLUMBING: Final = frozenset(
    {"initialize", "ping", "logging/setLevel", "server/discover", *LIST_MEMBERS}
)
_RESOURCE_METHODS: Final = frozenset(
    {"resources/read", "resources/subscribe", "resources/unsubscribe"}
)
_ALLOW: Final = Decision("allow")
_NO_ARGUMENTS: Final[Mapping[str, Any]] = MappingProxyType({})
# A template expression: `{name}` or `{+name}`.
_EXPRESSION: Final = re.compile(r"\{(\+?)([A-Za-z0-9_]+)\}")


class MCPPolicy:
    def __init__(
        self,
        app: ASGIApp,
        *,
        tools: Mapping[str, Requirement] | None = None,
        resources: Mapping[str, Requirement] | None = None,
        prompts: Mapping[str, Requirement] | None = None,
        default: Requirement = ANY_TOKEN,
        filter_lists: bool = True,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        """``tools`` and ``prompts`` map names, ``resources`` URIs, URI templates or prefixes
        (ending in ``*``) to requirements; ``default`` (``require_scopes()``: any valid token)
        applies to everything else. ``filter_lists``: list answers show only what the caller
        may use. Bodies over ``max_body_bytes`` are refused (413) unread."""
        self.app = app
        self.tools = _named("tools", tools)
        self.prompts = _named("prompts", prompts)
        self.resources = _ResourceRules(_named("resources", resources))
        self.default = _requirement("default", default)
        self.filter_lists = filter_lists
        if isinstance(max_body_bytes, bool) or not isinstance(max_body_bytes, int):
            raise ConfigurationError("max_body_bytes must be a number of bytes, e.g. 4194304")
        if max_body_bytes < 1:
            raise ConfigurationError("max_body_bytes must be at least 1")
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        who = type(self).__name__
        if scope["type"] == "lifespan" and ACCESS_SCOPE_KEY not in scope:
            logger.error("%s", unprotected_reason(who))
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        access = access_of(scope, who)
        if access is None:
            await unprotected().send(send)
            return
        if scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        try:
            body = await read_body(receive, self.max_body_bytes)
            if body is None:
                return  # the client disconnected mid-body: nothing to check, nothing to forward
            found = messages(body)
        except BodyTooLargeError:
            await access.refuse(access.body_too_large(self.max_body_bytes), scope, receive, send)
            return
        except BodyTooDeepError:
            await access.refuse(access.body_too_deep(), scope, receive, send)
            return
        user = scope.get("user")
        caller = user if isinstance(user, AuthenticatedUser) else None
        refusal = self._refusal(scope, found, caller, access)
        if refusal is not None:
            await access.refuse(refusal, scope, receive, send)
            return
        if self.filter_lists:
            send = self._list_filter(found, caller, access, scope, receive, send)
        await self.app(scope, replay(body, receive), send)

    def _list_filter(
        self,
        found: list[dict[str, Any]],
        caller: AuthenticatedUser | None,
        access: AccessControl,
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> Send:
        """``send`` for the app: the list answers filtered when the request has list calls."""
        calls = list_calls(found)
        if not calls:
            return send

        def keep(method: str, key: str) -> bool:
            return self._listed(method, key, caller, access)

        async def fail(raw_send: Send) -> None:
            await access.refuse(unprotected(), scope, receive, raw_send)

        return ListFilter(calls, keep, send, fail)

    def _refusal(
        self,
        scope: Scope,
        found: list[dict[str, Any]],
        caller: AuthenticatedUser | None,
        access: AccessControl,
    ) -> Refusal | None:
        """The answer refusing a request with these messages, or None when it may pass."""
        problem = header_problem(scope.get("headers", ()), found)
        if problem is not None:
            return access.header_mismatch(request_id(found), problem)
        if len(found) == 1:
            decision = self.decide(found[0], caller, access)
        else:
            decision = all_of(self.decide(message, caller, access) for message in found)
        if decision.outcome == "allow":
            return None
        if decision.outcome == "deny":
            return access.access_denied(decision.missing)
        if caller is None:
            return access.missing_token(decision.scopes)
        refusal = access.scope_refusal(caller.scopes, decision.scopes)
        # A step-up is decided by the same scope engine: a refusal is there. Never a pass.
        return refusal if refusal is not None else access.access_denied()

    def decide(
        self,
        message: Mapping[str, Any],
        caller: AuthenticatedUser | None,
        access: AccessControl,
    ) -> Decision:
        """The verdict on one JSON-RPC message of a request by ``caller`` (None: no token)."""
        method = message.get("method")
        if not isinstance(method, str) or method in _PLUMBING:
            return _ALLOW  # an answer to the server, or the protocol's own plumbing
        if method.startswith("notifications/"):
            return _ALLOW
        params = message.get("params")
        params = params if isinstance(params, dict) else {}
        if method == "tools/call":
            return self._named_call(self.tools, method, params, caller, access)
        if method == "prompts/get":
            return self._named_call(self.prompts, method, params, caller, access)
        if method in _RESOURCE_METHODS:
            return self._resource_call(method, params.get("uri"), caller, access)
        if method == "completion/complete":
            return self._completion(params.get("ref"), caller, access)
        return self.default.decide(caller, Call(method), access)

    def _named_call(
        self,
        rules: Mapping[str, Requirement],
        method: str,
        params: Mapping[str, Any],
        caller: AuthenticatedUser | None,
        access: AccessControl,
    ) -> Decision:
        name = params.get("name")
        arguments = params.get("arguments")
        arguments = MappingProxyType(arguments) if isinstance(arguments, dict) else _NO_ARGUMENTS
        if not isinstance(name, str):
            return self.default.decide(caller, Call(method, None, arguments), access)
        requirement = rules.get(name, self.default)
        return requirement.decide(caller, Call(method, name, arguments), access)

    def _resource_call(
        self,
        method: str,
        uri: object,
        caller: AuthenticatedUser | None,
        access: AccessControl,
        *,
        listing: bool = False,
    ) -> Decision:
        if not isinstance(uri, str):
            return self.default.decide(caller, Call(method), access, listing=listing)
        matched = self.resources.matching(uri)
        if not matched:
            return self.default.decide(caller, Call(method, uri), access, listing=listing)
        return all_of(
            requirement.decide(caller, Call(method, uri, variables), access, listing=listing)
            for requirement, variables in matched
        )

    def _completion(
        self, ref: object, caller: AuthenticatedUser | None, access: AccessControl
    ) -> Decision:
        method = "completion/complete"
        ref = ref if isinstance(ref, dict) else {}
        if ref.get("type") == "ref/prompt" and isinstance(ref.get("name"), str):
            requirement = self.prompts.get(ref["name"], self.default)
            return requirement.decide(caller, Call(method, ref["name"]), access)
        if ref.get("type") == "ref/resource":
            return self._resource_call(method, ref.get("uri"), caller, access)
        return self.default.decide(caller, Call(method), access)

    def _listed(
        self, method: str, key: str, caller: AuthenticatedUser | None, access: AccessControl
    ) -> bool:
        """Whether a list answered for ``method`` shows the entry ``key`` to ``caller``: the
        operation's requirement allows the caller (custom checks, which judge a call's
        arguments, are asked when the call is made)."""
        if method in ("resources/list", "resources/templates/list"):
            decision = self._resource_call(method, key, caller, access, listing=True)
            return decision.allowed
        rules = self.tools if method == "tools/list" else self.prompts
        requirement = rules.get(key, self.default)
        return requirement.decide(caller, Call(method, key), access, listing=True).allowed


def _requirement(what: str, value: object) -> Requirement:
    if not isinstance(value, Requirement):
        raise ConfigurationError(
            f"{what} must be a requirement (require_scopes(...), require_roles(...), "
            f"require_claim(...), require(check), PUBLIC, or a combination with & and |), "
            f"not {type(value).__name__}"
        )
    return value


def _named(what: str, rules: Mapping[str, Requirement] | None) -> dict[str, Requirement]:
    if rules is None:
        return {}
    if not isinstance(rules, Mapping):
        raise ConfigurationError(f"{what} must be a mapping of a name to a requirement")
    named: dict[str, Requirement] = {}
    for name, requirement in rules.items():
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"{what}: {name!r} is not a name (a non-empty str)")
        named[name] = _requirement(f"{what}[{name!r}]", requirement)
    return named


@dataclass(frozen=True, slots=True)
class _Template:
    key: str
    pattern: re.Pattern[str]
    requirement: Requirement


class _ResourceRules:
    """The ``resources`` rules: exact URIs, URI templates and prefixes (see the module)."""

    def __init__(self, rules: Mapping[str, Requirement]) -> None:
        self.exact: dict[str, Requirement] = {}
        self.templates: list[_Template] = []
        self.prefixes: list[tuple[str, Requirement]] = []
        for key, requirement in rules.items():
            if "{" in key or "}" in key:
                self.templates.append(_Template(key, _template(key), requirement))
                self.prefixes.append((key.split("{", 1)[0], requirement))
            elif key.endswith("*"):
                self.prefixes.append((key[:-1], requirement))
            else:
                self.exact[key] = requirement

    def matching(self, uri: str) -> list[tuple[Requirement, Mapping[str, str]]]:
        """The most specific rules for ``uri``, each with its template's variables."""
        exact = self.exact.get(uri)
        if exact is not None:
            return [(exact, _NO_ARGUMENTS)]
        templates: list[tuple[Requirement, Mapping[str, str]]] = []
        for template in self.templates:
            match = template.pattern.fullmatch(uri)
            if match is not None:
                variables = {name: unquote(value) for name, value in match.groupdict().items()}
                templates.append((template.requirement, MappingProxyType(variables)))
        if templates:
            return templates
        return [
            (requirement, _NO_ARGUMENTS)
            for prefix, requirement in self.prefixes
            if uri.startswith(prefix)
        ]


def _template(key: str) -> re.Pattern[str]:
    """The pattern of a URI template key: ``{name}`` and ``{+name}`` only."""
    parts: list[str] = []
    names: set[str] = set()
    at = 0
    for expression in _EXPRESSION.finditer(key):
        literal = key[at : expression.start()]
        _check_literal(key, literal)
        parts.append(re.escape(literal))
        reserved, name = expression.groups()
        if name in names:
            raise ConfigurationError(f"resources: {key!r} names {{{name}}} twice")
        names.add(name)
        parts.append(f"(?P<{name}>[^?#]+)" if reserved else f"(?P<{name}>[^/?#]+)")
        at = expression.end()
    _check_literal(key, key[at:])
    parts.append(re.escape(key[at:]))
    if key.split("{", 1)[0] == "":
        raise ConfigurationError(f"resources: {key!r} must start with its scheme, not a variable")
    return re.compile("".join(parts))


def _check_literal(key: str, literal: str) -> None:
    if "{" in literal or "}" in literal:
        raise ConfigurationError(
            f"resources: {key!r} is not a URI template of {{name}} and {{+name}} variables; "
            "for anything else give a prefix ending in '*'"
        )


def tool_requirements(tool_scopes: Mapping[str, Iterable[str]]) -> dict[str, Requirement]:
    """``ToolScopes``' mapping of a tool to its scopes, as requirements."""
    return {tool: require_scopes(*scopes) for tool, scopes in tool_scopes.items()}
