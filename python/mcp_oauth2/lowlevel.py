"""The low-level API: the parts ``OAuth2Middleware`` is made of, for code that validates tokens
without the middleware, shares key caches, or tunes what the configuration leaves fixed.

- ``KeySet``, ``TokenValidator``, ``ScopeRules``, ``DPoPPolicy``: the native core (a parsed JWKS;
  the validation policy and its verified-token cache; scope implications and the scopes every
  request needs; what a resource accepts of DPoP, ``TokenValidator(dpop=...)``).
- ``Authenticator``: a validator joined with the key sources of its issuers (and an
  ``Introspector`` for opaque tokens); ``AuthenticatorHealth`` is its health.
- ``JWKSCache`` (with ``CacheSettings``), ``StaticKeys``: key sources (``KeySource``), and the
  ``KeySourceStats`` they report.
- ``Introspector`` (with ``IntrospectionSettings``): RFC 7662 introspection.
- ``ExchangeSettings``: the limits of a ``TokenExchanger`` (its timeout, connections, cache).

``OAuth2Middleware(app, config, key_sources=..., introspector=...)`` takes the sources and the
introspector built here in place of the ones it would build from the configuration.
"""

from mcp_oauth2._authenticator import Authenticator
from mcp_oauth2._cache_settings import CacheSettings
from mcp_oauth2._health import AuthenticatorHealth
from mcp_oauth2._introspection import IntrospectionSettings, Introspector
from mcp_oauth2._jwks import JWKSCache, KeySource, KeySourceStats, StaticKeys
from mcp_oauth2._rust import DPoPPolicy, KeySet, ScopeRules, TokenValidator
from mcp_oauth2._token_exchange import ExchangeSettings

__all__ = [
    "Authenticator",
    "AuthenticatorHealth",
    "CacheSettings",
    "DPoPPolicy",
    "ExchangeSettings",
    "IntrospectionSettings",
    "Introspector",
    "JWKSCache",
    "KeySet",
    "KeySource",
    "KeySourceStats",
    "ScopeRules",
    "StaticKeys",
    "TokenValidator",
]
