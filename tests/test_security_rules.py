"""One test per security rule of the validation core.

Tokens with hand-made headers and payloads are signed by ``sign_raw`` (PyJWT's algorithm objects
over exact bytes), so a test can put anything on the wire and still carry a valid signature:
each rule must hold on its own, not merely because some other check happens to fail first.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from jwt.algorithms import get_default_algorithms

from mcp_oauth2.errors import (
    AlgorithmNotAllowedError,
    ConfigurationError,
    InvalidTokenTypeError,
    TokenValidationError,
)
from mcp_oauth2.lowlevel import KeySet, TokenValidator
from token_factory import (
    AUDIENCE,
    ISSUER,
    NOW,
    b64u,
    b64u_decode,
    default_validator,
    jwks_for,
    make_claims,
    mint,
    private_key,
    public_jwk,
)

JWA = get_default_algorithms()


def sign_raw(
    alg: str, header: bytes | dict[str, Any], payload: bytes | dict[str, Any], kid: str
) -> str:
    """A compact JWS over exactly these header and payload bytes, signed with key ``kid``."""
    if isinstance(header, dict):
        header = json.dumps(header).encode()
    if isinstance(payload, dict):
        payload = json.dumps(payload).encode()
    signing_input = f"{b64u(header)}.{b64u(payload)}"
    signature = JWA[alg].sign(signing_input.encode(), private_key(kid))
    return f"{signing_input}.{b64u(signature)}"


def code_of(token: str | bytes, keys: KeySet, validator: TokenValidator | None = None) -> str:
    validator = validator or default_validator()
    with pytest.raises(TokenValidationError) as caught:
        validator.validate(token, keys, now=NOW)
    return caught.value.code


# -- algorithms -----------------------------------------------------------------------------


def test_header_alg_must_be_in_the_allowlist(keyset: KeySet) -> None:
    token = mint("ES256", make_claims())
    rs_only = TokenValidator(ISSUER, AUDIENCE, algorithms=["RS256"])
    assert code_of(token, keyset, rs_only) == "algorithm_not_allowed"
    assert TokenValidator(ISSUER, AUDIENCE, algorithms=["ES256"]).validate(token, keyset, now=NOW)


def test_header_alg_must_fit_the_key_type_and_curve(keyset: KeySet) -> None:
    # An ES256 signature presented under an RSA key id, and P-384 key id for an ES256 token.
    es256 = sign_raw("ES256", {"alg": "ES256", "kid": "rsa-1"}, make_claims(), "ec-256")
    assert code_of(es256, keyset) == "key_not_found"
    wrong_curve = sign_raw("ES256", {"alg": "ES256", "kid": "ec-384"}, make_claims(), "ec-256")
    assert code_of(wrong_curve, keyset) == "key_not_found"
    # RS256-signed bytes relabelled PS256 under the same RSA key: the signature cannot verify.
    relabelled = sign_raw("RS256", {"alg": "PS256", "kid": "rsa-1"}, make_claims(), "rsa-1")
    assert code_of(relabelled, keyset) == "invalid_signature"


def test_header_alg_must_match_the_jwk_own_alg() -> None:
    keys = KeySet.from_jwks({"keys": [public_jwk(private_key("rsa-1"), "rsa-1", alg="RS256")]})
    ps256 = mint("PS256", make_claims(), key="rsa-1")
    assert code_of(ps256, keys) == "key_not_found"
    assert default_validator().validate(mint("RS256", make_claims()), keys, now=NOW)


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_unsigned_tokens_are_never_accepted(keyset: KeySet, alg: str) -> None:
    header = b64u(json.dumps({"alg": alg, "kid": "rsa-1"}).encode())
    payload = b64u(json.dumps(make_claims()).encode())
    for token in (f"{header}.{payload}.", f"{header}.{payload}.c2ln"):
        with pytest.raises(TokenValidationError) as caught:
            default_validator().validate(token, keyset, now=NOW)
        assert caught.value.code in {"algorithm_not_allowed", "malformed"}
    assert code_of(f"{header}.{payload}.c2ln", keyset) == "algorithm_not_allowed"


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512", "hs256"])
def test_hmac_key_confusion_is_refused(keyset: KeySet, alg: str) -> None:
    # The classic attack: HMAC "signed" with the server's public key as the secret.
    secret = json.dumps(public_jwk(private_key("rsa-1"), "rsa-1")).encode()
    signing_input = (
        f"{b64u(json.dumps({'alg': alg, 'kid': 'rsa-1'}).encode())}."
        f"{b64u(json.dumps(make_claims()).encode())}"
    )
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    token = f"{signing_input}.{b64u(mac)}"
    with pytest.raises(AlgorithmNotAllowedError):
        default_validator().validate(token, keyset, now=NOW)


@pytest.mark.parametrize("algorithms", [["none"], ["RS256", "HS256"], ["hs512"], ["NONE"]])
def test_configuration_cannot_allow_none_or_hmac(algorithms: list[str]) -> None:
    with pytest.raises(ConfigurationError, match="never accepted"):
        TokenValidator(ISSUER, AUDIENCE, algorithms=algorithms)


def test_unknown_algorithm_is_unsupported(keyset: KeySet) -> None:
    token = sign_raw("ES256", {"alg": "ES256K", "kid": "ec-256"}, make_claims(), "ec-256")
    assert code_of(token, keyset) == "unsupported_algorithm"


# -- key selection ------------------------------------------------------------------------------


def test_token_without_kid_needs_exactly_one_fitting_key() -> None:
    token = mint("ES256", make_claims(), key=private_key("ec-256"))
    one = KeySet.from_jwks(jwks_for(["rsa-1", "ec-256"]))
    assert default_validator().validate(token, one, now=NOW).subject == "user-1"
    two = KeySet.from_jwks(
        {"keys": [public_jwk(private_key("ec-256"), "a"), public_jwk(private_key("ec-256"), "b")]}
    )
    assert code_of(token, two) == "key_not_found"
    none_fit = KeySet.from_jwks(jwks_for(["rsa-1"]))
    assert code_of(token, none_fit) == "key_not_found"


def test_unknown_kid_is_key_not_found(keyset: KeySet) -> None:
    token = mint("RS256", make_claims(), key="rsa-1", headers={"kid": "rotated-away"})
    assert code_of(token, keyset) == "key_not_found"


class _ConnectionCounter:
    """A loopback TCP listener that counts connection attempts (it never answers)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[_ConnectionCounter]:
    counter = _ConnectionCounter()
    yield counter
    counter.close()


def test_kid_is_only_a_lookup_key(keyset: KeySet, listener: _ConnectionCounter) -> None:
    url = f"http://127.0.0.1:{listener.port}/jwks.json"
    for kid in (url, "../../../etc/passwd", "rsa-1\x00", "' OR 1=1 --", "x" * 4000):
        token = mint("RS256", make_claims(), key="rsa-1", headers={"kid": kid})
        assert code_of(token, keyset) == "key_not_found"
    assert listener.connections == 0


def test_embedded_and_remote_keys_are_never_used(
    keyset: KeySet, listener: _ConnectionCounter
) -> None:
    # Signed by a key the server does not trust, which the header offers in every way JOSE allows.
    attacker = private_key("rsa-2")
    attacker_jwk = public_jwk(attacker, "rsa-1")
    url = f"http://127.0.0.1:{listener.port}/keys"
    headers = {"jwk": attacker_jwk, "jku": url, "x5u": url, "x5c": ["MIIBIjANBgkq"]}
    with_kid = mint("RS256", make_claims(), key=attacker, headers={**headers, "kid": "rsa-1"})
    assert code_of(with_kid, keyset) == "invalid_signature"
    only_rsa = KeySet.from_jwks(jwks_for(["rsa-1"]))
    without_kid = mint("RS256", make_claims(), key=attacker, headers=headers)
    assert code_of(without_kid, only_rsa) == "invalid_signature"
    assert listener.connections == 0


# -- unsupported header features ---------------------------------------------------------------


@pytest.mark.parametrize(
    "extra",
    [{"crit": ["exp"], "exp": NOW}, {"crit": []}, {"b64": False}, {"b64": True}, {"zip": "DEF"}],
)
def test_crit_b64_and_zip_headers_are_rejected(keyset: KeySet, extra: dict[str, Any]) -> None:
    token = sign_raw("RS256", {"alg": "RS256", "kid": "rsa-1", **extra}, make_claims(), "rsa-1")
    assert code_of(token, keyset) == "malformed"


def test_jwe_five_segments_are_rejected(keyset: KeySet) -> None:
    header = b64u(json.dumps({"alg": "RSA-OAEP", "enc": "A256GCM"}).encode())
    token = f"{header}.a2V5.aXY.Y2lwaGVy.dGFn"
    with pytest.raises(TokenValidationError, match="JWE") as caught:
        default_validator().validate(token, keyset, now=NOW)
    assert caught.value.code == "malformed"


# -- token shape -----------------------------------------------------------------------------


def test_exactly_three_segments_without_padding_or_whitespace(keyset: KeySet) -> None:
    good = mint("RS256", make_claims())
    head, body, sig = good.split(".")
    assert default_validator().validate(good, keyset, now=NOW)
    variants = [
        f"{head}.{body}",
        f"{head}.{body}.{sig}.",
        f"{head}.{body}.{sig}.{sig}",
        f"{head}..{body}.{sig}",
        f"{head}.{body}.{sig}==",
        f"{head}=.{body}.{sig}",
        f" {good}",
        f"{good} ",
        f"{head}.{body}\n.{sig}",
        f"{head}.{body}.{sig[:10]} {sig[10:]}",
        good.replace("-", "+").replace("_", "/"),
    ]
    for token in variants:
        if token == good:
            continue
        assert code_of(token, keyset) == "malformed", token


def test_non_canonical_base64url_is_rejected(keyset: KeySet) -> None:
    # The last character of the signature carries padding bits; setting one of them gives a text
    # that lenient decoders map to the same bytes. It is a different token and must be refused.
    token = mint("ES256", make_claims())
    head, body, sig = token.split(".")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(sig[-1])
    # 64-byte signature -> 86 characters: the last one holds 2 data bits and 4 padding bits.
    assert len(sig) == 86 and last % 16 == 0
    twin = sig[:-1] + alphabet[last + 1]
    assert b64u_decode(twin) == b64u_decode(sig)
    assert code_of(f"{head}.{body}.{twin}", keyset) == "malformed"


def test_size_is_checked_before_anything_is_decoded(keyset: KeySet) -> None:
    validator = TokenValidator(ISSUER, AUDIENCE, max_token_bytes=1024)
    assert code_of("." * 1_000_000, keyset, validator) == "token_too_large"
    assert code_of("é" * 2000, keyset, validator) == "token_too_large"
    assert code_of(b"\xff" * 5000, keyset, validator) == "token_too_large"
    big = mint("RS256", make_claims(padding="x" * 1200))
    with pytest.raises(TokenValidationError, match="1024-byte limit") as caught:
        validator.validate(big, keyset, now=NOW)
    assert caught.value.code == "token_too_large"
    assert default_validator().validate(big, keyset, now=NOW)


# -- ECDSA signature encoding ------------------------------------------------------------------


def _der_signature(raw: bytes) -> bytes:
    half = len(raw) // 2
    return encode_dss_signature(int.from_bytes(raw[:half]), int.from_bytes(raw[half:]))


@pytest.mark.parametrize(("alg", "size"), [("ES256", 64), ("ES384", 96), ("ES512", 132)])
def test_ecdsa_signatures_are_raw_r_s_of_exact_length(keyset: KeySet, alg: str, size: int) -> None:
    token = mint(alg, make_claims())
    signing_input, sig = token.rsplit(".", 1)
    raw = b64u_decode(sig)
    assert len(raw) == size
    assert default_validator().validate(token, keyset, now=NOW)
    kid = {"ES256": "ec-256", "ES384": "ec-384", "ES512": "ec-521"}[alg]
    der = _der_signature(raw)
    # The DER form verifies with a DER-accepting library: only the encoding is wrong.
    private = private_key(kid)
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    for bad in (der, raw[:-1], raw + b"\x00", b"\x00" + raw, raw[: size // 2]):
        assert code_of(f"{signing_input}.{b64u(bad)}", keyset) == "invalid_signature"


def test_ecdsa_zero_r_or_s_is_rejected(keyset: KeySet) -> None:
    token = mint("ES256", make_claims())
    signing_input, sig = token.rsplit(".", 1)
    raw = b64u_decode(sig)
    for bad in (bytes(32) + raw[32:], raw[:32] + bytes(32), bytes(64)):
        assert code_of(f"{signing_input}.{b64u(bad)}", keyset) == "invalid_signature"
        assert keyset.verify_signature("ES256", signing_input.encode(), bad, kid="ec-256") is False


# -- time claims -------------------------------------------------------------------------------


@pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
@pytest.mark.parametrize("value", ["1800000000", True, False, None, [NOW], {"t": NOW}])
def test_time_claims_must_be_json_numbers(keyset: KeySet, claim: str, value: Any) -> None:
    token = mint("ES256", make_claims(**{claim: value}))
    assert code_of(token, keyset) == "invalid_claim"


def test_leeway_applies_to_exp_and_nbf(keyset: KeySet) -> None:
    validator = TokenValidator(ISSUER, AUDIENCE, algorithms=["ES256"], leeway=30)
    ok = [make_claims(exp=NOW - 29), make_claims(nbf=NOW + 29), make_claims(iat=NOW + 29)]
    for claims in ok:
        assert validator.validate(mint("ES256", claims), keyset, now=NOW)
    assert code_of(mint("ES256", make_claims(exp=NOW - 30)), keyset, validator) == "expired"
    assert code_of(mint("ES256", make_claims(nbf=NOW + 31)), keyset, validator) == "not_yet_valid"
    assert (
        code_of(mint("ES256", make_claims(iat=NOW + 31)), keyset, validator) == "issued_in_future"
    )
    strict = TokenValidator(ISSUER, AUDIENCE, algorithms=["ES256"], leeway=0)
    assert code_of(mint("ES256", make_claims(exp=NOW)), keyset, strict) == "expired"
    assert strict.validate(mint("ES256", make_claims(exp=NOW + 1)), keyset, now=NOW)


def test_expired_description_says_how_long_ago(keyset: KeySet) -> None:
    with pytest.raises(TokenValidationError) as caught:
        default_validator().validate(mint("ES256", make_claims(exp=NOW - 102)), keyset, now=NOW)
    assert caught.value.description == "token expired 102 s ago"


def test_exp_is_required_by_default(keyset: KeySet) -> None:
    token = mint("ES256", make_claims(drop=["exp"]))
    with pytest.raises(TokenValidationError, match="'exp'") as caught:
        default_validator().validate(token, keyset, now=NOW)
    assert caught.value.code == "missing_claim"
    lenient = default_validator(required_claims=())
    assert lenient.validate(token, keyset, now=NOW).expires_at is None


def test_now_defaults_to_the_system_clock(keyset: KeySet) -> None:
    real_now = int(time.time())
    fresh = make_claims(iat=real_now - 5, nbf=real_now - 5, exp=real_now + 300)
    assert default_validator().validate(mint("ES256", fresh), keyset)
    old = mint("ES256", make_claims(exp=1_000_000_000, iat=999_999_000, nbf=999_999_000))
    with pytest.raises(TokenValidationError) as caught:
        default_validator().validate(old, keyset)
    assert caught.value.code == "expired"


# -- issuer and audience -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "iss", [ISSUER + "/", ISSUER.upper(), "https://auth.example.com.evil", "", " " + ISSUER]
)
def test_issuer_must_match_exactly(keyset: KeySet, iss: str) -> None:
    assert code_of(mint("ES256", make_claims(iss=iss)), keyset) == "invalid_issuer"


def test_issuer_must_be_a_string(keyset: KeySet) -> None:
    header = {"alg": "ES256", "kid": "ec-256"}
    for iss in ([ISSUER], 1, {"iss": ISSUER}):
        token = sign_raw("ES256", header, make_claims(iss=iss), "ec-256")
        assert code_of(token, keyset) == "invalid_claim"


def test_any_configured_issuer_is_accepted(keyset: KeySet) -> None:
    validator = TokenValidator([ISSUER, "https://other"], AUDIENCE, algorithms=["ES256"])
    user = validator.validate(mint("ES256", make_claims(iss="https://other")), keyset, now=NOW)
    assert user.issuer == "https://other"


@pytest.mark.parametrize("aud", [AUDIENCE, [AUDIENCE], ["https://x", AUDIENCE]])
def test_audience_string_or_array_containing_ours(keyset: KeySet, aud: Any) -> None:
    user = default_validator().validate(mint("ES256", make_claims(aud=aud)), keyset, now=NOW)
    assert AUDIENCE in user.audience


@pytest.mark.parametrize(
    ("aud", "code"),
    [
        ("https://mcp.example.com", "invalid_audience"),
        (AUDIENCE + "/", "invalid_audience"),
        ([], "invalid_audience"),
        (["https://x"], "invalid_audience"),
        ([AUDIENCE, 7], "invalid_claim"),
        (7, "invalid_claim"),
        ({"aud": AUDIENCE}, "invalid_claim"),
    ],
)
def test_wrong_audience_is_rejected(keyset: KeySet, aud: Any, code: str) -> None:
    assert code_of(mint("ES256", make_claims(aud=aud)), keyset) == code


def test_missing_audience_is_rejected_even_if_not_listed_as_required(keyset: KeySet) -> None:
    token = mint("ES256", make_claims(drop=["aud"]))
    assert code_of(token, keyset, default_validator(required_claims=("exp",))) == "missing_claim"


# An Entra ID application (client) ID: v2.0 access tokens for the API carry it in `aud`, and so do
# the OpenID Connect ID tokens Entra issues to the same application, with the same `iss` and keys.
APPLICATION_ID = "8f5c1a2b-3d4e-4f60-9a7b-0c1d2e3f4a5b"


def test_an_id_token_is_refused_where_the_audience_is_an_application_id(keyset: KeySet) -> None:
    validator = TokenValidator(ISSUER, [APPLICATION_ID, AUDIENCE])
    access = make_claims(aud=APPLICATION_ID, scp="mcp.tools", drop=["scope"])
    id_token = make_claims(aud=APPLICATION_ID, nonce="n-0S6_WzA2Mj", drop=["scope", "client_id"])
    assert validator.validate(mint("RS256", access), keyset, now=NOW).scopes == {"mcp.tools"}
    with pytest.raises(InvalidTokenTypeError) as caught:
        validator.validate(mint("RS256", id_token), keyset, now=NOW)
    assert caught.value.code == "invalid_type"
    assert caught.value.description == "an ID token (it carries 'nonce') is not an access token"
    # In a list, in upper case as configured, even with a null nonce: still an ID token for us.
    shouting = TokenValidator(ISSUER, APPLICATION_ID.upper())
    for aud in ([AUDIENCE, APPLICATION_ID], APPLICATION_ID):
        token = mint("ES256", {**id_token, "aud": aud, "nonce": None})
        assert code_of(token, keyset, validator) == "invalid_type"
    assert code_of(
        mint("ES256", {**id_token, "aud": APPLICATION_ID.upper()}), keyset, shouting
    ) == ("invalid_type")
    # A URL audience is not an application ID: `nonce` there is just another claim.
    url_token = mint("ES256", make_claims(nonce="n"))
    assert validator.validate(url_token, keyset, now=NOW).subject == "user-1"


# -- JSON --------------------------------------------------------------------------------------


def test_header_and_payload_must_be_json_objects(keyset: KeySet) -> None:
    header = {"alg": "ES256", "kid": "ec-256"}
    for payload in (b"[]", b'"claims"', b"null", b"1", b"{", b"not json", b""):
        assert code_of(sign_raw("ES256", header, payload, "ec-256"), keyset) == "malformed"
    claims = make_claims()
    for head in (b'["ES256"]', b"ES256", b"{"):
        assert code_of(sign_raw("ES256", head, claims, "ec-256"), keyset) == "malformed"


def test_duplicate_member_names_are_rejected(keyset: KeySet) -> None:
    # First-wins would read our audience and last-wins another one (or the reverse): refuse both.
    body = json.dumps(make_claims())[:-1] + ', "aud": "https://evil.example"}'
    assert (
        code_of(
            sign_raw("ES256", {"alg": "ES256", "kid": "ec-256"}, body.encode(), "ec-256"), keyset
        )
        == "malformed"
    )
    head = b'{"alg": "ES256", "kid": "ec-256", "kid": "rsa-1"}'
    assert code_of(sign_raw("ES256", head, make_claims(), "ec-256"), keyset) == "malformed"
    nested = json.dumps(make_claims())[:-1] + ', "ctx": {"a": 1, "a": 2}}'
    assert (
        code_of(
            sign_raw("ES256", {"alg": "ES256", "kid": "ec-256"}, nested.encode(), "ec-256"), keyset
        )
        == "malformed"
    )


def test_deep_nesting_and_huge_numbers_end_cleanly(keyset: KeySet) -> None:
    header = {"alg": "ES256", "kid": "ec-256"}
    base = json.dumps(make_claims())[:-1]
    deep = f'{base}, "x": {"[" * 5000}{"]" * 5000}}}'.encode()
    validator = default_validator(max_token_bytes=65536)
    assert code_of(sign_raw("ES256", header, deep, "ec-256"), keyset, validator) == "malformed"
    for number in ("1e400", "-1e400"):
        huge = f'{base}, "n": {number}}}'.encode()
        assert code_of(sign_raw("ES256", header, huge, "ec-256"), keyset) == "malformed"
    far = make_claims(exp=1e308)
    user = default_validator().validate(mint("ES256", far), keyset, now=NOW)
    assert user.expires_at is not None and user.expires_at > NOW
    # Integers beyond 64 bits are read as floats; beyond the float range they are malformed.
    wide = f'{base}, "n": {"9" * 30}}}'.encode()
    user = default_validator().validate(sign_raw("ES256", header, wide, "ec-256"), keyset, now=NOW)
    assert user.claims["n"] == float("9" * 30)
    too_wide = f'{base}, "n": {"9" * 400}}}'.encode()
    assert code_of(sign_raw("ES256", header, too_wide, "ec-256"), keyset) == "malformed"


# -- typ ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("typ", ["at+jwt", "AT+JWT", "application/at+jwt", "Application/AT+JWT"])
def test_accepted_types_match_case_insensitively(keyset: KeySet, typ: str) -> None:
    validator = default_validator(accepted_types=["at+jwt"])
    assert validator.validate(mint("ES256", make_claims(), headers={"typ": typ}), keyset, now=NOW)
    long_form = default_validator(accepted_types=["application/at+jwt"])
    assert long_form.validate(mint("ES256", make_claims(), headers={"typ": typ}), keyset, now=NOW)


@pytest.mark.parametrize("typ", ["JWT", "jwt", "at+jwt+x", "application/jwt", None])
def test_other_types_are_rejected_when_types_are_set(keyset: KeySet, typ: str | None) -> None:
    validator = default_validator(accepted_types=["at+jwt"])
    token = mint("ES256", make_claims(), headers={"typ": typ})
    assert code_of(token, keyset, validator) == "invalid_type"
    assert default_validator().validate(token, keyset, now=NOW)


# -- hostile input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "token",
    [
        "",
        ".",
        "..",
        "\x00.\x00.\x00",
        "\ud800.a.b",
        "a.b.c",
        "eyJ.eyJ.AA",
        "é.é.é",
        b"\xff\xfe.a.b",
        b"",
        "a" * 8192,
        "." * 8192,
        ("eyJhbGciOiJSUzI1NiJ9." * 3)[:-1],
    ],
)
def test_hostile_tokens_raise_only_validation_errors(keyset: KeySet, token: str | bytes) -> None:
    with pytest.raises(TokenValidationError):
        default_validator().validate(token, keyset, now=NOW)


def test_non_text_tokens_are_type_errors(keyset: KeySet) -> None:
    for token in (None, 42, ["a.b.c"], bytearray(b"a.b.c")):
        with pytest.raises(TypeError):
            default_validator().validate(token, keyset, now=NOW)  # type: ignore[arg-type]


def test_descriptions_never_echo_token_contents(keyset: KeySet) -> None:
    marker = "ATTACKER" * 20
    plain = default_validator()
    typed = default_validator(accepted_types=["at+jwt"])
    cases = [
        (mint("ES256", make_claims(iss=marker)), plain),
        (mint("ES256", make_claims(aud=marker)), plain),
        (mint("ES256", make_claims(), headers={"kid": marker}), plain),
        (mint("ES256", make_claims(exp=marker)), plain),
        (mint("ES256", make_claims(scope=marker), headers={"typ": marker}), typed),
        (sign_raw("ES256", {"alg": marker}, make_claims(), "ec-256"), plain),
        (mint("ES256", make_claims()) + marker, plain),
        (marker + "." + marker + "." + marker, plain),
    ]
    for token, validator in cases:
        with pytest.raises(TokenValidationError) as caught:
            validator.validate(token, keyset, now=NOW)
        text = f"{caught.value} {caught.value.description} {caught.value!r}"
        assert "ATTACKER" not in text
        assert len(caught.value.description) < 200


# -- null claims and the subject -------------------------------------------------------------


@pytest.mark.parametrize(
    "claim", ["sub", "jti", "client_id", "azp", "scope", "scp", "iss", "aud", "exp", "nbf", "iat"]
)
def test_a_null_typed_claim_is_invalid_not_absent(keyset: KeySet, claim: str) -> None:
    # JSON null is a value, not an absence: every claim with a type is refused when null, whether
    # it is required or not.
    header = {"alg": "ES256", "kid": "ec-256"}
    null: dict[str, Any] = {claim: None}
    token = sign_raw("ES256", header, make_claims(**null), "ec-256")
    assert code_of(token, keyset) == "invalid_claim"
    lenient = default_validator(required_claims=())
    assert code_of(token, keyset, lenient) == "invalid_claim"


@pytest.mark.parametrize("claim", ["sub", "exp", "tenant", "iss", "aud"])
def test_a_required_claim_given_as_null_is_invalid(keyset: KeySet, claim: str) -> None:
    validator = default_validator(required_claims=("exp", "sub", "tenant"))
    header = {"alg": "ES256", "kid": "ec-256"}
    null = sign_raw("ES256", header, {**make_claims(tenant="t1"), claim: None}, "ec-256")
    with pytest.raises(TokenValidationError) as caught:
        validator.validate(null, keyset, now=NOW)
    assert caught.value.code == "invalid_claim"
    assert f"'{claim}'" in caught.value.description
    absent = mint("ES256", make_claims(tenant="t1", drop=[claim]))
    assert code_of(absent, keyset, validator) == "missing_claim"
    assert validator.validate(mint("ES256", make_claims(tenant="t1")), keyset, now=NOW)


def test_sub_is_required_by_default(keyset: KeySet) -> None:
    # RFC 9068 section 2.2: `sub` is REQUIRED in a JWT access token, so an application never sees
    # an anonymous "authenticated" user unless it opts out.
    token = mint("ES256", make_claims(drop=["sub"]))
    with pytest.raises(TokenValidationError, match="'sub'") as caught:
        default_validator().validate(token, keyset, now=NOW)
    assert caught.value.code == "missing_claim"
    opted_out = default_validator(required_claims=("exp",))
    assert opted_out.validate(token, keyset, now=NOW).subject is None
