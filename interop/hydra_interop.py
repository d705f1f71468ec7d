"""mcp-oauth2 against a real Ory Hydra: the driver of ``make interop-hydra``, printing a transcript.

    python interop/hydra_interop.py --hydra build/interop/hydra

``make interop-hydra`` builds the binary from the Go module proxy (``interop/hydra/``, Hydra
v2.3.0). The driver starts it (``serve all --dev``, an in-memory SQLite database, both ports on
127.0.0.1, JWT access tokens), creates the clients with the ``hydra`` CLI exactly as
``docs/providers/hydra.md`` shows, and checks every statement of that page against the
protected MCP server (FastAPI + the ``mcp`` SDK, ``OAuth2Middleware``): what Hydra puts into its
tokens and metadata, what the MCP SDK's own OAuth client gets, each "mistake" row with the answer
the server really gives, opaque tokens with introspection at Hydra's admin API, the
authorization-code flow with the audience granted by the consent app, and EdDSA keys.

Everything binds 127.0.0.1; Hydra and the MCP servers are stopped by process id or in-process
(also on Ctrl-C and SIGTERM). Exit status 0 when every expectation held, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

import httpx
import httpx2
from mcp.client import ClientSession
from mcp.client.auth.extensions.client_credentials import ClientCredentialsOAuthProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken

from keycloak_interop import INITIALIZE, Transcript, _stop_on_sigterm, claims_of, header_of
from keycloak_server import free_loopback_port
from mcp_oauth2 import OAuth2Config
from mcp_oauth2.testing import AppServer, bind_loopback, url_of
from protected_server import HEALTH, MCP_PATH, TOOLS_SCOPE, SDKClient, build_app

CLIENT: Final = "mcp-client"
OPAQUE_CLIENT: Final = "mcp-opaque-client"
APP_CLIENT: Final = "mcp-app"
OTHER_RESOURCE: Final = "https://other.example.com/api"
REDIRECT_URI: Final = "http://127.0.0.1:9/callback"
"""Never fetched: the code flow stops at the redirect and reads the code from its URL."""
_START_TIMEOUT: Final = 60.0
_STOP_TIMEOUT: Final = 10.0


# -- Hydra -----------------------------------------------------------------------------------


@dataclass
class HydraServer:
    """``hydra serve all --dev`` on two free loopback ports, with an in-memory database."""

    binary: Path
    public_port: int = field(default_factory=free_loopback_port)
    admin_port: int = field(default_factory=free_loopback_port)
    _process: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.log_path = Path(tempfile.mkdtemp(prefix="mcp-oauth2-hydra-")) / "hydra.log"

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.public_port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def environment(self) -> dict[str, str]:
        """Hydra's settings (each config key as an environment variable)."""
        return {
            "DSN": "memory",
            "URLS_SELF_ISSUER": self.issuer,
            "URLS_LOGIN": "http://127.0.0.1:9/login",  # the code flow's UI: never fetched
            "URLS_CONSENT": "http://127.0.0.1:9/consent",
            "SERVE_PUBLIC_HOST": "127.0.0.1",
            "SERVE_PUBLIC_PORT": str(self.public_port),
            "SERVE_ADMIN_HOST": "127.0.0.1",
            "SERVE_ADMIN_PORT": str(self.admin_port),
            "STRATEGIES_ACCESS_TOKEN": "jwt",
        }

    def start(self) -> float:
        """Start Hydra and wait until its admin API is ready; returns the seconds it took."""
        environment = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/tmp"),  # noqa: S108 - only when HOME is unset
            "SECRETS_SYSTEM": secrets.token_urlsafe(32),
            "LOG_LEVEL": "warn",
            **self.environment(),
        }
        started = time.perf_counter()
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(  # noqa: S603 - the binary make interop-hydra built
                [str(self.binary), "serve", "all", "--dev", "--sqa-opt-out"],
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        with httpx.Client(timeout=5) as http:
            while time.perf_counter() - started < _START_TIMEOUT:
                if self._process.poll() is not None:
                    raise RuntimeError(f"Hydra exited ({self._process.returncode}):\n{self.log()}")
                with contextlib.suppress(httpx.HTTPError):
                    if http.get(f"{self.admin_url}/health/ready").status_code == 200:
                        return time.perf_counter() - started
                time.sleep(0.2)
        raise RuntimeError(f"Hydra was not ready within {_START_TIMEOUT:g} s:\n{self.log()}")

    def cli(self, *arguments: str) -> tuple[list[str], dict[str, Any]]:
        """Run ``hydra ARGUMENTS --endpoint ADMIN --format json``: the command line (as the
        recipe shows it) and the JSON it printed."""
        command = [*arguments, "--endpoint", self.admin_url, "--format", "json"]
        done = subprocess.run(  # noqa: S603 - the binary make interop-hydra built
            [str(self.binary), *command], capture_output=True, text=True, timeout=60, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"hydra {' '.join(command)}: {done.stderr.strip()}")
        value: dict[str, Any] = json.loads(done.stdout)
        return ["hydra", *command], value

    def log(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def close(self) -> None:
        """Stop Hydra by its process id (TERM, then KILL) and remove its log."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(_STOP_TIMEOUT)
        shutil.rmtree(self.log_path.parent, ignore_errors=True)


# -- the run ---------------------------------------------------------------------------------


@dataclass
class Run:
    hydra: HydraServer
    http: httpx.AsyncClient
    mcp_url: str
    config: OAuth2Config
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))

    async def token_response(self, client: str, **form: str) -> httpx.Response:
        """``POST /oauth2/token`` with client_secret_basic."""
        return await self.http.post(
            f"{self.hydra.issuer}/oauth2/token", data=form, auth=(client, self.secret)
        )

    async def token(self, client: str = CLIENT, **form: str) -> str:
        """A client-credentials access token with ``scope=mcp:tools`` and ``form``."""
        answer = await self.token_response(
            client, grant_type="client_credentials", scope=TOOLS_SCOPE, **form
        )
        if answer.status_code != 200:
            raise RuntimeError(f"the token request failed: HTTP {answer.status_code} {answer.text}")
        token: str = answer.json()["access_token"]
        return token

    async def post(self, token: str, url: str | None = None) -> httpx.Response:
        """A bare MCP ``initialize`` POST with ``token``, read as sent."""
        return await self.http.post(
            url or self.mcp_url,
            json=INITIALIZE,
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/json, text/event-stream",
            },
        )

    async def post_with(self, token: str, **changes: Any) -> httpx.Response:
        """The same POST to a second server whose configuration differs by ``changes``."""
        settings = {**self.config.model_dump(), **changes}
        sock = bind_loopback()
        async with AppServer(build_app(OAuth2Config.model_validate(settings)), sock):
            return await self.post(token, url_of(sock) + MCP_PATH)


def answer(response: httpx.Response) -> str:
    """``HTTP 401 invalid_audience: audience does not include this server`` (the body's code
    and description), or ``HTTP 200``."""
    if response.status_code < 400:
        return f"HTTP {response.status_code}"
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code} {response.text[:120]}"
    return f"HTTP {response.status_code} {body.get('code')}: {body.get('error_description')}"


def refused(response: httpx.Response, status: int, code: str) -> bool:
    """The answer is ``status`` with ``code`` in its JSON body."""
    try:
        body = response.json()
    except ValueError:
        return False
    return response.status_code == status and isinstance(body, dict) and body.get("code") == code


async def part_hydra(run: Run, out: Transcript) -> None:
    out.part("1. what Hydra publishes and puts into its access tokens")
    issuer = run.hydra.issuer
    rfc8414 = await run.http.get(f"{issuer}/.well-known/oauth-authorization-server")
    oidc = await run.http.get(f"{issuer}/.well-known/openid-configuration")
    metadata = oidc.json()
    out.step(f"RFC 8414 metadata: HTTP {rfc8414.status_code}; OpenID metadata: {oidc.status_code}")
    out.check(
        rfc8414.status_code == 404 and metadata.get("issuer") == issuer,
        "only the OpenID Connect metadata answers; its issuer is URLS_SELF_ISSUER as given",
    )
    out.check(
        "introspection_endpoint" not in metadata,
        "the metadata names no introspection_endpoint (it is on the admin port only)",
    )
    keys = (await run.http.get(metadata["jwks_uri"])).json()["keys"]
    out.step(f"jwks_uri {metadata['jwks_uri']}: {[(k['kty'], k.get('alg')) for k in keys]}")
    token = await run.token(audience=run.mcp_url)
    header, claims = header_of(token), claims_of(token)
    out.step(f"header {json.dumps(header)}")
    out.step(f"claims {json.dumps(claims, sort_keys=True)}")
    out.check(
        header.get("alg") == "RS256" and header.get("typ") == "JWT",
        "access tokens are signed RS256 by default, with header typ JWT (not at+jwt)",
    )
    out.check(
        claims.get("aud") == [run.mcp_url]
        and claims.get("scp") == [TOOLS_SCOPE]
        and claims.get("sub") == CLIENT == claims.get("client_id"),
        "aud is the requested audience, scp an array, sub and client_id the client",
    )
    for form in ({}, {"resource": run.mcp_url}):
        aud = claims_of(await run.token(**form)).get("aud")
        out.step(f"token request with {form or 'no audience'}: aud = {aud!r}")
        out.check(aud == [], "aud is written as [] when no audience was requested")
    for suffix in ("/", "/tools"):
        aud = claims_of(await run.token(audience=run.mcp_url + suffix)).get("aud")
        out.check(
            aud == [run.mcp_url + suffix],
            f"a client allowed {MCP_PATH} gets a token for {MCP_PATH}{suffix} (prefix match)",
        )
    other = await run.token_response(
        CLIENT, grant_type="client_credentials", audience=run.mcp_url + "x"
    )
    out.step(f"audience {MCP_PATH}x: HTTP {other.status_code} {other.json().get('error')}")
    out.check(other.status_code == 400, "an audience outside the prefix is refused by Hydra")


async def part_jwt(run: Run, out: Transcript) -> None:
    out.part("2. JWT access tokens: the recipe's configuration, the MCP SDK client")
    token = await run.token(audience=run.mcp_url)
    async with SDKClient(run.mcp_url, token).session() as session:
        await session.initialize()
        whoami = (await session.call_tool("whoami", {})).structured_content or {}
    out.step(f"whoami: {json.dumps(whoami)}")
    out.check(
        whoami.get("subject") == CLIENT
        and whoami.get("client_id") == CLIENT
        and whoami.get("scopes") == [TOOLS_SCOPE]
        and whoami.get("audience") == [run.mcp_url],
        "a token requested with audience=<the MCP URL> is accepted",
    )


class _MemoryStorage:
    """The MCP SDK's ``TokenStorage``, in memory."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


def _leaves(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in _leaves(inner)]
    return [error]


async def part_sdk_oauth(run: Run, out: Transcript) -> None:
    out.part("3. the MCP SDK's own OAuth client (client credentials): it sends resource")
    seen: list[str] = []
    storage = _MemoryStorage()

    async def request(sent: httpx2.Request) -> None:
        if sent.url.path == "/oauth2/token":
            seen.append(f"token request: {sent.content.decode()}")

    async def response(received: httpx2.Response) -> None:
        if received.request.url.path == MCP_PATH and received.status_code >= 400:
            await received.aread()
            challenge = received.headers.get("www-authenticate")
            seen.append(f"MCP server: HTTP {received.status_code} {received.text}")
            seen.append(f"  WWW-Authenticate: {challenge}")

    provider = ClientCredentialsOAuthProvider(
        server_url=run.mcp_url,
        storage=storage,
        client_id=CLIENT,
        client_secret=run.secret,
        scope=TOOLS_SCOPE,
        issuer=run.hydra.issuer,
    )
    hooks: dict[str, list[Callable[..., Any]]] = {"request": [request], "response": [response]}
    try:
        async with (
            httpx2.AsyncClient(auth=provider, event_hooks=hooks, timeout=30) as http,
            streamable_http_client(run.mcp_url, http_client=http) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
        out.check(False, "the SDK client's initialize is refused")
    except Exception as error:  # what the user of the SDK sees
        for leaf in _leaves(error):
            code = getattr(leaf, "code", None)
            out.step(f"the SDK raised {type(leaf).__name__}({code}, {str(leaf)!r})")
    for line in seen:
        out.step(line)
    aud = claims_of(storage.tokens.access_token).get("aud") if storage.tokens else None
    out.check(
        any("resource=" in s and "audience=" not in s for s in seen if s.startswith("token")),
        "the SDK's token request carries resource (RFC 8707), no audience",
    )
    out.check(aud == [], "Hydra ignores resource: the SDK's token has aud []")
    out.check(
        any("HTTP 401" in s and '"invalid_audience"' in s for s in seen),
        "the server refuses it: 401 invalid_audience",
    )


async def part_jwt_mistakes(run: Run, out: Transcript) -> None:
    out.part("4. the recipe's mistakes with JWT access tokens, as the server answers them")
    no_audience = await run.post(await run.token())
    out.step(f"no audience in the token request (aud []): {answer(no_audience)}")
    out.check(refused(no_audience, 401, "invalid_audience"), "aud []: 401 invalid_audience")
    for suffix in ("/", "/tools"):
        wider = await run.post(await run.token(audience=run.mcp_url + suffix))
        out.step(f"a token for {MCP_PATH}{suffix} (Hydra issued it): {answer(wider)}")
        out.check(refused(wider, 401, "invalid_audience"), "refused: 401 invalid_audience")
    token = await run.token(audience=run.mcp_url)
    typed = await run.post_with(token, accepted_types=["at+jwt"])
    out.step(f"accepted_types=['at+jwt']: {answer(typed)}")
    out.check(refused(typed, 401, "invalid_type"), "typ JWT is refused: 401 invalid_type")
    slash = await run.post_with(token, issuer=[run.hydra.issuer + "/"])
    out.step(f"issuer configured as {run.hydra.issuer}/ : {answer(slash)}")
    out.check(refused(slash, 503, "issuer_mismatch"), "JWT: 503 issuer_mismatch")
    opaque = await run.post(await run.token(OPAQUE_CLIENT, audience=run.mcp_url))
    out.step(f"an opaque token, token_format=jwt: {answer(opaque)}")
    out.check(refused(opaque, 401, "malformed"), "an opaque token: 401 malformed")


async def part_opaque(run: Run, out: Transcript) -> None:
    out.part("5. opaque tokens, introspected at Hydra's admin API")
    introspect = f"{run.hydra.admin_url}/admin/oauth2/introspect"
    token = await run.token(OPAQUE_CLIENT, audience=run.mcp_url)
    out.step(f"an opaque token of {OPAQUE_CLIENT}: {token[:12]}...")
    unauthenticated = await run.http.post(introspect, data={"token": token})
    wrong = await run.http.post(introspect, data={"token": token}, auth=("nobody", "wrong"))
    out.step(f"POST {introspect} without credentials: {unauthenticated.text}")
    out.check(
        unauthenticated.json().get("active") is True and wrong.json().get("active") is True,
        "the admin endpoint answers without credentials and with wrong ones alike",
    )
    public = await run.http.post(f"{run.hydra.issuer}/admin/oauth2/introspect", data={"token": ""})
    out.check(public.status_code == 404, "the public port has no introspection endpoint")
    introspecting = {
        "token_format": "opaque",
        "introspection_endpoint": introspect,
        "client_id": "nobody",
        "client_secret": "not-checked-by-hydra",
    }
    accepted = await run.post_with(token, **introspecting)
    out.step(f"token_format=opaque with a client Hydra does not know: {answer(accepted)}")
    out.check(accepted.status_code == 200, "accepted: Hydra checked no client credentials")
    auto = {**introspecting, "token_format": "auto"}
    jwt = await run.token(audience=run.mcp_url)
    both = [await run.post_with(t, **auto) for t in (token, jwt)]
    out.check(all(r.status_code == 200 for r in both), "token_format=auto accepts both kinds")
    slash = await run.post_with(token, issuer=[run.hydra.issuer + "/"], **introspecting)
    out.step(f"issuer configured as {run.hydra.issuer}/ : {answer(slash)}")
    out.check(refused(slash, 401, "invalid_issuer"), "opaque: 401 invalid_issuer")
    bare = await run.token(OPAQUE_CLIENT)
    no_aud = await run.http.post(introspect, data={"token": bare})
    out.step(f"introspection of a token without audience: aud = {no_aud.json().get('aud')!r}")
    empty = await run.post_with(bare, **introspecting)
    out.step(f"the server's answer: {answer(empty)}")
    out.check(refused(empty, 401, "invalid_audience"), "aud []: 401 invalid_audience")
    undiscovered = {k: v for k, v in introspecting.items() if k != "introspection_endpoint"}
    missing = await run.post_with(token, **undiscovered)
    out.step(f"without introspection_endpoint: {answer(missing)}")
    out.check(refused(missing, 503, "introspection_unavailable"), "503 introspection_unavailable")


async def _code_flow(run: Run, grant_audience: list[str]) -> dict[str, Any]:
    """The authorization-code flow with ``resource`` (as MCP clients send it), the login and
    consent accepted through the admin API with ``grant_audience``; Hydra's token answer."""
    admin = f"{run.hydra.admin_url}/admin/oauth2/auth/requests"
    params = {
        "response_type": "code",
        "client_id": APP_CLIENT,
        "redirect_uri": REDIRECT_URI,
        "scope": f"offline_access {TOOLS_SCOPE}",
        "state": secrets.token_urlsafe(12),
        "resource": run.mcp_url,
    }
    async with httpx.AsyncClient(timeout=30) as browser:  # keeps Hydra's CSRF cookies
        location = (await browser.get(f"{run.hydra.issuer}/oauth2/auth", params=params)).headers
        challenge = parse_qs(urlsplit(location["location"]).query)["login_challenge"][0]
        accept = await run.http.put(
            f"{admin}/login/accept",
            params={"login_challenge": challenge},
            json={"subject": "alice"},
        )
        location = (await browser.get(accept.json()["redirect_to"])).headers
        challenge = parse_qs(urlsplit(location["location"]).query)["consent_challenge"][0]
        consent = await run.http.get(f"{admin}/consent", params={"consent_challenge": challenge})
        grant = {
            "grant_scope": consent.json()["requested_scope"],
            "grant_access_token_audience": grant_audience,
        }
        accept = await run.http.put(
            f"{admin}/consent/accept", params={"consent_challenge": challenge}, json=grant
        )
        location = (await browser.get(accept.json()["redirect_to"])).headers
    code = parse_qs(urlsplit(location["location"]).query)["code"][0]
    tokens = await run.token_response(
        APP_CLIENT, grant_type="authorization_code", code=code, redirect_uri=REDIRECT_URI
    )
    issued: dict[str, Any] = tokens.json()
    issued["consent_request"] = consent.json()
    return issued


async def part_code_flow(run: Run, out: Transcript) -> None:
    out.part("6. authorization code: the consent app grants the audience")
    plain = await _code_flow(run, [])
    consent = plain["consent_request"]
    out.step(f"consent request: request_url {consent['request_url']}")
    out.step(f"  requested_access_token_audience {consent['requested_access_token_audience']!r}")
    out.check(
        consent["requested_access_token_audience"] == []
        and parse_qs(urlsplit(consent["request_url"]).query).get("resource") == [run.mcp_url],
        "the client's resource is only in request_url; no audience is requested",
    )
    refusal = await run.post(plain["access_token"])
    out.step(f"consent without grant_access_token_audience: {answer(refusal)}")
    out.check(refused(refusal, 401, "invalid_audience"), "aud []: 401 invalid_audience")
    granted = await _code_flow(run, [run.mcp_url])
    claims = claims_of(granted["access_token"])
    out.step(f"consent with grant_access_token_audience: aud = {claims.get('aud')!r}")
    accepted = await run.post(granted["access_token"])
    out.check(accepted.status_code == 200, "the user's token is accepted")
    foreign = await _code_flow(run, [OTHER_RESOURCE])
    out.check(
        claims_of(foreign["access_token"]).get("aud") == [OTHER_RESOURCE],
        f"Hydra issues an audience the client's list lacks when the consent app grants it "
        f"({OTHER_RESOURCE}): the consent app must check it",
    )
    refresh = granted.get("refresh_token", "")
    introspecting = {
        "token_format": "auto",
        "introspection_endpoint": f"{run.hydra.admin_url}/admin/oauth2/introspect",
        "client_id": "mcp-server",
        "client_secret": "unused",
    }
    as_bearer = await run.post_with(refresh, **introspecting)
    out.step(f"the refresh token ({refresh[:7]}...) sent as a bearer token: {answer(as_bearer)}")
    out.check(refused(as_bearer, 401, "invalid_claim"), "refused: 401 invalid_claim")


async def part_eddsa(run: Run, out: Transcript) -> None:
    out.part("7. an EdDSA key for access tokens")
    older = await run.token(audience=run.mcp_url)
    command, _ = run.hydra.cli(
        "create", "jwks", "hydra.jwt.access-token", "--alg", "EdDSA", "--public"
    )
    out.step(" ".join(command))
    token = await run.token(audience=run.mcp_url)
    out.step(f"header {json.dumps(header_of(token))}")
    default = await run.post(token)
    out.step(f"algorithms left at RS256,ES256: {answer(default)}")
    out.check(refused(default, 401, "algorithm_not_allowed"), "401 algorithm_not_allowed")
    allowed = await run.post_with(token, algorithms=["RS256", "EdDSA"])
    out.check(allowed.status_code == 200, "MCP_OAUTH2_ALGORITHMS=RS256,EdDSA: accepted")
    out.check(
        (await run.post_with(older)).status_code == 200,
        "the RS256 key stays published: its earlier token is accepted (keys fetched afresh)",
    )


def create_clients(run: Run, out: Transcript) -> None:
    out.part("0. the clients, created with the hydra CLI")
    common = ["--secret", run.secret, "--audience", run.mcp_url]
    service = ["--grant-type", "client_credentials", "--scope", "mcp:tools,mcp:admin"]
    for arguments in (
        ["--id", CLIENT, *service],
        ["--id", OPAQUE_CLIENT, *service, "--access-token-strategy", "opaque"],
        [
            *("--id", APP_CLIENT, "--grant-type", "authorization_code,refresh_token"),
            *("--response-type", "code", "--redirect-uri", REDIRECT_URI),
            *("--scope", "offline_access,mcp:tools"),
        ],
    ):
        command, created = run.hydra.cli("create", "client", *arguments, *common)
        out.step(" ".join(command).replace(run.secret, "$SECRET"))
        out.check(created.get("client_id") == arguments[1], f"{arguments[1]} created")


async def drive(run: Run, out: Transcript) -> None:
    create_clients(run, out)
    await part_hydra(run, out)
    await part_jwt(run, out)
    await part_sdk_oauth(run, out)
    await part_jwt_mistakes(run, out)
    await part_opaque(run, out)
    await part_code_flow(run, out)
    await part_eddsa(run, out)


def run(binary: Path) -> int:
    started = time.perf_counter()
    out = Transcript()
    print("mcp-oauth2 interop: a real Ory Hydra, the protected MCP server, the mcp SDK client")
    with _stop_on_sigterm(), contextlib.ExitStack() as stack:
        hydra = HydraServer(binary)
        stack.callback(hydra.close)
        version = subprocess.run(  # noqa: S603 - the binary make interop-hydra built
            [str(binary), "version"], capture_output=True, text=True, check=False, timeout=30
        ).stdout.split("\n", 1)[0]
        out.step(f"{binary}: {version}")
        for name, value in hydra.environment().items():
            out.step(f"  {name}={value}")
        out.step("  SECRETS_SYSTEM=<32 random bytes>, LOG_LEVEL=warn")
        try:
            seconds = hydra.start()
        except RuntimeError as error:
            print(f"\nHydra did not start: {error}")
            return 1
        out.figure("Hydra start (in-memory database, migrations)", f"{seconds:.1f} s")
        sock = bind_loopback()
        mcp_url = url_of(sock) + MCP_PATH
        config = OAuth2Config.model_validate(
            {
                "issuer": [hydra.issuer],
                "audience": [mcp_url],
                "required_scopes": [TOOLS_SCOPE],
                "scopes_supported": [TOOLS_SCOPE, "mcp:admin"],
                "exempt_routes": [HEALTH],
            }
        )
        stack.enter_context(AppServer(build_app(config), sock))
        out.step(f"MCP server {mcp_url}: MCP_OAUTH2_ISSUER={hydra.issuer}")

        async def main() -> None:
            async with httpx.AsyncClient(timeout=30) as http:
                await drive(Run(hydra, http, mcp_url, config), out)

        try:
            asyncio.run(main())
        except Exception as error:  # a transcript line, then Hydra's log, then the cleanup
            out.check(False, f"no unexpected error (got {type(error).__name__}: {error})")
            print(f"\nHydra log (last lines):\n{hydra.log()}")
    print("\nstopped the MCP servers and Hydra")
    out.figures["run time (after the build)"] = f"{time.perf_counter() - started:.0f} s"
    print("\nfigures:")
    for name, value in out.figures.items():
        print(f"   {name}: {value}")
    if out.failures:
        print(f"\n{len(out.failures)} expectation(s) failed:")
        for failure in out.failures:
            print(f"   - {failure}")
        return 1
    print("\nevery expectation held")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--hydra", type=Path, required=True, help="the hydra binary")
    args = parser.parse_args(argv)
    if not args.hydra.is_file():
        parser.error(f"{args.hydra} is not a file: make interop-hydra builds it")
    logging.basicConfig(level=logging.WARNING, format="   log %(levelname)s %(name)s: %(message)s")
    try:
        return run(args.hydra)
    except KeyboardInterrupt:
        print("\ninterrupted: everything started was stopped")
        return 130


if __name__ == "__main__":
    sys.exit(main())
