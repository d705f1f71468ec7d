"""Finding an issuer's endpoints (``jwks_uri``, ``introspection_endpoint``) from its published
metadata.

The well-known locations are tried in the order the MCP authorization specification gives
(revisions 2025-11-25 and 2026-07-28): RFC 8414 OAuth 2.0 Authorization Server Metadata first,
then OpenID Connect Discovery; for an issuer with a path, the path-insertion forms first and the
OIDC path-appending form last. The document's ``issuer`` must equal the configured issuer exactly
(RFC 8414 section 3.3), and the endpoint must be a URL that may be fetched from
(``_url_rules``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from mcp_oauth2._http_fetch import FetchedDocument, FetchError
from mcp_oauth2._upstream import Saturated
from mcp_oauth2._url_rules import require_fetchable_url
from mcp_oauth2.errors import DiscoveryError, IssuerMismatchError

__all__ = ["Fetch", "discover_endpoint", "discover_jwks_uri", "metadata_urls"]

# One bounded GET of a URL (``Upstream.fetch``, or ``fetch_document`` on a given client).
Fetch = Callable[[str], Awaitable[FetchedDocument]]

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


async def discover_jwks_uri(fetch: Fetch, issuer: str) -> str:
    """Fetch the issuer's metadata and return its validated ``jwks_uri``."""
    return await discover_endpoint(fetch, issuer, "jwks_uri")


async def discover_endpoint(fetch: Fetch, issuer: str, member: str) -> str:
    """Fetch the issuer's metadata and return its validated endpoint ``member``. ``Saturated``
    (the call could not be made now) passes through: it says nothing about the issuer."""
    problems: list[str] = []
    mismatched = False
    for url in metadata_urls(issuer):
        try:
            document = await fetch(url)
            endpoint = _endpoint_in(document.body, issuer, member)
        except Saturated:
            raise
        except FetchError as error:
            problems.append(str(error))
            continue
        except _UnusableMetadataError as unusable:
            mismatched = mismatched or unusable.mismatched
            problems.append(f"GET {url}: {unusable}")
            continue
        logger.info("discovered %s %s for issuer %s", member, endpoint, issuer)
        return endpoint
    detail = f"discovery for issuer {issuer} failed: " + "; ".join(problems)
    error_class = IssuerMismatchError if mismatched else DiscoveryError
    raise error_class(detail, tuple(problems))


class _UnusableMetadataError(Exception):
    """A metadata document that cannot be used; ``mismatched`` when it names another issuer."""

    def __init__(self, problem: str, *, mismatched: bool = False) -> None:
        super().__init__(problem)
        self.mismatched = mismatched


def _endpoint_in(body: bytes, issuer: str, member: str) -> str:
    """The validated endpoint ``member`` of ``issuer``'s metadata document ``body``."""
    metadata = _json_object(body)
    if metadata is None:
        raise _UnusableMetadataError("not a JSON object")
    if metadata.get("issuer") != issuer:
        # RFC 8414 section 3.3: the metadata of another issuer must not be used.
        named = str(metadata.get("issuer"))[:200]
        raise _UnusableMetadataError(f"metadata names issuer {named!r}", mismatched=True)
    endpoint = metadata.get(member)
    if not isinstance(endpoint, str):
        raise _UnusableMetadataError(f"metadata has no {member}")
    try:
        require_fetchable_url(endpoint, f"the discovered {member}")
    except ValueError as error:
        raise _UnusableMetadataError(str(error)) from None
    return endpoint


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than Python recurses
        return None
    return value if isinstance(value, dict) else None
