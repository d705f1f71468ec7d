"""RFC 9728 OAuth 2.0 Protected Resource Metadata: where the document lives, what it says, and
how the middleware serves it.

The document lives at ``/.well-known/oauth-protected-resource`` and, for a resource with a path
(``https://host/mcp``), also at the path-suffixed form ``/.well-known/oauth-protected-resource/mcp``
(RFC 9728 section 3.1), which is the URL advertised in ``WWW-Authenticate``. MCP clients start
authorization from it, so it is exempt from authentication, answers GET, HEAD and OPTIONS, allows
any origin (it is public), and may be cached. With DPoP on, it names the proofs' algorithms
(``dpop_signing_alg_values_supported``) and whether only DPoP-bound tokens are accepted
(``dpop_bound_access_tokens_required``).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from starlette.types import Send

if TYPE_CHECKING:
    from mcp_oauth2._config import OAuth2Config

__all__ = ["ResourceMetadata", "metadata_url"]

WELL_KNOWN = "/.well-known/oauth-protected-resource"
_CORS = (
    (b"access-control-allow-origin", b"*"),
    (b"access-control-allow-methods", b"GET, HEAD, OPTIONS"),
    (b"access-control-allow-headers", b"*"),
    (b"access-control-max-age", b"86400"),
    (b"cache-control", b"public, max-age=3600"),
)


def metadata_url(resource: str) -> str:
    """The path-suffixed URL of ``resource``'s metadata: the one a challenge names."""
    parts = urlsplit(resource)
    return urlunsplit((parts.scheme, parts.netloc, WELL_KNOWN + parts.path.rstrip("/"), "", ""))


class ResourceMetadata:
    def __init__(self, config: OAuth2Config) -> None:
        resource = config.resource_uri
        self.paths = frozenset({WELL_KNOWN, WELL_KNOWN + urlsplit(resource).path.rstrip("/")})
        self.url = metadata_url(resource)
        document: dict[str, Any] = {
            "resource": resource,
            "authorization_servers": list(config.authorization_servers or config.issuer),
            "bearer_methods_supported": ["header"],
        }
        scopes = config.scopes_supported
        if scopes is None and config.required_scopes:
            scopes = config.required_scopes
        if scopes is not None:
            document["scopes_supported"] = list(scopes)
        if config.resource_name:
            document["resource_name"] = config.resource_name
        if config.resource_documentation:
            document["resource_documentation"] = config.resource_documentation
        if config.dpop != "off":
            # RFC 9728 section 2: what a DPoP client needs to know before its first request.
            document["dpop_signing_alg_values_supported"] = list(config.dpop_algorithms)
            document["dpop_bound_access_tokens_required"] = config.dpop == "required"
        self.document = document
        """The document as a dict (the ``check`` command prints it)."""
        self.body = json.dumps(document, separators=(",", ":")).encode()

    async def send(self, method: str, send: Send) -> None:
        """Answer a request for the document: GET and HEAD (200), OPTIONS (204), else 405."""
        if method in ("GET", "HEAD"):
            status, body = 200, self.body if method == "GET" else b""
            headers = [
                *_CORS,
                (b"content-type", b"application/json"),
                (b"content-length", str(len(self.body)).encode()),
            ]
        else:
            status, body = (204, b"") if method == "OPTIONS" else (405, b"")
            extra = _CORS if method == "OPTIONS" else ((b"allow", b"GET, HEAD, OPTIONS"),)
            headers = [*extra, (b"content-length", b"0")]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
