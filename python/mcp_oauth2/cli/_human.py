"""Times, durations and sizes in the words a person reads: "expired 3 min 12 s ago"."""

from __future__ import annotations

import math
from datetime import UTC, datetime

__all__ = ["duration", "relative", "timestamp"]

_UNITS = (("d", 86_400), ("h", 3_600), ("min", 60), ("s", 1))


def duration(seconds: float) -> str:
    """``192`` -> ``"3 min 12 s"``: the two largest non-zero units, whole seconds."""
    whole = math.floor(abs(seconds))
    if whole == 0:
        return "0 s" if abs(seconds) < 0.5 else "under 1 s"
    parts: list[str] = []
    for name, size in _UNITS:
        count, whole = divmod(whole, size)
        if count:
            parts.append(f"{count} {name}")
        elif parts:
            break  # "2 h 5 s" reads worse than "2 h"
        if len(parts) == 2:
            break
    return " ".join(parts)


def relative(moment: float, now: float) -> str:
    """``"in 4 min 48 s"`` or ``"3 min 12 s ago"``."""
    delta = moment - now
    if abs(delta) < 1:
        return "now"
    return f"in {duration(delta)}" if delta > 0 else f"{duration(delta)} ago"


def timestamp(moment: float) -> str:
    """Unix seconds as ``2026-01-31 12:00:00 UTC`` (or the raw number when out of range)."""
    try:
        return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, OSError, ValueError):
        return f"{moment!r} (not a representable date)"
