"""KeySet: parsing a JWKS once, skipping unusable keys with reasons, and sharing across threads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from mcp_oauth2.errors import JWKSError
from mcp_oauth2.lowlevel import KeySet
from token_factory import (
    NOW,
    b64u,
    default_validator,
    jwks_for,
    make_claims,
    mint,
    private_key,
    public_jwk,
)


def test_accepts_dict_str_and_bytes() -> None:
    document = jwks_for(["rsa-1", "ec-256"])
    for form in (document, json.dumps(document), json.dumps(document).encode()):
        keys = KeySet.from_jwks(form)
        assert len(keys) == 2
        assert keys.key_ids == ("rsa-1", "ec-256")
        assert "rsa-1" in keys and "nope" not in keys and 3 not in keys
        assert keys.skipped == ()


def test_rejects_non_documents() -> None:
    for bad in (None, 3, ["keys"]):
        with pytest.raises(TypeError):
            KeySet.from_jwks(bad)  # type: ignore[arg-type]
    for text in ("", "<html>oops</html>", "[]", '{"keys": {}}', '{"kid": "x"}', '{"keys": []}'):
        with pytest.raises(JWKSError):
            KeySet.from_jwks(text)


def _rsa_jwk(bits: int, kid: str) -> dict[str, str]:
    return public_jwk(rsa.generate_private_key(public_exponent=65537, key_size=bits), kid)


def _unusable_keys() -> list[tuple[dict[str, Any], str]]:
    ec_jwk = public_jwk(private_key("ec-256"), "ec")
    cases: list[tuple[dict[str, Any], str]] = [
        ({"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"}, "symmetric"),
        ({**ec_jwk, "kid": "priv", "d": "AAAA"}, "private"),
        ({**ec_jwk, "kid": "enc", "use": "enc"}, "'use'"),
        ({**ec_jwk, "kid": "ops", "key_ops": ["sign"]}, "verify"),
        (_rsa_jwk(1024, "small"), "1024 bits"),
        ({"kty": "EC", "crv": "P-192", "x": "AA", "y": "AA", "kid": "crv"}, "curve"),
        ({"kty": "OKP", "crv": "X25519", "x": b64u(bytes(32)), "kid": "x25519"}, "Ed25519"),
        ({"kty": "DSA", "kid": "dsa"}, "kty"),
        ({**ec_jwk, "kid": "short", "x": b64u(bytes(31))}, "32 bytes"),
        ({**ec_jwk, "kid": "pad", "x": ec_jwk["x"] + "="}, "base64url"),
        ({**ec_jwk, "kid": "alg", "alg": "RS256"}, "does not fit"),
        ({"kty": "RSA", "kid": "no-n", "e": "AQAB"}, "'n' is missing"),
    ]
    return cases


def test_unusable_keys_are_skipped_with_reasons() -> None:
    cases = _unusable_keys()
    good = public_jwk(private_key("rsa-1"), "good")
    keys = KeySet.from_jwks({"keys": [good] + [jwk for jwk, _ in cases]})
    assert keys.key_ids == ("good",)
    assert len(keys.skipped) == len(cases)
    for reason, (jwk, needle) in zip(keys.skipped, cases, strict=True):
        assert needle in reason, (jwk["kid"], reason)
        assert f'"{jwk["kid"]}"' in reason


def test_reasons_never_contain_key_material() -> None:
    ec_jwk = public_jwk(private_key("ec-256"), "priv")
    secret = {**ec_jwk, "d": "SECRETSECRETSECRET"}
    keys = KeySet.from_jwks({"keys": [public_jwk(private_key("rsa-1"), "ok"), secret]})
    assert "SECRET" not in " ".join(keys.skipped) and ec_jwk["x"] not in " ".join(keys.skipped)
    assert "SECRET" not in repr(keys)


def test_zero_usable_keys_raise_with_every_reason() -> None:
    cases = _unusable_keys()
    with pytest.raises(JWKSError) as caught:
        KeySet.from_jwks({"keys": [jwk for jwk, _ in cases]})
    assert len(caught.value.reasons) == len(cases)
    assert f"none of the {len(cases)} keys" in str(caught.value)
    assert caught.value.code == "jwks_invalid"


def test_keysets_are_immutable() -> None:
    keys = KeySet.from_jwks(jwks_for(["rsa-1"]))
    with pytest.raises(AttributeError):
        keys.key_ids = ("x",)  # type: ignore[misc]
    with pytest.raises((AttributeError, TypeError)):
        keys.extra = 1  # type: ignore[attr-defined]


def test_fingerprint_tracks_the_usable_keys() -> None:
    a = KeySet.from_jwks(jwks_for(["rsa-1", "ec-256"]))
    same = KeySet.from_jwks(json.dumps(jwks_for(["rsa-1", "ec-256"])))
    rotated = KeySet.from_jwks(jwks_for(["rsa-1", "ec-384"]))
    with_junk = KeySet.from_jwks(
        {"keys": [*jwks_for(["rsa-1", "ec-256"])["keys"], {"kty": "oct", "k": "AA"}]}
    )
    assert len(a.fingerprint) == 32
    assert a.fingerprint == same.fingerprint == with_junk.fingerprint
    assert a.fingerprint != rotated.fingerprint


def test_a_key_without_use_or_with_sig_is_usable() -> None:
    bare = public_jwk(private_key("ec-256"), "bare", use=None)
    assert "use" not in bare
    keys = KeySet.from_jwks({"keys": [bare, public_jwk(private_key("ec-384"), "sig")]})
    assert keys.key_ids == ("bare", "sig")


def test_more_than_a_hundred_keys_are_cut_with_one_reason() -> None:
    jwk = public_jwk(private_key("ec-256"))
    keys = KeySet.from_jwks({"keys": [{**jwk, "kid": f"k{i}"} for i in range(150)]})
    assert len(keys) == 100
    assert keys.skipped == ("50 more entries beyond the first 100 were not read",)


def test_junk_entries_beyond_the_limit_give_one_summary_reason() -> None:
    # One key and 32,000 junk entries: the first 100 entries are read (99 reasons), the rest are
    # counted, not parsed, and summed up in one reason.
    key = json.dumps(public_jwk(private_key("ec-256"), "real"))
    text = '{"keys": [' + key + ', {"kty": "junk"}' * 32_000 + "]}"
    keys = KeySet.from_jwks(text)
    assert keys.key_ids == ("real",)
    assert len(keys.skipped) == 100
    assert all("kty is not one of" in reason for reason in keys.skipped[:99])
    assert keys.skipped[-1] == "31901 more entries beyond the first 100 were not read"
    with pytest.raises(JWKSError) as caught:
        KeySet.from_jwks('{"keys": [' + ", ".join(['{"kty": "junk"}'] * 5_000) + "]}")
    assert len(caught.value.reasons) == 101
    assert caught.value.reasons[-1] == "4900 more entries beyond the first 100 were not read"
    assert "none of the 5000 keys" in caught.value.detail


def test_entries_beyond_the_limit_are_not_built_in_memory() -> None:
    # Run in a fresh interpreter so that its peak resident memory belongs to this parse alone.
    # 300,000 entries of 20 bytes: parsed into values they would take a few hundred MB.
    script = textwrap.dedent(
        """
        import json, resource
        from mcp_oauth2.lowlevel import KeySet
        from token_factory import private_key, public_jwk

        key = json.dumps(public_jwk(private_key("ec-256"), "real"))
        text = '{"keys": [' + key + ', {"kty": "junk", "n": 1}' * 300_000 + ']}'
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        keys = KeySet.from_jwks(text)
        grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
        print(len(keys.skipped), grown)
        """
    )
    tests = Path(__file__).parent
    env = {**os.environ, "PYTHONPATH": str(tests)}
    out = subprocess.run(  # noqa: S603 - our interpreter and our script
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, env=env
    ).stdout.split()
    reasons, grown_kib = int(out[0]), int(out[1])
    assert reasons == 100
    assert grown_kib < 40_000, f"parsing grew resident memory by {grown_kib} KiB"


@pytest.mark.parametrize(
    ("kid", "alg", "reason"),
    [
        ("rsa-1", "ES256", "'alg' ES256 does not fit an RSA key"),
        ("rsa-1", "ES512", "'alg' ES512 does not fit an RSA key"),
        ("rsa-1", "EdDSA", "'alg' EdDSA does not fit an RSA key"),
        ("ec-256", "RS256", "'alg' RS256 does not fit a P-256 EC key"),
        ("ec-256", "ES384", "'alg' ES384 does not fit a P-256 EC key"),
        ("ec-256", "EdDSA", "'alg' EdDSA does not fit a P-256 EC key"),
        ("ed25519", "RS256", "'alg' RS256 does not fit an Ed25519 key"),
        ("ed25519", "ES256", "'alg' ES256 does not fit an Ed25519 key"),
    ],
)
def test_a_jwk_alg_that_does_not_fit_the_key_is_skipped(kid: str, alg: str, reason: str) -> None:
    # The key type is checked before the JWK's own `alg` selects anything for it.
    misfit = public_jwk(private_key(kid), "misfit", alg=alg)
    keys = KeySet.from_jwks({"keys": [public_jwk(private_key("ec-384"), "ok"), misfit]})
    assert keys.key_ids == ("ok",)
    assert keys.skipped == (f'key 1 (kid "misfit"): {reason}',)


def test_shared_between_threads() -> None:
    keys = KeySet.from_jwks(jwks_for(["rsa-1", "ec-256", "ed25519"]))
    validator = default_validator()
    tokens = [
        mint(alg, make_claims(sub=f"user-{i}"))
        for i, alg in enumerate(["RS256", "PS256", "ES256", "EdDSA"] * 25)
    ]

    def check(index: int) -> str | None:
        return validator.validate(tokens[index], keys, now=NOW).subject

    with ThreadPoolExecutor(max_workers=8) as pool:
        subjects = list(pool.map(check, range(len(tokens))))
    assert subjects == [f"user-{i}" for i in range(len(tokens))]


def test_verify_signature_low_level() -> None:
    keys = KeySet.from_jwks(jwks_for(["ec-256"]))
    token = mint("ES256", make_claims())
    signing_input, _, sig = token.rpartition(".")
    from token_factory import b64u_decode

    raw = b64u_decode(sig)
    assert keys.verify_signature("ES256", signing_input.encode(), raw) is True
    assert keys.verify_signature("ES256", signing_input.encode(), raw, kid="ec-256") is True
    assert keys.verify_signature("ES256", signing_input.encode() + b"x", raw) is False
    from mcp_oauth2.errors import (
        AlgorithmNotAllowedError,
        KeyNotFoundError,
        UnsupportedAlgorithmError,
    )

    with pytest.raises(KeyNotFoundError):
        keys.verify_signature("ES256", b"m", raw, kid="other")
    with pytest.raises(AlgorithmNotAllowedError):
        keys.verify_signature("HS256", b"m", raw)
    with pytest.raises(UnsupportedAlgorithmError):
        keys.verify_signature("XX256", b"m", raw)
