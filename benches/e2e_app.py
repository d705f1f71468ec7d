"""The application of the end-to-end benchmark: one endpoint answering a tiny JSON document.

Two factories for ``uvicorn --factory``: ``plain_app`` (no authentication) and ``protected_app``
(``OAuth2Middleware`` configured from the ``MCP_OAUTH2_*`` environment variables, as a deployment
would be). Every worker process builds its own app, so each has its own key cache and
verified-token cache. ``/_bench/stats`` (exempt from authentication) reports the worker's pid and
its key-source counters, so the runner can count JWKS fetches per process.
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import FastAPI, Request

from mcp_oauth2 import OAuth2Config, OAuth2Middleware

PING_PATH = "/ping"
STATS_PATH = "/_bench/stats"


def oauth2_middleware(app: Any) -> OAuth2Middleware | None:
    """The ``OAuth2Middleware`` of ``app`` (a Starlette app builds its stack at the first
    request), or None."""
    layer = getattr(app, "middleware_stack", None) or app
    while layer is not None and not isinstance(layer, OAuth2Middleware):
        layer = getattr(layer, "app", None)
    return layer


def build_app(config: OAuth2Config | None, *, protected: bool) -> FastAPI:
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    # Requests this worker answered (both apps count alike): how wrk's connections were spread.
    answered = [0]

    @app.get(PING_PATH)
    async def ping() -> dict[str, bool]:
        answered[0] += 1
        return {"ok": True}

    @app.get(STATS_PATH)
    async def stats(request: Request) -> dict[str, Any]:
        middleware = oauth2_middleware(request.app)
        report: dict[str, Any] = {
            "pid": os.getpid(),
            "protected": middleware is not None,
            "answered": answered[0],
        }
        if middleware is not None:
            authenticator = middleware.authenticator
            sources = {id(s): s for s in authenticator.sources.values()}.values()
            report["fetches"] = sum(s.stats().fetches for s in sources)
            report["key_hits"] = sum(s.stats().hits for s in sources)
            report["token_cache"] = authenticator.validator.cache_info()
        return report

    if protected:
        app.add_middleware(OAuth2Middleware, config=config)
    return app


def plain_app() -> FastAPI:
    return build_app(None, protected=False)


def protected_app() -> FastAPI:
    # MCP_OAUTH2_ISSUER, MCP_OAUTH2_AUDIENCE, MCP_OAUTH2_JWKS_URI, MCP_OAUTH2_EXEMPT_ROUTES
    return build_app(OAuth2Config(), protected=True)
