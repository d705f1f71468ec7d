"""A local OAuth 2.1 authorization server for tests and demos: keys, tokens, discovery, JWKS, and a
loopback server for the app under test.

``LocalIssuer`` holds signing keys, mints access tokens (RFC 9068 style JWTs) and deliberately
broken ones, and serves its RFC 8414 metadata and JWKS over real HTTP on loopback, so a test
exercises the same code path as production: discovery, key fetching, caching and validation.
It can also misbehave on request (error statuses, junk bodies, huge or hanging answers, refused
connections) for resilience tests::

    from mcp_oauth2.lowlevel import KeySet, TokenValidator
    from mcp_oauth2.testing import LocalIssuer

    issuer = LocalIssuer(default_audience="https://mcp.example.com/mcp")
    with issuer.serve() as base_url:           # or: async with issuer.serve_async()
        token = issuer.mint(scopes=["read"])
        validator = TokenValidator(issuer.issuer, "https://mcp.example.com/mcp")
        user = validator.validate(token, KeySet.from_jwks(issuer.jwks()))
        issuer.fault = "status:503"            # the JWKS endpoint now fails

``AppServer`` serves any ASGI app under uvicorn on a free loopback port; ``bind_loopback`` and
``url_of`` let the app know its URL first. ``BearerRecorder`` keeps the bearer tokens that reach
an app (a downstream API must never see the caller's own).

DPoP (RFC 9449): ``DPoPKey`` is a client's key pair that makes proofs, ``mint(jkt=key.thumbprint)``
binds a token to it (``mint_opaque`` too: the introspection answer carries ``cnf.jkt``), and
``DPoPAuth(key, token)`` sends the token and a fresh proof on every request of an httpx client
(the MCP SDK's ``httpx2`` client included)::

    key = DPoPKey()
    token = issuer.mint(scopes=["read"], jkt=key.thumbprint)
    async with httpx2.AsyncClient(auth=DPoPAuth(key, token)) as http: ...

Needs the ``testing`` extra (``pip install 'mcp-oauth2[testing]'``: cryptography and uvicorn).
The parts: ``_keys`` (keys and minting), ``_issuer_app`` (the issuer's ASGI app), ``_faults``
(fault injection), ``_token_endpoint`` (token exchange), ``_loopback`` (the one uvicorn runner),
``_local_issuer``, ``_app_server``, ``_dpop`` (the DPoP client), ``_bearer_recorder``.
"""

try:
    import cryptography  # noqa: F401
    import uvicorn  # noqa: F401
except ImportError as error:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "mcp_oauth2.testing needs the 'testing' extra: pip install 'mcp-oauth2[testing]'"
    ) from error

from mcp_oauth2.testing._app_server import AppServer
from mcp_oauth2.testing._bearer_recorder import BearerRecorder
from mcp_oauth2.testing._dpop import DPoPAuth, DPoPKey
from mcp_oauth2.testing._faults import BOMB_DECODED_BYTES, HUGE_BODY_BYTES, NESTED_JSON_DEPTH
from mcp_oauth2.testing._keys import DEFAULT_CLIENT_ID, MintOptions
from mcp_oauth2.testing._local_issuer import LocalIssuer
from mcp_oauth2.testing._loopback import bind_loopback, url_of

__all__ = [
    "BOMB_DECODED_BYTES",
    "DEFAULT_CLIENT_ID",
    "HUGE_BODY_BYTES",
    "NESTED_JSON_DEPTH",
    "AppServer",
    "BearerRecorder",
    "DPoPAuth",
    "DPoPKey",
    "LocalIssuer",
    "MintOptions",
    "bind_loopback",
    "url_of",
]
