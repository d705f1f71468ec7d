"""``LocalIssuer``: a local OAuth 2.1 authorization server for tests and demos, with signing keys,
token minting (JWTs and opaque tokens), discovery, the JWKS, RFC 7662 introspection, a token
endpoint for RFC 8693 token exchange and Entra ID-style on-behalf-of, and faults on request."""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import time
import urllib.parse
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from typing import Any, Final, Literal, Unpack

from starlette.applications import Starlette

from mcp_oauth2.testing._faults import JWKS_ONLY_FAULTS, NAMED_FAULTS, check_fault
from mcp_oauth2.testing._issuer_app import issuer_app
from mcp_oauth2.testing._keys import (
    DEFAULT_LIFETIME,
    CommonMintOptions,
    KeyRing,
    MintOptions,
    claims_for,
)
from mcp_oauth2.testing._loopback import HOST, LoopbackServer, bind_loopback, stop_tasks
from mcp_oauth2.testing._token_endpoint import GRANT_TYPES

__all__ = ["INTROSPECTION_ECHO", "LocalIssuer"]

# The introspection (and token endpoint) fault that echoes the request in the answer.
INTROSPECTION_ECHO: Final = "echo"

# ``mint_expired`` tokens expired this long ago: beyond the validator's largest leeway (3600 s).
_EXPIRED_AGO: Final = 2 * 3600
# Seconds uvicorn waits for in-flight responses at shutdown before cancelling them (a client
# that stopped reading a "huge" body would otherwise hold the server open).
_GRACEFUL_SHUTDOWN: Final = 2
_PATH_RE: Final = re.compile(r"(/[A-Za-z0-9._~-]+)*")
_MINT_OPTIONS: Final = MintOptions.__optional_keys__ | MintOptions.__required_keys__


class LocalIssuer:
    """A local OAuth authorization server: signing keys, token minting, metadata and JWKS.

    ``issuer`` is the ``iss`` of minted tokens and the ``issuer`` of the metadata. Left as None,
    it becomes ``http://127.0.0.1:<port><path>`` when first served, and the port is kept for the
    lifetime of the object, so tokens and URLs stay valid across ``serve()`` blocks. ``path``
    places the issuer below the root (``"/tenant1"``), which exercises RFC 8414 path insertion.

    Attributes that tests change while serving: ``fault`` (JWKS endpoint), ``metadata_fault``
    (discovery endpoints) and ``introspection_fault``, ``introspection_delay``,
    ``metadata_issuer``, ``cache_max_age``; ``requests`` counts what the server received. All
    methods are safe to call while a request is being served.

    Opaque tokens: ``mint_opaque`` issues one (random text, its claims kept here), ``revoke``
    ends it, and the RFC 7662 endpoint at ``introspection_path`` answers for it to the client
    ``introspection_client_id`` / ``introspection_client_secret``.

    The token endpoint at ``token_path`` serves the same client: RFC 8693 token exchange and
    Entra ID-style on-behalf-of (``_token_endpoint``), within ``exchange_audiences``, with
    ``token_fault``, ``token_delay`` and ``token_answer_changes`` for tests; ``exchanges``
    records the requests it got.
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
        self._init_endpoints()
        self._keys = KeyRing(algorithms)
        self._port: int | None = None
        if self._issuer is not None:
            given = urllib.parse.urlsplit(self._issuer)
            if given.scheme == "http" and given.hostname == HOST and given.port:
                self._port = given.port  # listen where the issuer identifier says it is
        self._mode: Literal["thread", "task"] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listener: LoopbackServer | None = None
        self._retired: list[LoopbackServer] = []
        self.app: Starlette = issuer_app(self, count=self._count, released=self._released)
        """The ASGI application; also usable in-process (``httpx.ASGITransport``)."""

    def _init_endpoints(self) -> None:
        self._init_introspection()
        self._init_token_endpoint()

    def _init_introspection(self) -> None:
        self._metadata_fault: str | None = None
        self._introspection_fault: str | None = None
        self.introspection_client_id: str = "local-resource-server"
        """The client allowed to introspect (RFC 7662 section 2.1 requires one)."""
        self.introspection_client_secret: str = secrets.token_urlsafe(24)
        """Its secret: random per issuer."""
        self.introspection_auth_methods: tuple[str, ...] = (
            "client_secret_basic",
            "client_secret_post",
        )
        """How the client may authenticate (the metadata advertises these)."""
        self.introspection_delay: float = 0.0
        """Seconds the introspection endpoint waits before each answer (a slow server)."""
        self.introspected: dict[str, list[float]] = {}
        """When each token was asked about by an authenticated client (``time.monotonic()``
        as the request arrived): what tests of caching and single flight check."""
        self._opaque: dict[str, dict[str, Any]] = {}

    def _init_token_endpoint(self) -> None:
        self._token_fault: str | None = None
        self.token_exchange_enabled: bool = True
        """False: the client may not exchange tokens (``unauthorized_client``)."""
        self.exchange_audiences: set[str] | None = None
        """The audiences and resources tokens are exchanged for (None: any); any other is
        refused (``invalid_target``; ``invalid_resource`` on-behalf-of)."""
        self.exchange_lifetime: int = 300
        """``expires_in`` of the tokens issued in exchange (seconds)."""
        self.token_answer_changes: dict[str, Any] = {}
        """Members replaced in each successful token answer (None removes one), for answers
        that break the rules: ``{"issued_token_type": None}``."""
        self.token_delay: float = 0.0
        """Seconds the token endpoint waits before each answer."""
        self.exchanges: list[dict[str, str]] = []
        """The form of each request an authenticated client sent to the token endpoint, without
        its ``client_secret``, in order."""

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
        return f"http://{HOST}:{self._port}"

    @property
    def path(self) -> str:
        """The issuer's URL path below the server root (``""`` or like ``"/tenant1"``)."""
        return self._path

    @property
    def jwks_path(self) -> str:
        """The URL path of the JWKS endpoint."""
        return f"{self._path}/jwks.json"

    @property
    def introspection_path(self) -> str:
        """The URL path of the RFC 7662 introspection endpoint."""
        return f"{self._path}/introspect"

    @property
    def introspection_endpoint(self) -> str:
        """The introspection endpoint's URL (known once served)."""
        return self.base_url + self.introspection_path

    @property
    def token_path(self) -> str:
        """The URL path of the token endpoint."""
        return f"{self._path}/token"

    @property
    def token_endpoint(self) -> str:
        """The token endpoint's URL (known once served)."""
        return self.base_url + self.token_path

    @property
    def token_requests(self) -> int:
        """How many requests the token endpoint received (faulted ones included)."""
        return self.requests[self.token_path]

    @property
    def introspection_requests(self) -> int:
        """How many requests the introspection endpoint received (faulted ones included)."""
        return self.requests[self.introspection_path]

    @property
    def jwks_requests(self) -> int:
        """How many requests the JWKS endpoint received (faulted ones included)."""
        return self.requests[self.jwks_path]

    @property
    def key_ids(self) -> tuple[str, ...]:
        """The ``kid`` of every published key, in JWKS order."""
        return self._keys.key_ids

    def current_kid(self, algorithm: str = "RS256") -> str:
        """The key id ``mint`` signs with for ``algorithm``."""
        return self._keys.current_kid(algorithm)

    def jwks(self) -> dict[str, Any]:
        """The public JWKS document (a fresh dict each call): every published key."""
        return {"keys": [*self._keys.public_jwks(), *self.extra_keys]}

    def metadata(self) -> dict[str, Any]:
        """RFC 8414 authorization-server metadata, as served.

        Endpoint URLs point at the running server when it has a port (so clients can fetch the
        JWKS even when ``issuer`` was given explicitly), else below ``issuer``. The metadata, the
        JWKS, introspection and the token endpoint (token exchange and on-behalf-of only) are
        served; the authorization endpoint is advertised because clients expect it, not
        implemented.
        """
        base = self.base_url + self._path if self._port is not None else self.issuer
        document: dict[str, Any] = {
            "issuer": self.metadata_issuer if self.metadata_issuer is not None else self.issuer,
            "jwks_uri": f"{base}/jwks.json",
            "introspection_endpoint": f"{base}/introspect",
            "introspection_endpoint_auth_methods_supported": list(self.introspection_auth_methods),
            "authorization_endpoint": f"{base}/authorize",
            "token_endpoint": f"{base}/token",
            "response_types_supported": ["code"],
            "token_endpoint_auth_methods_supported": list(self.introspection_auth_methods),
            "grant_types_supported": [
                "authorization_code",
                "refresh_token",
                "client_credentials",
                *GRANT_TYPES,
            ],
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
        return self._keys.rotate(algorithm, keep_old=keep_old)

    def replace_key(self, kid: str) -> None:
        """New key material under the same ``kid``: a development issuer that restarted.

        Tokens signed before then fail with ``invalid_signature`` against the new JWKS.
        """
        self._keys.replace(kid)

    def remove_key(self, kid: str) -> None:
        """Stop publishing ``kid`` and forget its private key.

        If ``mint`` was signing with it, it signs with the newest remaining key of that
        algorithm, or raises until ``rotate`` adds one.
        """
        self._keys.remove(kid)

    # -- minting ------------------------------------------------------------------------------

    def mint(self, **options: Unpack[MintOptions]) -> str:
        """A signed access token (compact JWS) that this issuer's JWKS verifies.

        Keyword arguments (``MintOptions``): ``subject`` (default ``"user-1"``), ``audience``,
        ``scopes`` (a string or strings), ``expires_in`` (seconds, default 300), ``algorithm``,
        ``kid``, ``headers``, ``claims``, ``issued_at`` (unix seconds, default now), ``jkt``
        (the RFC 7638 thumbprint of the DPoP key the token is bound to: ``DPoPKey.thumbprint``).

        Claims: ``iss``, ``sub`` (omitted when ``subject`` is None), ``aud`` (required, unless
        the constructor got ``default_audience``; a list gives an array), ``iat`` and ``nbf``
        (``issued_at``), ``exp`` (``iat + expires_in``), ``jti``, ``client_id`` and ``scope``
        (space-joined; omitted when empty), ``cnf`` (``{"jkt": jkt}``, RFC 9449 section 6.1,
        when ``jkt`` is given). ``claims`` adds or replaces claims.

        Header: ``alg``, ``typ: at+jwt`` (RFC 9068) and ``kid``. A published ``kid`` selects
        that key (and its algorithm); an unknown ``kid`` is written into the header of a token
        signed with the current key of ``algorithm`` (default RS256), which verifiers must
        reject as ``key_not_found``. ``headers`` adds or replaces header members.

        In ``claims`` and ``headers`` a value of None removes the member, for tokens that lack
        something (``claims={"exp": None}``).
        """
        return self._mint(options)

    def mint_opaque(self, **options: Unpack[MintOptions]) -> str:
        """An opaque access token: random text that only the introspection endpoint explains.

        Takes ``mint``'s options; the endpoint answers ``{"active": true, "token_type":
        "Bearer"}`` with the claims ``mint`` would sign (``claims`` may change or remove any
        member, ``active`` too: ``claims={"active": "true"}``), until ``revoke`` or ``exp``. A
        token bound to a DPoP key (``jkt``) is answered with ``"token_type": "DPoP"`` and
        ``cnf.jkt`` (RFC 9449 section 6.2).
        """
        # None removes a member (claims_for drops them), "active" included.
        options["claims"] = {
            "active": True,
            "token_type": "Bearer" if options.get("jkt") is None else "DPoP",
            **(options.get("claims") or {}),
        }
        payload = self._payload(options)
        token = "opq_" + secrets.token_urlsafe(32)
        self._opaque[token] = payload
        return token

    def revoke(self, token: str) -> None:
        """From now on the introspection endpoint answers ``{"active": false}`` for ``token``."""
        self._opaque.pop(token, None)

    def introspection_answer(self, token: str) -> dict[str, Any]:
        """What the introspection endpoint answers about ``token`` (RFC 7662 section 2.2): its
        claims while it is known, not revoked and not expired; else ``{"active": false}``."""
        claims = self._opaque.get(token)
        exp = claims.get("exp") if claims is not None else None
        if claims is None or (isinstance(exp, int | float) and exp <= time.time()):
            return {"active": False}
        return dict(claims)

    def mint_expired(self, **options: Unpack[MintOptions]) -> str:
        """A token whose ``exp`` passed two hours ago: beyond any allowed leeway (``expired``)."""
        expires_in = options.get("expires_in", DEFAULT_LIFETIME)
        options.setdefault("issued_at", int(time.time()) - _EXPIRED_AGO - expires_in)
        return self._mint(options)

    def mint_for_audience(
        self, audience: str | Sequence[str], **options: Unpack[CommonMintOptions]
    ) -> str:
        """A token for another resource server (``invalid_audience`` at this one)."""
        return self._mint(MintOptions(**options, audience=audience))

    def mint_untrusted(self, **options: Unpack[MintOptions]) -> str:
        """A token signed by an unpublished key under a published ``kid`` (``invalid_signature``).

        The header names the key ``mint`` would use, so a verifier finds a key and the
        signature check itself must catch the forgery.
        """
        return self._mint(options, impostor=True)

    def mint_without_audience(self, **options: Unpack[CommonMintOptions]) -> str:
        """A token with no ``aud`` claim (``missing_claim``)."""
        options["claims"] = {**(options.get("claims") or {}), "aud": None}
        return self._mint(MintOptions(**options, audience=None), require_audience=False)

    def _mint(
        self, options: MintOptions, *, impostor: bool = False, require_audience: bool = True
    ) -> str:
        """The one way JWTs are made: ``mint`` documents ``options``."""
        payload = self._payload(options, require_audience=require_audience)
        return self._keys.sign(
            options.get("headers") or {},
            payload,
            algorithm=options.get("algorithm"),
            kid=options.get("kid"),
            impostor=impostor,
        )

    def _payload(self, options: MintOptions, *, require_audience: bool = True) -> dict[str, Any]:
        """The claims of a token ``options`` describe (minted or opaque)."""
        unknown = options.keys() - _MINT_OPTIONS
        if unknown:
            raise TypeError(
                f"mint() got unexpected keyword arguments: {', '.join(sorted(unknown))}"
            )
        if options.get("audience") is None and self.default_audience is None and require_audience:
            raise TypeError("mint() needs audience=... (or LocalIssuer(default_audience=...) once)")
        return claims_for(options, issuer=self.issuer, default_audience=self.default_audience)

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
        ``"nested_json"`` (200, a JSON array nested ``NESTED_JSON_DEPTH`` deep),
        ``"wrong_content_type"`` (200, the document labelled ``text/plain``).
        """
        return self._fault

    @fault.setter
    def fault(self, value: str | None) -> None:
        self._fault = check_fault(value, "fault", NAMED_FAULTS + JWKS_ONLY_FAULTS)

    @property
    def metadata_fault(self) -> str | None:
        """Like ``fault``, for the discovery endpoints (``"empty"`` answers ``{}``)."""
        return self._metadata_fault

    @metadata_fault.setter
    def metadata_fault(self, value: str | None) -> None:
        self._metadata_fault = check_fault(value, "metadata_fault", NAMED_FAULTS)

    @property
    def introspection_fault(self) -> str | None:
        """Like ``fault``, for the introspection endpoint (``"empty"`` answers ``{}``), and
        ``"echo"``: the usual answer plus what the request sent (its form fields and its
        ``Authorization`` header), as a careless endpoint might."""
        return self._introspection_fault

    @introspection_fault.setter
    def introspection_fault(self, value: str | None) -> None:
        self._introspection_fault = check_fault(
            value, "introspection_fault", (*NAMED_FAULTS, INTROSPECTION_ECHO)
        )

    @property
    def token_fault(self) -> str | None:
        """Like ``fault``, for the token endpoint (``"empty"`` answers ``{}``), and ``"echo"``:
        a 400 ``invalid_grant`` whose ``error_description`` repeats the request (its form fields
        and its ``Authorization`` header), as a careless endpoint might."""
        return self._token_fault

    @token_fault.setter
    def token_fault(self, value: str | None) -> None:
        self._token_fault = check_fault(value, "token_fault", (*NAMED_FAULTS, INTROSPECTION_ECHO))

    def _count(self, path: str) -> None:
        self.requests[path] += 1

    def _released(self) -> asyncio.Event:
        """Set when the server now listening stops (never, when none listens)."""
        listener = self._listener
        return listener.server.release if listener is not None else asyncio.Event()

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
            try:
                self.stop_listening()
            finally:
                self._mode = None

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
            await self._listener.wait_started()
            yield self.base_url
        finally:
            listeners = [*self._retired, *([self._listener] if self._listener else [])]
            self._listener, self._retired = None, []
            try:
                await stop_tasks(listeners)
            finally:
                self._mode, self._loop = None, None

    def stop_listening(self) -> None:
        """Close the listening socket: connections to the port are refused until
        ``start_listening``. Requests in flight are answered (hanging ones released).
        Under ``serve_async`` call it from the event loop that serves."""
        listener = self._listener
        if listener is None:
            return
        if self._mode == "task":
            self._require_loop()  # before anything changes: a refused call leaves it listening
        self._listener = None
        if self._mode == "thread":
            listener.stop_thread()
            return
        listener.stop_listening_task()
        self._retired.append(listener)

    def start_listening(self) -> None:
        """Listen again on the same port (after ``stop_listening``); a no-op when listening."""
        if self._mode is None:
            raise RuntimeError("start_listening() works inside `issuer.serve()` blocks only")
        if self._listener is not None:
            return
        if self._mode == "task":
            self._require_loop()
        listener = LoopbackServer(
            self.app, self._bind(), lifespan="off", graceful_shutdown=_GRACEFUL_SHUTDOWN
        )
        if self._mode == "task":
            assert self._loop is not None
            listener.start_task(self._loop, name="mcp-oauth2-local-issuer")
        else:
            try:
                listener.start_thread()
            except BaseException:
                listener.stop_thread()
                raise
        self._listener = listener

    def _bind(self) -> Any:
        """A listening socket on the issuer's port (a free one the first time)."""
        try:
            sock = bind_loopback(self._port or 0)
        except OSError as error:
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
