"""The application of the end-to-end benchmark: one endpoint answering a tiny JSON document.

Two factories for ``uvicorn --factory``: ``plain_app`` (no authentication) and ``protected_app``
(``OAuth2Middleware`` configured from the ``MCP_OAUTH2_*`` environment variables, as a deployment
would be). Every worker process builds its own app, so each has its own key cache and
verified-token cache. ``/_bench/stats`` (exempt from authentication) reports the worker's pid,
the requests it answered and its key cache's counters, so the runner can count JWKS fetches per
process.
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import FastAPI

from mcp_oauth2 import OAuth2Config, OAuth2Middleware
from mcp_oauth2.lowlevel import JWKSCache, KeySource

PING_PATH = "/ping"
STATS_PATH = "/_bench/stats"


def build_app(config: OAuth2Config | None, *, key_sources: KeySource | None = None) -> FastAPI:
    """The endpoint; behind ``OAuth2Middleware`` when ``config`` is given."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    # Requests this worker answered (both apps count alike): how wrk's connections were spread.
    answered = [0]

    @app.get(PING_PATH)
    async def ping() -> dict[str, bool]:
        answered[0] += 1
        return {"ok": True}

    @app.get(STATS_PATH)
    async def stats() -> dict[str, Any]:
        report: dict[str, Any] = {"pid": os.getpid(), "answered": answered[0]}
        if key_sources is not None:
            counters = key_sources.stats()
            report.update(fetches=counters.fetches, key_hits=counters.hits)
        return report

    if config is not None:
        app.add_middleware(OAuth2Middleware, config=config, key_sources=key_sources)
    return app


def plain_app() -> FastAPI:
    return build_app(None)


def protected_app() -> FastAPI:
    # MCP_OAUTH2_ISSUER, MCP_OAUTH2_AUDIENCE, MCP_OAUTH2_JWKS_URI, MCP_OAUTH2_EXEMPT_ROUTES
    config = OAuth2Config()
    assert config.jwks_uri is not None, "the benchmark sets MCP_OAUTH2_JWKS_URI"
    source = JWKSCache(jwks_uri=config.jwks_uri, settings=config.cache_settings())
    return build_app(config, key_sources=source)
