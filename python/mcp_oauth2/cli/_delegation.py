"""The delegation claims of a token, shown by ``mcp-oauth2 inspect``: ``act`` (the party acting
for the subject) and ``may_act`` (who may act for it), RFC 8693 section 4.

Shown as the token carries them, and marked unverified unless the token was accepted.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from mcp_oauth2.cli._output import Fields, Heading, Report

__all__ = ["DELEGATION_CLAIMS", "add_delegation"]

DELEGATION_CLAIMS = ("act", "may_act")
# Longest text shown of one claim's value.
SHOWN_CHARS = 300


def add_delegation(
    report: Report, data: dict[str, Any], claims: Mapping[str, Any] | None, *, verified: bool
) -> None:
    """A block with the delegation claims of ``claims`` (if any), and ``data["delegation"]``:
    those claims as given, or None."""
    found = {name: claims[name] for name in DELEGATION_CLAIMS if claims and name in claims}
    data["delegation"] = found or None
    if not found:
        return
    label = "" if verified else " (UNVERIFIED)"
    report.add(Heading(f"Delegation (RFC 8693){label}"))
    rows = []
    for name, value in found.items():
        text = json.dumps(value, ensure_ascii=False, default=str)
        rows.append((name, text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "..."))
    report.add(Fields(rows))
