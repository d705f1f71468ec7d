"""RFC 9728 OAuth 2.0 Protected Resource Metadata, served by the middleware.

The document lives at ``/.well-known/oauth-protected-resource`` and, for a resource with a path
(``https://host/mcp``), also at the path-suffixed form ``/.well-known/oauth-protected-resource/mcp``
(RFC 9728 section 3.1), which is the URL advertised in ``WWW-Authenticate``. MCP clients start
authorization from it, so it is exempt from authentication, answers GET, HEAD and OPTIONS, allows
any origin (it is public), and may be cached.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from mcp_oauth2.config import OAuth2Config

__all__ = ["ResourceMetadata"]

WELL_KNOWN = "/.well-known/oauth-protected-resource"


class ResourceMetadata:
    def __init__(self, config: OAuth2Config) -> None:
        resource = config.resource_uri
        parts = urlsplit(resource)
        suffix = parts.path.rstrip("/")
        self.paths = frozenset({WELL_KNOWN, WELL_KNOWN + suffix})
        self.url = urlunsplit((parts.scheme, parts.netloc, WELL_KNOWN + suffix, "", ""))
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
        self.document = document
        self.body = json.dumps(document, separators=(",", ":")).encode()

    def headers(self, *, with_body: bool) -> list[tuple[bytes, bytes]]:
        headers = [
            (b"access-control-allow-origin", b"*"),
            (b"access-control-allow-methods", b"GET, HEAD, OPTIONS"),
            (b"access-control-allow-headers", b"*"),
            (b"access-control-max-age", b"86400"),
            (b"cache-control", b"public, max-age=3600"),
        ]
        if with_body:
            headers += [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(self.body)).encode()),
            ]
        return headers
