"""Scope hierarchies: a broader scope grants the narrower ones it implies.

The MCP authorization specification (2026-07-28) asks servers to account for scope hierarchies
when deciding whether a token suffices. ``ScopePolicy`` expands granted scopes transitively
(``mcp:admin`` -> ``mcp:write`` -> ``mcp:read``) once, so checks are plain set operations.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

__all__ = ["ScopePolicy"]


class ScopePolicy:
    def __init__(self, implications: Mapping[str, Iterable[str]] | None = None) -> None:
        direct = {broad: frozenset(narrow) for broad, narrow in (implications or {}).items()}
        closure: dict[str, frozenset[str]] = {}
        for broad in direct:
            seen: set[str] = set()
            stack = list(direct[broad])
            while stack:
                scope = stack.pop()
                if scope not in seen:
                    seen.add(scope)
                    stack.extend(direct.get(scope, ()))
            closure[broad] = frozenset(seen)
        self._closure = closure

    def effective(self, granted: Iterable[str]) -> frozenset[str]:
        """The granted scopes plus everything they imply."""
        if not self._closure:
            return granted if isinstance(granted, frozenset) else frozenset(granted)
        out = set(granted)
        for scope in list(out):
            out |= self._closure.get(scope, frozenset())
        return frozenset(out)

    def missing(self, granted: Iterable[str], required: Iterable[str]) -> tuple[str, ...]:
        """Required scopes that the granted ones do not cover, in the order required."""
        effective = self.effective(granted)
        return tuple(scope for scope in required if scope not in effective)
