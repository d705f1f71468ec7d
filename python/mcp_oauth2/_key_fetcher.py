"""Getting an issuer's key set over HTTP: discovery when needed, one bounded GET of the JWKS, the
native parse, and the freshness its answer allows; every failure as one kind of error.

The HTTP rules (deadline, size cap, no redirects, identity coding, retries) are ``_http_fetch``'s,
the calls go through an ``Upstream`` (``_upstream``: the client and its connections), discovery
is ``_discovery``'s; this module puts them together for ``JWKSCache`` and turns whatever
goes wrong (connection, status, coding, size, JSON, discovery, key parsing, freshness) into a
``JWKSUnavailableError`` (``DiscoveryError``, ``IssuerMismatchError``) with the reason for the log.
Each fetch, and the discovery within it, runs inside ``span(name, attributes)``: nothing by
default, an OpenTelemetry span when ``mcp_oauth2.telemetry`` asks for one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import httpx

from mcp_oauth2._cache_settings import CacheSettings
from mcp_oauth2._discovery import discover_jwks_uri
from mcp_oauth2._http_fetch import FetchError
from mcp_oauth2._key_schedule import freshness
from mcp_oauth2._rust import KeySet
from mcp_oauth2._upstream import Upstream, UpstreamLimits
from mcp_oauth2.errors import JWKSError, JWKSUnavailableError

__all__ = [
    "DISCOVERY_SPAN",
    "FETCH_SPAN",
    "FetchedKeys",
    "KeyFetcher",
    "SpanFactory",
    "no_span",
    "without_query",
]

# A context manager around a unit of work, given its name and attributes (a tracing span).
SpanFactory = Callable[[str, Mapping[str, str]], AbstractContextManager[object]]
FETCH_SPAN = "mcp_oauth2.jwks.fetch"
DISCOVERY_SPAN = "mcp_oauth2.discovery"


def no_span(name: str, attributes: Mapping[str, str]) -> AbstractContextManager[object]:
    return contextlib.nullcontext()


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
        self.upstream = self.new_upstream(client)
        self.span: SpanFactory = no_span

    def new_upstream(self, client: httpx.AsyncClient | None = None) -> Upstream:
        """An upstream for these settings (on ``client``, or on a client of its own)."""
        return Upstream(UpstreamLimits(self.settings.fetch_limits), client=client)

    async def fetch(self, upstream: Upstream | None = None) -> FetchedKeys:
        """One refresh through ``upstream`` (default: the shared one); raises
        ``JWKSUnavailableError`` or a subclass, and nothing else, for every failure."""
        attributes = {"mcp_oauth2.issuer": self.issuer} if self.issuer is not None else {}
        if self.jwks_uri is not None:
            attributes["url.full"] = without_query(self.jwks_uri)
        with self.span(FETCH_SPAN, attributes):
            return await self._fetch(upstream or self.upstream)

    async def _fetch(self, upstream: Upstream) -> FetchedKeys:
        try:
            if self.jwks_uri is None:
                assert self.issuer is not None
                with self.span(DISCOVERY_SPAN, {"mcp_oauth2.issuer": self.issuer}):
                    self.jwks_uri = await discover_jwks_uri(upstream.fetch, self.issuer)
            document = await upstream.fetch(self.jwks_uri)
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

    async def aclose(self) -> None:
        """Close the shared client if this fetcher made it."""
        await self.upstream.aclose()


def without_query(url: str) -> str:
    """``url`` without its query and fragment: what a span or a metric may carry (a query may
    hold credentials or tokens)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
