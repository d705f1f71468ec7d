"""mcp-oauth2 against a real Keycloak: the driver of ``make interop``, printing a transcript.

    python interop/keycloak_interop.py --distribution build/interop/keycloak-quarkus-dist-*.zip

Starts Keycloak (dev mode, 127.0.0.1, a fixed hostname, the realm ``interop/keycloak/realm.json``)
and the protected MCP server (FastAPI + the ``mcp`` SDK's ``MCPServer``, ``OAuth2Middleware`` and
``ToolScopes``), then drives the server with the real MCP client and real Keycloak tokens from
the client-credentials grant: discovery from the issuer URL alone, a valid token, a foreign
audience, a missing scope (the step-up challenge), tools that need a realm role or a client role
(users' roles read from ``realm_access`` and ``resource_access``), the Keycloak mistakes of the
provider recipe,
key rotation through the admin API, Keycloak stopped while the caches are warm, recovery, and
RFC 7662 introspection at Keycloak's endpoint (revocation included), the first hour of the docs
followed literally, and token exchange (a tool calling a downstream API as the caller).
It measures the first request with a cold cache and the latency of authenticated tool calls.

Everything binds 127.0.0.1; everything started is stopped by process id (also on Ctrl-C and
SIGTERM) and Keycloak's temporary directory is removed. Exit status 0 when every expectation
held, 1 otherwise. The key cache's minimum freshness (``jwks_min_max_age``) is lowered from 60 s
to ``MIN_MAX_AGE`` so that a removed key stops verifying within seconds: Keycloak sends
``Cache-Control: no-cache`` for its keys, so the cache refreshes at that minimum.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import logging
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Final

import httpx
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolResult, TextContent
from mcp_types.version import LATEST_HANDSHAKE_VERSION

from first_hour import RECIPE_CLIENT, RECIPE_REALM, FirstHour, literal_answer, whoami_problems
from keycloak_server import (
    KeycloakAdmin,
    KeycloakServer,
    client_credentials,
    find_java_home,
    free_loopback_port,
    password_grant,
)
from mcp_oauth2 import OAuth2Config, TokenExchanger
from mcp_oauth2.lowlevel import Authenticator, JWKSCache
from mcp_oauth2.testing import AppServer, BearerRecorder, DPoPKey, bind_loopback, url_of
from protected_server import (
    ADMIN_SCOPE,
    HEALTH,
    MCP_PATH,
    ROLES_CLAIMS,
    TOOLS_SCOPE,
    SDKClient,
    build_api,
    build_app,
    build_roles_app,
    challenge_params,
)

HERE: Final = Path(__file__).resolve().parent
REALM_FILE: Final = HERE / "keycloak" / "realm.json"
MIN_MAX_AGE: Final = 5.0
"""``jwks_min_max_age`` for the run (seconds; the default is 60)."""
LATENCY_CALLS: Final = 300
LATENCY_WARMUP: Final = 20
OTHER_RESOURCE: Final = "https://other.example.com/api"
CACHED_CALLS: Final = 10
"""Tool calls after the first in the token exchange part, each with the cached token."""
RECOVERY_TIMEOUT: Final = 150.0
CLIENT: Final = "mcp-client"
OTHER_CLIENT: Final = "other-client"
NO_BASIC_CLIENT: Final = "no-basic-client"
USER_CLIENT: Final = "user-client"
DPOP_CLIENT: Final = "dpop-client"
USER: Final = "alice"
"""A user with the realm roles deployer and viewer and the client role operator of mcp-server."""
PLAIN_USER: Final = "bob"
"""A user with the realm role viewer only."""
ACCEPT: Final = "application/json, text/event-stream"
INITIALIZE: Final = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": LATEST_HANDSHAKE_VERSION,
        "capabilities": {},
        "clientInfo": {"name": "interop", "version": "0"},
    },
}


# -- the transcript --------------------------------------------------------------------------


@dataclass
class Transcript:
    failures: list[str] = field(default_factory=list)
    figures: dict[str, str] = field(default_factory=dict)

    def part(self, title: str) -> None:
        print(f"\n== {title}", flush=True)

    def step(self, text: str) -> None:
        print(f"   {text}", flush=True)

    def check(self, ok: bool, expectation: str) -> bool:
        print(f"   {'ok  ' if ok else 'FAIL'} {expectation}", flush=True)
        if not ok:
            self.failures.append(expectation)
        return ok

    def figure(self, name: str, value: str) -> None:
        self.figures[name] = value
        self.step(f"measured: {name} = {value}")


def _decode_segment(segment: str) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    )
    return value


def header_of(token: str) -> dict[str, Any]:
    return _decode_segment(token.split(".")[0])


def claims_of(token: str) -> dict[str, Any]:
    """The payload, decoded without any check (for the transcript only)."""
    return _decode_segment(token.split(".")[1])


def _text(result: CallToolResult) -> str:
    return " ".join(c.text for c in result.content if isinstance(c, TextContent))


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


# -- the run ---------------------------------------------------------------------------------


@dataclass
class Fetch:
    """One request the server's key cache made (recorded by an httpx event hook)."""

    url: str
    status: int
    cache_control: str | None


@dataclass
class Run:
    keycloak: KeycloakServer
    secret: str
    user_password: str
    mcp_url: str
    cache: JWKSCache
    fetches: list[Fetch]
    http: httpx.AsyncClient
    token_endpoint: str = ""

    @property
    def issuer(self) -> str:
        return self.keycloak.issuer

    async def token(self, scopes: list[str], client: str = CLIENT) -> str:
        return await client_credentials(self.http, self.token_endpoint, client, self.secret, scopes)

    async def post_initialize(self, token: str, url: str | None = None) -> httpx.Response:
        """An MCP ``initialize`` POST with ``token``, as a raw HTTP request (the first request
        an MCP client makes): its status and JSON body show the server's answer as sent."""
        return await self.http.post(
            url or self.mcp_url,
            json=INITIALIZE,
            headers={"Authorization": f"Bearer {token}", "Accept": ACCEPT},
        )

    def stats_line(self) -> str:
        s = self.cache.stats()
        age = f"{s.age:.1f} s" if s.age is not None else "-"
        return (
            f"key cache: state={s.state} keys={s.key_count} age={age} fetches={s.fetches} "
            f"failures={s.failures} misses={s.misses} rejected_misses={s.rejected_misses}"
        )


def _code(response: httpx.Response, member: str = "code") -> str | None:
    """The ``code`` of a refusal's JSON body (``member="error"``: the RFC 6749 ``error`` of a
    token endpoint's answer)."""
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get(member) if isinstance(body, dict) else None


def _answer(response: httpx.Response) -> str:
    challenge = response.headers.get("www-authenticate")
    text = f"HTTP {response.status_code}"
    if response.status_code >= 400:
        text += f" {response.text[:200]}"
    if challenge:
        text += f"; WWW-Authenticate: {challenge}"
    return text


async def part_discovery(run: Run, out: Transcript) -> None:
    out.part("1. discovery from the issuer URL alone; the first request with a cold cache")
    metadata_url = f"{run.mcp_url.rsplit(MCP_PATH, 1)[0]}/.well-known/oauth-protected-resource/mcp"
    resource = (await run.http.get(metadata_url)).json()
    out.step(f"GET {metadata_url}: authorization_servers = {resource.get('authorization_servers')}")
    out.check(resource.get("resource") == run.mcp_url, "the RFC 9728 resource is the MCP URL")
    out.check(
        resource.get("authorization_servers") == [run.issuer],
        "authorization_servers names the Keycloak realm",
    )
    # The client's side: RFC 8414 path insertion, as the MCP specification orders it.
    as_url = run.issuer.replace("/realms/", "/.well-known/oauth-authorization-server/realms/", 1)
    as_answer = await run.http.get(as_url)
    as_metadata = as_answer.json() if as_answer.status_code == 200 else {}
    run.token_endpoint = as_metadata.get("token_endpoint", "")
    out.step(f"GET {as_url}: HTTP {as_answer.status_code}")
    out.step(f"  token_endpoint = {run.token_endpoint}")
    out.check(
        as_metadata.get("issuer") == run.issuer and bool(run.token_endpoint),
        "Keycloak's RFC 8414 metadata names the issuer and a token endpoint",
    )
    token = await run.token([TOOLS_SCOPE])
    out.step(f"client-credentials token of {CLIENT}: header {json.dumps(header_of(token))}")
    out.step(f"  claims {json.dumps(claims_of(token), sort_keys=True)}")
    out.check(run.cache.stats().fetches == 0, "the server's key cache is cold (no prefetch)")
    started = time.perf_counter()
    first = await run.post_initialize(token)
    elapsed = time.perf_counter() - started
    out.step(f"first request (initialize): {_answer(first)}")
    out.check(first.status_code == 200, "the first request, with a cold cache, succeeds")
    out.figure("first request with a cold cache (discovery + JWKS + validation)", _ms(elapsed))
    for fetch in run.fetches:
        extra = f", Cache-Control: {fetch.cache_control}" if fetch.cache_control else ""
        out.step(f"  the cache fetched GET {fetch.url}: HTTP {fetch.status}{extra}")
    answered = next((f.url for f in run.fetches if f.status == 200), None)
    out.step(f"metadata URL that answered: {answered}")
    out.check(
        answered == as_url, "discovery answered at the RFC 8414 path-insertion URL, tried first"
    )
    out.check(run.cache.jwks_uri == f"{run.issuer}/protocol/openid-connect/certs", "jwks_uri found")
    jwks_fetch = next((f for f in run.fetches if f.url == run.cache.jwks_uri), None)
    out.check(
        jwks_fetch is not None and jwks_fetch.cache_control == "no-cache",
        "Keycloak sends its keys with Cache-Control: no-cache (so jwks_min_max_age applies)",
    )
    out.step(run.stats_line())


async def part_valid(run: Run, out: Transcript) -> str:
    out.part(f"2. a valid token ({TOOLS_SCOPE}): the MCP client calls tools")
    token = await run.token([TOOLS_SCOPE])
    client = SDKClient(run.mcp_url, token)
    async with client.session() as session:
        init = await session.initialize()
        out.step(f"initialize: server {init.server_info.name!r}, protocol {init.protocol_version}")
        tools = sorted(t.name for t in (await session.list_tools()).tools)
        out.step(f"tools/list: {', '.join(tools)}")
        whoami = (await session.call_tool("whoami", {})).structured_content or {}
        out.step(f"whoami: {json.dumps(whoami)}")
        claims = claims_of(token)
        out.check(whoami.get("subject") == claims.get("sub"), "subject is the token's sub")
        out.check(
            whoami.get("client_id") == CLIENT, "client_id is read from azp (Keycloak sets azp)"
        )
        out.check(
            whoami.get("scopes") == sorted([TOOLS_SCOPE, "profile"]),
            "user.scopes holds mcp:tools and the OIDC scope profile (a default client scope)",
        )
        out.check(whoami.get("audience") == [run.mcp_url], "aud is the MCP server's URL")
        echo = await session.call_tool("echo", {"text": "hello, Keycloak"})
        out.check(_text(echo) == "hello, Keycloak", "echo answers")
    return token


async def part_latency(run: Run, out: Transcript, token: str) -> None:
    out.part(f"3. latency of an authenticated MCP tool call ({LATENCY_CALLS} calls of echo)")
    client = SDKClient(run.mcp_url, token)
    timings: list[float] = []
    async with client.session() as session:
        await session.initialize()
        for index in range(LATENCY_WARMUP + LATENCY_CALLS):
            started = time.perf_counter()
            result = await session.call_tool("echo", {"text": str(index)})
            elapsed = time.perf_counter() - started
            if result.is_error or _text(result) != str(index):
                out.check(False, f"call {index} answered {_text(result)!r}")
                return
            if index >= LATENCY_WARMUP:
                timings.append(elapsed)
    percentiles = statistics.quantiles(timings, n=100, method="inclusive")
    out.figure("tool call p50", _ms(percentiles[49]))
    out.figure("tool call p99", _ms(percentiles[98]))
    out.step(f"(min {_ms(min(timings))}, max {_ms(max(timings))}, each a full MCP POST)")
    out.check(len(timings) == LATENCY_CALLS, f"{LATENCY_CALLS} calls succeeded")


async def part_wrong_audience(run: Run, out: Transcript) -> None:
    out.part(f"4. a token of {OTHER_CLIENT}, whose audience is another service")
    token = await run.token([TOOLS_SCOPE], OTHER_CLIENT)
    out.step(f"aud = {claims_of(token).get('aud')!r}")
    client = SDKClient(run.mcp_url, token)
    async with client.session() as session:
        try:
            await session.initialize()
            out.check(False, "initialize with a foreign audience fails")
        except MCPError as error:
            out.step(f"SDK initialize raised MCPError({error.code}, {error.message!r})")
    refusal = client.last_refusal()
    params = challenge_params(refusal.headers.get("www-authenticate", "") if refusal else "")
    out.check(
        refusal is not None and refusal.status == 401 and params.get("error") == "invalid_token",
        'the SDK client got HTTP 401, error="invalid_token"',
    )
    raw = await run.post_initialize(token)
    out.step(f"raw POST: {_answer(raw)}")
    out.check(raw.status_code == 401 and _code(raw) == "invalid_audience", "code invalid_audience")


async def part_scopes(run: Run, out: Transcript) -> None:
    out.part(f"5. missing scope: admin_reset needs {ADMIN_SCOPE} (the step-up challenge)")
    token = await run.token([TOOLS_SCOPE])
    client = SDKClient(run.mcp_url, token)
    async with client.session() as session:
        await session.initialize()
        try:
            await session.call_tool("admin_reset", {})
            out.check(False, "admin_reset without mcp:admin is refused")
        except MCPError as error:
            out.step(
                f"SDK call_tool('admin_reset') raised MCPError({error.code}, {error.message!r})"
            )
    refusal = client.last_refusal()
    challenge = refusal.headers.get("www-authenticate", "") if refusal else ""
    out.step(f"HTTP {refusal.status if refusal else '-'}; WWW-Authenticate: {challenge}")
    params = challenge_params(challenge)
    out.check(
        refusal is not None
        and refusal.status == 403
        and params.get("error") == "insufficient_scope"
        and params.get("scope") == f"{TOOLS_SCOPE} {ADMIN_SCOPE}",
        f'HTTP 403, error="insufficient_scope", scope="{TOOLS_SCOPE} {ADMIN_SCOPE}"',
    )
    no_tools = await run.token([])
    out.step(f"a token without {TOOLS_SCOPE}: scope = {claims_of(no_tools).get('scope')!r}")
    raw = await run.post_initialize(no_tools)
    params = challenge_params(raw.headers.get("www-authenticate", ""))
    out.step(f"raw POST: {_answer(raw)}")
    out.check(
        raw.status_code == 403 and params.get("scope") == TOOLS_SCOPE,
        f'every request is refused 403 with scope="{TOOLS_SCOPE}" (required_scopes)',
    )
    admin = await run.token([TOOLS_SCOPE, ADMIN_SCOPE])
    async with SDKClient(run.mcp_url, admin).session() as session:
        await session.initialize()
        reset = await session.call_tool("admin_reset", {})
        out.step(f"with {TOOLS_SCOPE} {ADMIN_SCOPE}: admin_reset -> {_text(reset)!r}")
        out.check(not reset.is_error, "admin_reset succeeds once the token has mcp:admin")


async def part_roles(run: Run, out: Transcript, config: OAuth2Config) -> None:
    out.part("5b. roles: a tool that needs a realm role, one that needs a client role (MCPPolicy)")
    roles_config = _variant(config, roles_claims=list(ROLES_CLAIMS))
    out.step(f"roles_claims = {list(ROLES_CLAIMS)}")
    sock = bind_loopback()
    url = url_of(sock) + MCP_PATH
    async with AppServer(build_roles_app(roles_config), sock):
        tokens = {
            name: await password_grant(
                run.http,
                run.token_endpoint,
                USER_CLIENT,
                run.secret,
                name,
                run.user_password,
                [TOOLS_SCOPE],
            )
            for name in (USER, PLAIN_USER)
        }
        tokens["service account"] = await run.token([TOOLS_SCOPE])
        claims = claims_of(tokens[USER])
        out.step(f"{USER}'s token: realm_access = {json.dumps(claims.get('realm_access'))}")
        out.step(f"  resource_access = {json.dumps(claims.get('resource_access'))}")
        out.check(
            "deployer" in claims.get("realm_access", {}).get("roles", [])
            and claims.get("resource_access", {}).get("mcp-server", {}).get("roles")
            == ["operator"],
            "Keycloak puts realm roles in realm_access.roles and the client's in "
            "resource_access.mcp-server.roles",
        )
        expected = {
            USER: ({"deployer", "viewer", "operator"}, {"deploy": 200, "operate": 200}),
            PLAIN_USER: ({"viewer"}, {"deploy": 403, "operate": 403}),
            "service account": (set(), {"deploy": 403, "operate": 403}),
        }
        for who, token in tokens.items():
            roles, answers = expected[who]
            client = SDKClient(url, token)
            async with client.session() as session:
                await session.initialize()
                listed = sorted(t.name for t in (await session.list_tools()).tools)
                whoami = (await session.call_tool("whoami", {})).structured_content or {}
                out.step(f"{who}: user.roles = {whoami.get('roles')}; tools/list: {listed}")
                out.check(
                    roles <= set(whoami.get("roles", [])),
                    f"{who}: user.roles holds {sorted(roles) or 'no role of ours'}",
                )
                for tool, status in answers.items():
                    challenge: str | None = None
                    try:
                        result = await session.call_tool(tool, {})
                        got = 200
                        out.step(f"  {tool}: {_text(result)!r}")
                    except MCPError:
                        refusal = client.last_refusal()
                        got = refusal.status if refusal else 0
                        challenge = refusal.headers.get("www-authenticate") if refusal else None
                        out.step(f"  {tool}: HTTP {got}, WWW-Authenticate: {challenge}")
                    denial = "" if status == 200 else " (access_denied, no step-up challenge)"
                    out.check(
                        got == status and challenge is None, f"{who}: {tool} {status}{denial}"
                    )
                out.check(
                    ({"deploy", "operate"} <= set(listed)) == (who == USER),
                    f"{who}: the role-protected tools are listed only for a caller with the roles",
                )
        raw = await run.http.post(
            url,
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "deploy"}},
            headers={"Authorization": f"Bearer {tokens[PLAIN_USER]}", "Accept": ACCEPT},
        )
        out.step(f"raw POST deploy as {PLAIN_USER}: {_answer(raw)}")
        out.check(
            raw.status_code == 403 and _code(raw) == "access_denied",
            "the body's code is access_denied",
        )


async def _dpop_token(run: Run, key: DPoPKey) -> tuple[str, str]:
    """A token of ``DPOP_CLIENT`` bound to ``key`` (RFC 9449 section 5: a proof for the token
    request), and its ``token_type``; a ``use_dpop_nonce`` answer is retried with its nonce."""
    form = {
        "grant_type": "client_credentials",
        "client_id": DPOP_CLIENT,
        "client_secret": run.secret,
        "scope": TOOLS_SCOPE,
    }
    nonce = None
    for _ in range(2):
        proof = key.proof("POST", run.token_endpoint, nonce=nonce)
        answer = await run.http.post(run.token_endpoint, data=form, headers={"DPoP": proof})
        nonce = answer.headers.get("dpop-nonce")
        if answer.status_code == 400 and nonce and "use_dpop_nonce" in answer.text:
            continue
        if answer.status_code != 200:
            raise RuntimeError(f"token endpoint: HTTP {answer.status_code} {answer.text[:300]}")
        body = answer.json()
        return body["access_token"], body.get("token_type", "")
    raise RuntimeError("token endpoint: use_dpop_nonce twice")


async def part_dpop(run: Run, out: Transcript, config: OAuth2Config) -> None:
    """DPoP (RFC 9449): Keycloak binds the tokens of a client that requires DPoP-bound tokens
    to the key of the proof its token request carried; a server with ``dpop="required"`` takes
    such a token with a proof by that key, and refuses it as a bearer token, with another key's
    proof, and a plain bearer token of another client."""
    out.part("12. DPoP (RFC 9449): Keycloak's DPoP-bound token, a server with dpop=required")
    key = DPoPKey()
    token, token_type = await _dpop_token(run, key)
    cnf = claims_of(token).get("cnf")
    out.step(f"{DPOP_CLIENT}'s token: token_type={token_type!r}, cnf={cnf!r}")
    out.check(token_type == "DPoP", "Keycloak answers token_type DPoP")  # noqa: S105
    # Keycloak adds a member of its own beside jkt ("kc-jkt-type"), which the validator skips.
    out.check(
        isinstance(cnf, dict) and cnf.get("jkt") == key.thumbprint,
        "its cnf.jkt is the RFC 7638 thumbprint of the client's key",
    )
    required = _variant(config, dpop="required")
    sock = bind_loopback()
    cache = JWKSCache(issuer=run.issuer, settings=required.cache_settings())
    # Another process behind the same public URL (run.mcp_url, which every proof names): the
    # request's URL is the configured resource's, never what the Host header says.
    async with AppServer(build_app(required, cache, at_shutdown=[cache.aclose]), sock) as url:
        endpoint = url + MCP_PATH

        async def post(authorization: str, proof: str | None) -> httpx.Response:
            headers = {"Authorization": authorization, "Accept": ACCEPT}
            if proof is not None:
                headers["DPoP"] = proof
            return await run.http.post(endpoint, json=INITIALIZE, headers=headers)

        accepted = await post(f"DPoP {token}", key.proof("POST", run.mcp_url, access_token=token))
        out.step(f"DPoP {'<token>'} with a proof: {_answer(accepted)}"[:300])
        out.check(accepted.status_code == 200, "the token with a proof by its key: 200")
        for what, authorization, proof, expected in (
            ("as a bearer token", f"Bearer {token}", None, "dpop_required"),
            (
                "with another key's proof",
                f"DPoP {token}",
                DPoPKey().proof("POST", run.mcp_url, access_token=token),
                "invalid_dpop_proof",
            ),
            (
                f"{CLIENT}'s bearer token",
                f"Bearer {await run.token([TOOLS_SCOPE])}",
                None,
                "dpop_required",
            ),
        ):
            refused = await post(authorization, proof)
            out.step(f"{what}: {_answer(refused)}"[:300])
            out.check(
                (refused.status_code, _code(refused)) == (401, expected),
                f"{what}: 401 {expected}",
            )


def _variant(config: OAuth2Config, **changes: Any) -> OAuth2Config:
    settings = config.model_dump()
    settings.update(changes)
    return OAuth2Config.model_validate(settings)


async def part_mistakes(run: Run, out: Transcript, config: OAuth2Config) -> None:
    out.part("6. the Keycloak mistakes of the provider recipe")
    # a) A client without the basic scope: its users' tokens carry no sub.
    user_token = await password_grant(
        run.http,
        run.token_endpoint,
        NO_BASIC_CLIENT,
        run.secret,
        USER,
        run.user_password,
        [TOOLS_SCOPE],
    )
    claims = claims_of(user_token)
    out.step(f"a user's token from {NO_BASIC_CLIENT} (no basic scope): claims {sorted(claims)}")
    raw = await run.post_initialize(user_token)
    out.step(f"raw POST: {_answer(raw)}")
    out.check(
        "sub" not in claims and raw.status_code == 401 and _code(raw) == "missing_claim",
        "no sub without the basic scope: 401 missing_claim",
    )
    service = await run.token([TOOLS_SCOPE], NO_BASIC_CLIENT)
    out.check(
        "sub" in claims_of(service),
        "(a client-credentials token of the same client does carry sub: Keycloak 26.7)",
    )
    # b) The token endpoint reached as localhost: with a fixed --hostname, iss does not change.
    local_endpoint = run.token_endpoint.replace("127.0.0.1", "localhost", 1)
    local = await client_credentials(run.http, local_endpoint, CLIENT, run.secret, [TOOLS_SCOPE])
    out.step(f"token requested at {local_endpoint}: iss = {claims_of(local).get('iss')}")
    raw = await run.post_initialize(local)
    out.check(
        claims_of(local).get("iss") == run.issuer and raw.status_code == 200,
        "with --hostname fixed, iss does not follow the Host header: accepted",
    )
    token = await run.token([TOOLS_SCOPE])
    # c) The issuer with a trailing slash: every request 503 issuer_mismatch; check says so.
    slash = _variant(config, issuer=[run.issuer + "/"])
    sock = bind_loopback()
    async with AppServer(build_app(slash), sock):
        raw = await run.post_initialize(token, url_of(sock) + MCP_PATH)
    out.step(f"issuer configured as {run.issuer}/ : {_answer(raw)}")
    out.check(
        raw.status_code == 503 and _code(raw) == "issuer_mismatch",
        "a trailing slash on the issuer: 503 issuer_mismatch",
    )
    check = await asyncio.to_thread(_mcp_oauth2_check, run.issuer + "/", run.mcp_url)
    lines = [line for line in check.stdout.splitlines() if "issuer_mismatch" in line]
    out.step(f"mcp-oauth2 check: exit status {check.returncode}")
    for line in lines[:2]:
        out.step(f"  {line.strip()[:160]}")
    out.check(check.returncode != 0 and bool(lines), "mcp-oauth2 check reports issuer_mismatch")
    # d) accepted_types=["at+jwt"]: Keycloak's access tokens have typ "JWT".
    typed = _variant(config, accepted_types=["at+jwt"])
    sock = bind_loopback()
    async with AppServer(build_app(typed), sock):
        raw = await run.post_initialize(token, url_of(sock) + MCP_PATH)
    out.step(
        f"accepted_types=['at+jwt'], header typ {header_of(token).get('typ')!r}: {_answer(raw)}"
    )
    out.check(
        raw.status_code == 401 and _code(raw) == "invalid_type",
        "accepted_types at+jwt refuses Keycloak's typ JWT: 401 invalid_type",
    )


def _mcp_oauth2_check(issuer: str, audience: str) -> subprocess.CompletedProcess[str]:
    command = shutil.which("mcp-oauth2", path=str(Path(sys.executable).parent))
    if command is None:
        raise RuntimeError("the mcp-oauth2 command is not installed beside this Python")
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MCP_OAUTH2_")}
    environment |= {
        "MCP_OAUTH2_ISSUER": issuer,
        "MCP_OAUTH2_AUDIENCE": audience,
        "NO_COLOR": "1",
    }
    return subprocess.run(  # noqa: S603 - this project's own command
        [command, "check"],
        capture_output=True,
        text=True,
        env=environment,
        cwd=HERE,
        timeout=60,
        check=False,
    )


async def _poll(
    attempt: Callable[[], Awaitable[bool]], within: float, interval: float = 0.5
) -> float | None:
    """Seconds until ``attempt`` returned True, or None if it did not ``within`` seconds."""
    started = time.perf_counter()
    while True:
        if await attempt():
            return time.perf_counter() - started
        if time.perf_counter() - started > within:
            return None
        await asyncio.sleep(interval)


async def part_rotation(run: Run, out: Transcript, admin: KeycloakAdmin) -> str:
    out.part("7. key rotation through Keycloak's admin API")
    old = await run.token([TOOLS_SCOPE])
    old_kid = header_of(old)["kid"]
    answer = await run.post_initialize(old)
    out.check(answer.status_code == 200, f"a token of the initial key {old_kid[:12]}... accepted")
    fetches = run.cache.stats().fetches
    await admin.add_rsa_key("rsa-rotated", 200)
    new = await run.token([TOOLS_SCOPE])
    new_kid = header_of(new)["kid"]
    out.step(f"added key provider rsa-rotated (priority 200): new tokens signed by {new_kid}")
    out.check(new_kid != old_kid, "Keycloak signs new tokens with the new key")
    answer = await run.post_initialize(new)
    out.check(answer.status_code == 200, "the new key's token is accepted without a restart")
    out.check(
        run.cache.stats().fetches == fetches + 1, "one key fetch, triggered by the unknown kid"
    )
    out.step(run.stats_line())
    await admin.remove_key_provider(await admin.key_provider_id("rsa-initial"))
    removed_at = time.perf_counter()
    kids = [k.kid for k in await admin.keys()]
    out.step(f"removed key provider rsa-initial; the realm's RS256 keys now: {kids}")
    answer = await run.post_initialize(old)
    out.step(f"the old key's token right after the removal: HTTP {answer.status_code}")
    out.check(
        answer.status_code == 200,
        "the removed key still verifies until the next refresh (cached key set)",
    )
    last: list[httpx.Response] = []

    async def refused() -> bool:
        last[:] = [await run.post_initialize(old)]
        return last[0].status_code == 401

    waited = await _poll(refused, within=MIN_MAX_AGE * 4 + 10)
    after = time.perf_counter() - removed_at
    out.step(f"the old key's token {after:.1f} s after the removal: {_answer(last[0])}")
    out.check(
        waited is not None and _code(last[0]) == "key_not_found",
        f"refused (key_not_found) after the next refresh (jwks_min_max_age={MIN_MAX_AGE:g} s)",
    )
    out.figure("removed key refused after", f"{after:.1f} s")
    answer = await run.post_initialize(new)
    out.check(answer.status_code == 200, "the new key's token is still accepted")
    out.step(run.stats_line())
    return new


async def part_outage(run: Run, out: Transcript, admin: KeycloakAdmin, seen: str) -> str:
    out.part("8. Keycloak stopped while the caches are warm")
    unseen_known_key = await run.token([TOOLS_SCOPE])
    await admin.add_rsa_key("rsa-outage", 300)
    unseen_new_key = await run.token([TOOLS_SCOPE])
    known_kid, new_kid = header_of(unseen_known_key)["kid"], header_of(unseen_new_key)["kid"]
    out.step(
        f"before stopping: a token of a key the server knows ({known_kid}) and one of a key "
        f"added just now ({new_kid}), neither sent yet"
    )
    await asyncio.to_thread(run.keycloak.stop)
    out.step("Keycloak stopped (SIGTERM to its process id)")
    await asyncio.sleep(MIN_MAX_AGE + 1)  # the cached key set is now past its freshness
    answer = await run.post_initialize(seen)
    out.check(answer.status_code == 200, "a token already seen is accepted")
    client = SDKClient(run.mcp_url, unseen_known_key)
    async with client.session() as session:
        await session.initialize()
        whoami = (await session.call_tool("whoami", {})).structured_content or {}
    out.check(
        whoami.get("client_id") == CLIENT,
        "a token never seen, of a cached key: a whole MCP session succeeds on cached keys",
    )
    answer = await run.post_initialize(unseen_new_key)
    out.step(f"a token of the key added before the stop: {_answer(answer)}")
    out.check(
        answer.status_code == 503
        and _code(answer) == "jwks_unavailable"
        and "retry-after" in answer.headers,
        "a token of a key the cache has not seen cannot be checked while Keycloak is down: "
        "503 jwks_unavailable with Retry-After (fail closed, not a verdict on the token)",
    )
    stats = run.cache.stats()
    out.step(run.stats_line())
    out.check(
        stats.state == "stale" and stats.failures > 0,
        "the cache serves its stale keys while refreshes fail",
    )
    out.check(
        stats.usable_key_count > 0 and stats.last_failure == "jwks_unavailable",
        "its keys count as usable (a readiness probe stays ready); the last failure is recorded",
    )
    return unseen_new_key


async def part_recovery(run: Run, out: Transcript, unseen_new_key: str) -> None:
    out.part("9. recovery: Keycloak started again")
    seconds = await asyncio.to_thread(run.keycloak.start)
    out.figure("Keycloak restart (same data)", f"{seconds:.1f} s")

    async def accepted() -> bool:
        return (await run.post_initialize(unseen_new_key)).status_code == 200

    waited = await _poll(accepted, within=RECOVERY_TIMEOUT, interval=1.0)
    out.check(waited is not None, "the token of the key added before the stop is accepted")
    if waited is not None:
        out.figure("keys fetched again after Keycloak answered", f"{waited:.1f} s")
    out.step(run.stats_line())
    out.check(run.cache.stats().state == "fresh", "the cache is fresh again")
    fresh = await run.token([TOOLS_SCOPE])
    answer = await run.post_initialize(fresh)
    out.check(answer.status_code == 200, "a new token from the restarted Keycloak is accepted")


async def part_introspection(run: Run, out: Transcript, config: OAuth2Config) -> None:
    """RFC 7662 against Keycloak's own introspection endpoint (its tokens are JWTs, but
    ``token_format="opaque"`` asks the endpoint about every token, as for opaque ones)."""
    out.part("10. introspection (RFC 7662): token_format=opaque against Keycloak's endpoint")
    introspecting = _variant(
        config,
        token_format="opaque",  # noqa: S106 - a format name
        # Keycloak answers only a client named in the token's audience: the server's own
        # client, whose id is its resource URI (interop/keycloak/realm.json).
        client_id=run.mcp_url,
        client_secret=run.secret,
        introspection_cache_ttl=1,
    )
    authenticator = Authenticator.from_config(introspecting)
    introspector = authenticator.introspector
    assert introspector is not None
    try:
        token = await run.token([TOOLS_SCOPE])
        user = await authenticator.authenticate(token)
        out.step(f"discovered introspection_endpoint {introspector.endpoint}")
        out.check(
            introspector.endpoint == run.issuer + "/protocol/openid-connect/token/introspect",
            "the endpoint is discovered from Keycloak's metadata",
        )
        out.step(f"user: subject={user.subject} username={user.username} scopes={user.scopes}")
        out.check(
            TOOLS_SCOPE in user.scopes and run.mcp_url in user.audience,
            "an active token: the user with its scopes and this server's audience",
        )
        foreign = await run.token([TOOLS_SCOPE], OTHER_CLIENT)
        code = await _refusal_code(authenticator, foreign)
        out.step(f"another service's token: {code}")
        out.check(
            code in ("invalid_audience", "inactive_token"),
            "another service's token is refused (Keycloak itself answers inactive to a client "
            "outside the audience)",
        )
        junk = "not-a-token-" + secrets.token_urlsafe(16)
        out.check(
            await _refusal_code(authenticator, junk) == "inactive_token",
            "a token Keycloak never issued: inactive_token",
        )
        revoked = await run.token([TOOLS_SCOPE])
        await authenticator.authenticate(revoked)
        response = await run.http.post(
            run.issuer + "/protocol/openid-connect/revoke",
            data={"token": revoked, "token_type_hint": "access_token"},
            auth=(CLIENT, run.secret),
        )
        out.step(f"RFC 7009 revocation at Keycloak: HTTP {response.status_code}")
        await asyncio.sleep(1.2)  # past introspection_cache_ttl
        out.check(
            await _refusal_code(authenticator, revoked) == "inactive_token",
            "a revoked token is refused once its cached result expires: inactive_token",
        )
        out.step(f"introspection stats: {introspector.stats()}")
    finally:
        await authenticator.aclose()
    wrong = Authenticator.from_config(
        _variant(introspecting, client_secret="not-the-secret")  # noqa: S106
    )
    try:
        code = await _refusal_code(wrong, await run.token([TOOLS_SCOPE]))
    finally:
        await wrong.aclose()
    out.check(code == "introspection_unavailable", "a wrong client secret: 503, never an accept")


async def part_first_hour(
    run: Run, out: Transcript, admin: KeycloakAdmin, first: FirstHour
) -> bool:
    """The documentation followed literally (``first_hour``): the Keycloak recipe's commands,
    the getting-started server under uvicorn, the clients page's client, ``whoami``."""
    out.part("11. the first hour: the Keycloak recipe, the quickstart server and the client")
    started = time.perf_counter()
    recipe = await asyncio.to_thread(first.run_recipe)
    out.step(f"docs/providers/keycloak.md's commands (bash): exit status {recipe.returncode}")
    for line in recipe.output.splitlines():
        if line.startswith(("OK:", "VALID:", "FAILED:", "INVALID:")):
            out.step(f"  {line}")
    if not out.check(recipe.returncode == 0, "the recipe's commands run as the page has them"):
        out.step(recipe.output[-2000:])
        return False
    out.check(
        "OK: the configuration, the issuer and its keys are usable" in recipe.output
        and "VALID: this server would accept the token" in recipe.output,
        "mcp-oauth2 check says OK and mcp-oauth2 inspect says VALID",
    )
    claims = claims_of(first.token)
    out.step(f"the recipe's token: claims {json.dumps(claims, sort_keys=True)}")
    seconds = await asyncio.to_thread(first.start_server)
    out.step(f"docs/getting-started.md's server.py under uvicorn at {first.mcp_url}")
    out.figure("quickstart server start (uvicorn, discovery and keys)", f"{seconds:.1f} s")
    client = await asyncio.to_thread(first.run_client)
    answer = literal_answer(client.output)
    out.step(f"docs/clients.md's client with $TOKEN: whoami -> {answer!r}"[:300])
    problems = whoami_problems(answer, claims, first)
    out.check(
        client.returncode == 0 and not problems,
        "whoami (current_user()) answers the token's subject, client_id mcp-client, "
        f"scopes ['mcp:tools'] and its claims {problems or ''}",
    )
    out.figure(
        "from the recipe's first command to whoami", f"{time.perf_counter() - started:.1f} s"
    )
    provider = await asyncio.to_thread(first.run_oauth_client)
    answer = literal_answer(provider.output)
    problems = whoami_problems(answer, claims, first)
    out.check(
        provider.returncode == 0 and not problems,
        "the SDK's ClientCredentialsOAuthProvider gets its token from Keycloak by discovery "
        f"from the server's 401, and whoami answers {problems or ''}",
    )
    await _first_hour_refusals(run, out, first, admin)
    if out.failures:
        out.step(f"the server's log (last lines):\n{first.server_log()[-3000:]}")
    return True


async def part_token_exchange(run: Run, out: Transcript, first: FirstHour) -> None:
    """docs/downstream.md's Keycloak commands in the recipe's realm, then an MCP server whose
    tool calls a protected API through ``exchanger.auth``: the API sees a token for itself with
    the caller's subject, never the caller's own; a second call uses the cache; a refused
    exchange is a clear tool error; with Keycloak stopped, no fallback."""
    out.part("12. token exchange: a tool calls a downstream API as the caller (RFC 8693)")
    token_endpoint = f"{first.issuer}/protocol/openid-connect/token"

    async def caller_token() -> str:
        return await client_credentials(
            run.http, token_endpoint, RECIPE_CLIENT, first.client_secret, [TOOLS_SCOPE]
        )

    await asyncio.to_thread(first.stop)  # the recipe's server: this part's listens in its place
    api_sock = bind_loopback()
    api_url = url_of(api_sock)
    recipe = await asyncio.to_thread(first.run_exchange_recipe, api_url, await caller_token())
    out.step(f"docs/downstream.md's Keycloak commands (bash): exit status {recipe.returncode}")
    for line in recipe.output.splitlines():
        if line.startswith(("urn:", "VALID:", "INVALID:", "FAILED:")):
            out.step(f"  {line}")
    if not out.check(
        recipe.returncode == 0 and "VALID: this server would accept the token" in recipe.output,
        "the page's commands run as written; mcp-oauth2 inspect finds the exchanged token valid "
        "for the API",
    ):
        out.step(recipe.output[-2000:])
        return
    api = BearerRecorder(build_api(OAuth2Config(issuer=first.issuer, audience=api_url)))
    config = OAuth2Config.model_validate(
        {
            "issuer": [first.issuer],
            "audience": [first.mcp_url],
            "required_scopes": [TOOLS_SCOPE],
            "exempt_routes": [HEALTH],
            "client_id": first.mcp_url,  # the MCP server's client, as the page names it
            "client_secret": first.client_secret,
        }
    )
    exchanger = TokenExchanger(config)
    # The recipe's server is gone: this one listens where it did, the URL its tokens name.
    mcp_sock = bind_loopback(int(first.mcp_url.rsplit(":", 1)[1].split("/")[0]))
    app = build_app(config, downstream=(exchanger, api_url))
    async with AppServer(api, api_sock), AppServer(app, mcp_sock):
        token = await caller_token()
        async with SDKClient(first.mcp_url, token).session() as session:
            await session.initialize()
            started = time.perf_counter()
            first_call = await session.call_tool("downstream_whoami", {})
            elapsed = time.perf_counter() - started
            out.figure("a tool call with an uncached exchange (Keycloak)", _ms(elapsed))
            cached: list[float] = []
            for _ in range(CACHED_CALLS):
                started = time.perf_counter()
                second_call = await session.call_tool("downstream_whoami", {})
                cached.append(time.perf_counter() - started)
            out.figure(
                f"the same call, exchange cached (median of {CACHED_CALLS})",
                _ms(statistics.median(cached)),
            )
            issued = exchanger.stats()
            refused = await session.call_tool("downstream_whoami", {"audience": RECIPE_CLIENT})
        answer = first_call.structured_content or {}
        claims = answer.get("claims") or {}
        out.step(
            f"the API saw: subject {answer.get('subject')}, aud {claims.get('aud')!r}, "
            f"azp {claims.get('azp')!r}, act {claims.get('act')!r}"
        )
        caller = claims_of(token)
        out.check(
            not first_call.is_error
            and answer.get("subject") == caller.get("sub")
            and answer.get("audience") == [api_url],
            "the API sees a token for itself (aud its URL only) with the caller's subject",
        )
        out.check(claims.get("azp") == first.mcp_url, "azp names the MCP server's client")
        out.check(
            not second_call.is_error
            and (second_call.structured_content or {}).get("subject") == caller.get("sub"),
            "a second call succeeds",
        )
        out.step(f"exchanger: {issued}")
        out.check(
            issued.calls == 1 and issued.hits == CACHED_CALLS,
            f"one exchange at Keycloak; the {CACHED_CALLS} calls after it used the cache",
        )
        calls = 1 + CACHED_CALLS
        out.check(
            len(api.tokens) == calls and len(set(api.tokens)) == 1 and token not in api.tokens,
            f"the API received the exchanged token {calls} times, never the caller's",
        )
        words = _text(refused)
        out.step(f"audience {RECIPE_CLIENT!r} (no scope of the client names it): {words}"[:300])
        out.check(
            refused.is_error and "token exchange refused: " in words and token not in words,
            "an exchange Keycloak refuses is a tool error saying why, with no token in it",
        )
        out.check(len(api.tokens) == calls, "no downstream call after the refusal")
        await _exchange_refusals(run, out, first, token_endpoint)
        unseen = await caller_token()
        await asyncio.to_thread(run.keycloak.stop)
        out.step("Keycloak stopped (the server's keys stay cached)")
        async with SDKClient(first.mcp_url, unseen).session() as session:
            await session.initialize()
            down = await session.call_tool("downstream_whoami", {})
        words = _text(down)
        out.step(f"a new caller while Keycloak is down: {words}"[:300])
        out.check(
            down.is_error and "token_exchange_unavailable" in words,
            "an outage is a tool error (token_exchange_unavailable)",
        )
        out.check(
            len(api.tokens) == calls and unseen not in api.tokens,
            "no fallback: the API never received the caller's token",
        )


async def _exchange_refusals(
    run: Run, out: Transcript, first: FirstHour, token_endpoint: str
) -> None:
    """What Keycloak answers the MCP server's client for a subject token that does not name it
    (the recipe's client without the audience mapper)."""
    subject = await client_credentials(
        run.http, token_endpoint, "no-audience-client", first.client_secret
    )
    answer = await run.http.post(
        token_endpoint,
        data={
            "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "subject_token": subject,
            "subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
            "audience": RECIPE_CLIENT,
            "client_id": first.mcp_url,
            "client_secret": first.client_secret,
        },
    )
    out.step(f"a subject token whose aud does not name the client: {_answer(answer)}"[:300])
    out.check(
        answer.status_code == 403 and _code(answer, "error") == "access_denied",
        "Keycloak refuses it: 403 access_denied",
    )


async def _first_hour_refusals(
    run: Run, out: Transcript, first: FirstHour, admin: KeycloakAdmin
) -> None:
    """Refusals on the way, each explained by the server's log; and the recipe's audience
    mapper left out, as the recipe's mistakes say."""
    token_endpoint = f"{first.issuer}/protocol/openid-connect/token"
    # Created without scope lists, a client has the realm's default client scopes (and none of
    # the realm's own: it cannot ask for mcp:tools); naming either list replaces them all.
    for client_id, scopes in (
        ("no-audience-client", {}),
        (
            "basic-only-client",
            {"defaultClientScopes": ["basic"], "optionalClientScopes": [TOOLS_SCOPE]},
        ),
    ):
        client: dict[str, Any] = {
            "clientId": client_id,
            "secret": first.client_secret,
            "publicClient": False,
            "serviceAccountsEnabled": True,
            "standardFlowEnabled": False,
            **scopes,
        }
        await admin.create_client(RECIPE_REALM, client)
    no_audience = await client_credentials(
        run.http, token_endpoint, "no-audience-client", first.client_secret
    )
    basic_only = await client_credentials(
        run.http, token_endpoint, "basic-only-client", first.client_secret, [TOOLS_SCOPE]
    )
    for token, what, expected in (
        (None, "no token", (401, "missing_token")),
        (first.token, "the recipe's token, calling admin_reset", (403, "insufficient_scope")),
        (no_audience, "no audience mapper, the realm's default scopes", (401, "invalid_audience")),
        (basic_only, "no audience mapper, only basic", (401, "missing_claim")),
    ):
        if token is not None and token != first.token:
            token_claims = claims_of(token)
            out.step(
                f"{what}: aud = {token_claims.get('aud')!r}, scope = {token_claims.get('scope')!r}"
            )
        answer = await _call_admin_reset(run, first.mcp_url, token)
        out.step(f"  {_answer(answer)}"[:300])
        out.check(
            (answer.status_code, _code(answer)) == expected,
            f"{what}: {expected[0]} {expected[1]}",
        )
    lines = first.refusal_lines()
    for line in lines:
        out.step(f"  server log: {line}"[:200])
    expected_lines = [
        "refused POST /mcp: 401 missing_token",
        "refused POST /mcp: 403 insufficient_scope (token lacks the required scope(s): mcp:admin)",
        "refused POST /mcp: 401 invalid_audience",
        "refused POST /mcp: 401 missing_claim (token lacks the required claim 'aud')",
    ]
    out.check(
        all(any(line.startswith(e) for line in lines) for e in expected_lines),
        "the server logged one line for each refusal, with its status and code",
    )
    log = first.server_log()
    out.check(
        all(t not in log for t in (first.token, no_audience, basic_only)),
        "no token appears in the server's log",
    )


async def _call_admin_reset(run: Run, url: str, token: str | None) -> httpx.Response:
    """A raw MCP ``tools/call`` of ``admin_reset`` (2026-07-28: one self-contained POST)."""
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "admin_reset"}}
    headers = {"Accept": ACCEPT}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return await run.http.post(url, json=body, headers=headers)


async def _refusal_code(authenticator: Authenticator, token: str) -> str | None:
    try:
        await authenticator.authenticate(token)
    except Exception as error:
        return getattr(error, "code", type(error).__name__)
    return None


async def drive(run: Run, out: Transcript, config: OAuth2Config) -> None:
    admin = KeycloakAdmin(run.keycloak, run.http)
    await part_discovery(run, out)
    valid = await part_valid(run, out)
    await part_latency(run, out, valid)
    await part_wrong_audience(run, out)
    await part_scopes(run, out)
    await part_roles(run, out, config)
    await part_mistakes(run, out, config)
    seen = await part_rotation(run, out, admin)
    unseen = await part_outage(run, out, admin, seen)
    await part_recovery(run, out, unseen)
    await part_introspection(run, out, config)
    await part_dpop(run, out, config)
    first = FirstHour(
        run.keycloak.base_url,
        (run.keycloak.admin_user, run.keycloak.admin_password),
        free_loopback_port(),
        Path(sys.executable).parent,
    )
    with first.running():
        if await part_first_hour(run, out, admin, first):
            await part_token_exchange(run, out, first)  # last: it stops Keycloak


# -- setting up ------------------------------------------------------------------------------


def _recording_client(
    fetches: list[Fetch], timeout: float
) -> tuple[httpx.AsyncClient, Callable[[], Awaitable[None]]]:
    """An HTTP client for the key cache, configured as the library's own (no redirects, two
    connections, identity coding) plus a hook that records each answer for the transcript."""

    async def record(response: httpx.Response) -> None:
        fetches.append(
            Fetch(
                str(response.request.url),
                response.status_code,
                response.headers.get("cache-control"),
            )
        )

    client = httpx.AsyncClient(
        follow_redirects=False,
        limits=httpx.Limits(max_connections=2, max_keepalive_connections=2),
        timeout=httpx.Timeout(timeout),
        headers={"Accept-Encoding": "identity", "User-Agent": "mcp-oauth2"},
        event_hooks={"response": [record]},
    )
    return client, client.aclose


@contextmanager
def _stop_on_sigterm() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so that every ``finally`` stops what it started."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(distribution: Path) -> int:
    started = time.perf_counter()
    out = Transcript()
    print("mcp-oauth2 interop: a real Keycloak, the protected MCP server, the mcp SDK client")
    java_home, java = find_java_home()
    out.step(f"Java {java} at {java_home}")
    out.step(f"Keycloak distribution {distribution}")
    secret = secrets.token_urlsafe(24)
    user_password = secrets.token_urlsafe(12)
    with ExitStack() as stack, _stop_on_sigterm():
        sock = stack.enter_context(bind_loopback())
        server_url = url_of(sock)
        mcp_url = server_url + MCP_PATH
        keycloak = stack.enter_context(
            KeycloakServer(
                distribution=distribution,
                realm_file=REALM_FILE,
                java_home=java_home,
                variables={
                    "MCP_RESOURCE": mcp_url,
                    "OTHER_RESOURCE": OTHER_RESOURCE,
                    "MCP_CLIENT_SECRET": secret,
                    "MCP_USER_PASSWORD": user_password,
                },
            )
        )
        arguments = " ".join(keycloak.arguments())
        out.step(f"starting Keycloak on {keycloak.base_url} (kc.sh {arguments})")
        try:
            seconds = keycloak.start()
        except RuntimeError as error:
            print(f"\nKeycloak did not start: {error}")
            return 1
        out.step(f"Keycloak pid {keycloak.pid}, realm {keycloak.issuer}")
        out.figure("Keycloak first start (fresh copy, realm import)", f"{seconds:.1f} s")
        config = OAuth2Config.model_validate(
            {
                "issuer": [keycloak.issuer],
                "audience": [mcp_url],
                "scopes_supported": [TOOLS_SCOPE, ADMIN_SCOPE],
                "required_scopes": [TOOLS_SCOPE],
                "exempt_routes": [HEALTH],
                "jwks_min_max_age": MIN_MAX_AGE,
            }
        )
        fetches: list[Fetch] = []
        settings = config.cache_settings()
        http_client, close_client = _recording_client(fetches, settings.timeout)
        cache = JWKSCache(
            issuer=keycloak.issuer, settings=settings, client=http_client, prefetch=False
        )
        app = build_app(config, cache, at_shutdown=[close_client])
        stack.enter_context(AppServer(app, sock))
        out.step(f"MCP server {mcp_url} (OAuth2Middleware + ToolScopes, uvicorn on 127.0.0.1)")
        out.step(f"issuer {keycloak.issuer}, jwks_min_max_age {MIN_MAX_AGE:g} s (default 60)")

        async def main() -> None:
            async with httpx.AsyncClient(timeout=30) as http:
                await drive(
                    Run(keycloak, secret, user_password, mcp_url, cache, fetches, http),
                    out,
                    config,
                )

        try:
            asyncio.run(main())
        except Exception as error:  # a transcript line, then Keycloak's log, then the cleanup
            out.check(False, f"no unexpected error (got {type(error).__name__}: {error})")
            print(f"\nKeycloak log (last lines):\n{keycloak.log_tail()}")
    print("\nstopped the MCP server and Keycloak; removed Keycloak's temporary directory")
    elapsed = time.perf_counter() - started
    out.figures["make interop run time (after the build and download)"] = f"{elapsed:.0f} s"
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
    parser.add_argument(
        "--distribution", type=Path, required=True, help="the keycloak-quarkus-dist zip"
    )
    args = parser.parse_args(argv)
    # Warnings only (the key cache logs failed refreshes while Keycloak is down), on stderr.
    logging.basicConfig(level=logging.WARNING, format="   log %(levelname)s %(name)s: %(message)s")
    try:
        return run(args.distribution)
    except KeyboardInterrupt:
        print("\ninterrupted: everything started was stopped")
        return 130


if __name__ == "__main__":
    sys.exit(main())
