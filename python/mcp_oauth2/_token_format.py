"""``TokenFormat``: which access tokens are verified locally (JWTs) and which are introspected."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["TokenFormat"]


class TokenFormat(StrEnum):
    """``OAuth2Config.token_format``; each member is equal to its string (``"auto"``)."""

    JWT = "jwt"
    """Every token is a JWT, verified locally against the issuer's keys."""
    OPAQUE = "opaque"
    """Every token is asked about at the introspection endpoint (RFC 7662)."""
    AUTO = "auto"
    """A token shaped as a JWS (exactly two dots) is verified locally; any other is introspected."""

    @property
    def verifies_locally(self) -> bool:
        """Whether some tokens are JWTs verified with keys (so keys are fetched)."""
        return self is not TokenFormat.OPAQUE

    @property
    def introspects(self) -> bool:
        """Whether some tokens are introspected (so a client and an endpoint are needed)."""
        return self is not TokenFormat.JWT
