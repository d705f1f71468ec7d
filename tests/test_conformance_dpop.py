"""The MCP conformance suite's server-side DPoP scenario (SEP-1932), reproduced.

The scenario (``auth/dpop-server-validation``, in review as pull request 395 of the conformance
repository) acts as a DPoP client against the MCP server: it mints a DPoP-bound token with its
own issuer key for the server's URL, POSTs ``initialize`` with ``Authorization: DPoP`` and a
proof, and records 23 checks: the valid request accepted (2xx); 15 malformed requests, a token
bound to another key, an ``iat`` 303 s in the past and in the future, an unsigned and an
HMAC-signed proof, and a token for another audience, each refused with 401 and a
``WWW-Authenticate: DPoP`` challenge (the Bearer-scheme case needs only a refusal); the 401
challenge itself; and, when the server asks for nonces, the nonce flow (the retry with the
server's nonce accepted, a wrong nonce refused with a DPoP challenge).

Here the demo server runs with ``dpop="required"`` for the suite's ``serverUrl``, its issuer
trusted, and every case is sent as the scenario sends it, the proofs made by the testing
client (``DPoPKey``), the unsigned and HMAC ones by hand. The module runs twice: without nonces
(the suite then skips the nonce check) and with them, where every probe carries the nonce it
was last given, as the scenario's does.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from demo import build_demo_app
from mcp_oauth2 import OAuth2Config
from mcp_oauth2.testing import AppServer, DPoPKey, LocalIssuer, bind_loopback, url_of
from test_conformance_setup import INITIALIZE

pytestmark = pytest.mark.timeout(60)

ACCEPT = "application/json, text/event-stream"
# A DPoP challenge at the start of the header or after a comma (RFC 9110 section 11.6.1).
DPOP_CHALLENGE = re.compile(r"(?:^|,)\s*dpop(?:\s|$|,)", re.IGNORECASE)


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(document: dict[str, Any]) -> str:
    return b64u(json.dumps(document, separators=(",", ":")).encode())


@dataclass
class Answer:
    status: int
    challenge: str
    nonce: str | None


@dataclass
class Scenario:
    """The scenario's client: its key, its token, and the nonce it holds."""

    issuer: LocalIssuer
    server_url: str
    http: httpx.Client
    key: DPoPKey
    token: str
    nonces: bool
    """Whether the server runs with ``dpop_nonce``."""
    nonce: str | None = None

    def send(self, authorization: str, proofs: str | list[str] | None) -> Answer:
        headers = [("Accept", ACCEPT), ("Authorization", authorization)]
        if isinstance(proofs, str):
            headers.append(("DPoP", proofs))
        elif proofs is not None:
            headers += [("DPoP", proof) for proof in proofs]
        response = self.http.post(self.server_url, json=INITIALIZE, headers=headers)
        challenge = ", ".join(response.headers.get_list("www-authenticate"))
        nonce = response.headers.get("dpop-nonce")
        if nonce:
            self.nonce = nonce  # the newest one wins (RFC 9449 section 8.2)
        return Answer(response.status_code, challenge, nonce)

    def proof(self, token: str | None = None, **options: Any) -> str:
        """A proof of the scenario's key for ``POST serverUrl`` with ``token`` (default the
        scenario's; None for none), the held nonce in it."""
        options.setdefault("nonce", self.nonce)
        return self.key.proof("POST", self.server_url, access_token=token, **options)

    def valid(self) -> str:
        return self.proof(self.token)

    def accept_valid(self) -> Answer:
        """The valid request, completing the nonce handshake if the server asks for one."""
        first = self.send(f"DPoP {self.token}", self.valid())
        if first.status == 401 and first.nonce and "use_dpop_nonce" in first.challenge:
            return self.send(f"DPoP {self.token}", self.valid())
        return first

    def crafted(self, alg: str, sign: Callable[[bytes], bytes]) -> str:
        """A proof under ``alg`` signed by ``sign``, not by the key (the unsigned and symmetric
        cases)."""
        header = {"typ": "dpop+jwt", "alg": alg, "jwk": self.key.public_jwk}
        claims: dict[str, Any] = {
            "jti": b64u(os.urandom(16)),
            "htm": "POST",
            "htu": self.server_url,
            "iat": int(time.time()),
            "ath": b64u(hashlib.sha256(self.token.encode()).digest()),
        }
        if self.nonce:
            claims["nonce"] = self.nonce
        signing_input = f"{segment(header)}.{segment(claims)}"
        return f"{signing_input}.{b64u(sign(signing_input.encode()))}"


def tampered(proof: str) -> str:
    """The proof with its signature's first character changed (all six of its bits count)."""
    head, signature = proof.rsplit(".", 1)
    return f"{head}.{'B' if signature[0] == 'A' else 'A'}{signature[1:]}"


@pytest.fixture(scope="module", params=[False, True], ids=["without-nonce", "with-nonce"])
def scenario(request: pytest.FixtureRequest) -> Iterator[Scenario]:
    issuer = LocalIssuer(algorithms=("ES256",))
    with issuer.serve():
        sock = bind_loopback()
        server_url = url_of(sock) + "/mcp"
        settings: dict[str, Any] = {
            "issuer": [issuer.issuer],
            "audience": [server_url],
            "dpop": "required",
            "dpop_nonce": request.param,
        }
        app = build_demo_app(OAuth2Config.model_validate(settings), json_response=True)
        with AppServer(app, sock), httpx.Client(timeout=20) as http:
            key = DPoPKey()
            token = issuer.mint(audience=server_url, algorithm="ES256", jkt=key.thumbprint)
            yield Scenario(issuer, server_url, http, key, token, nonces=request.param)


def properly_rejected(answer: Answer) -> bool:
    """401 with a DPoP challenge, and not a nonce challenge (which the scenario cannot pin on
    the defect and reports untestable)."""
    return (
        answer.status == 401
        and DPOP_CHALLENGE.search(answer.challenge) is not None
        and "use_dpop_nonce" not in answer.challenge
    )


def test_accepts_valid_proof(scenario: Scenario) -> None:
    """sep-1932-server-validate-proof / AcceptsValidProof (which gates every check below)."""
    assert 200 <= scenario.accept_valid().status < 300


def test_fresh_jti_per_request_each_accepted(scenario: Scenario) -> None:
    """Every request with a fresh proof is accepted (the same proof again is not: see
    tests/test_dpop.py)."""
    for _ in range(3):
        assert scenario.accept_valid().status == 200


# (name, how the request is made): each must be refused with 401 and a DPoP challenge.
NEGATIVES: dict[str, Callable[[Scenario], tuple[str, str | list[str]]]] = {
    "RejectsTamperedSignature": lambda s: (f"DPoP {s.token}", tampered(s.valid())),
    "RejectsMissingJti": lambda s: (f"DPoP {s.token}", s.proof(s.token, claims={"jti": None})),
    "RejectsWrongTyp": lambda s: (f"DPoP {s.token}", s.proof(s.token, headers={"typ": "jwt"})),
    "RejectsHtuMismatch": lambda s: (
        f"DPoP {s.token}",
        s.proof(s.token, claims={"htu": "https://wrong.example.com/mcp"}),
    ),
    "RejectsHtmMismatch": lambda s: (f"DPoP {s.token}", s.proof(s.token, claims={"htm": "GET"})),
    "RejectsPrivateKeyInJwk": lambda s: (
        f"DPoP {s.token}",
        s.proof(s.token, headers={"jwk": s.key.private_jwk()}),
    ),
    "RejectsWrongAth": lambda s: (
        f"DPoP {s.token}",
        s.proof(s.token, claims={"ath": "not-the-right-hash"}),
    ),
    "RejectsDuplicateDpopHeader": lambda s: (f"DPoP {s.token}", [s.valid(), s.valid()]),
    "RejectsMissingHtm": lambda s: (f"DPoP {s.token}", s.proof(s.token, claims={"htm": None})),
    "RejectsMissingHtu": lambda s: (f"DPoP {s.token}", s.proof(s.token, claims={"htu": None})),
    "RejectsMissingIat": lambda s: (f"DPoP {s.token}", s.proof(s.token, claims={"iat": None})),
    "RejectsMissingJwk": lambda s: (f"DPoP {s.token}", s.proof(s.token, headers={"jwk": None})),
    "RejectsAthAbsent": lambda s: (f"DPoP {s.token}", s.proof(None)),
    "RejectsMalformedProof": lambda s: (f"DPoP {s.token}", "this-is-not-a-jwt"),
    "RejectsStaleIat": lambda s: (
        f"DPoP {s.token}",
        s.proof(s.token, issued_at=int(time.time()) - 303),
    ),
    "RejectsFutureIat": lambda s: (
        f"DPoP {s.token}",
        s.proof(s.token, issued_at=int(time.time()) + 303),
    ),
    "RejectsAlgNone": lambda s: (f"DPoP {s.token}", s.crafted("none", lambda _: b"")),
    "RejectsAlgSymmetric": lambda s: (
        f"DPoP {s.token}",
        s.crafted("HS256", lambda data: hmac.new(os.urandom(32), data, "sha256").digest()),
    ),
}


@pytest.mark.parametrize("name", NEGATIVES)
def test_rejects(scenario: Scenario, name: str) -> None:
    """sep-1932-server-validate-proof, -iat-window and -asymmetric-alg-only: 401 and a DPoP
    challenge for each defect, once the baseline is accepted."""
    assert scenario.accept_valid().status == 200
    authorization, proofs = NEGATIVES[name](scenario)
    answer = scenario.send(authorization, proofs)
    assert properly_rejected(answer), answer
    assert 'error="invalid_dpop_proof"' in answer.challenge, answer


def test_rejects_bearer_scheme(scenario: Scenario) -> None:
    """RejectsBearerScheme: a DPoP-bound token under the Bearer scheme is not accepted (any
    refusal passes the suite's check; here 401 with a DPoP challenge)."""
    answer = scenario.send(f"Bearer {scenario.token}", scenario.valid())
    assert properly_rejected(answer), answer


def test_rejects_cnf_jkt_mismatch(scenario: Scenario) -> None:
    """RejectsCnfJktMismatch: a token bound to another key, with a proof by the client's."""
    other = scenario.issuer.mint(
        audience=scenario.server_url, algorithm="ES256", jkt=DPoPKey().thumbprint
    )
    answer = scenario.send(f"DPoP {other}", scenario.proof(other))
    assert properly_rejected(answer), answer


def test_rejects_wrong_audience(scenario: Scenario) -> None:
    """sep-1932-server-audience-validation: a token for another server, with a valid proof."""
    elsewhere = scenario.issuer.mint(
        audience="https://not-this-server.example.com/mcp",
        algorithm="ES256",
        jkt=scenario.key.thumbprint,
    )
    answer = scenario.send(f"DPoP {elsewhere}", scenario.proof(elsewhere))
    assert properly_rejected(answer), answer
    assert 'error="invalid_token"' in answer.challenge


def test_rejects_with_401_challenge(scenario: Scenario) -> None:
    """sep-1932-server-reject-401: a refused proof gets 401 and ``WWW-Authenticate: DPoP`` with
    the algorithms (RFC 9449 section 7.1)."""
    answer = scenario.send(f"DPoP {scenario.token}", tampered(scenario.valid()))
    assert properly_rejected(answer), answer
    assert answer.challenge.startswith('DPoP algs="ES256 ES384 RS256 PS256 EdDSA"')


def test_nonce_flow(scenario: Scenario) -> None:
    """sep-1932-server-nonce: without nonces the suite skips it; with them, a proof without one
    gets 401 ``use_dpop_nonce`` and a ``DPoP-Nonce``, the retry with it is accepted, and a wrong
    nonce is refused with a DPoP challenge."""
    first = scenario.send(f"DPoP {scenario.token}", scenario.proof(scenario.token, nonce=None))
    requires_nonce = first.status == 401 and "use_dpop_nonce" in first.challenge
    assert requires_nonce == scenario.nonces
    if not requires_nonce:
        assert first.status == 200
        return
    assert first.nonce
    retry = scenario.send(f"DPoP {scenario.token}", scenario.proof(scenario.token))
    assert retry.status == 200
    wrong = scenario.send(
        f"DPoP {scenario.token}",
        scenario.proof(scenario.token, nonce="definitely-not-the-server-nonce"),
    )
    assert wrong.status == 401 and DPOP_CHALLENGE.search(wrong.challenge)
