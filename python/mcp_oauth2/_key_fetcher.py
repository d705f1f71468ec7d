"""Getting an issuer's key set over HTTP: discovery when needed, one bounded GET of the JWKS, the
native parse, and the freshness its answer allows; every failure as one kind of error.

The HTTP rules (deadline, size cap, no redirects, identity coding, retries) are ``_http_fetch``'s,
discovery is ``_discovery``'s; this module puts them together for ``JWKSCache`` and turns whatever
goes wrong (connection, status, coding, size, JSON, discovery, key parsing, freshness) into a
``JWKSUnavailableError`` (``DiscoveryError``, ``IssuerMismatchError``) with the reason for the log.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from mcp_oauth2._cache_settings import CacheSettings
from mcp_oauth2._discovery import discover_jwks_uri
from mcp_oauth2._http_fetch import FetchError, fetch_document, new_client
from mcp_oauth2._key_schedule import freshness
from mcp_oauth2._rust import KeySet
from mcp_oauth2.errors import JWKSError, JWKSUnavailableError

__all__ = ["FetchedKeys", "KeyFetcher"]


@dataclass(frozen=True, slots=True)
class FetchedKeys:
    keys: KeySet
    lifetime: float
    """Seconds the answer is fresh for (``freshness`` of its ``Cache-Control``)."""


class KeyFetcher:
    """Fetches the JWKS at ``jwks_uri``, or at the ``jwks_uri`` discovered from ``issuer``'s
    metadata (discovered once, then kept)."""

    def __init__(
        self,
        *,
        jwks_uri: str | None,
        issuer: str | None,
        settings: CacheSettings,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.issuer = issuer
        self.jwks_uri = jwks_uri
        """The configured or discovered key URL (None until discovery succeeded)."""
        self.settings = settings
        self._client = client
        self._owns_client = client is None

    async def fetch(self, client: httpx.AsyncClient | None = None) -> FetchedKeys:
        """One refresh on ``client`` (default: the shared one); raises ``JWKSUnavailableError``
        or a subclass, and nothing else, for every failure."""
        client = client if client is not None else self.shared_client()
        limits = self.settings.fetch_limits
        try:
            if self.jwks_uri is None:
                assert self.issuer is not None
                self.jwks_uri = await discover_jwks_uri(client, self.issuer, limits)
            document = await fetch_document(client, self.jwks_uri, limits)
            keys = KeySet.from_jwks(document.body)
            lifetime = freshness(document.headers.get("cache-control"), self.settings).seconds
        except JWKSUnavailableError:
            raise
        except JWKSError as error:  # the document parsed, but no key in it is usable
            raise JWKSUnavailableError(error.detail, error.reasons) from None
        except FetchError as error:
            raise JWKSUnavailableError(str(error)) from None
        except Exception as error:  # anything else is a failed refresh too, never another error
            raise JWKSUnavailableError(f"{type(error).__name__}: {str(error)[:300]}") from None
        return FetchedKeys(keys, lifetime)

    def shared_client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = new_client(self.settings.timeout)
        return self._client

    async def aclose(self) -> None:
        """Close the shared client if this fetcher made it."""
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None
