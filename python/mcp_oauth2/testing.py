"""A local OAuth 2.1 authorization server for tests and demos: keys, tokens, discovery, JWKS.

``LocalIssuer`` holds signing keys, mints access tokens (RFC 9068 style JWTs) and deliberately
broken ones, and serves its RFC 8414 metadata and JWKS over real HTTP on loopback, so a test
exercises the same code path as production: discovery, key fetching, caching and validation.
It can also misbehave on request (error statuses, junk bodies, huge or hanging answers, refused
connections) for resilience tests::

    from mcp_oauth2 import KeySet, TokenValidator
    from mcp_oauth2.testing import LocalIssuer

    issuer = LocalIssuer(default_audience="https://mcp.example.com/mcp")
    with issuer.serve() as base_url:           # or: async with issuer.serve_async()
        token = issuer.mint(scopes=["read"])
        validator = TokenValidator(issuer.issuer, "https://mcp.example.com/mcp")
        user = validator.validate(token, KeySet.from_jwks(issuer.jwks()))
        issuer.fault = "status:503"            # the JWKS endpoint now fails

Needs the ``testing`` extra (``pip install 'mcp-oauth2[testing]'``: cryptography and uvicorn).
Tokens are signed with ``cryptography`` directly, not with a JWT library, so the module adds no
dependency beyond that extra, and the JWS is built byte by byte as RFC 7515 describes it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import gzip
import json
import os
import re
import socket
import threading
import time
import urllib.parse
import uuid
import zlib
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, TypedDict, Unpack

import anyio.to_thread
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import (
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

try:
    import uvicorn
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
except ImportError as error:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "mcp_oauth2.testing needs the 'testing' extra: pip install 'mcp-oauth2[testing]'"
    ) from error

__all__ = [
    "BOMB_DECODED_BYTES",
    "DEFAULT_CLIENT_ID",
    "HUGE_BODY_BYTES",
    "NESTED_JSON_DEPTH",
    "AppServer",
    "LocalIssuer",
    "MintOptions",
    "bind_loopback",
    "url_of",
]

DEFAULT_CLIENT_ID: Final = "local-client"
"""The ``client_id`` claim of minted tokens (override it with ``claims=``)."""

HUGE_BODY_BYTES: Final = 1024 * 1024
"""Body size of the ``"huge"`` fault: well above any sane limit for a JWKS or metadata document."""

BOMB_DECODED_BYTES: Final = 64 * 1024 * 1024
"""What the ``"gzip_bomb"`` fault's body (about a kilobyte on the wire) inflates to when decoded."""

NESTED_JSON_DEPTH: Final = 20_000
"""Array nesting of the ``"nested_json"`` fault: deeper than Python's recursion limit, 40 KB."""

JWKS_MEDIA_TYPE: Final = "application/jwk-set+json"

_HOST: Final = "127.0.0.1"
_OAUTH_METADATA: Final = "/.well-known/oauth-authorization-server"
_OIDC_METADATA: Final = "/.well-known/openid-configuration"
# The ``"redirect"`` fault points here: the same document, served without faults.
_MOVED: Final = "/moved"
# ``mint_expired`` tokens expired this long ago: beyond the validator's largest leeway (3600 s).
_EXPIRED_AGO: Final = 2 * 3600
_STREAM_CHUNK: Final = 64 * 1024
_START_TIMEOUT: Final = 10.0
_STOP_TIMEOUT: Final = 5.0
# Seconds uvicorn waits for in-flight responses at shutdown before cancelling them (a client
# that stopped reading a "huge" body would otherwise hold the server open).
_GRACEFUL_SHUTDOWN: Final = 2
_PATH_RE: Final = re.compile(r"(/[A-Za-z0-9._~-]+)*")
_STATUS_FAULT_RE: Final = re.compile(r"status:([0-9]{3})")
_NAMED_FAULTS: Final = (
    "html",
    "invalid_json",
    "empty",
    "huge",
    "redirect",
    "hang",
    "gzip_bomb",
    "bad_encoding",
    "nested_json",
)
_JWKS_ONLY_FAULTS: Final = ("no_usable_keys",)

_PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


# -- algorithms and keys --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Algorithm:
    """How one JWS algorithm (RFC 7518 section 3, RFC 8037) makes keys and signatures."""

    family: Literal["RSA", "PSS", "EC", "OKP"]
    hash: hashes.HashAlgorithm | None = None
    curve: ec.EllipticCurve | None = None
    crv: str = ""
    size: int = 0  # bytes of an EC coordinate (and of r and s)

    def generate(self) -> _PrivateKey:
        if self.family in ("RSA", "PSS"):
            return rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if self.curve is not None:
            return ec.generate_private_key(self.curve)
        return ed25519.Ed25519PrivateKey.generate()

    def sign(self, key: _PrivateKey, message: bytes) -> bytes:
        if isinstance(key, ed25519.Ed25519PrivateKey):
            return key.sign(message)
        assert self.hash is not None
        if isinstance(key, ec.EllipticCurvePrivateKey):
            # JWS wants r || s at fixed length (RFC 7518 section 3.4), not ASN.1 DER.
            r, s = decode_dss_signature(key.sign(message, ec.ECDSA(self.hash)))
            return r.to_bytes(self.size, "big") + s.to_bytes(self.size, "big")
        if self.family == "PSS":
            pss = padding.PSS(mgf=padding.MGF1(self.hash), salt_length=padding.PSS.DIGEST_LENGTH)
            return key.sign(message, pss, self.hash)
        return key.sign(message, padding.PKCS1v15(), self.hash)


_ALGORITHMS: Final[Mapping[str, _Algorithm]] = {
    "RS256": _Algorithm("RSA", hashes.SHA256()),
    "RS384": _Algorithm("RSA", hashes.SHA384()),
    "RS512": _Algorithm("RSA", hashes.SHA512()),
    "PS256": _Algorithm("PSS", hashes.SHA256()),
    "PS384": _Algorithm("PSS", hashes.SHA384()),
    "PS512": _Algorithm("PSS", hashes.SHA512()),
    "ES256": _Algorithm("EC", hashes.SHA256(), ec.SECP256R1(), "P-256", 32),
    "ES384": _Algorithm("EC", hashes.SHA384(), ec.SECP384R1(), "P-384", 48),
    "ES512": _Algorithm("EC", hashes.SHA512(), ec.SECP521R1(), "P-521", 66),
    "EdDSA": _Algorithm("OKP"),
}


def _b64u(data: bytes) -> str:
    """base64url without padding (RFC 7515 section 2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _uint(value: int, size: int = 0) -> str:
    """base64url of a big-endian unsigned integer: minimal length, or left-padded to ``size``."""
    return _b64u(value.to_bytes(max(size, (value.bit_length() + 7) // 8, 1), "big"))


def _json(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


@dataclass(slots=True)
class _SigningKey:
    kid: str
    algorithm: str
    private: _PrivateKey

    def public_jwk(self) -> dict[str, str]:
        """The public JWK (RFC 7517/7518/8037), built by hand with exact-length members."""
        public = self.private.public_key()
        jwk: dict[str, str]
        if isinstance(public, rsa.RSAPublicKey):
            numbers = public.public_numbers()
            jwk = {"kty": "RSA", "n": _uint(numbers.n), "e": _uint(numbers.e)}
        elif isinstance(public, ec.EllipticCurvePublicKey):
            spec = _ALGORITHMS[self.algorithm]
            point = public.public_numbers()
            jwk = {
                "kty": "EC",
                "crv": spec.crv,
                "x": _uint(point.x, spec.size),
                "y": _uint(point.y, spec.size),
            }
        else:
            raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
            jwk = {"kty": "OKP", "crv": "Ed25519", "x": _b64u(raw)}
        return {**jwk, "kid": self.kid, "use": "sig", "alg": self.algorithm}


@functools.cache
def _unusable_jwks() -> dict[str, list[dict[str, str]]]:
    """The ``"no_usable_keys"`` document: a well-formed JWKS whose keys a verifier must skip."""
    # Deliberately too small: a verifier must refuse RSA moduli under 2048 bits.
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505
    numbers = weak.public_key().public_numbers()
    return {
        "keys": [
            {
                "kty": "oct",
                "kid": "hmac-1",
                "use": "sig",
                "alg": "HS256",
                "k": _b64u(os.urandom(32)),
            },
            {
                "kty": "RSA",
                "kid": "rsa-1024",
                "use": "sig",
                "alg": "RS256",
                "n": _uint(numbers.n),
                "e": _uint(numbers.e),
            },
        ]
    }


# -- minting options ------------------------------------------------------------------------------


class _CommonMintOptions(TypedDict, total=False):
    subject: str | None
    scopes: str | Iterable[str]
    expires_in: int
    algorithm: str | None
    kid: str | None
    headers: Mapping[str, Any] | None
    claims: Mapping[str, Any] | None
    issued_at: int | None


class MintOptions(_CommonMintOptions, total=False):
    """The keyword arguments of ``LocalIssuer.mint``, for the ``mint_*`` variants."""

    audience: str | Sequence[str] | None


# -- serving --------------------------------------------------------------------------------------


class _CountRequests:
    """Counts every HTTP request by path before routing, so faulted and unknown paths count too."""

    def __init__(self, app: ASGIApp, count: Callable[[str], None]) -> None:
        self.app = app
        self.count = count

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.count(scope["path"])
        await self.app(scope, receive, send)


class _Server(uvicorn.Server):
    """A uvicorn server owned by a ``LocalIssuer``: quiet, stoppable, and signal-neutral.

    uvicorn takes over SIGINT and SIGTERM while it runs on the main thread (``serve_async`` in a
    test's event loop) and re-raises them afterwards. This server is stopped by its owner, so it
    leaves the test runner's handlers alone. The hook is ``capture_signals`` since uvicorn 0.29
    (the extra requires 0.30 or later); the older ``install_signal_handlers`` no longer exists.
    """

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        # Set at shutdown: answers the "hang" requests, so shutdown need not wait for them.
        self.release = asyncio.Event()
        self.ready = threading.Event()  # set once listening; waited on from other threads
        # For stop_listening() under serve_async: whether the task has begun at all, and whether
        # the listeners must close as soon as uvicorn has opened them.
        self.running = False
        self.refuse_on_start = False

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self.running = True
        await super().serve(sockets=sockets)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.refuse_on_start:
            self.close_listeners()
        self.ready.set()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.release.set()
        await super().shutdown(sockets=sockets)

    def close_listeners(self) -> None:
        """Stop accepting connections now (the port refuses); call on the server's loop."""
        for server in getattr(self, "servers", ()):
            server.close()


@dataclass(eq=False, slots=True)
class _Listener:
    """One uvicorn server on one listening socket, run by a thread or by an asyncio task."""

    server: _Server
    sock: socket.socket
    thread: threading.Thread | None = None
    task: asyncio.Task[None] | None = None
    error: BaseException | None = None


# -- the issuer -----------------------------------------------------------------------------------


class LocalIssuer:
    """A local OAuth authorization server: signing keys, token minting, metadata and JWKS.

    ``issuer`` is the ``iss`` of minted tokens and the ``issuer`` of the metadata. Left as None,
    it becomes ``http://127.0.0.1:<port><path>`` when first served, and the port is kept for the
    lifetime of the object, so tokens and URLs stay valid across ``serve()`` blocks. ``path``
    places the issuer below the root (``"/tenant1"``), which exercises RFC 8414 path insertion.

    Attributes that tests change while serving: ``fault`` (JWKS endpoint) and ``metadata_fault``
    (discovery endpoints), ``metadata_issuer``, ``cache_max_age``; ``requests`` counts what the
    server received. All methods are safe to call while a request is being served.
    """

    def __init__(
        self,
        issuer: str | None = None,
        *,
        path: str = "",
        default_audience: str | Sequence[str] | None = None,
        algorithms: Iterable[str] = ("RS256", "ES256"),
        scopes_supported: Iterable[str] | None = None,
        cache_max_age: int | None = None,
    ) -> None:
        if not _PATH_RE.fullmatch(path):
            raise ValueError(
                f"path must be empty or like '/tenant1' (no trailing slash), not {path!r}"
            )
        self._issuer = issuer.rstrip("/") if issuer is not None else None
        self._path = path
        self.default_audience = default_audience
        self.scopes_supported = tuple(scopes_supported) if scopes_supported is not None else None
        self.cache_max_age = cache_max_age
        """When not None, JWKS responses carry ``Cache-Control: max-age=<this>``."""
        self.cache_control: str | None = None
        """When not None, the ``Cache-Control`` header of JWKS responses, as given (any text;
        it takes precedence over ``cache_max_age``)."""
        self.extra_keys: list[dict[str, Any]] = []
        """JWKs published after the signing keys, as given: keys a verifier must skip, such as
        the RSA-OAEP encryption key (``"use": "enc"``) many identity providers publish."""
        self.metadata_issuer: str | None = None
        """When set, the ``issuer`` member of the metadata (for issuer-mismatch tests)."""
        self.requests: Counter[str] = Counter()
        """Requests received, by URL path, including faulted ones and unknown paths."""
        self._fault: str | None = None
        self._metadata_fault: str | None = None

        self._lock = threading.Lock()
        self._keys: dict[str, _SigningKey] = {}  # published, in JWKS order
        self._current: dict[str, str] = {}  # algorithm -> kid that ``mint`` signs with
        self._serials: Counter[str] = Counter()
        self._impostors: dict[str, _PrivateKey] = {}
        for algorithm in algorithms:
            self.rotate(algorithm)

        self._port: int | None = None
        if self._issuer is not None:
            given = urllib.parse.urlsplit(self._issuer)
            if given.scheme == "http" and given.hostname == _HOST and given.port:
                self._port = given.port  # listen where the issuer identifier says it is
        self._mode: Literal["thread", "task"] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listener: _Listener | None = None
        self._retired: list[_Listener] = []
        self.app: Starlette = self._build_app()
        """The ASGI application; also usable in-process (``httpx.ASGITransport``)."""

    # -- identity and documents --------------------------------------------------------------

    @property
    def issuer(self) -> str:
        """The issuer identifier (``iss``); known once given or once the server has a port."""
        if self._issuer is not None:
            return self._issuer
        if self._port is None:
            raise RuntimeError(
                "LocalIssuer.issuer is not known yet: it is http://127.0.0.1:<port> of the "
                "server, so read it inside `with issuer.serve():` (or pass issuer=...)"
            )
        return self.base_url + self._path

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>`` of the server (known once it has been served)."""
        if self._port is None:
            raise RuntimeError("LocalIssuer has not been served yet: use `with issuer.serve():`")
        return f"http://{_HOST}:{self._port}"

    @property
    def path(self) -> str:
        """The issuer's URL path below the server root (``""`` or like ``"/tenant1"``)."""
        return self._path

    @property
    def jwks_path(self) -> str:
        """The URL path of the JWKS endpoint."""
        return f"{self._path}/jwks.json"

    @property
    def jwks_requests(self) -> int:
        """How many requests the JWKS endpoint received (faulted ones included)."""
        return self.requests[self.jwks_path]

    @property
    def key_ids(self) -> tuple[str, ...]:
        """The ``kid`` of every published key, in JWKS order."""
        with self._lock:
            return tuple(self._keys)

    def current_kid(self, algorithm: str = "RS256") -> str:
        """The key id ``mint`` signs with for ``algorithm``."""
        with self._lock:
            kid = self._current.get(algorithm)
        if kid is None:
            raise LookupError(f"no {algorithm} key: call issuer.rotate({algorithm!r}) to add one")
        return kid

    def jwks(self) -> dict[str, Any]:
        """The public JWKS document (a fresh dict each call): every published key."""
        with self._lock:
            keys = list(self._keys.values())
        return {"keys": [*(key.public_jwk() for key in keys), *self.extra_keys]}

    def metadata(self) -> dict[str, Any]:
        """RFC 8414 authorization-server metadata, as served.

        Endpoint URLs point at the running server when it has a port (so clients can fetch the
        JWKS even when ``issuer`` was given explicitly), else below ``issuer``. Only the
        metadata and the JWKS are served; the authorization and token endpoints are advertised
        because clients expect them, not implemented.
        """
        base = self.base_url + self._path if self._port is not None else self.issuer
        document: dict[str, Any] = {
            "issuer": self.metadata_issuer if self.metadata_issuer is not None else self.issuer,
            "jwks_uri": f"{base}/jwks.json",
            "authorization_endpoint": f"{base}/authorize",
            "token_endpoint": f"{base}/token",
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
            "code_challenge_methods_supported": ["S256"],
        }
        if self.scopes_supported is not None:
            document["scopes_supported"] = list(self.scopes_supported)
        return document

    # -- key management ------------------------------------------------------------------------

    def rotate(self, algorithm: str = "RS256", *, keep_old: bool = True) -> str:
        """Add a new key for ``algorithm`` under a new ``kid`` and sign with it from now on.

        The previous keys of that algorithm stay published (as during a real rotation) unless
        ``keep_old`` is False. Returns the new key id.
        """
        spec = _algorithm(algorithm)
        key = spec.generate()
        with self._lock:
            self._serials[algorithm] += 1
            kid = f"{algorithm.lower()}-{self._serials[algorithm]}"
            if not keep_old:
                for old in [k for k in self._keys.values() if k.algorithm == algorithm]:
                    del self._keys[old.kid]
            self._keys[kid] = _SigningKey(kid, algorithm, key)
            self._current[algorithm] = kid
        return kid

    def replace_key(self, kid: str) -> None:
        """New key material under the same ``kid``: a development issuer that restarted.

        Tokens signed before then fail with ``invalid_signature`` against the new JWKS.
        """
        with self._lock:
            old = self._require_key(kid)
        new = _ALGORITHMS[old.algorithm].generate()
        with self._lock:
            self._require_key(kid).private = new

    def remove_key(self, kid: str) -> None:
        """Stop publishing ``kid`` and forget its private key.

        If ``mint`` was signing with it, it signs with the newest remaining key of that
        algorithm, or raises until ``rotate`` adds one.
        """
        with self._lock:
            removed = self._require_key(kid)
            del self._keys[kid]
            if self._current.get(removed.algorithm) == kid:
                rest = [k.kid for k in self._keys.values() if k.algorithm == removed.algorithm]
                if rest:
                    self._current[removed.algorithm] = rest[-1]
                else:
                    del self._current[removed.algorithm]

    def _require_key(self, kid: str) -> _SigningKey:
        key = self._keys.get(kid)
        if key is None:
            raise KeyError(f"no published key {kid!r}; published: {sorted(self._keys)}")
        return key

    # -- minting ------------------------------------------------------------------------------

    def mint(
        self,
        *,
        subject: str | None = "user-1",
        audience: str | Sequence[str] | None = None,
        scopes: str | Iterable[str] = (),
        expires_in: int = 300,
        algorithm: str | None = None,
        kid: str | None = None,
        headers: Mapping[str, Any] | None = None,
        claims: Mapping[str, Any] | None = None,
        issued_at: int | None = None,
    ) -> str:
        """A signed access token (compact JWS) that this issuer's JWKS verifies.

        Claims: ``iss``, ``sub`` (omitted when ``subject`` is None), ``aud`` (required, unless
        the constructor got ``default_audience``; a list gives an array), ``iat`` and ``nbf``
        (``issued_at``, default now), ``exp`` (``iat + expires_in``), ``jti``, ``client_id``
        and ``scope`` (space-joined; omitted when empty). ``claims`` adds or replaces claims.

        Header: ``alg``, ``typ: at+jwt`` (RFC 9068) and ``kid``. A published ``kid`` selects
        that key (and its algorithm); an unknown ``kid`` is written into the header of a token
        signed with the current key of ``algorithm`` (default RS256), which verifiers must
        reject as ``key_not_found``. ``headers`` adds or replaces header members.

        In ``claims`` and ``headers`` a value of None removes the member, for tokens that lack
        something (``claims={"exp": None}``).
        """
        return self._mint(
            subject=subject,
            audience=audience,
            scopes=scopes,
            expires_in=expires_in,
            algorithm=algorithm,
            kid=kid,
            headers=headers,
            claims=claims,
            issued_at=issued_at,
        )

    def mint_expired(self, **options: Unpack[MintOptions]) -> str:
        """A token whose ``exp`` passed two hours ago: beyond any allowed leeway (``expired``)."""
        expires_in = options.get("expires_in", 300)
        options.setdefault("issued_at", int(time.time()) - _EXPIRED_AGO - expires_in)
        return self.mint(**options)

    def mint_for_audience(
        self, audience: str | Sequence[str], **options: Unpack[_CommonMintOptions]
    ) -> str:
        """A token for another resource server (``invalid_audience`` at this one)."""
        return self.mint(audience=audience, **options)

    def mint_untrusted(self, **options: Unpack[MintOptions]) -> str:
        """A token signed by an unpublished key under a published ``kid`` (``invalid_signature``).

        The header names the key ``mint`` would use, so a verifier finds a key and the
        signature check itself must catch the forgery.
        """
        return self._mint(**options, impostor=True)

    def mint_without_audience(self, **options: Unpack[_CommonMintOptions]) -> str:
        """A token with no ``aud`` claim (``missing_claim``)."""
        options["claims"] = {**(options.get("claims") or {}), "aud": None}
        return self._mint(**options, require_audience=False)

    def _mint(
        self,
        *,
        subject: str | None = "user-1",
        audience: str | Sequence[str] | None = None,
        scopes: str | Iterable[str] = (),
        expires_in: int = 300,
        algorithm: str | None = None,
        kid: str | None = None,
        headers: Mapping[str, Any] | None = None,
        claims: Mapping[str, Any] | None = None,
        issued_at: int | None = None,
        impostor: bool = False,
        require_audience: bool = True,
    ) -> str:
        if audience is None:
            audience = self.default_audience
        if audience is None and require_audience:
            raise TypeError("mint() needs audience=... (or LocalIssuer(default_audience=...) once)")
        key = self._signing_key(algorithm, kid)
        private = self._impostor(key.algorithm) if impostor else key.private

        iat = int(time.time()) if issued_at is None else issued_at
        scope = scopes if isinstance(scopes, str) else " ".join(scopes)
        payload: dict[str, Any] = {
            "iss": self.issuer,
            "sub": subject,
            "aud": audience if isinstance(audience, str) or audience is None else list(audience),
            "iat": iat,
            "nbf": iat,
            "exp": iat + expires_in,
            "jti": uuid.uuid4().hex,
            "client_id": DEFAULT_CLIENT_ID,
            "scope": scope or None,
        }
        header: dict[str, Any] = {"alg": key.algorithm, "typ": "at+jwt", "kid": kid or key.kid}
        signing_input = (
            _b64u(_json(_merged(header, headers))) + "." + _b64u(_json(_merged(payload, claims)))
        )
        signature = _ALGORITHMS[key.algorithm].sign(private, signing_input.encode("ascii"))
        return signing_input + "." + _b64u(signature)

    def _signing_key(self, algorithm: str | None, kid: str | None) -> _SigningKey:
        with self._lock:
            key = self._keys.get(kid) if kid is not None else None
            if key is not None:
                if algorithm is not None and algorithm != key.algorithm:
                    raise ValueError(
                        f"key {kid!r} is an {key.algorithm} key, not {algorithm}; "
                        "to mislabel a token, pass headers={'alg': ...}"
                    )
                return key
            algorithm = algorithm or "RS256"
            _algorithm(algorithm)
            current = self._current.get(algorithm)
            if current is None:
                raise LookupError(
                    f"no {algorithm} key: call issuer.rotate({algorithm!r}) to add one"
                )
            return self._keys[current]

    def _impostor(self, algorithm: str) -> _PrivateKey:
        """A key of the same type as the real one, never published (one per algorithm)."""
        with self._lock:
            key = self._impostors.get(algorithm)
        if key is None:
            key = _ALGORITHMS[algorithm].generate()
            with self._lock:
                key = self._impostors.setdefault(algorithm, key)
        return key

    # -- faults -------------------------------------------------------------------------------

    @property
    def fault(self) -> str | None:
        """How the JWKS endpoint misbehaves; None for normal answers.

        ``"status:NNN"`` (that status with a short text body), ``"html"`` (200 with an HTML
        page), ``"invalid_json"`` (200, truncated JSON), ``"empty"`` (``{"keys": []}``),
        ``"no_usable_keys"`` (an ``oct`` key and an RSA-1024 key), ``"huge"`` (200, a valid
        JWKS padded to ``HUGE_BODY_BYTES``, streamed without Content-Length), ``"redirect"``
        (302 to a URL on this server that serves the real JWKS), ``"hang"`` (no answer until
        the server stops; use a client timeout), ``"gzip_bomb"`` (``Content-Encoding: gzip,
        gzip``, about a kilobyte that inflates to ``BOMB_DECODED_BYTES`` of zeros),
        ``"bad_encoding"`` (``Content-Encoding: gzip`` over a body that is not gzip),
        ``"nested_json"`` (200, a JSON array nested ``NESTED_JSON_DEPTH`` deep).
        """
        return self._fault

    @fault.setter
    def fault(self, value: str | None) -> None:
        self._fault = _check_fault(value, "fault", _NAMED_FAULTS + _JWKS_ONLY_FAULTS)

    @property
    def metadata_fault(self) -> str | None:
        """Like ``fault``, for the discovery endpoints (``"empty"`` answers ``{}``)."""
        return self._metadata_fault

    @metadata_fault.setter
    def metadata_fault(self, value: str | None) -> None:
        self._metadata_fault = _check_fault(value, "metadata_fault", _NAMED_FAULTS)

    # -- HTTP ---------------------------------------------------------------------------------

    def _build_app(self) -> Starlette:
        metadata_paths = dict.fromkeys(
            [
                _OAUTH_METADATA,
                _OAUTH_METADATA + self._path,  # RFC 8414 section 3.1 path insertion
                _OIDC_METADATA,
                _OIDC_METADATA + self._path,
                self._path + _OIDC_METADATA,  # OpenID Connect Discovery 1.0 section 4
            ]
        )
        routes = [
            Route(self.jwks_path, self._jwks_endpoint),
            Route(_MOVED + self.jwks_path, self._moved_jwks_endpoint),
        ]
        for path in metadata_paths:
            routes.append(Route(path, self._metadata_endpoint))
            routes.append(Route(_MOVED + path, self._moved_metadata_endpoint))
        return Starlette(
            routes=routes, middleware=[Middleware(_CountRequests, count=self._count_request)]
        )

    def _count_request(self, path: str) -> None:
        self.requests[path] += 1

    async def _jwks_endpoint(self, request: Request) -> Response:
        return await self._answer(request, self._fault, jwks=True)

    async def _moved_jwks_endpoint(self, request: Request) -> Response:
        return await self._answer(request, None, jwks=True)

    async def _metadata_endpoint(self, request: Request) -> Response:
        return await self._answer(request, self._metadata_fault, jwks=False)

    async def _moved_metadata_endpoint(self, request: Request) -> Response:
        return await self._answer(request, None, jwks=False)

    async def _answer(self, request: Request, fault: str | None, *, jwks: bool) -> Response:
        """The normal document, or the configured fault (the same set for both endpoints)."""
        media_type = JWKS_MEDIA_TYPE if jwks else "application/json"
        if fault is None:
            headers = {}
            if jwks and self.cache_max_age is not None:
                headers["Cache-Control"] = f"max-age={self.cache_max_age}"
            if jwks and self.cache_control is not None:
                headers["Cache-Control"] = self.cache_control
            return JSONResponse(self._document(jwks), media_type=media_type, headers=headers)
        if status := _STATUS_FAULT_RE.fullmatch(fault):
            code = int(status.group(1))
            body = "" if code in (204, 304) else f"injected fault: HTTP {code}\n"
            return PlainTextResponse(body, status_code=code)
        if fault == "html":
            page = "<!doctype html><html><body><h1>Sign in</h1></body></html>\n"
            return Response(page, media_type="text/html; charset=utf-8")
        if fault == "invalid_json":
            return Response(_json(self._document(jwks))[:-7], media_type=media_type)
        if fault == "empty":
            return JSONResponse({"keys": []} if jwks else {}, media_type=media_type)
        if fault == "no_usable_keys":
            return JSONResponse(_unusable_jwks(), media_type=media_type)
        if fault == "huge":
            padded = _padded(self._document(jwks))
            return StreamingResponse(_chunks(padded), media_type=media_type)
        if fault == "redirect":
            target = request.url.replace(path=_MOVED + request.url.path)
            return RedirectResponse(str(target), status_code=302)
        if fault == "gzip_bomb":
            headers = {"Content-Encoding": "gzip, gzip"}
            return Response(_gzip_bomb(), media_type=media_type, headers=headers)
        if fault == "bad_encoding":
            headers = {"Content-Encoding": "gzip"}
            return Response(_json(self._document(jwks)), media_type=media_type, headers=headers)
        if fault == "nested_json":
            nested = b"[" * NESTED_JSON_DEPTH + b"]" * NESTED_JSON_DEPTH
            return Response(nested, media_type=media_type)
        # "hang": wait for the server to stop (a client gives up long before).
        listener = self._listener
        await (listener.server.release if listener is not None else asyncio.Event()).wait()
        return PlainTextResponse("the local issuer is shutting down\n", status_code=503)

    def _document(self, jwks: bool) -> dict[str, Any]:
        return self.jwks() if jwks else self.metadata()

    # -- serving ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def serve(self) -> Iterator[str]:
        """Serve the app on 127.0.0.1 from a background thread; yields the base URL.

        Stops the server on exit, answering any hanging request first.
        """
        self._begin("thread")
        try:
            self.start_listening()
            yield self.base_url
        finally:
            self._end_thread()

    @contextlib.asynccontextmanager
    async def serve_async(self) -> AsyncIterator[str]:
        """Serve the app on 127.0.0.1 as a task of the running event loop; yields the base URL.

        Blocking calls inside the block stall this server too: use an async HTTP client.
        """
        self._begin("task")
        self._loop = asyncio.get_running_loop()
        try:
            self.start_listening()
            assert self._listener is not None
            await self._wait_started_async(self._listener)
            yield self.base_url
        finally:
            await self._end_task()

    def stop_listening(self) -> None:
        """Close the listening socket: connections to the port are refused until
        ``start_listening``. Requests in flight are answered (hanging ones released).
        Under ``serve_async`` call it from the event loop that serves."""
        listener = self._listener
        if listener is None:
            return
        self._listener = None
        if self._mode == "thread":
            _stop_thread(listener)
            return
        self._require_loop()
        server = listener.server
        if listener.task is not None and not server.running:
            listener.task.cancel()  # never started: nothing to wind down
            listener.sock.close()
        elif server.started:
            server.close_listeners()
        else:
            server.refuse_on_start = True
        server.should_exit = True
        self._retired.append(listener)

    def start_listening(self) -> None:
        """Listen again on the same port (after ``stop_listening``); a no-op when listening."""
        if self._mode is None:
            raise RuntimeError("start_listening() works inside `issuer.serve()` blocks only")
        if self._listener is not None:
            return
        if self._mode == "task":
            self._require_loop()
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            access_log=False,
            log_config=None,  # leave the process's logging configuration alone
            lifespan="off",
            loop="asyncio",
            http="h11",
            timeout_graceful_shutdown=_GRACEFUL_SHUTDOWN,
        )
        listener = _Listener(_Server(config), self._bind())
        if self._mode == "task":
            assert self._loop is not None
            listener.task = self._loop.create_task(
                listener.server.serve(sockets=[listener.sock]), name="mcp-oauth2-local-issuer"
            )
            self._listener = listener
            return

        def run() -> None:
            try:
                listener.server.run(sockets=[listener.sock])
            except BaseException as error:  # reported by _wait_started_thread
                listener.error = error

        listener.thread = threading.Thread(target=run, name="mcp-oauth2-local-issuer", daemon=True)
        listener.thread.start()
        try:
            _wait_started_thread(listener)
        except BaseException:
            _stop_thread(listener)
            raise
        self._listener = listener

    def _bind(self) -> socket.socket:
        """A listening socket on the issuer's port (a free one the first time).

        Binding here, before uvicorn starts, means no other process can take the port in
        between; SO_REUSEADDR lets ``start_listening`` re-bind while old connections linger in
        TIME_WAIT (on Windows that option would allow port stealing, so it is left off).
        """
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            if os.name != "nt":
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((_HOST, self._port or 0))
            sock.listen(128)
        except OSError as error:
            sock.close()
            if self._port is None:
                raise
            raise RuntimeError(f"cannot listen on {self.base_url} again: {error}") from error
        self._port = sock.getsockname()[1]
        return sock

    def _begin(self, mode: Literal["thread", "task"]) -> None:
        if self._mode is not None:
            raise RuntimeError("this LocalIssuer is already being served")
        self._mode = mode

    def _require_loop(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not self._loop:
            raise RuntimeError("under serve_async(), call this from the serving event loop")

    def _end_thread(self) -> None:
        try:
            self.stop_listening()
        finally:
            self._mode = None

    async def _end_task(self) -> None:
        listeners = [*self._retired, *([self._listener] if self._listener else [])]
        self._listener, self._retired = None, []
        try:
            tasks = {listener.task for listener in listeners if listener.task is not None}
            for listener in listeners:
                listener.server.should_exit = True
            if tasks:
                _, pending = await asyncio.wait(tasks, timeout=_STOP_TIMEOUT)
                for task in pending:
                    task.cancel()
                if pending:
                    await asyncio.wait(pending, timeout=_STOP_TIMEOUT)
            for listener in listeners:
                listener.sock.close()
            for task in tasks:
                if task.done() and not task.cancelled() and task.exception() is not None:
                    raise RuntimeError("the local issuer's server failed") from task.exception()
        finally:
            self._mode, self._loop = None, None

    async def _wait_started_async(self, listener: _Listener) -> None:
        assert listener.task is not None
        deadline = time.monotonic() + _START_TIMEOUT
        while not listener.server.ready.is_set():
            if listener.task.done():
                raise RuntimeError("the local issuer's server did not start") from (
                    None if listener.task.cancelled() else listener.task.exception()
                )
            if time.monotonic() > deadline:
                raise RuntimeError("the local issuer's server did not start in time")
            await asyncio.sleep(0.005)


def _wait_started_thread(listener: _Listener) -> None:
    assert listener.thread is not None
    deadline = time.monotonic() + _START_TIMEOUT
    while not listener.server.ready.wait(0.01):
        if not listener.thread.is_alive():
            raise RuntimeError("the local issuer's server did not start") from listener.error
        if time.monotonic() > deadline:
            raise RuntimeError("the local issuer's server did not start in time")


def _stop_thread(listener: _Listener) -> None:
    """Stop a thread-run server: uvicorn notices ``should_exit`` within 0.1 s."""
    assert listener.thread is not None
    listener.server.should_exit = True
    listener.thread.join(_STOP_TIMEOUT)
    if listener.thread.is_alive():
        listener.server.force_exit = True
        listener.thread.join(_STOP_TIMEOUT)
    listener.sock.close()
    if listener.thread.is_alive():
        raise RuntimeError("the local issuer's server did not stop")


def _algorithm(name: str) -> _Algorithm:
    spec = _ALGORITHMS.get(name)
    if spec is None:
        raise ValueError(f"unsupported algorithm {name!r}; use one of {', '.join(_ALGORITHMS)}")
    return spec


def _merged(base: dict[str, Any], changes: Mapping[str, Any] | None) -> dict[str, Any]:
    """``base`` updated with ``changes``; members whose value ends up None are dropped."""
    merged = {**base, **(changes or {})}
    return {name: value for name, value in merged.items() if value is not None}


def _check_fault(value: str | None, name: str, named: Sequence[str]) -> str | None:
    if value is None or value in named:
        return value
    status = _STATUS_FAULT_RE.fullmatch(value)
    if status and 200 <= int(status.group(1)) <= 599:
        return value
    raise ValueError(
        f"unknown {name} {value!r}: use None, 'status:NNN' (200-599) or one of {', '.join(named)}"
    )


def _padded(document: Mapping[str, Any]) -> bytes:
    """``document`` as JSON, padded with a junk member to exactly ``HUGE_BODY_BYTES``."""
    bare = _json({**document, "padding": ""})
    return _json({**document, "padding": "A" * (HUGE_BODY_BYTES - len(bare))})


@functools.cache
def _gzip_bomb() -> bytes:
    """``BOMB_DECODED_BYTES`` of zeros, gzipped twice (for ``Content-Encoding: gzip, gzip``)."""
    inner = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(1024 * 1024)
    parts = [inner.compress(zeros) for _ in range(BOMB_DECODED_BYTES // len(zeros))]
    once = b"".join(parts) + inner.flush()
    return gzip.compress(once, compresslevel=9)


async def _chunks(body: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(body), _STREAM_CHUNK):
        yield body[start : start + _STREAM_CHUNK]


# -- serving any ASGI app on loopback ---------------------------------------------------------


_APP_START_TIMEOUT: Final = 10.0
_APP_STOP_TIMEOUT: Final = 5.0
# Seconds uvicorn gives open responses (an SSE stream a client left open) once stopping.
_APP_GRACEFUL_SHUTDOWN: Final = 1


def bind_loopback(port: int = 0) -> socket.socket:
    """A listening TCP socket on 127.0.0.1 (``port`` 0: a free port)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((_HOST, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def url_of(sock: socket.socket) -> str:
    """``http://127.0.0.1:<port>`` of a bound socket."""
    return f"http://{_HOST}:{sock.getsockname()[1]}"


class _QuietServer(uvicorn.Server):
    """uvicorn that leaves signal handling alone: its owner stops it with ``should_exit``."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class AppServer:
    """``app`` served by uvicorn on ``sock`` (a fresh loopback socket if None) from a thread.

        sock = bind_loopback()                  # the port is known before the app is built
        app = build_app(audience=url_of(sock) + "/mcp")
        with AppServer(app, sock) as base_url:  # or: async with ...
            ...

    Binding the socket first means no other process can take the port between choosing it and
    listening on it. The server runs its own event loop in a daemon thread, with the app's
    lifespan, without signal handlers. ``async with`` waits for start and stop in a worker
    thread, so the app may call back into servers running in the caller's event loop.
    """

    def __init__(
        self,
        app: ASGIApp,
        sock: socket.socket | None = None,
        *,
        lifespan: Literal["on", "off", "auto"] = "on",
    ) -> None:
        self.sock = sock if sock is not None else bind_loopback()
        self.url = url_of(self.sock)
        config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            log_config=None,  # leave the test run's logging configuration alone
            lifespan=lifespan,
            loop="asyncio",
            http="h11",
            timeout_graceful_shutdown=_APP_GRACEFUL_SHUTDOWN,
        )
        self.server = _QuietServer(config)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name=f"uvicorn {self.url}", daemon=True)

    def _run(self) -> None:
        try:
            self.server.run(sockets=[self.sock])
        except BaseException as error:  # reported by the waiting side
            self.error = error

    def start(self) -> str:
        """Start and wait (blocking) until the server listens; returns its base URL."""
        self.thread.start()
        deadline = time.monotonic() + _APP_START_TIMEOUT
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError(f"the server at {self.url} did not start") from self.error
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the server at {self.url} did not start in {_APP_START_TIMEOUT} s"
                )
            time.sleep(0.005)
        return self.url

    async def start_async(self) -> str:
        """Like ``start``, waiting in a worker thread so the event loop keeps running."""
        return await anyio.to_thread.run_sync(self.start)

    def stop(self) -> None:
        """Stop the server (running the app's lifespan shutdown) and close the socket."""
        if self.thread.is_alive():
            self.server.should_exit = True
            self.thread.join(_APP_STOP_TIMEOUT)
            if self.thread.is_alive():
                self.server.force_exit = True
                self.thread.join(_APP_STOP_TIMEOUT)
        self.sock.close()
        if self.thread.is_alive():
            raise RuntimeError(f"the server at {self.url} did not stop")

    async def stop_async(self) -> None:
        """Like ``stop``, waiting in a worker thread so the event loop keeps running."""
        await anyio.to_thread.run_sync(self.stop)

    def __enter__(self) -> str:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def __aenter__(self) -> str:
        try:
            return await self.start_async()
        except BaseException:
            await self.stop_async()
            raise

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop_async()
