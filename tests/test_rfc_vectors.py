"""The JWS examples of RFC 7515 (appendix A.2, A.3) and RFC 7520 (sections 4.1 to 4.3).

Their signatures are real and must verify; any single flipped signature bit must not. None of
the payloads is an access token, so the complete tokens must be refused at the claims stage.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mcp_oauth2.errors import TokenValidationError
from mcp_oauth2.lowlevel import KeySet, TokenValidator
from token_factory import ALGORITHMS, b64u, b64u_decode

VECTORS = Path(__file__).parent / "vectors" / "rfc"
FILES = sorted(VECTORS.glob("*.json"))
RFC7515_FILES = [path for path in FILES if path.name.startswith("rfc7515_")]
RFC7520_FILES = [path for path in FILES if path.name.startswith("rfc7520_")]

# The audience a resource server would configure; no example token has an ``aud``.
SERVER_AUDIENCE = "https://mcp.example.com"
# RFC 7515 A.2/A.3 claims: {"iss":"joe", "exp":1300819380, "http://example.com/is_root":true}.
RFC7515_ISSUER = "joe"
RFC7515_EXP = 1300819380
CLAIMS_STAGE_CODES = {"expired", "missing_claim", "malformed", "invalid_issuer", "invalid_audience"}


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _parts(vector: dict[str, Any]) -> tuple[bytes, bytes]:
    """(signing input, signature) of the vector's compact token."""
    signing_input, _, signature = vector["token"].rpartition(".")
    assert signing_input == vector["signing_input"]
    assert signature == vector["signature_b64u"]
    return signing_input.encode("ascii"), b64u_decode(signature)


def _rejected(keys: KeySet, alg: str, message: bytes, signature: bytes) -> bool:
    """True when ``verify_signature`` returns False or raises a ``TokenValidationError``."""
    try:
        result = keys.verify_signature(alg, message, signature)
    except TokenValidationError:
        return True
    assert isinstance(result, bool)
    return not result


@pytest.fixture(params=FILES, ids=lambda path: path.stem)
def vector(request: pytest.FixtureRequest) -> dict[str, Any]:
    path: Path = request.param
    return _load(path)


def test_all_example_files_are_present() -> None:
    assert [path.name for path in FILES] == [
        "rfc7515_A2_RS256.json",
        "rfc7515_A3_ES256.json",
        "rfc7520_4_1_RS256.json",
        "rfc7520_4_2_PS384.json",
        "rfc7520_4_3_ES512.json",
    ]


def test_signature_verifies(vector: dict[str, Any]) -> None:
    alg = vector["alg"]
    assert vector["protected_header"]["alg"] == alg
    keys = KeySet.from_jwks({"keys": [vector["jwk"]]})
    assert len(keys) == 1
    message, signature = _parts(vector)
    assert keys.verify_signature(alg, message, signature) is True
    kid = vector["jwk"].get("kid")
    if kid is not None:
        assert keys.key_ids == (kid,)
        assert kid in keys
        assert keys.verify_signature(alg, message, signature, kid=kid) is True


def test_key_set_accepts_json_text_and_bytes(vector: dict[str, Any]) -> None:
    document = json.dumps({"keys": [vector["jwk"]]})
    message, signature = _parts(vector)
    from_dict = KeySet.from_jwks({"keys": [vector["jwk"]]})
    for keys in (KeySet.from_jwks(document), KeySet.from_jwks(document.encode())):
        assert keys.verify_signature(vector["alg"], message, signature) is True
        assert keys.fingerprint == from_dict.fingerprint


def test_every_flipped_signature_bit_is_rejected(vector: dict[str, Any]) -> None:
    alg = vector["alg"]
    keys = KeySet.from_jwks({"keys": [vector["jwk"]]})
    message, signature = _parts(vector)
    accepted: list[str] = []
    checked = 0
    for index in range(len(signature)):
        for bit in (0x01, 0x80):  # the lowest and the highest bit of every byte
            flipped = bytearray(signature)
            flipped[index] ^= bit
            checked += 1
            if not _rejected(keys, alg, message, bytes(flipped)):
                accepted.append(f"byte {index} bit {bit:#04x}")
    assert checked == 2 * len(signature) > 0
    assert not accepted, f"flipped signatures accepted: {accepted}"


def test_changed_message_or_truncated_signature_is_rejected(vector: dict[str, Any]) -> None:
    alg = vector["alg"]
    keys = KeySet.from_jwks({"keys": [vector["jwk"]]})
    message, signature = _parts(vector)
    assert _rejected(keys, alg, message + b"x", signature)
    assert _rejected(keys, alg, message[:-1], signature)
    assert _rejected(keys, alg, message, signature[:-1])
    assert _rejected(keys, alg, message, signature + b"\x00")
    assert _rejected(keys, alg, message, b"")


def test_signature_is_bound_to_its_algorithm(vector: dict[str, Any]) -> None:
    """The same key and signature under any other algorithm is rejected."""
    keys = KeySet.from_jwks({"keys": [vector["jwk"]]})
    message, signature = _parts(vector)
    others = [alg for alg in ALGORITHMS if alg != vector["alg"]]
    assert len(others) == 9
    for alg in others:
        assert _rejected(keys, alg, message, signature), alg


def test_the_trace_shows_the_signature_verified_then_the_claims_refused(
    vector: dict[str, Any],
) -> None:
    keys = KeySet.from_jwks({"keys": [vector["jwk"]]})
    validator = TokenValidator(
        issuer="https://auth.example.com", audience=SERVER_AUDIENCE, algorithms=[vector["alg"]]
    )
    steps, verdict = validator.trace(vector["token"], keys, now=RFC7515_EXP - 100)
    status = {name: state for name, state, _ in steps}
    for name in ("segments", "header", "alg", "extensions", "encoding", "key", "signature"):
        assert status[name] == "pass", (name, steps)
    assert isinstance(verdict, TokenValidationError)
    assert verdict.code in CLAIMS_STAGE_CODES
    (failed,) = [step for step in steps if step[1] == "fail"]
    assert failed[2] == verdict.description


def test_complete_token_is_refused_at_the_claims_stage(vector: dict[str, Any]) -> None:
    keys = KeySet.from_jwks({"keys": [vector["jwk"]]})
    validator = TokenValidator(
        issuer="https://auth.example.com", audience=SERVER_AUDIENCE, algorithms=[vector["alg"]]
    )
    for now in (None, RFC7515_EXP - 100, RFC7515_EXP + 1000):
        with pytest.raises(TokenValidationError) as info:
            validator.validate(vector["token"], keys, now=now)
        assert info.value.code in CLAIMS_STAGE_CODES, (now, info.value.code)


@pytest.mark.parametrize("path", RFC7515_FILES, ids=lambda path: path.stem)
@pytest.mark.parametrize(
    ("required_claims", "leeway", "now", "code"),
    [
        # Right issuer, unexpired: the one thing wrong is the absent ``aud``. The validator has
        # an audience to check, so an absent ``aud`` is a missing claim even when ``aud`` is not
        # listed in ``required_claims``.
        (("exp", "iss"), 60, RFC7515_EXP - 100, "missing_claim"),
        (("exp", "iss", "aud"), 60, RFC7515_EXP - 100, "missing_claim"),
        # Past ``exp`` without leeway: expired (checked before the absent audience).
        (("exp", "iss"), 0, RFC7515_EXP + 1000, "expired"),
        # 1000 s after ``exp`` with 3600 s of leeway is not expired: the absent ``aud`` remains.
        (("exp", "iss"), 3600, RFC7515_EXP + 1000, "missing_claim"),
    ],
    ids=["no-aud", "no-aud-required", "expired", "leeway-covers-expiry"],
)
def test_rfc7515_token_at_the_claims_stage(
    path: Path, required_claims: tuple[str, ...], leeway: int, now: int, code: str
) -> None:
    vector = _load(path)
    keys = KeySet.from_jwks({"keys": [vector["jwk"]]})
    validator = TokenValidator(
        issuer=RFC7515_ISSUER,
        audience=SERVER_AUDIENCE,
        algorithms=[vector["alg"]],
        leeway=leeway,
        required_claims=required_claims,
    )
    with pytest.raises(TokenValidationError) as info:
        validator.validate(vector["token"], keys, now=now)
    assert info.value.code == code


@pytest.mark.parametrize("path", RFC7520_FILES, ids=lambda path: path.stem)
def test_rfc7520_plain_text_payload_is_malformed(path: Path) -> None:
    vector = _load(path)
    assert not vector["payload_utf8"].startswith("{")
    keys = KeySet.from_jwks({"keys": [vector["jwk"]]})
    validator = TokenValidator(
        issuer="https://auth.example.com", audience=SERVER_AUDIENCE, algorithms=[vector["alg"]]
    )
    with pytest.raises(TokenValidationError) as info:
        validator.validate(vector["token"], keys, now=RFC7515_EXP)
    assert info.value.code == "malformed"


def test_complete_token_with_flipped_signature_is_refused(vector: dict[str, Any]) -> None:
    keys = KeySet.from_jwks({"keys": [vector["jwk"]]})
    message, signature = _parts(vector)
    flipped = bytearray(signature)
    flipped[len(flipped) // 2] ^= 0x01
    token = f"{message.decode()}.{b64u(bytes(flipped))}"
    validator = TokenValidator(
        issuer=RFC7515_ISSUER,
        audience=SERVER_AUDIENCE,
        algorithms=[vector["alg"]],
        required_claims=("exp", "iss"),
    )
    with pytest.raises(TokenValidationError):
        validator.validate(token, keys, now=RFC7515_EXP - 100)
