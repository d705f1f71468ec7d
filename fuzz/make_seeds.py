"""Writes the fuzzing seed corpus: fuzz/keys.json and fuzz/seeds/<target>/.

Run from the repository root with the development environment: ``.venv/bin/python
fuzz/make_seeds.py``. It makes fresh keys, so it rewrites keys.json (the fixed key set of the
``token`` target, public keys only) together with every seed token signed by them. Token seeds are
named ``<code>-<what>``; ``cargo test`` replays them and checks that each one validates (``ok``)
or fails with that code under the harness's lenient policy at its fixed clock.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from jwt.algorithms import get_default_algorithms

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from token_factory import b64u, b64u_decode, public_jwk  # noqa: E402

FUZZ = ROOT / "fuzz"
SEEDS = FUZZ / "seeds"
# The harness's clock and policy (rust/src/fuzzing.rs).
NOW = 1_800_000_000
ISSUER = "https://auth.example.com"
AUDIENCE = "https://mcp.example.com/mcp"
JWA = get_default_algorithms()

KEYS: dict[str, Any] = {
    "rsa": rsa.generate_private_key(public_exponent=65537, key_size=2048),
    "ps": rsa.generate_private_key(public_exponent=65537, key_size=3072),
    "ec-256": ec.generate_private_key(ec.SECP256R1()),
    "ec-256b": ec.generate_private_key(ec.SECP256R1()),
    "ec-384": ec.generate_private_key(ec.SECP384R1()),
    "ec-521": ec.generate_private_key(ec.SECP521R1()),
    "ed": ed25519.Ed25519PrivateKey.generate(),
}


def jwks() -> dict[str, Any]:
    return {
        "keys": [
            public_jwk(KEYS["rsa"], "rsa"),
            public_jwk(KEYS["ps"], "ps", alg="PS384"),
            public_jwk(KEYS["ec-256"], "ec-256"),
            public_jwk(KEYS["ec-256b"], "ec-256b"),
            public_jwk(KEYS["ec-384"], None),  # no kid: the only P-384 key
            public_jwk(KEYS["ec-521"], "ec-521", alg="ES512"),
            public_jwk(KEYS["ed"], "ed"),
        ]
    }


def claims(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "user-1",
        "client_id": "client-1",
        "scope": "mcp:tools read",
        "iat": NOW - 60,
        "nbf": NOW - 60,
        "exp": NOW + 3600,
        "jti": "token-1",
        "tenant": "t1",
    }
    base.update(changes)
    return {name: value for name, value in base.items() if value is not ...}


def raw(alg: str, header: bytes | dict[str, Any], payload: bytes | dict[str, Any], kid: str) -> str:
    """A compact JWS over exactly these bytes, signed with key ``kid``."""
    if isinstance(header, dict):
        header = json.dumps(header, separators=(",", ":")).encode()
    if isinstance(payload, dict):
        payload = json.dumps(payload, separators=(",", ":")).encode()
    signing_input = f"{b64u(header)}.{b64u(payload)}"
    signature = JWA[alg].sign(signing_input.encode(), KEYS[kid])
    return f"{signing_input}.{b64u(signature)}"


def mint(alg: str, key: str, payload: dict[str, Any], **header: Any) -> str:
    """A token signed with ``key``; the header names it in ``kid`` unless ``header`` says
    otherwise (None removes a member)."""
    fields = {"kid": key, "typ": "at+jwt", **header}
    if fields["kid"] is None:
        del fields["kid"]
    return jwt.encode(payload, KEYS[key], algorithm=alg, headers=fields)


def token_seeds() -> dict[str, str]:
    seeds: dict[str, str] = {}
    for alg in ("RS256", "RS384", "RS512", "PS256", "PS512"):
        seeds[f"ok-{alg}"] = mint(alg, "rsa", claims())
    seeds["ok-PS384-own-alg"] = mint("PS384", "ps", claims())
    seeds["ok-ES256"] = mint("ES256", "ec-256", claims())
    seeds["ok-ES384-no-kid"] = mint("ES384", "ec-384", claims(), kid=None)
    seeds["ok-ES512"] = mint("ES512", "ec-521", claims())
    seeds["ok-EdDSA"] = mint("EdDSA", "ed", claims())
    seeds["ok-EdDSA-nested"] = mint(
        "EdDSA",
        "ed",
        claims(
            aud=["https://other.example.com", AUDIENCE],
            scp=["mcp:admin", "x"],
            realm_access={"roles": ["a", "b"], "n": [1, 2.5, -0.0, True, None, {"k": "v"}]},
            azp="spa",
            big=2**64,
            unicode="Zoë 🔑 \u0000",
        ),
    )
    seeds["ok-ES256-minimal"] = mint(
        "ES256", "ec-256", {"iss": ISSUER, "aud": AUDIENCE, "sub": "u", "exp": NOW + 1}, typ=None
    )
    seeds["expired-ES256"] = mint("ES256", "ec-256", claims(exp=NOW - 3600))
    seeds["not_yet_valid-EdDSA"] = mint("EdDSA", "ed", claims(nbf=NOW + 3600))
    seeds["issued_in_future-ES256"] = mint("ES256", "ec-256", claims(iat=NOW + 3600))
    seeds["invalid_issuer-RS256"] = mint("RS256", "rsa", claims(iss=ISSUER + "/"))
    seeds["invalid_audience-ES256"] = mint("ES256", "ec-256", claims(aud=["https://x"]))
    seeds["missing_claim-sub"] = mint("ES256", "ec-256", claims(sub=...))
    seeds["missing_claim-exp"] = mint("EdDSA", "ed", claims(exp=...))
    seeds["invalid_claim-sub-null"] = raw(
        "ES256", {"alg": "ES256", "kid": "ec-256"}, claims(sub=None), "ec-256"
    )
    seeds["invalid_claim-scope-list"] = mint("ES256", "ec-256", claims(scope=["a"]))
    seeds["invalid_claim-exp-string"] = mint("ES256", "ec-256", claims(exp="1800003600"))
    seeds["invalid_claim-aud-number"] = mint("ES256", "ec-256", claims(aud=[AUDIENCE, 7]))
    seeds["invalid_claim-jti-null"] = raw(
        "EdDSA", {"alg": "EdDSA", "kid": "ed"}, claims(jti=None), "ed"
    )
    payload = json.dumps(claims(), separators=(",", ":"))
    seeds["malformed-duplicate-aud"] = raw(
        "ES256",
        {"alg": "ES256", "kid": "ec-256"},
        (payload[:-1] + ',"aud":"https://evil"}').encode(),
        "ec-256",
    )
    seeds["malformed-duplicate-header"] = raw(
        "ES256", b'{"alg":"ES256","kid":"ec-256","kid":"ed"}', claims(), "ec-256"
    )
    seeds["malformed-crit"] = raw(
        "ES256", {"alg": "ES256", "kid": "ec-256", "crit": ["exp"]}, claims(), "ec-256"
    )
    seeds["malformed-deep"] = raw(
        "ES256",
        {"alg": "ES256", "kid": "ec-256"},
        (payload[:-1] + ',"x":' + "[" * 200 + "]" * 200 + "}").encode(),
        "ec-256",
    )
    seeds["malformed-huge-number"] = raw(
        "ES256",
        {"alg": "ES256", "kid": "ec-256"},
        (payload[:-1] + ',"n":1e400}').encode(),
        "ec-256",
    )
    good = seeds["ok-ES256"]
    head, body, sig = good.split(".")
    seeds["malformed-padding"] = f"{head}.{body}.{sig}=="
    seeds["malformed-jwe"] = f"{head}.{body}.{sig}.{sig}.{sig}"
    seeds["malformed-empty-segment"] = f"{head}..{sig}"
    signature = JWA["ES256"].sign(f"{head}.{body}".encode(), KEYS["ec-256"])
    der = encode_dss_signature(
        int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    )
    seeds["invalid_signature-der"] = f"{head}.{body}.{b64u(der)}"
    zero_r = b64u(bytes(32) + b"\x01" * 32)
    seeds["invalid_signature-zero-r"] = f"{head}.{body}.{zero_r}"
    seeds["key_not_found-unknown-kid"] = mint("ES256", "ec-256", claims(), kid="rotated-away")
    seeds["key_not_found-ambiguous"] = mint("ES256", "ec-256", claims(), kid=None)
    seeds["key_not_found-wrong-alg"] = mint("PS256", "ps", claims())
    none_header = b64u(b'{"alg":"none"}')
    seeds["algorithm_not_allowed-none"] = f"{none_header}.{b64u(payload.encode())}.c2ln"
    seeds["unsupported_algorithm-ES256K"] = raw(
        "ES256", {"alg": "ES256K", "kid": "ec-256"}, claims(), "ec-256"
    )
    return seeds


def jwks_seeds() -> dict[str, bytes]:
    document = jwks()
    ec_key = document["keys"][2]
    rsa_key = document["keys"][0]
    seeds: dict[str, Any] = {
        "harness-keys": document,
        "one-ec": {"keys": [ec_key]},
        "one-rsa-with-alg": {"keys": [{**rsa_key, "alg": "RS512"}]},
        "private-member": {"keys": [{**ec_key, "d": "AAAA"}]},
        "oct": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}, ec_key]},
        "use-enc": {"keys": [{**ec_key, "use": "enc"}, rsa_key]},
        "key-ops": {"keys": [{**ec_key, "key_ops": ["verify"]}, {**rsa_key, "key_ops": ["sign"]}]},
        "alg-misfit": {"keys": [{**rsa_key, "alg": "ES256"}, {**ec_key, "alg": "EdDSA"}]},
        "off-curve": {"keys": [{**ec_key, "y": b64u(bytes(31) + b"\x01")}]},
        "short-coordinate": {"keys": [{**ec_key, "x": b64u(bytes(31))}]},
        "small-rsa": {"keys": [{"kty": "RSA", "n": b64u(b"\xff" * 128), "e": "AQAB"}]},
        "okp-x25519": {"keys": [{"kty": "OKP", "crv": "X25519", "x": b64u(bytes(32))}]},
        "not-objects": {"keys": [1, "x", None, [], ec_key]},
        "many-entries": {"keys": [ec_key] + [{"kty": "x"}] * 120},
        "empty": {"keys": []},
        "no-keys": {"other": 1},
        "extra-members": {"x": {"y": [1, 2]}, "keys": [ec_key], "z": None},
    }
    out = {name: json.dumps(value).encode() for name, value in seeds.items()}
    text = json.dumps({"keys": [ec_key]})
    out["duplicate-keys"] = (text[:-1] + ', "keys": []}').encode()
    out["duplicate-in-jwk"] = (
        json.dumps({"keys": [ec_key]}).replace('"kty"', '"kty": "EC", "kty"', 1).encode()
    )
    out["not-json"] = b"<html>oops</html>"
    out["deep-unread"] = b'{"keys": [], "x": ' + b"[" * 300 + b"]" * 300 + b"}"
    for path in sorted((ROOT / "tests/vectors/rfc").glob("*.json")):
        vector = json.loads(path.read_text())
        out[f"rfc-{path.stem}"] = json.dumps({"keys": [vector["jwk"]]}).encode()
    return out


def json_seeds(tokens: dict[str, str]) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for name in ("ok-EdDSA-nested", "ok-RS256", "malformed-duplicate-aud", "malformed-deep"):
        head, body, _ = tokens[name].split(".")
        out[f"{name}-payload"] = b64u_decode(body)
        out[f"{name}-header"] = b64u_decode(head)
    texts = {
        "empty-object": "{}",
        "numbers": '{"a": 0, "b": -0.0, "c": 1e308, "d": 18446744073709551616, '
        '"e": -9223372036854775809, "f": 5e-324, "g": 1.1579208923731604e77}',
        "huge-number": '{"n": 1e400}',
        "escapes": '{"s": "\\u0000\\ud83d\\udd11\\n\\"\\\\\\/", "t": "\\u00e9"}',
        "lone-surrogate": '{"s": "\\ud800"}',
        "duplicate-nested": '{"x": [{"k": 1, "k": 2}]}',
        "deep": '{"x": ' + "[" * 127 + "]" * 127 + "}",
        "too-deep": '{"x": ' + "[" * 129 + "]" * 129 + "}",
        "array": "[1, 2]",
        "string": '"text"',
        "trailing": '{"a": 1} x',
        "trailing-comma": '{"a": 1,}',
        "bom": "\ufeff{}",
        "whitespace": ' \t\r\n{ "a" : [ 1 , { } ] } \n',
    }
    out.update({name: text.encode() for name, text in texts.items()})
    out["invalid-utf8"] = b'{"a": "\xff"}'
    return out


def base64url_seeds(tokens: dict[str, str]) -> dict[str, bytes]:
    head, body, sig = tokens["ok-ES512"].split(".")
    out = {
        "header": head,
        "payload": body,
        "signature": sig,
        "aqab": "AQAB",
        "empty": "",
        "one-char": "A",
        "two-chars": "AR",
        "padding": "AQ==",
        "plus-slash": "AQ+/",
        "trailing-bits": sig[:-1] + "B",
        "whitespace": "AQ AB",
    }
    return {name: text.encode() for name, text in out.items()}


def authorization_seeds(tokens: dict[str, str]) -> dict[str, bytes]:
    """``Authorization`` header values: Bearer tokens of each shape, other schemes, and the
    broken credentials RFC 6750 section 2.1 refuses."""
    jwt = tokens["ok-ES256"]
    out = {
        "bearer-jwt": f"Bearer {jwt}",
        "bearer-jwe": f"Bearer {tokens['malformed-jwe']}",
        "bearer-none-alg": f"Bearer {tokens['algorithm_not_allowed-none']}",
        "bearer-opaque": "Bearer 2YotnFZFEjr1zCsicMWpAA",
        "bearer-padded": "Bearer mF_9.B5f-4.1JqM==",
        "bearer-alphabet": "Bearer AZaz09-._~+/=",
        "lower-case": f"bearer {jwt}",
        "mixed-case-spaces": f" \t BeArEr    {jwt}   \r\n",
        "vertical-tab": f"\x0bBearer {jwt}\x0c",
        "basic": "Basic dXNlcjpwYXNzd29yZA==",
        "dpop": f"DPoP {jwt}",
        "scheme-only": "Bearer",
        "scheme-spaces": "Bearer    ",
        "scheme-colon": "Bearer:abc",
        "scheme-tab": "Bearer\tabc",
        "two-tokens": "Bearer abc def",
        "comma": "Bearer a,b",
        "quoted": 'Bearer "abc"',
        "only-padding": "Bearer ==",
        "inner-padding": "Bearer a=b",
        "empty": "",
        "blank": " \t\r\n",
    }
    encoded = {name: text.encode() for name, text in out.items()}
    encoded["latin1"] = b"Bearer caf\xe9"
    encoded["utf8"] = "Bearer café".encode()
    encoded["nul"] = b"Bearer a\x00b"
    return encoded


def write(target: str, seeds: dict[str, bytes]) -> None:
    folder = SEEDS / target
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for name, data in seeds.items():
        (folder / name).write_bytes(data)


def main() -> None:
    (FUZZ / "keys.json").write_text(json.dumps(jwks(), indent=1) + "\n")
    tokens = token_seeds()
    write("token", {name: token.encode() for name, token in tokens.items()})
    write("jwks", jwks_seeds())
    write("json", json_seeds(tokens))
    write("base64url", base64url_seeds(tokens))
    write("authorization", authorization_seeds(tokens))


if __name__ == "__main__":
    main()
