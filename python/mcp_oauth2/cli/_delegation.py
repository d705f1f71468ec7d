"""The delegation claims of a token, shown by ``mcp-oauth2 inspect``: ``act`` (the party acting
for the subject, earlier actors nested in it) and ``may_act`` (who may act for it), RFC 8693
section 4.

Shown in words (the actor chain, the party that may act), marked unverified unless the token was
accepted; the JSON document has the claims as the token carries them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from mcp_oauth2.cli._output import Fields, Heading, Report

__all__ = ["DELEGATION_CLAIMS", "add_delegation"]

DELEGATION_CLAIMS = ("act", "may_act")
# Longest text shown of one party (or of a claim that names none).
SHOWN_CHARS = 300
# The most actors of an act chain shown.
LONGEST_CHAIN = 8


def add_delegation(
    report: Report, data: dict[str, Any], claims: Mapping[str, Any] | None, *, verified: bool
) -> None:
    """A block with the delegation claims of ``claims`` in words (if any), and
    ``data["delegation"]``: those claims as given, or None."""
    found = {name: claims[name] for name in DELEGATION_CLAIMS if claims and name in claims}
    data["delegation"] = found or None
    if not found:
        return
    label = "" if verified else " (UNVERIFIED)"
    report.add(Heading(f"Delegation (RFC 8693){label}"))
    report.add(Fields(delegation_rows(found)))


def delegation_rows(claims: Mapping[str, Any]) -> list[tuple[str, str]]:
    """What ``act`` (who acts for the subject, earlier actors nested) and ``may_act`` (who may
    act for it) say, in words (RFC 8693 sections 4.1 and 4.4)."""
    rows = []
    if "act" in claims:
        chain: list[str] = []
        act = claims["act"]
        while isinstance(act, Mapping) and len(chain) < LONGEST_CHAIN:
            chain.append(_party(act))
            act = act.get("act")
        words = "; before it, ".join(chain) if chain else f"names no actor: {_shown(claims['act'])}"
        rows.append(("act", f"acting for the subject: {words}"))
    if "may_act" in claims:
        may_act = claims["may_act"]
        named = _party(may_act) if isinstance(may_act, Mapping) else f"nobody: {_shown(may_act)}"
        rows.append(("may_act", f"may act for the subject: {named}"))
    return rows


def _party(claims: Mapping[str, Any]) -> str:
    """A party as its claims name it: ``sub`` (and ``iss``), else the whole object."""
    sub, iss = claims.get("sub"), claims.get("iss")
    if not isinstance(sub, str):
        return _shown(claims)
    named = sub[:SHOWN_CHARS]
    return named if iss is None else f"{named} (iss {str(iss)[:SHOWN_CHARS]})"


def _shown(value: Any) -> str:
    """A claim's value as JSON, cut to ``SHOWN_CHARS``."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "..."
