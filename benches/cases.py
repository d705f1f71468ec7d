"""The one set of cases: the libraries under comparison, each reduced to ``validate(token)``.

Every entry does the whole job a resource server needs (signature, ``exp``, ``iss``, ``aud``) and
returns the subject; ``check_library`` proves that for each one before it is timed, with an
expired token, a wrong issuer, a wrong audience and a forged signature. The floor entry is the
bare signature check (``KeySet.verify_signature`` on a pre-split token), the least any validator
must do, as seen from Python.

Each ``validate`` is one Python function (a lambda or a small def) around the library's call, so
every case pays the same call overhead (the ``(harness) empty call`` row shows how much).
"""

from __future__ import annotations

import base64
import importlib.metadata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jwt
from joserfc import jwt as jose_jwt
from joserfc.jwk import KeySet as JoseKeySet

from mcp_oauth2.lowlevel import KeySet, TokenValidator
from mcp_oauth2.testing import LocalIssuer

try:
    import oxyjwt
except ImportError:  # pragma: no cover - depends on the environment
    oxyjwt = None  # type: ignore[assignment]
try:
    import ryjwt  # only published for Python >= 3.12
except ImportError:  # pragma: no cover - depends on the interpreter
    ryjwt = None

AUDIENCE = "https://mcp.example.com/mcp"
SUBJECT = "user-1"

# Case names; the report orders rows like this.
MCP_UNCACHED = "mcp-oauth2 (uncached)"
MCP_CACHED = "mcp-oauth2 (cached, same token)"
FLOOR = "floor: KeySet.verify_signature"
PYJWT = "PyJWT (pre-parsed key)"
PYJWKCLIENT = "PyJWT + PyJWKClient"
JOSERFC = "joserfc"
OXYJWT = "oxyjwt"
RYJWT = "ryjwt"
EMPTY = "(harness) empty call"
BASELINE = PYJWT
# Every case, in the order the report shows them.
ORDER = (MCP_CACHED, MCP_UNCACHED, FLOOR, RYJWT, OXYJWT, PYJWT, PYJWKCLIENT, JOSERFC, EMPTY)

Validate = Callable[[str], Any]


@dataclass
class Library:
    name: str
    validate: Validate
    # False for the verified-token cache: its repeat path is not a validation per call.
    uncached: bool = True
    # The floor checks only a signature (of the benchmark token, split beforehand).
    signature_only: bool = False
    bad_signature: Callable[[], bool] | None = None
    extra: dict[str, str] = field(default_factory=dict)


@dataclass
class Tokens:
    """The benchmark token and the invalid ones every library must reject."""

    good: str
    expired: str
    wrong_issuer: str
    wrong_audience: str
    bad_signature: str

    @classmethod
    def mint(cls, issuer: LocalIssuer, alg: str) -> Tokens:
        return cls(
            good=issuer.mint(algorithm=alg, expires_in=3600, scopes=["mcp:tools"]),
            expired=issuer.mint_expired(algorithm=alg),
            wrong_issuer=issuer.mint(
                algorithm=alg, expires_in=3600, claims={"iss": "https://evil.example.com"}
            ),
            wrong_audience=issuer.mint_for_audience(
                "https://other.example.com/mcp", algorithm=alg, expires_in=3600
            ),
            bad_signature=issuer.mint_untrusted(algorithm=alg, expires_in=3600),
        )


def session_tokens(issuer: LocalIssuer, count: int) -> list[str]:
    """``count`` distinct ES256 tokens (one per MCP session: its own ``sub`` and ``jti``), valid
    for an hour, with the claims every ``LocalIssuer`` token has (about 430 bytes each)."""
    return [
        issuer.mint(algorithm="ES256", subject=f"user-{n}", expires_in=3600, scopes=["mcp:tools"])
        for n in range(count)
    ]


def version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _split(token: str) -> tuple[bytes, bytes]:
    signing_input, _, signature = token.rpartition(".")
    return signing_input.encode("ascii"), _b64decode(signature)


def libraries(issuer: LocalIssuer, alg: str, tokens: Tokens) -> list[Library]:
    """Every library, set up once as a server would at start-up (keys parsed, policy built)."""
    jwks = issuer.jwks()
    own_key = next(k for k in jwks["keys"] if k["alg"] == alg)
    iss = issuer.issuer

    keys = KeySet.from_jwks(jwks)
    uncached = TokenValidator(iss, AUDIENCE, algorithms=[alg], cache_size=0)
    cached = TokenValidator(iss, AUDIENCE, algorithms=[alg])
    kid = own_key["kid"]
    message, signature = _split(tokens.good)
    forged_message, forged_signature = _split(tokens.bad_signature)

    found: list[Library] = [
        Library(MCP_UNCACHED, lambda t: uncached.validate(t, keys).subject),
        Library(MCP_CACHED, lambda t: cached.validate(t, keys).subject, uncached=False),
        Library(
            FLOOR,
            lambda t: keys.verify_signature(alg, message, signature, kid=kid),
            signature_only=True,
            bad_signature=lambda: keys.verify_signature(
                alg, forged_message, forged_signature, kid=kid
            ),
        ),
    ]

    # PyJWT's fastest path: the key object parsed once, every claim check it offers.
    public_key = jwt.PyJWK(own_key).key
    algorithms = [alg]
    found.append(
        Library(
            PYJWT,
            lambda t: jwt.decode(
                t, public_key, algorithms=algorithms, audience=AUDIENCE, issuer=iss
            )["sub"],
        )
    )

    # The usual PyJWT code against a JWKS URL (the key set cached by the client, 300 s).
    client = jwt.PyJWKClient(issuer.metadata()["jwks_uri"])

    def pyjwkclient(token: str) -> Any:
        signing_key = client.get_signing_key_from_jwt(token)
        return jwt.decode(
            token, signing_key.key, algorithms=algorithms, audience=AUDIENCE, issuer=iss
        )["sub"]

    found.append(Library(PYJWKCLIENT, pyjwkclient))

    # joserfc: decoding verifies the signature; the claims registry checks exp, iss and aud.
    jose_keys = JoseKeySet.import_key_set(jwks)  # type: ignore[arg-type]
    registry = jose_jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": iss},
        aud={"essential": True, "value": AUDIENCE},
        exp={"essential": True},
    )

    def joserfc(token: str) -> Any:
        claims = jose_jwt.decode(token, jose_keys, algorithms=algorithms).claims
        registry.validate(claims)
        return claims["sub"]

    found.append(Library(JOSERFC, joserfc))

    if oxyjwt is not None:
        oxy_key = oxyjwt.DecodingKey.from_jwk(own_key)
        found.append(
            Library(
                OXYJWT,
                lambda t: oxyjwt.decode(
                    t, oxy_key, algorithms=algorithms, audience=AUDIENCE, issuer=iss
                )["sub"],
            )
        )
    if ryjwt is not None:
        ry_key = ryjwt.PublicKey.from_jwks(jwks, algorithms=[alg], audience=AUDIENCE, issuer=iss)
        found.append(Library(RYJWT, lambda t: ry_key.decode(t)["sub"]))
    return found


def empty_call() -> Library:
    """A case that does nothing: the harness's own cost per call."""
    return Library(EMPTY, lambda t: t)


def check_library(library: Library, tokens: Tokens) -> dict[str, bool]:
    """Prove the library validates (signature, exp, iss, aud) and yields the subject.

    Returns which checks held; the caller asserts they all did.
    """
    if library.signature_only:
        assert library.bad_signature is not None
        return {
            "signature accepted": library.validate(tokens.good) is True,
            "forged signature rejected": library.bad_signature() is False,
        }
    results = {"subject returned": library.validate(tokens.good) == SUBJECT}
    for check, token in (
        ("expired rejected", tokens.expired),
        ("wrong iss rejected", tokens.wrong_issuer),
        ("wrong aud rejected", tokens.wrong_audience),
        ("forged signature rejected", tokens.bad_signature),
    ):
        try:
            library.validate(token)
        except Exception:  # every library has its own error classes
            results[check] = True
        else:
            results[check] = False
    # A second call of the good token (the cached case answers it from its cache).
    results["repeat returns subject"] = library.validate(tokens.good) == SUBJECT
    return results


VERSIONS = {
    "mcp-oauth2": "mcp-oauth2",
    "PyJWT": "pyjwt",
    "cryptography": "cryptography",
    "joserfc": "joserfc",
    "oxyjwt": "oxyjwt",
    "ryjwt": "ryjwt",
}


def versions() -> dict[str, str]:
    return {name: version(dist) for name, dist in VERSIONS.items()}
