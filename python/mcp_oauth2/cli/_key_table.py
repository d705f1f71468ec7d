"""Describing a fetched JWKS: one row per key (usable or why not) and how long it stays cached.

Whether a key is usable is decided by the native parser (``KeySet.from_jwks``): its
``skipped`` reasons name each refused key by position. The other columns are read from the
document's JSON for display only.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from typing import Any

import httpx

from mcp_oauth2._cache_settings import CacheSettings
from mcp_oauth2._key_schedule import freshness
from mcp_oauth2.cli._human import duration
from mcp_oauth2.cli._trail import KeyFetch

__all__ = ["KeyRow", "caching", "key_rows"]

# The native parser labels skipped keys "key <index> (kid <debug string>): <reason>".
_SKIPPED = re.compile(r'key (\d+)(?: \(kid ".*?"(?:\.\.\.)?\))?: (.*)', re.DOTALL)
# What a JWS algorithm needs of a key: (kty, curve or None).
_FITS = {
    **{f"{family}{bits}": ("RSA", None) for family in ("RS", "PS") for bits in (256, 384, 512)},
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "ES512": ("EC", "P-521"),
    "EdDSA": ("OKP", "Ed25519"),
    "Ed25519": ("OKP", "Ed25519"),
}


@dataclass(frozen=True, slots=True)
class KeyRow:
    index: int
    kid: str | None
    kty: str | None
    alg: str | None
    size: str
    use: str | None
    usable: bool
    reason: str | None

    def fits(self, algorithm: str) -> bool:
        """Whether this key could verify ``algorithm`` (type, curve and its own ``alg``)."""
        need = _FITS.get(algorithm)
        if need is None or not self.usable:
            return False
        kty, curve = need
        if self.kty != kty or (curve is not None and self.size != curve):
            return False
        return (
            self.alg is None
            or self.alg == algorithm
            or {self.alg, algorithm}
            <= {
                "EdDSA",
                "Ed25519",
            }
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "kid": self.kid,
            "kty": self.kty,
            "alg": self.alg,
            "size": self.size,
            "use": self.use,
            "usable": self.usable,
            "reason": self.reason,
        }


def key_rows(fetch: KeyFetch) -> list[KeyRow]:
    """One row per entry of the document's ``keys`` array."""
    document = fetch.document()
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        return []
    skipped = fetch.keys.skipped if fetch.keys is not None else fetch.reasons
    reasons: dict[int, str] = {}
    for text in skipped:
        match = _SKIPPED.fullmatch(text)
        if match:
            reasons[int(match.group(1))] = match.group(2)
    rows = []
    for index, entry in enumerate(entries):
        jwk = entry if isinstance(entry, dict) else {}
        reason = reasons.get(index)
        if reason is None and fetch.keys is None:
            reason = "the document was refused"
        rows.append(
            KeyRow(
                index=index,
                kid=_text(jwk.get("kid")),
                kty=_text(jwk.get("kty")),
                alg=_text(jwk.get("alg")),
                size=_size(jwk),
                use=_text(jwk.get("use")),
                usable=reason is None,
                reason=reason,
            )
        )
    return rows


def _text(value: Any) -> str | None:
    return value[:100] if isinstance(value, str) else None


def _size(jwk: dict[str, Any]) -> str:
    kty = jwk.get("kty")
    if kty in ("EC", "OKP"):
        return _text(jwk.get("crv")) or "?"
    member = {"RSA": "n", "oct": "k"}.get(kty) if isinstance(kty, str) else None
    value = jwk.get(member) if member else None
    if not isinstance(value, str) or len(value) > 4096:
        return "?"
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except ValueError:
        return "?"
    bits = int.from_bytes(raw, "big").bit_length() if kty == "RSA" else len(raw) * 8
    return f"{bits}-bit"


def caching(headers: httpx.Headers | None, settings: CacheSettings) -> dict[str, Any]:
    """The caching headers of the JWKS answer and the freshness ``JWKSCache`` would give it."""
    if headers is None:
        return {}
    cache_control = headers.get("cache-control")
    fresh = freshness(cache_control, settings)
    seconds = duration(fresh.seconds)
    why = {
        "no-cache": f"no-cache/no-store: kept for jwks_min_max_age ({seconds})",
        "raised": f"max-age={fresh.sent} raised to jwks_min_max_age ({seconds})",
        "capped": f"max-age={fresh.sent} capped at the maximum ({seconds})",
        "max-age": f"max-age={fresh.sent} ({seconds})",
        "default": f"no max-age: the default ({seconds})",
    }[fresh.basis]
    return {
        "cache_control": cache_control,
        "expires": headers.get("expires"),
        "etag": headers.get("etag"),
        "age": headers.get("age"),
        "fresh_for": fresh.seconds,
        "refresh_after": fresh.seconds * settings.refresh_ahead,
        "stale_for": settings.max_stale,
        "explanation": why,
    }
