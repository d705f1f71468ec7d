"""Property tests (Hypothesis): claims round-trip, tampering never passes, junk never crashes.

The validator must either return a user or raise a ``TokenValidationError``: any other
exception escaping ``validate`` is a bug (a 500 instead of a 401).
"""

from __future__ import annotations

import functools
import json
import string
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mcp_oauth2.errors import TokenValidationError
from mcp_oauth2.lowlevel import KeySet, TokenValidator
from token_factory import (
    ALGORITHMS,
    AUDIENCE,
    ISSUER,
    NOW,
    TRUSTED_KEY_IDS,
    b64u,
    default_validator,
    json_equal,
    make_claims,
    mint,
    plain_json,
)

# Claims the validator interprets (or may one day): generated claims stay clear of them so that
# a random value cannot make a valid token invalid.
RESERVED_CLAIMS = frozenset(
    {
        "iss", "sub", "aud", "exp", "nbf", "iat", "jti",
        "scope", "scp", "client_id", "azp", "typ", "cnf", "act", "may_act",
        "auth_time", "acr", "amr", "nonce", "sid", "roles", "groups", "entitlements",
    }
)  # fmt: skip

# The property tests validate through this one: caching is not their subject, and no example is
# ever answered from a cache entry an earlier example left.
UNCACHED = default_validator(cache_size=0)
B64URL_ALPHABET = string.ascii_letters + string.digits + "-_"
HOSTILE_CHARACTERS = ".= +/\x00é"
MUTATION_ALPHABET = B64URL_ALPHABET + HOSTILE_CHARACTERS

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)


def json_values(depth: int) -> st.SearchStrategy[Any]:
    """JSON values nested at most ``depth`` containers deep."""
    if depth == 0:
        return json_scalars
    children = json_values(depth - 1)
    return (
        json_scalars
        | st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=8), children, max_size=4)
    )


# Top-level claims are one container deep already, so values nest at most 3 more (depth <= 4).
extra_claims = st.dictionaries(
    st.text(max_size=12).filter(lambda name: name not in RESERVED_CLAIMS),
    json_values(3),
    max_size=8,
)


@functools.cache
def base_token(alg: str) -> str:
    """One valid token per algorithm (minted once: mutations are applied to it)."""
    return mint(alg, make_claims())


@pytest.mark.parametrize("alg", ALGORITHMS)
def test_base_tokens_are_valid(alg: str, keyset: KeySet, validator: TokenValidator) -> None:
    """The mutation property below only means something if the unmutated token passes."""
    user = validator.validate(base_token(alg), keyset, now=NOW)
    assert json_equal(plain_json(user.claims), make_claims())


@settings(max_examples=150, deadline=None)
@given(alg=st.sampled_from(ALGORITHMS), extra=extra_claims)
@example(alg="ES256", extra={"": "", "\x00": [None, {}], "é🔑": {"nested": [1.5, -0.0, 2**53]}})
@example(alg="RS256", extra={"f": 5e-324, "g": 1.7976931348623157e308, "h": 0.30000000000000004})
# Found by Hypothesis: a JSON parser without correctly rounded float parsing (serde_json without
# its ``float_roundtrip`` feature) reads this as 1.1579208923731603e+77, one ulp off.
@example(alg="ES256", extra={"x": 1.1579208923731604e77})
def test_claims_round_trip(alg: str, extra: dict[str, Any], keyset: KeySet) -> None:
    claims = {**extra, "iss": ISSUER, "aud": AUDIENCE, "sub": "user-1", "exp": NOW + 3600}
    user = UNCACHED.validate(mint(alg, claims), keyset, now=NOW)
    decoded = plain_json(user.claims)
    assert json_equal(decoded, claims), (decoded, claims)


@st.composite
def mutated_tokens(draw: st.DrawFn) -> tuple[str, str]:
    """(description, token) for one valid token with one character replaced, added or removed."""
    alg = draw(st.sampled_from(ALGORITHMS))
    token = base_token(alg)
    operation = draw(st.sampled_from(["replace", "insert", "delete"]))
    if operation == "insert":
        index = draw(st.integers(min_value=0, max_value=len(token)))
        char = draw(st.sampled_from(MUTATION_ALPHABET))
        mutated = token[:index] + char + token[index:]
    else:
        index = draw(st.integers(min_value=0, max_value=len(token) - 1))
        if operation == "replace":
            char = draw(st.sampled_from([c for c in MUTATION_ALPHABET if c != token[index]]))
            mutated = token[:index] + char + token[index + 1 :]
        else:
            char = token[index]
            mutated = token[:index] + token[index + 1 :]
    segment = token[:index].count(".")
    return f"{alg}: {operation} {char!r} at {index} (segment {segment})", mutated


@settings(max_examples=300, deadline=None)
@given(mutation=mutated_tokens())
def test_any_single_character_mutation_is_rejected(
    mutation: tuple[str, str], keyset: KeySet
) -> None:
    # Strict: the core decodes base64url canonically, so even a change that only touches the
    # unused low bits of a segment's last character is refused.
    description, token = mutation
    try:
        UNCACHED.validate(token, keyset, now=NOW)
    except TokenValidationError:
        return
    pytest.fail(f"mutated token accepted: {description}")


def test_changing_only_the_padding_bits_of_the_signature_is_rejected(
    keyset: KeySet, validator: TokenValidator
) -> None:
    """The subtle mutation, made deliberately: same signature bytes, non-canonical text."""
    checked = 0
    for alg in ALGORITHMS:
        token = base_token(alg)
        head, _, signature = token.rpartition(".")
        spare_bits = (6 * len(signature)) % 8  # unused low bits of the last character
        if spare_bits == 0:
            continue
        # The base64url value order is A-Z a-z 0-9 - _ (RFC 4648 section 5).
        alphabet = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"
        value = alphabet.index(signature[-1])
        assert value & ((1 << spare_bits) - 1) == 0  # PyJWT writes canonical base64url
        twin = f"{head}.{signature[:-1]}{alphabet[value | 1]}"
        with pytest.raises(TokenValidationError):
            validator.validate(twin, keyset, now=NOW)
        checked += 1
    assert checked > 0


# Inputs with some structure get past the first checks and reach deeper code.
segments = st.binary(max_size=48).map(b64u) | st.text(alphabet=MUTATION_ALPHABET, max_size=32)
headers = st.fixed_dictionaries(
    {
        "alg": st.sampled_from([*ALGORITHMS, "none", "None", "HS256", "RS1", "es256", ""])
        | json_values(1)
    },
    optional={
        "kid": st.sampled_from(TRUSTED_KEY_IDS) | st.text(max_size=8) | json_values(1),
        "typ": st.sampled_from(["JWT", "at+jwt", "application/at+jwt"]) | json_values(1),
        "crit": st.lists(st.text(max_size=6), max_size=2) | json_values(1),
        "b64": st.booleans(),
        "jku": st.just("https://attacker.example/jwks.json"),
        "x5u": st.just("https://attacker.example/cert.pem"),
        "jwk": st.just({"kty": "oct", "k": "c2VjcmV0"}),
    },
)
payloads = st.one_of(
    st.just(make_claims()),
    # A valid claims set with registered claims overwritten by random values.
    st.dictionaries(st.sampled_from(sorted(RESERVED_CLAIMS)), json_values(1), max_size=4).map(
        lambda changes: {**make_claims(), **changes}
    ),
    json_values(2),
)
structured_tokens = st.tuples(
    headers.map(lambda header: b64u(json.dumps(header).encode())) | segments,
    payloads.map(lambda payload: b64u(json.dumps(payload).encode())) | segments,
    segments,
).map(".".join)
junk_tokens = st.one_of(
    st.text(max_size=300),
    st.binary(max_size=300).map(lambda raw: raw.decode("latin-1")),
    st.lists(segments, max_size=6).map(".".join),
    structured_tokens,
)


@settings(max_examples=400, deadline=None)
@given(token=junk_tokens)
@example(token="")
@example(token="..")
@example(token="e30.e30.")
@example(token="eyJhbGciOiJub25lIn0.e30.")
@example(token="a" * 9000)
def test_arbitrary_input_only_ever_raises_token_validation_errors(
    token: str, keyset: KeySet
) -> None:
    with pytest.raises(TokenValidationError):
        UNCACHED.validate(token, keyset, now=NOW)


@settings(max_examples=200, deadline=None)
@given(
    token=st.binary(max_size=300)
    | structured_tokens.map(str.encode)
    | mutated_tokens().map(lambda mutation: mutation[1].encode())
)
@example(token=b"")
@example(token=b"\xff\xfe.\x80.\xc0")
def test_arbitrary_bytes_only_ever_raise_token_validation_errors(
    token: bytes, keyset: KeySet
) -> None:
    """``validate`` also takes the raw header bytes; invalid UTF-8 is just a malformed token."""
    with pytest.raises(TokenValidationError):
        UNCACHED.validate(token, keyset, now=NOW)


@pytest.mark.parametrize("alg", ALGORITHMS)
def test_valid_token_as_bytes_validates(
    alg: str, keyset: KeySet, validator: TokenValidator
) -> None:
    user = validator.validate(base_token(alg).encode("ascii"), keyset, now=NOW)
    assert json_equal(plain_json(user.claims), make_claims())
