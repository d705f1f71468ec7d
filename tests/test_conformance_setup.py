"""The set-up of the MCP conformance suite's server-authorization scenarios, reproduced.

The suite runs its own authorization server on plain ``http://127.0.0.1:PORT`` (RFC 8414 metadata
and a JWKS) and starts it only after the MCP server under test, whose expected audience is the
server's own URL. So here the MCP server starts first with the default configuration (keys
prefetched at startup, which fails), then the issuer comes up on the port it will keep, and
raw HTTP requests check what the suite checks: 401 with a JSON body and a ``Bearer`` challenge
carrying ``resource_metadata`` for a missing, expired, mis-addressed or forged token; a working
``initialize`` for a valid one; and metadata that leads to the authorization server.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from mcp_types.version import LATEST_HANDSHAKE_VERSION

from demo import build_demo_app
from mcp_oauth2 import OAuth2Config
from mcp_oauth2.testing import AppServer, LocalIssuer, bind_loopback, url_of

pytestmark = pytest.mark.timeout(30)

# The key cache starts at most one request-driven fetch per second while it has no keys (its
# cold retry interval), and its last failed fetch came before the issuer was up: so the first
# request that starts more than a second after the issuer came up fetches the keys and is
# accepted. How soon that request starts depends on how fast this machine answers the requests
# before it, so the bound is the interval plus the longest gap measured between two request
# starts (not a fixed figure that only a quiet machine meets). A cache that waits longer than
# the interval (a backoff, say) starts fetching later than that and fails the check.
COLD_RETRY = 1.0
TIMER_SLACK = 0.1
GIVE_UP_AFTER = 15.0
ACCEPT = "application/json, text/event-stream"
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": LATEST_HANDSHAKE_VERSION,
        "capabilities": {},
        "clientInfo": {"name": "conformance-setup", "version": "0"},
    },
}
CHALLENGE_PARAM = re.compile(r'([A-Za-z_]+)="((?:[^"\\]|\\.)*)"')


@dataclass
class Setup:
    issuer: LocalIssuer
    server_url: str
    http: httpx.Client
    while_issuer_down: httpx.Response = field(init=False)
    """A valid token presented before the issuer listened."""
    warmup: list[tuple[float, int]] = field(default_factory=list)
    """(seconds from the issuer coming up to the request's start, status) of the valid-token
    requests, until one is not 503."""

    @property
    def mcp_url(self) -> str:
        return self.server_url + "/mcp"

    def post(self, token: str | None, message: dict[str, Any] = INITIALIZE) -> httpx.Response:
        headers = {"Accept": ACCEPT}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return self.http.post(self.mcp_url, json=message, headers=headers)


@pytest.fixture(scope="module")
def setup() -> Iterator[Setup]:
    issuer = LocalIssuer()
    with issuer.serve():
        issuer.stop_listening()  # the port (and so the issuer URL) is kept; connections refused
        sock = bind_loopback()
        mcp_url = url_of(sock) + "/mcp"
        config = OAuth2Config.model_validate({"issuer": [issuer.issuer], "audience": [mcp_url]})
        with AppServer(build_demo_app(config), sock) as server_url, httpx.Client() as http:
            setup = Setup(issuer, server_url, http)
            token = issuer.mint(audience=mcp_url)
            setup.while_issuer_down = setup.post(token)
            issuer.start_listening()
            up = time.monotonic()
            while True:
                started = time.monotonic() - up
                status = setup.post(token).status_code
                setup.warmup.append((started, status))
                if status != 503 or time.monotonic() - up > GIVE_UP_AFTER:
                    break
                time.sleep(0.05)
            yield setup


def challenge(response: httpx.Response) -> dict[str, str]:
    header = response.headers.get("www-authenticate", "")
    assert header.startswith("Bearer "), header
    return {name: re.sub(r"\\(.)", r"\1", value) for name, value in CHALLENGE_PARAM.findall(header)}


def jsonrpc_result(response: httpx.Response) -> dict[str, Any]:
    """The JSON-RPC message of a POST answer, sent as JSON or as one SSE event."""
    if response.headers["content-type"].startswith("text/event-stream"):
        data = [line[5:].strip() for line in response.text.splitlines() if line.startswith("data:")]
        message: dict[str, Any] = json.loads(data[-1])
    else:
        message = response.json()
    assert "error" not in message, message
    result: dict[str, Any] = message["result"]
    return result


def test_no_keys_yet_is_503_not_401(setup: Setup) -> None:
    response = setup.while_issuer_down
    assert response.status_code == 503
    assert response.json()["error"] == "temporarily_unavailable"
    assert int(response.headers["retry-after"]) >= 1


def test_valid_token_accepted_soon_after_the_issuer_comes_up(setup: Setup) -> None:
    started, status = setup.warmup[-1]
    assert status == 200, setup.warmup
    assert all(status == 503 for _, status in setup.warmup[:-1]), setup.warmup
    starts = [0.0] + [start for start, _ in setup.warmup]
    longest_gap = max(later - earlier for earlier, later in itertools.pairwise(starts))
    assert started <= COLD_RETRY + longest_gap + TIMER_SLACK, setup.warmup


def test_no_token_is_401_with_json_body_and_challenge(setup: Setup) -> None:
    response = setup.post(None)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/json"
    assert response.json()["code"] == "missing_token"
    params = challenge(response)
    assert params["resource_metadata"] == (
        setup.server_url + "/.well-known/oauth-protected-resource/mcp"
    )


BAD_TOKENS: dict[str, tuple[Callable[[Setup], str], str]] = {
    "wrong_audience": (lambda s: s.issuer.mint(audience=s.server_url), "invalid_audience"),
    "missing_audience": (lambda s: s.issuer.mint_without_audience(), "missing_claim"),
    "expired": (lambda s: s.issuer.mint_expired(audience=s.mcp_url), "expired"),
    "untrusted_signature": (
        lambda s: s.issuer.mint_untrusted(audience=s.mcp_url),
        "invalid_signature",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_TOKENS))
def test_invalid_token_is_401(setup: Setup, case: str) -> None:
    mint, code = BAD_TOKENS[case]
    response = setup.post(mint(setup))
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["error"] == "invalid_token"
    assert body["code"] == code
    params = challenge(response)
    assert params["error"] == "invalid_token"
    assert params["resource_metadata"].endswith("/.well-known/oauth-protected-resource/mcp")


def test_valid_token_initialize_and_list_tools(setup: Setup) -> None:
    token = setup.issuer.mint(audience=setup.mcp_url)
    response = setup.post(token)
    assert response.status_code == 200
    result = jsonrpc_result(response)
    assert result["protocolVersion"] == LATEST_HANDSHAKE_VERSION
    assert result["serverInfo"]["name"] == "mcp-oauth2 demo"
    session = {"Mcp-Session-Id": response.headers["mcp-session-id"]}
    protocol = {"Mcp-Protocol-Version": LATEST_HANDSHAKE_VERSION}
    headers = {"Authorization": f"Bearer {token}", "Accept": ACCEPT, **session, **protocol}
    initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    assert setup.http.post(setup.mcp_url, json=initialized, headers=headers).status_code == 202
    listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
    tools = setup.http.post(setup.mcp_url, json=listing, headers=headers)
    assert tools.status_code == 200
    assert {tool["name"] for tool in jsonrpc_result(tools)["tools"]} >= {"whoami", "echo"}


def test_metadata_leads_to_the_authorization_server(setup: Setup) -> None:
    params = challenge(setup.post(None))
    metadata = setup.http.get(params["resource_metadata"]).raise_for_status().json()
    assert metadata["resource"] == setup.mcp_url
    assert metadata["authorization_servers"] == [setup.issuer.issuer]
    issuer = metadata["authorization_servers"][0]
    assert issuer.startswith("http://127.0.0.1:")
    as_metadata = (
        setup.http.get(issuer + "/.well-known/oauth-authorization-server").raise_for_status().json()
    )
    assert as_metadata["issuer"] == issuer
    jwks = setup.http.get(as_metadata["jwks_uri"]).raise_for_status().json()
    assert {key["kid"] for key in jwks["keys"]} == set(setup.issuer.key_ids)
