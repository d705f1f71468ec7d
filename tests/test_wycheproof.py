"""Project Wycheproof signature vectors against ``KeySet.verify_signature``.

One test per vector file; every vector in it is checked and all failures are reported together.
The vectors exercise the signature primitive (``msg`` stands in for the JWS signing input), with
each group's public key loaded through ``KeySet.from_jwks`` as a one-key JWKS.

Rules (see ``vectors/wycheproof/README.md``):

- ``valid`` vectors verify (``True``); high-S ECDSA signatures are valid and must verify.
- ``invalid`` vectors are rejected: ``False``, or a ``TokenValidationError`` (for example a
  signature of impossible length).
- ``acceptable`` vectors (only RSA PKCS#1 ``MissingNull``) are rejected too: strict policy.
- ``KeySet.from_jwks`` may refuse a group's key (``JWKSError``) only if every vector of that group
  is ``invalid``, or as a documented policy rejection: an RSA public exponent other than 65537
  (the ``SmallPublicKey`` e = 3 groups). Policy rejections are counted, printed and capped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mcp_oauth2.errors import JWKSError, TokenValidationError
from mcp_oauth2.lowlevel import KeySet
from token_factory import b64u

VECTORS = Path(__file__).parent / "vectors" / "wycheproof"
FILES = sorted(path.name for path in VECTORS.glob("*.json"))

_HASH_BITS = {"SHA-256": 256, "SHA-384": 384, "SHA-512": 512}
# P1363 ECDSA files: JWS alg, JWK crv, coordinate size in bytes.
_EC_FILES = {
    "ecdsa_secp256r1_sha256_p1363_test.json": ("ES256", "P-256", 32),
    "ecdsa_secp384r1_sha384_p1363_test.json": ("ES384", "P-384", 48),
    "ecdsa_secp521r1_sha512_p1363_test.json": ("ES512", "P-521", 66),
}
# The file -> alg table of the vectors' README.
_EXPECTED_ALGS = {
    "RS256": {f"rsa_signature_{bits}_sha256_test.json" for bits in (2048, 3072, 4096)},
    "RS384": {f"rsa_signature_{bits}_sha384_test.json" for bits in (2048, 3072, 4096)},
    "RS512": {f"rsa_signature_{bits}_sha512_test.json" for bits in (2048, 3072, 4096)},
    "PS256": {f"rsa_pss_{bits}_sha256_mgf1_32_test.json" for bits in (2048, 3072, 4096)},
    "PS384": {f"rsa_pss_{bits}_sha384_mgf1_48_test.json" for bits in (2048, 4096)},
    "PS512": {"rsa_pss_4096_sha512_mgf1_64_test.json"},
    "ES256": {"ecdsa_secp256r1_sha256_p1363_test.json"},
    "ES384": {"ecdsa_secp384r1_sha384_p1363_test.json"},
    "ES512": {"ecdsa_secp521r1_sha512_p1363_test.json"},
    "EdDSA": {"ed25519_test.json"},
}
# At most this many key groups per file may be refused by policy (the e = 3 groups: two files
# have two each).
_MAX_POLICY_REJECTIONS_PER_FILE = 2


def _load(filename: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((VECTORS / filename).read_text(encoding="utf-8"))
    return data


def _algorithm(filename: str, group: dict[str, Any]) -> str:
    """The JWS ``alg`` of a test group, cross-checked against the group's own parameters."""
    if filename.startswith("rsa_signature_"):
        assert group["type"] == "RsassaPkcs1Verify", filename
        return f"RS{_HASH_BITS[group['sha']]}"
    if filename.startswith("rsa_pss_"):
        assert group["type"] == "RsassaPssVerify", filename
        bits = _HASH_BITS[group["sha"]]
        # RFC 7518 section 3.5: MGF1 with the same hash, salt as long as the hash.
        assert group["mgf"] == "MGF1", filename
        assert group["mgfSha"] == group["sha"], filename
        assert group["sLen"] == bits // 8, filename
        return f"PS{bits}"
    if filename in _EC_FILES:
        assert group["type"] == "EcdsaP1363Verify", filename
        return _EC_FILES[filename][0]
    if filename == "ed25519_test.json":
        assert group["type"] == "EddsaVerify", filename
        return "EdDSA"
    raise AssertionError(f"no JWS algorithm known for {filename}")


def _group_jwk(filename: str, group: dict[str, Any]) -> dict[str, Any] | None:
    """The group's public key as a JWK, or None when it cannot be represented as one."""
    if "keyJwk" in group:  # RSA PKCS#1 v1.5 files
        jwk = dict(group["keyJwk"])
    elif "publicKeyJwk" in group:
        jwk = dict(group["publicKeyJwk"])
    elif filename in _EC_FILES:
        # Edge-case ECDSA keys come without a JWK: build it from the affine coordinates, each
        # exactly the coordinate size (leading zero bytes of the hex dropped, then left-padded).
        _, crv, size = _EC_FILES[filename]
        x = int(group["publicKey"]["wx"], 16)
        y = int(group["publicKey"]["wy"], 16)
        if max(x.bit_length(), y.bit_length()) > 8 * size:
            return None
        jwk = {
            "kty": "EC",
            "crv": crv,
            "x": b64u(x.to_bytes(size, "big")),
            "y": b64u(y.to_bytes(size, "big")),
        }
    else:
        return None
    if jwk.get("kid") == "none":  # Wycheproof's placeholder
        del jwk["kid"]
    return jwk


def _is_policy_rejection(group: dict[str, Any]) -> bool:
    """The documented key policies: only RSA keys whose public exponent is not 65537."""
    public = group.get("publicKey", {})
    exponent = public.get("publicExponent") if isinstance(public, dict) else None
    return exponent is not None and int(exponent, 16) != 65537


def _verify(keys: KeySet, alg: str, test: dict[str, Any]) -> tuple[bool, str]:
    """(accepted, how) for one vector; ``how`` describes the outcome for failure messages."""
    message = bytes.fromhex(test["msg"])
    signature = bytes.fromhex(test["sig"])
    try:
        result = keys.verify_signature(alg, message, signature)
    except TokenValidationError as exc:
        return False, f"raised {type(exc).__name__} (code {exc.code!r})"
    if result is True:
        return True, "returned True"
    if result is False:
        return False, "returned False"
    raise AssertionError(f"verify_signature returned {result!r}, not a bool")


def test_files_cover_every_jws_algorithm() -> None:
    assert set(FILES) == set().union(*_EXPECTED_ALGS.values())
    for alg, filenames in _EXPECTED_ALGS.items():
        for filename in filenames:
            data = _load(filename)
            algs = {_algorithm(filename, group) for group in data["testGroups"]}
            assert algs == {alg}, filename


@pytest.mark.parametrize("filename", FILES)
def test_wycheproof_vectors(filename: str) -> None:
    data = _load(filename)
    failures: list[str] = []
    policy_rejections: list[str] = []
    checked = 0  # vectors run through verify_signature
    verified_valid = 0  # of which valid and accepted
    refused_with_key = 0  # invalid vectors whose key from_jwks refused
    policy_skipped = 0  # vectors of policy-rejected groups
    unrepresentable = 0  # vectors of groups whose key is no JWK

    for index, group in enumerate(data["testGroups"]):
        alg = _algorithm(filename, group)
        tests = group["tests"]
        tc_ids = ",".join(str(test["tcId"]) for test in tests)
        where = f"{filename} group {index} (tcId {tc_ids})"
        jwk = _group_jwk(filename, group)
        if jwk is None:
            unrepresentable += len(tests)
            continue
        try:
            keys = KeySet.from_jwks({"keys": [jwk]})
        except JWKSError as exc:
            results = {test["result"] for test in tests}
            if results == {"invalid"}:
                refused_with_key += len(tests)
            elif _is_policy_rejection(group):
                policy_skipped += len(tests)
                policy_rejections.append(f"{where}: {exc}")
            else:
                failures.append(f"{where}: key refused ({exc}) but results are {sorted(results)}")
            continue
        assert len(keys) == 1, where

        for test in tests:
            vector = f"{filename}#tcId{test['tcId']} ({test['result']}, {test['comment']!r})"
            try:
                accepted, how = _verify(keys, alg, test)
            except Exception as exc:  # report every vector, whatever goes wrong
                failures.append(f"{vector}: raised {type(exc).__name__}: {exc}")
                checked += 1
                continue
            checked += 1
            if test["result"] == "valid":
                if accepted:
                    verified_valid += 1
                else:
                    failures.append(f"{vector}: valid signature not accepted: {how}")
            elif accepted:
                # invalid, and acceptable (MissingNull) under the strict policy
                failures.append(f"{vector}: must be rejected but {how}")

    if unrepresentable:
        print(f"{filename}: {unrepresentable} vector(s) skipped: key not representable as a JWK")
    if policy_rejections:
        print(f"{filename}: {len(policy_rejections)} key group(s) refused by policy:")
        for line in policy_rejections:
            print(f"  {line}")
    assert not failures, f"{len(failures)} failure(s) in {filename}:\n" + "\n".join(failures)
    assert checked > 0, filename
    assert verified_valid > 0, filename
    accounted = checked + refused_with_key + policy_skipped + unrepresentable
    assert accounted == data["numberOfTests"], filename
    assert len(policy_rejections) <= _MAX_POLICY_REJECTIONS_PER_FILE, policy_rejections
    # Nearly every vector must really reach verify_signature.
    assert checked >= 0.95 * data["numberOfTests"], (filename, checked, data["numberOfTests"])


def test_high_s_ecdsa_vectors_are_present_and_valid() -> None:
    """Guard the README's claim this suite relies on: P1363 files hold valid high-S vectors."""
    for filename in _EC_FILES:
        comments = [
            test["comment"]
            for group in _load(filename)["testGroups"]
            for test in group["tests"]
            if test["result"] == "valid" and "malleability" in test["comment"]
        ]
        assert comments, filename
