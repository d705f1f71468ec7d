"""FastAPI dependencies over ``OAuth2Middleware``.

    bearer = OAuth2Bearer()
    CurrentUser = Annotated[AuthenticatedUser, Depends(bearer)]

    @app.get("/reports")
    async def reports(
        user: Annotated[AuthenticatedUser, Security(bearer, scopes=["reports:read"])],
    ): ...

The middleware authenticates; the dependency hands the route its ``AuthenticatedUser`` and checks
the scopes that ``Security(..., scopes=[...])`` collects along the dependency chain (honouring
``scope_implications``), answering 403 ``insufficient_scope`` with the same ``WWW-Authenticate``
conventions as the middleware. Being a ``SecurityBase``, it shows in ``/docs`` as an HTTP bearer
scheme (or an OAuth2 authorization-code flow when given the endpoints), with the lock on each
route and the Authorize button.
"""

from __future__ import annotations

from fastapi import HTTPException, Request
from fastapi.openapi.models import HTTPBearer as HTTPBearerModel
from fastapi.openapi.models import OAuth2 as OAuth2Model
from fastapi.openapi.models import OAuthFlowAuthorizationCode, OAuthFlows
from fastapi.security import SecurityScopes
from fastapi.security.base import SecurityBase

from mcp_oauth2._rust import AuthenticatedUser
from mcp_oauth2.challenge import MISSING_TOKEN_BODY, Challenge
from mcp_oauth2.errors import AuthorizationError, InsufficientScopeError
from mcp_oauth2.middleware import SCOPE_KEY, OAuth2Middleware
from mcp_oauth2.scopes import ScopePolicy

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
        middleware = request.scope.get(SCOPE_KEY)
        if not isinstance(middleware, OAuth2Middleware):
            raise RuntimeError(
                "OAuth2Bearer needs OAuth2Middleware: app.add_middleware(OAuth2Middleware, ...)"
            )
        user = request.scope.get("user")
        if not isinstance(user, AuthenticatedUser):
            # An exempt route that still asked for a user: answer as for a missing token.
            refusal = middleware.challenge.missing_token()
            raise _http_exception(refusal.status, dict(MISSING_TOKEN_BODY), refusal.headers)
        needed = security_scopes.scopes
        missing = _missing(middleware.scope_policy, user, needed)
        if missing:
            all_needed = tuple(dict.fromkeys((*middleware.required_scopes, *needed)))
            error = InsufficientScopeError(
                f"token lacks the required scope(s): {' '.join(missing)}", all_needed
            )
            raise _error_response(middleware.challenge, error)
        return user


def _missing(policy: ScopePolicy, user: AuthenticatedUser, needed: list[str]) -> tuple[str, ...]:
    return policy.missing(user.scopes, needed) if needed else ()


def _error_response(challenge: Challenge, error: AuthorizationError) -> HTTPException:
    scopes = error.required_scopes if isinstance(error, InsufficientScopeError) else None
    refusal = challenge.for_error(error, scopes=scopes)
    detail = {"error": error.error, "error_description": error.description, "code": error.code}
    return _http_exception(refusal.status, detail, refusal.headers)


def _http_exception(
    status: int, detail: dict[str, str], headers: list[tuple[bytes, bytes]]
) -> HTTPException:
    """The refusal as FastAPI raises it: the JSON body of the middleware's answer is ``detail``."""
    plain = {
        name.decode(): value.decode()
        for name, value in headers
        if name in (b"www-authenticate", b"cache-control")
    }
    return HTTPException(status_code=status, detail=detail, headers=plain)
