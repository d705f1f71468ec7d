"""Finding an issuer's ``jwks_uri`` from its published metadata.

The well-known locations are tried in the order the MCP authorization specification gives
(revisions 2025-11-25 and 2026-07-28): RFC 8414 OAuth 2.0 Authorization Server Metadata first,
then OpenID Connect Discovery; for an issuer with a path, the path-insertion forms first and the
OIDC path-appending form last. The document's ``issuer`` must equal the configured issuer exactly
(RFC 8414 section 3.3), and the ``jwks_uri`` must be a URL keys may be fetched from
(``_url_rules``).
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from mcp_oauth2._http_fetch import FetchError, FetchLimits, fetch_document
from mcp_oauth2._url_rules import require_fetchable_url
from mcp_oauth2.errors import DiscoveryError, IssuerMismatchError

__all__ = ["discover_jwks_uri", "metadata_urls"]

logger = logging.getLogger("mcp_oauth2.discovery")

OAUTH = "/.well-known/oauth-authorization-server"
OIDC = "/.well-known/openid-configuration"


def metadata_urls(issuer: str) -> list[str]:
    """The metadata URLs to try for ``issuer``, in order."""
    parts = urlsplit(issuer)
    path = parts.path.rstrip("/")

    def at(new_path: str) -> str:
        return urlunsplit((parts.scheme, parts.netloc, new_path, "", ""))

    if not path:
        return [at(OAUTH), at(OIDC)]
    return [at(OAUTH + path), at(OIDC + path), at(path + OIDC)]


async def discover_jwks_uri(client: httpx.AsyncClient, issuer: str, limits: FetchLimits) -> str:
    """Fetch the issuer's metadata and return its validated ``jwks_uri``."""
    problems: list[str] = []
    mismatched = False
    for url in metadata_urls(issuer):
        try:
            document = await fetch_document(client, url, limits)
        except FetchError as error:
            problems.append(str(error))
            continue
        metadata = _json_object(document.body)
        if metadata is None:
            problems.append(f"GET {url}: not a JSON object")
            continue
        if metadata.get("issuer") != issuer:
            # RFC 8414 section 3.3: the metadata of another issuer must not be used.
            mismatched = True
            problems.append(
                f"GET {url}: metadata names issuer {str(metadata.get('issuer'))[:200]!r}"
            )
            continue
        jwks_uri = metadata.get("jwks_uri")
        if not isinstance(jwks_uri, str):
            problems.append(f"GET {url}: metadata has no jwks_uri")
            continue
        try:
            require_fetchable_url(jwks_uri, "the discovered jwks_uri")
        except ValueError as error:
            problems.append(f"GET {url}: {error}")
            continue
        logger.info("discovered jwks_uri %s for issuer %s", jwks_uri, issuer)
        return jwks_uri
    detail = f"discovery for issuer {issuer} failed: " + "; ".join(problems)
    error_class = IssuerMismatchError if mismatched else DiscoveryError
    raise error_class(detail, tuple(problems))


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than Python recurses
        return None
    return value if isinstance(value, dict) else None
