"""FastAPI dependencies over ``OAuth2Middleware``.

    bearer = OAuth2Bearer()
    CurrentUser = Annotated[AuthenticatedUser, Depends(bearer)]

    @app.get("/reports")
    async def reports(
        user: Annotated[AuthenticatedUser, Security(bearer, scopes=["reports:read"])],
    ): ...

The middleware authenticates; the dependency hands the route its ``AuthenticatedUser`` and checks
the scopes that ``Security(..., scopes=[...])`` collects along the dependency chain (honouring
``scope_implications``). Its refusals are the middleware's own, body and headers alike (the flat
``{"error", "error_description", "code"}``, not FastAPI's ``{"detail": ...}``): the dependency
raises them to ``OAuth2Middleware``, which answers. Being a ``SecurityBase``, it shows in
``/docs`` as an HTTP bearer scheme (or an OAuth2 authorization-code flow when given the
endpoints), with the lock on each route and the Authorize button.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.openapi.models import HTTPBearer as HTTPBearerModel
from fastapi.openapi.models import OAuth2 as OAuth2Model
from fastapi.openapi.models import OAuthFlowAuthorizationCode, OAuthFlows
from fastapi.security import SecurityScopes
from fastapi.security.base import SecurityBase

from mcp_oauth2._access import RefusalRaised, access_of, unprotected_reason
from mcp_oauth2._rust import AuthenticatedUser

__all__ = ["OAuth2Bearer"]


class OAuth2Bearer(SecurityBase):
    def __init__(
        self,
        *,
        scheme_name: str = "OAuth2Bearer",
        description: str | None = "A JWT access token from the authorization server.",
        authorization_url: str | None = None,
        token_url: str | None = None,
        scopes: dict[str, str] | None = None,
    ) -> None:
        """With ``authorization_url`` and ``token_url``, ``/docs`` offers the OAuth2
        authorization-code flow (with ``scopes``: name -> description); otherwise a bearer field."""
        if authorization_url and token_url:
            flow = OAuthFlowAuthorizationCode(
                authorizationUrl=authorization_url, tokenUrl=token_url, scopes=scopes or {}
            )
            self.model: HTTPBearerModel | OAuth2Model = OAuth2Model(
                flows=OAuthFlows(authorizationCode=flow), description=description
            )
        else:
            self.model = HTTPBearerModel(bearerFormat="JWT", description=description)
        self.scheme_name = scheme_name

    async def __call__(
        self, request: Request, security_scopes: SecurityScopes
    ) -> AuthenticatedUser:
        access = access_of(request.scope, "OAuth2Bearer")
        if access is None:
            raise RuntimeError(unprotected_reason("OAuth2Bearer"))
        user = request.scope.get("user")
        if not isinstance(user, AuthenticatedUser):
            # An exempt route that still asked for a user: answer as for a missing token.
            raise RefusalRaised(access.missing_token())
        refusal = access.scope_refusal(user.scopes, security_scopes.scopes)
        if refusal is not None:
            raise RefusalRaised(refusal)
        return user
