"""The official ``mcp`` SDK's ``TokenVerifier`` backed by mcp-oauth2.

    from mcp.server import MCPServer
    from mcp.server.auth.settings import AuthSettings

    server = MCPServer(
        "demo",
        token_verifier=MCPTokenVerifier(config),
        auth=AuthSettings(issuer_url=..., resource_server_url=..., validate_token_resource=True),
    )

``verify_token`` never raises: any failure is None, which the SDK answers with 401. The audience
has been checked already; ``AccessToken.resource`` is the configured audience the token was issued
for, so the SDK's own resource check (``validate_token_resource``) agrees.
"""

from __future__ import annotations

import logging

from mcp.server.auth.provider import AccessToken

from mcp_oauth2.authenticator import Authenticator
from mcp_oauth2.config import OAuth2Config
from mcp_oauth2.jwks import KeySource
from mcp_oauth2.scopes import ScopePolicy

__all__ = ["MCPTokenVerifier"]

logger = logging.getLogger("mcp_oauth2.mcp")


class MCPTokenVerifier:
    """Implements ``mcp.server.auth.provider.TokenVerifier``."""

    def __init__(
        self,
        config: OAuth2Config | None = None,
        *,
        key_sources: KeySource | dict[str, KeySource] | None = None,
    ) -> None:
        self.config = config if config is not None else OAuth2Config()  # type: ignore[call-arg]
        config = self.config
        self.authenticator = Authenticator.from_config(config, key_sources)
        self.scope_policy = ScopePolicy(config.scope_implications)

    async def verify_token(self, token: str) -> AccessToken | None:
        try:
            user = await self.authenticator.authenticate(token)
        except Exception as error:  # the protocol says: None for any invalid token, never raise
            logger.debug("token refused: %s", getattr(error, "code", type(error).__name__))
            return None
        scopes = self.scope_policy.effective(user.scopes)
        if any(scope not in scopes for scope in self.config.required_scopes):
            return None
        audiences = self.config.audience
        resource = next((aud for aud in audiences if aud in user.audience), None)
        return AccessToken(
            token=token,
            client_id=user.client_id or "",
            scopes=sorted(scopes),
            expires_at=user.expires_at,
            resource=resource,
            subject=user.subject,
            claims=dict(user.claims),
        )

    async def aclose(self) -> None:
        await self.authenticator.aclose()
