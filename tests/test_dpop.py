"""DPoP (RFC 9449) end to end: the demo MCP server behind ``OAuth2Middleware`` under uvicorn, its
tokens bound to a client key by a ``LocalIssuer`` (``jkt``), driven by the real MCP SDK client
through ``DPoPAuth`` and by raw HTTP for every refusal.

What the conformance scenario covers is in ``test_conformance_dpop.py``; here the rest of what
the issue asks: the challenges and the codes of each refusal (``required`` and ``allowed``), the
request's URL built from the configured resource and never from ``Host``, ``htu``
normalisation, the downgrade rules, introspected (opaque) DPoP-bound tokens, replay within one
process, nonces shared by a secret, the resource metadata, and the configuration's rules.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from pydantic import ValidationError

from demo import TOOLS_SCOPE, build_demo_app
from mcp_oauth2 import OAuth2Config
from mcp_oauth2._dpop_replay import MemoryReplayStore, ReplayCheck
from mcp_oauth2.errors import DPoPReplayUnavailableError, InvalidDPoPProofError
from mcp_oauth2.lowlevel import KeySet, TokenValidator
from mcp_oauth2.testing import AppServer, DPoPAuth, DPoPKey, LocalIssuer, bind_loopback, url_of
from test_conformance_setup import INITIALIZE

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

ACCEPT = "application/json, text/event-stream"
ALGS = 'algs="ES256 ES384 RS256 PS256 EdDSA"'


@dataclass
class Server:
    issuer: LocalIssuer
    url: str
    mode: str
    http: httpx.Client
    key: DPoPKey = field(default_factory=DPoPKey)

    @property
    def mcp_url(self) -> str:
        return self.url + "/mcp"

    def token(self, key: DPoPKey | None = None, **options: Any) -> str:
        options.setdefault("scopes", [TOOLS_SCOPE])
        jkt = (key or self.key).thumbprint
        return self.issuer.mint(audience=self.mcp_url, jkt=jkt, **options)

    def proof(self, token: str | None, **options: Any) -> str:
        return self.key.proof("POST", self.mcp_url, access_token=token, **options)

    def post(
        self,
        authorization: str | None,
        proofs: str | list[str] | None = None,
        *,
        url: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        sent = [("Accept", ACCEPT), *(headers or {}).items()]
        if authorization is not None:
            sent.append(("Authorization", authorization))
        if isinstance(proofs, str):
            sent.append(("DPoP", proofs))
        elif proofs is not None:
            sent += [("DPoP", proof) for proof in proofs]
        return self.http.post(url or self.mcp_url, json=INITIALIZE, headers=sent)


@contextlib.contextmanager
def serving(mode: str, **settings: Any) -> Iterator[Server]:
    issuer = LocalIssuer()
    with issuer.serve():
        sock = bind_loopback()
        mcp_url = url_of(sock) + "/mcp"
        config = OAuth2Config.model_validate(
            {
                "issuer": [issuer.issuer],
                "audience": [mcp_url],
                "required_scopes": [TOOLS_SCOPE],
                "dpop": mode,
                **settings,
            }
        )
        app = build_demo_app(config, json_response=True)
        with AppServer(app, sock) as url, httpx.Client(timeout=20) as http:
            yield Server(issuer, url, mode, http)


@pytest.fixture(scope="module")
def required() -> Iterator[Server]:
    with serving("required") as server:
        yield server


@pytest.fixture(scope="module")
def allowed() -> Iterator[Server]:
    with serving("allowed") as server:
        yield server


def challenges(response: httpx.Response) -> list[str]:
    return response.headers.get_list("www-authenticate")


# -- the MCP SDK client ---------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def sdk_client(url: str, auth: DPoPAuth, responses: list[int]) -> AsyncIterator[Client]:
    async def record(response: httpx2.Response) -> None:
        responses.append(response.status_code)

    async with (
        httpx2.AsyncClient(auth=auth, timeout=20, event_hooks={"response": [record]}) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        yield client


async def test_the_sdk_client_calls_tools_with_a_proof_per_request(required: Server) -> None:
    token = required.token()
    responses: list[int] = []
    async with sdk_client(required.mcp_url, DPoPAuth(required.key, token), responses) as client:
        first = await client.call_tool("whoami", {})
        again = await client.call_tool("echo", {"text": "bound"})
    assert first.structured_content is not None
    claims = first.structured_content["claims"]
    assert claims["cnf"] == {"jkt": required.key.thumbprint}
    assert again.content[0].text == "bound"  # type: ignore[union-attr]
    # Several requests, each with its own proof: none was taken for a replay.
    assert len(responses) >= 3 and set(responses) <= {200, 202}, responses


async def test_the_sdk_client_with_another_key_is_refused(required: Server) -> None:
    token = required.token()
    responses: list[int] = []
    # The SDK turns the 401 into an error of its own (within a group, from its task group).
    with pytest.raises((MCPError, ExceptionGroup)):
        async with sdk_client(required.mcp_url, DPoPAuth(DPoPKey(), token), responses) as client:
            await client.call_tool("whoami", {})
    assert 401 in responses


async def test_the_sdk_client_follows_nonces() -> None:
    with serving("required", dpop_nonce=True) as server:
        auth = DPoPAuth(server.key, server.token())
        responses: list[int] = []
        async with sdk_client(server.mcp_url, auth, responses) as client:
            result = await client.call_tool("echo", {"text": "with a nonce"})
        assert result.content[0].text == "with a nonce"  # type: ignore[union-attr]
        assert responses[0] == 401 and auth.nonce is not None, responses
        assert responses.count(401) == 1, responses  # then every proof carried the nonce


# -- every refusal, with its code and challenge ---------------------------------------------------


def test_valid_proof(required: Server) -> None:
    token = required.token()
    accepted = required.post(f"DPoP {token}", required.proof(token))
    assert accepted.status_code == 200
    assert "dpop-nonce" not in accepted.headers  # nonces are off


@pytest.mark.parametrize(
    ("case", "code", "error", "why"),
    [
        ("no-proof", "invalid_dpop_proof", "invalid_dpop_proof", "has no DPoP proof"),
        ("two-proofs", "invalid_dpop_proof", "invalid_dpop_proof", "more than one DPoP"),
        ("joined-proofs", "invalid_dpop_proof", "invalid_dpop_proof", "not a JWT"),
        ("not-a-jwt", "invalid_dpop_proof", "invalid_dpop_proof", "not a JWT"),
        ("typ", "invalid_dpop_proof", "invalid_dpop_proof", "typ is not dpop+jwt"),
        ("alg-none", "invalid_dpop_proof", "invalid_dpop_proof", "algorithm is not allowed"),
        ("alg-not-allowed", "invalid_dpop_proof", "invalid_dpop_proof", "not allowed"),
        ("private-key", "invalid_dpop_proof", "invalid_dpop_proof", "private key"),
        ("signature", "invalid_dpop_proof", "invalid_dpop_proof", "signature does not verify"),
        ("htm", "invalid_dpop_proof", "invalid_dpop_proof", "htm is not"),
        ("htu", "invalid_dpop_proof", "invalid_dpop_proof", "htu is not"),
        ("htu-query", "invalid_dpop_proof", "invalid_dpop_proof", "query or a fragment"),
        ("htu-fragment", "invalid_dpop_proof", "invalid_dpop_proof", "query or a fragment"),
        ("iat-stale", "invalid_dpop_proof", "invalid_dpop_proof", "s ago"),
        ("iat-future", "invalid_dpop_proof", "invalid_dpop_proof", "in the future"),
        ("jti", "invalid_dpop_proof", "invalid_dpop_proof", "lacks 'jti'"),
        ("ath", "invalid_dpop_proof", "invalid_dpop_proof", "ath is not the hash"),
        ("ath-absent", "invalid_dpop_proof", "invalid_dpop_proof", "lacks 'ath'"),
        ("other-key", "invalid_dpop_proof", "invalid_dpop_proof", "not the key the access"),
        ("unbound-token", "invalid_dpop_proof", "invalid_dpop_proof", "not DPoP-bound"),
        ("bearer-bound", "dpop_required", "invalid_token", "accepts DPoP-bound tokens only"),
        ("bearer-unbound", "dpop_required", "invalid_token", "accepts DPoP-bound tokens only"),
        ("expired-token", "expired", "invalid_token", "token expired"),
        ("another-audience", "invalid_audience", "invalid_token", "audience"),
    ],
)
def test_every_refusal_is_401_with_a_dpop_challenge(
    required: Server, case: str, code: str, error: str, why: str
) -> None:
    server = required
    token = server.token()
    proof = server.proof(token)
    authorization = f"DPoP {token}"
    proofs: str | list[str] | None = proof
    match case:
        case "no-proof":
            proofs = None
        case "two-proofs":
            proofs = [proof, server.proof(token)]
        case "joined-proofs":
            proofs = f"{proof}, {server.proof(token)}"
        case "not-a-jwt":
            proofs = "this-is-not-a-jwt"
        case "typ":
            proofs = server.proof(token, headers={"typ": "JWT"})
        case "alg-none":
            proofs = server.proof(token, headers={"alg": "none"})
        case "alg-not-allowed":
            es512 = DPoPKey("ES512")
            authorization = f"DPoP {server.token(es512)}"
            proofs = es512.proof("POST", server.mcp_url, access_token=server.token(es512))
        case "private-key":
            proofs = server.proof(token, headers={"jwk": server.key.private_jwk()})
        case "signature":
            head, signature = proof.rsplit(".", 1)
            proofs = f"{head}.{'B' if signature[0] == 'A' else 'A'}{signature[1:]}"
        case "htm":
            proofs = server.proof(token, claims={"htm": "PUT"})
        case "htu":
            proofs = server.proof(token, claims={"htu": server.url + "/other"})
        case "htu-query":
            proofs = server.proof(token, claims={"htu": server.mcp_url + "?session=1"})
        case "htu-fragment":
            proofs = server.proof(token, claims={"htu": server.mcp_url + "#x"})
        case "iat-stale":
            proofs = server.proof(token, issued_at=int(time.time()) - 301)
        case "iat-future":
            proofs = server.proof(token, issued_at=int(time.time()) + 301)
        case "jti":
            proofs = server.proof(token, claims={"jti": None})
        case "ath":
            proofs = server.proof(server.token())  # a proof for another token
        case "ath-absent":
            proofs = server.proof(None)
        case "other-key":
            token = server.token(DPoPKey())
            authorization, proofs = f"DPoP {token}", server.proof(token)
        case "unbound-token":
            token = server.issuer.mint(audience=server.mcp_url, scopes=[TOOLS_SCOPE])
            authorization, proofs = f"DPoP {token}", server.proof(token)
        case "bearer-bound":
            authorization = f"Bearer {token}"
        case "bearer-unbound":
            token = server.issuer.mint(audience=server.mcp_url, scopes=[TOOLS_SCOPE])
            authorization, proofs = f"Bearer {token}", None
        case "expired-token":
            token = server.issuer.mint_expired(audience=server.mcp_url, jkt=server.key.thumbprint)
            authorization, proofs = f"DPoP {token}", server.proof(token)
        case "another-audience":
            token = server.issuer.mint(audience="https://elsewhere/mcp", jkt=server.key.thumbprint)
            authorization, proofs = f"DPoP {token}", server.proof(token)
    response = server.post(authorization, proofs)
    assert response.status_code == 401, response.text
    body = response.json()
    assert (body["code"], body["error"]) == (code, error), body
    assert why in body["error_description"], body
    (challenge,) = challenges(response)  # DPoP only: no Bearer challenge under "required"
    assert challenge.startswith(f"DPoP {ALGS}, resource_metadata="), challenge
    assert f'error="{error}"' in challenge


def test_a_replayed_proof_is_refused(required: Server) -> None:
    token = required.token()
    proof = required.proof(token)
    assert required.post(f"DPoP {token}", proof).status_code == 200
    again = required.post(f"DPoP {token}", proof)
    assert again.status_code == 401
    assert again.json()["error_description"] == "the DPoP proof was used before (its jti)"
    # The same jti from another key is another proof.
    other = DPoPKey()
    bound = required.token(other)
    jti_reused = other.proof("POST", required.mcp_url, access_token=bound, jti=_jti(proof))
    assert required.post(f"DPoP {bound}", jti_reused).status_code == 200


def _jti(proof: str) -> str:
    import base64
    import json

    payload = proof.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    jti: str = claims["jti"]
    return jti


def test_no_token_is_challenged_for_dpop(required: Server) -> None:
    response = required.post(None)
    assert response.status_code == 401
    assert response.json() == {
        "error_description": "this resource needs a DPoP-bound token and a DPoP proof",
        "code": "missing_token",
    }
    (challenge,) = challenges(response)
    assert challenge == (
        f'DPoP {ALGS}, resource_metadata="{required.url}/.well-known/oauth-protected-resource/mcp"'
        f', scope="{TOOLS_SCOPE}"'
    )


def test_the_url_is_the_configured_resource_never_the_host_header(required: Server) -> None:
    # The resource is http://127.0.0.1:PORT/mcp; the request says Host: localhost:PORT (a name
    # the SDK's own DNS-rebinding check lets through), and a proof signed for that URL.
    token = required.token()
    host = required.url.replace("127.0.0.1", "localhost")
    spoofed = required.key.proof("POST", host + "/mcp", access_token=token)
    moved = {"Host": host.removeprefix("http://")}
    refused = required.post(f"DPoP {token}", spoofed, headers=moved)
    assert refused.status_code == 401 and "htu is not" in refused.json()["error_description"]
    # The configured resource's URL, whatever Host says.
    assert required.post(f"DPoP {token}", required.proof(token), headers=moved).status_code == 200


@pytest.mark.parametrize(
    "htu",
    [
        "{url}/mcp",
        "{url}/mcp/",
        "{upper}/mcp",
        "{url}/%6Dcp",
        "{url}/./mcp",
    ],
)
def test_htu_is_compared_after_normalisation(required: Server, htu: str) -> None:
    token = required.token()
    upper = required.url.replace("http://", "HTTP://")
    claims = {"htu": htu.format(url=required.url, upper=upper)}
    assert required.post(f"DPoP {token}", required.proof(token, claims=claims)).status_code == 200


def test_the_default_port_is_normalised_away() -> None:
    # The resource says https://...:443; the proof leaves the port out (or the reverse).
    validator = TokenValidator(
        "https://as", "https://mcp.example.com/mcp", dpop=_policy("https://mcp.example.com:443")
    )
    policy = validator.dpop
    assert policy is not None
    key, token = DPoPKey(), "a.b.c"
    for htu in ("https://mcp.example.com/mcp", "https://MCP.example.com:443/mcp/"):
        proof = key.proof("POST", htu, access_token=token)
        policy.check_proof(proof, method="POST", path="/mcp", access_token=token)


def _policy(origin: str, **options: Any) -> Any:
    from mcp_oauth2._rust import DPoPPolicy

    return DPoPPolicy("required", origin + "/mcp", **options)


# -- allowed: Bearer and DPoP side by side --------------------------------------------------------


def test_allowed_accepts_both_and_challenges_with_both(allowed: Server) -> None:
    plain = allowed.issuer.mint(audience=allowed.mcp_url, scopes=[TOOLS_SCOPE])
    assert allowed.post(f"Bearer {plain}").status_code == 200
    bound = allowed.token()
    assert allowed.post(f"DPoP {bound}", allowed.proof(bound)).status_code == 200
    missing = allowed.post(None)
    assert missing.status_code == 401
    assert missing.json()["error_description"] == "this resource needs a bearer token"
    bearer, dpop = challenges(missing)
    assert bearer.startswith("Bearer resource_metadata=") and "error=" not in bearer
    assert dpop.startswith(f"DPoP {ALGS}, resource_metadata=") and "error=" not in dpop


def test_allowed_refuses_a_bound_token_as_bearer(allowed: Server) -> None:
    bound = allowed.token()
    response = allowed.post(f"Bearer {bound}")
    assert response.status_code == 401
    assert response.json()["code"] == "dpop_required"
    bearer, dpop = challenges(response)
    assert "error=" not in bearer  # the DPoP refusal names its error in the DPoP challenge
    assert 'error="invalid_token"' in dpop and "DPoP-bound token (cnf.jkt)" in dpop
    # A DPoP header beside it changes nothing: the binding decides.
    assert allowed.post(f"Bearer {bound}", allowed.proof(bound)).status_code == 401


def test_allowed_names_a_token_error_in_both_challenges(allowed: Server) -> None:
    expired = allowed.issuer.mint_expired(audience=allowed.mcp_url)
    response = allowed.post(f"Bearer {expired}")
    assert response.json()["code"] == "expired"
    assert all('error="invalid_token"' in c for c in challenges(response))
    bad_proof = allowed.post(f"DPoP {allowed.token()}", "x.y.z")
    bearer, dpop = challenges(bad_proof)
    assert "error=" not in bearer and 'error="invalid_dpop_proof"' in dpop


def test_off_refuses_a_bound_token_and_ignores_the_dpop_scheme() -> None:
    with serving("off") as server:
        bound = server.token()
        refused = server.post(f"Bearer {bound}")
        assert refused.status_code == 401 and refused.json()["code"] == "dpop_required"
        (challenge,) = challenges(refused)
        assert challenge.startswith("Bearer ")
        # The DPoP scheme is one this server does not read: no token.
        unread = server.post(f"DPoP {bound}", server.proof(bound))
        assert unread.json()["code"] == "missing_token"
        plain = server.issuer.mint(audience=server.mcp_url, scopes=[TOOLS_SCOPE])
        assert server.post(f"Bearer {plain}").status_code == 200
        metadata = server.http.get(server.url + "/.well-known/oauth-protected-resource").json()
        assert "dpop_signing_alg_values_supported" not in metadata


# -- metadata, nonces -----------------------------------------------------------------------------


def test_resource_metadata_names_dpop(required: Server, allowed: Server) -> None:
    for server, bound_only in ((required, True), (allowed, False)):
        metadata = server.http.get(server.url + "/.well-known/oauth-protected-resource/mcp").json()
        assert metadata["dpop_signing_alg_values_supported"] == [
            "ES256",
            "ES384",
            "RS256",
            "PS256",
            "EdDSA",
        ]
        assert metadata["dpop_bound_access_tokens_required"] is bound_only


def test_nonces_shared_by_a_secret_work_across_servers() -> None:
    secret = "s" * 40
    with (
        serving("required", dpop_nonce=True, dpop_nonce_secret=secret) as one,
        serving("required", dpop_nonce=True, dpop_nonce_secret=secret) as two,
        serving("required", dpop_nonce=True) as alone,
    ):
        token = one.token()
        first = one.post(f"DPoP {token}", one.proof(token))
        assert first.status_code == 401
        assert first.json()["code"] == "use_dpop_nonce"
        nonce = first.headers["dpop-nonce"]
        assert 'error="use_dpop_nonce"' in first.headers["www-authenticate"]
        accepted = one.post(f"DPoP {token}", one.proof(token, nonce=nonce))
        assert accepted.status_code == 200
        # An accepted proof is answered with the current nonce (RFC 9449 section 8.2): the next
        # proof carries it, and no 401 is needed when the window moves on.
        following = accepted.headers["dpop-nonce"]
        assert one.post(f"DPoP {token}", one.proof(token, nonce=following)).status_code == 200
        # Another server with the same secret takes it (its own token, the same client key).
        two.key = one.key
        other = two.issuer.mint(audience=two.mcp_url, jkt=one.key.thumbprint, scopes=[TOOLS_SCOPE])
        assert two.post(f"DPoP {other}", two.proof(other, nonce=nonce)).status_code == 200
        # One with a random secret of its own does not, and names its own nonce.
        alone.key = one.key
        third = alone.issuer.mint(
            audience=alone.mcp_url, jkt=one.key.thumbprint, scopes=[TOOLS_SCOPE]
        )
        refused = alone.post(f"DPoP {third}", alone.proof(third, nonce=nonce))
        assert refused.json()["code"] == "use_dpop_nonce"
        assert refused.headers["dpop-nonce"] != nonce


# -- opaque tokens: the binding comes from the introspection answer -------------------------------


def test_introspected_tokens_are_bound_by_their_answer() -> None:
    issuer = LocalIssuer(algorithms=("ES256",))
    with issuer.serve():
        sock = bind_loopback()
        mcp_url = url_of(sock) + "/mcp"
        config = OAuth2Config.model_validate(
            {
                "issuer": [issuer.issuer],
                "audience": [mcp_url],
                "token_format": "opaque",
                "client_id": issuer.introspection_client_id,
                "client_secret": issuer.introspection_client_secret,
                "dpop": "allowed",
            }
        )
        app = build_demo_app(config, json_response=True)
        with AppServer(app, sock) as url, httpx.Client(timeout=20) as http:
            server = Server(issuer, url, "allowed", http)
            key = server.key
            bound = issuer.mint_opaque(audience=mcp_url, jkt=key.thumbprint)
            assert issuer.introspection_answer(bound)["cnf"] == {"jkt": key.thumbprint}
            assert issuer.introspection_answer(bound)["token_type"] == "DPoP"
            assert server.post(f"DPoP {bound}", server.proof(bound)).status_code == 200
            as_bearer = server.post(f"Bearer {bound}")
            assert as_bearer.json()["code"] == "dpop_required"
            other = issuer.mint_opaque(audience=mcp_url, jkt=DPoPKey().thumbprint)
            mismatch = server.post(f"DPoP {other}", server.proof(other))
            assert "not the key the access token" in mismatch.json()["error_description"]
            plain = issuer.mint_opaque(audience=mcp_url)
            assert server.post(f"Bearer {plain}").status_code == 200
            unbound = server.post(f"DPoP {plain}", server.proof(plain))
            assert "not DPoP-bound" in unbound.json()["error_description"]


# -- the in-process replay store ------------------------------------------------------------------


async def test_the_memory_store_fails_closed_when_full() -> None:
    now = [1000.0]
    store = MemoryReplayStore(capacity=2, clock=lambda: now[0])
    assert await store.add(b"a", 10)
    assert not await store.add(b"a", 10)
    assert await store.add(b"b", 20)
    with pytest.raises(DPoPReplayUnavailableError) as full:
        await store.add(b"c", 10)
    assert full.value.retry_after == 10  # until the oldest leaves its window
    now[0] += 10
    assert await store.add(b"c", 10)  # "a" left its window: room again
    assert len(store) == 2
    with pytest.raises(DPoPReplayUnavailableError) as again:
        await store.add(b"a", 10)  # new again, but no room until "b" leaves
    assert again.value.retry_after == 10


async def test_replay_check_keeps_a_proof_for_its_window() -> None:
    policy = _policy("https://mcp.example.com")
    key, token = DPoPKey(), "a.b.c"
    proof = policy.check_proof(
        key.proof("POST", "https://mcp.example.com/mcp", access_token=token),
        method="POST",
        path="/mcp",
        access_token=token,
    )
    assert proof.expires_at == pytest.approx(time.time() + 300, abs=5)
    now = [time.monotonic()]
    check = ReplayCheck(MemoryReplayStore(clock=lambda: now[0]))
    await check.first_use(proof)
    with pytest.raises(InvalidDPoPProofError, match="used before"):
        await check.first_use(proof)
    now[0] += 301  # past its window, the proof would fail the time check anyway
    await check.first_use(proof)


# -- configuration --------------------------------------------------------------------------------

ISSUER, AUDIENCE = "https://auth.example.com", "https://mcp.example.com/mcp"


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ({"dpop": "on"}, "dpop (MCP_OAUTH2_DPOP): "),
        ({"dpop": "allowed", "dpop_algorithms": "ES256,HS256"}, "never accepted"),
        ({"dpop": "allowed", "dpop_algorithms": "none"}, "never accepted"),
        ({"dpop": "allowed", "dpop_max_age": 0}, "between 1 and 3600"),
        ({"dpop": "off", "dpop_nonce": True}, "dpop_nonce is on, but dpop is off"),
        ({"dpop": "allowed", "dpop_nonce_secret": "x" * 40}, "dpop_nonce is off"),
        (
            {"dpop": "allowed", "dpop_nonce": True, "dpop_nonce_secret": "short"},
            "at least 32 bytes",
        ),
        ({"dpop": "allowed", "dpop_replay_store": "http://redis:6379"}, "redis://"),
        ({"dpop_replay_store": "redis://redis:6379"}, "set, but dpop is off"),
    ],
)
def test_configuration_errors(settings: dict[str, Any], words: str) -> None:
    with pytest.raises(ValidationError) as caught:
        OAuth2Config.model_validate({"issuer": ISSUER, "audience": AUDIENCE, **settings})
    message = str(caught.value)
    assert words in message, message
    assert "e.g. MCP_OAUTH2_DPOP" in message


def test_a_replay_store_password_is_never_shown() -> None:
    with pytest.raises(ValidationError) as caught:
        OAuth2Config.model_validate(
            {"issuer": ISSUER, "audience": AUDIENCE, "dpop_replay_store": "http://:hunter2@r"}
        )
    assert "hunter2" not in str(caught.value)
    config = OAuth2Config.model_validate(
        {
            "issuer": ISSUER,
            "audience": AUDIENCE,
            "dpop": "required",
            "dpop_replay_store": "redis://:hunter2@redis:6379/0",
        }
    )
    assert "hunter2" not in repr(config)


def test_validator_without_dpop_reads_no_dpop_scheme() -> None:
    issuer = LocalIssuer("https://as.example")
    key = DPoPKey()
    keys = KeySet.from_jwks(issuer.jwks())
    token = issuer.mint(audience=AUDIENCE, jkt=key.thumbprint)
    plain = TokenValidator(issuer.issuer, AUDIENCE)
    assert plain.authorize(f"DPoP {token}", keys) is None
    with pytest.raises(Exception, match="not accepted as a bearer token"):
        plain.authorize(f"Bearer {token}", keys)
    with pytest.raises(Exception, match="not accepted as a bearer token"):
        plain.authorize_token(token, keys)


# -- the command line -----------------------------------------------------------------------------


def test_inspect_explains_a_proof_from_the_core_checks() -> None:
    import json
    import subprocess
    import sys

    issuer = LocalIssuer("https://as.example")
    key = DPoPKey()
    token = issuer.mint(audience=AUDIENCE, jkt=key.thumbprint)

    def inspect(proof: str, method: str = "POST") -> tuple[int, list[dict[str, str]]]:
        argv = ["inspect", "--json", "--dpop", proof, "--method", method, "--url", AUDIENCE]
        done = subprocess.run(  # noqa: S603 - this interpreter, the package's own command
            [sys.executable, "-m", "mcp_oauth2.cli", *argv, token],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        return done.returncode, json.loads(done.stdout)["dpop"]

    code, checks = inspect(key.proof("POST", AUDIENCE, access_token=token))
    assert code == 0 and {c["status"] for c in checks} == {"pass"}, checks
    assert checks[-1]["name"] == "the token is bound to the proof's key (cnf.jkt)"
    code, checks = inspect(key.proof("POST", AUDIENCE, access_token=token), method="GET")
    statuses = [c["status"] for c in checks]
    failed = statuses.index("fail")
    assert (
        code == 1
        and checks[failed]["detail"] == "the DPoP proof's htm is not this request's method"
    )
    assert set(statuses[:failed]) == {"pass"} and set(statuses[failed + 1 :]) == {"not_reached"}
    code, checks = inspect(key.proof("POST", AUDIENCE, access_token=token, headers={"typ": "jwt"}))
    assert [c["status"] for c in checks][3] == "fail"
