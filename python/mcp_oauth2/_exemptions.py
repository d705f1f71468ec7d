"""Which requests are served without a token: the route patterns of ``exempt_routes`` (no token
read) and of ``anonymous_routes`` (a token may be left out).

Patterns are exact paths (``/health``), prefix globs (``/public/*``: ``/public`` and anything
below it, never ``/publicity``), optionally for one method (``OPTIONS /mcp``, or ``OPTIONS *``
for every CORS preflight). Matching happens on a normalised path, so ``//public/../mcp``,
``/Mcp/`` tricks or percent-encoding cannot turn a protected route into an exempt one: a path
that normalisation would change is never exempt.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Exemptions"]

logger = logging.getLogger("mcp_oauth2.exemptions")


@dataclass(frozen=True, slots=True)
class _Rule:
    method: str | None
    path: str
    prefix: bool
    pattern: str


class Exemptions:
    def __init__(self, patterns: Iterable[str]) -> None:
        rules = []
        for pattern in patterns:
            method, _, path = pattern.strip().rpartition(" ")
            method = method.strip().upper() or ""
            if path == "*":
                rules.append(_Rule(method or None, "", True, pattern))
            elif path.endswith("/*"):
                rules.append(_Rule(method or None, path[:-2], True, pattern))
            else:
                rules.append(_Rule(method or None, path.rstrip("/") or "/", False, pattern))
        self._rules = tuple(rules)

    def match(self, method: str, path: str) -> str | None:
        """The pattern exempting this request, or None."""
        if not self._rules or not _is_canonical(path):
            return None
        trimmed = path.rstrip("/") or "/"
        for rule in self._rules:
            if rule.method is not None and rule.method != method:
                continue
            if rule.prefix:
                if rule.path == "" or trimmed == rule.path or trimmed.startswith(rule.path + "/"):
                    return self._log(rule, method, path)
            elif trimmed == rule.path:
                return self._log(rule, method, path)
        return None

    @staticmethod
    def _log(rule: _Rule, method: str, path: str) -> str:
        logger.debug("without a token: %s %s (rule %r)", method, path[:200], rule.pattern)
        return rule.pattern


def _is_canonical(path: str) -> bool:
    """No empty, '.' or '..' segments and no percent-escapes: such a path is never exempt."""
    if not path.startswith("/") or "%" in path or "\\" in path:
        return False
    segments = path[1:].split("/")
    # A single trailing slash is fine ('/health/'); an empty segment elsewhere ('//x') is not.
    inner = segments[:-1] if segments and segments[-1] == "" else segments
    return all(segment not in ("", ".", "..") for segment in inner)
