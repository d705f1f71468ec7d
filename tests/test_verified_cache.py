"""The verified-token cache inside TokenValidator."""

from __future__ import annotations

import resource
import threading

import pytest

from mcp_oauth2.errors import (
    ConfigurationError,
    ExpiredTokenError,
    NotYetValidError,
    TokenValidationError,
)
from mcp_oauth2.lowlevel import KeySet, TokenValidator
from token_factory import AUDIENCE, ISSUER, NOW, jwks_for, make_claims, mint


@pytest.fixture
def keys() -> KeySet:
    return KeySet.from_jwks(jwks_for(["ec-256", "rsa-1"]))


def validator(**options: object) -> TokenValidator:
    return TokenValidator(ISSUER, AUDIENCE, algorithms=["ES256", "RS256"], **options)  # type: ignore[arg-type]


def test_repeat_token_is_answered_from_the_cache(keys: KeySet) -> None:
    v = validator()
    token = mint("ES256", make_claims())
    first = v.validate(token, keys, now=NOW)
    second = v.validate(token, keys, now=NOW + 1)
    assert second is first
    info = v.cache_info()
    assert (info["size"], info["hits"], info["misses"], info["capacity"]) == (1, 1, 1, 16_384)


def test_every_hit_rechecks_the_lifetime(keys: KeySet) -> None:
    v = validator(leeway=0)
    token = mint("ES256", make_claims(exp=NOW + 100, nbf=NOW - 10))
    v.validate(token, keys, now=NOW)
    with pytest.raises(ExpiredTokenError):
        v.validate(token, keys, now=NOW + 100)
    assert v.cache_info()["size"] == 0  # the expired entry is gone
    early = mint("ES256", make_claims(nbf=NOW + 50, iat=NOW - 10))
    v.validate(early, keys, now=NOW + 60)
    with pytest.raises(NotYetValidError):
        v.validate(early, keys, now=NOW)


def test_entries_die_when_their_key_leaves_the_set(keys: KeySet) -> None:
    v = validator()
    token = mint("ES256", make_claims())
    v.validate(token, keys, now=NOW)
    rotated = KeySet.from_jwks(jwks_for(["rsa-1"]))
    with pytest.raises(TokenValidationError) as caught:
        v.validate(token, rotated, now=NOW)
    assert caught.value.code == "key_not_found"
    # A refreshed set that still holds the key keeps the entry (no new verification needed).
    v.validate(token, keys, now=NOW)
    same_key = KeySet.from_jwks(jwks_for(["ec-256", "ec-384"]))
    hits = v.cache_info()["hits"]
    v.validate(token, same_key, now=NOW)
    assert v.cache_info()["hits"] == hits + 1


def test_key_replaced_under_the_same_kid_is_not_trusted(keys: KeySet) -> None:
    v = validator()
    token = mint("ES256", make_claims())
    v.validate(token, keys, now=NOW)
    replaced = KeySet.from_jwks({"keys": [{**jwks_for(["ec-384"])["keys"][0], "kid": "ec-256"}]})
    with pytest.raises(TokenValidationError):
        v.validate(token, replaced, now=NOW)


def test_failures_are_not_cached(keys: KeySet) -> None:
    v = validator()
    bad = mint("ES256", make_claims(aud="https://elsewhere"))
    for _ in range(5):
        with pytest.raises(TokenValidationError):
            v.validate(bad, keys, now=NOW)
    assert v.cache_info()["size"] == 0


def test_policy_is_per_validator(keys: KeySet) -> None:
    token = mint("ES256", make_claims())
    validator().validate(token, keys, now=NOW)
    other = TokenValidator(ISSUER, "https://other.example.com", algorithms=["ES256"])
    with pytest.raises(TokenValidationError) as caught:
        other.validate(token, keys, now=NOW)
    assert caught.value.code == "invalid_audience"


def test_zero_disables_the_cache(keys: KeySet) -> None:
    v = validator(cache_size=0)
    token = mint("ES256", make_claims())
    assert v.validate(token, keys, now=NOW) is not v.validate(token, keys, now=NOW)
    assert v.cache_info()["size"] == 0


def test_the_cache_is_bounded(keys: KeySet) -> None:
    v = validator(cache_size=10)
    for i in range(100):
        v.validate(mint("ES256", make_claims(jti=f"t{i}")), keys, now=NOW)
    info = v.cache_info()
    assert info["size"] == 10 and info["evictions"] == 90


def test_recently_used_entries_survive_a_stream_of_new_tokens(keys: KeySet) -> None:
    # More distinct valid tokens than the cache holds: the ones in use stay cached, and the
    # least recently used give way.
    v = validator(cache_size=256)
    hot = [mint("ES256", make_claims(jti=f"hot{i}")) for i in range(16)]
    first = {token: v.validate(token, keys, now=NOW) for token in hot}
    for i in range(1024):
        v.validate(mint("ES256", make_claims(jti=f"cold{i}")), keys, now=NOW)
        if i % 8 == 7:
            for token in hot:
                assert v.validate(token, keys, now=NOW) is first[token], f"evicted after {i}"
    info = v.cache_info()
    assert info["size"] == 256
    assert info["hits"] == 16 * 128
    assert info["misses"] == 16 + 1024
    assert info["evictions"] == 16 + 1024 - 256


def test_counters_stay_exact_under_threads(keys: KeySet) -> None:
    v = validator(cache_size=64)
    tokens = [mint("ES256", make_claims(jti=f"c{i}")) for i in range(96)]
    calls_per_thread = 600

    def work(seed: int) -> None:
        for i in range(calls_per_thread):
            v.validate(tokens[(seed * 31 + i * 7) % len(tokens)], keys, now=NOW)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    info = v.cache_info()
    assert info["hits"] + info["misses"] == 4 * calls_per_thread
    assert info["size"] == 64
    # Every miss inserts; two threads missing the same token at once replace, not evict.
    assert info["evictions"] <= info["misses"] - info["size"]


def test_a_forged_token_is_never_answered_from_another_tokens_entry(keys: KeySet) -> None:
    """Entries are keyed by a keyed hash of the whole token: tokens that a hash without a key
    could be made to confuse with a cached one (its signature on another payload, its bytes in
    another order, one byte more) are verified, and refused, never served the cached user."""
    v = validator()
    token = mint("ES256", make_claims())
    cached = v.validate(token, keys, now=NOW)
    header, payload, signature = token.split(".")
    mallory = mint("ES256", make_claims(sub="mallory")).split(".")[1]
    swapped = payload[1] + payload[0] + payload[2:]  # "ey..." reads "ye..."
    # Two neighbouring characters of the signature's tail that differ, swapped.
    at = next(i for i in range(len(signature) - 2, 0, -1) if signature[i] != signature[i + 1])
    reordered = signature[:at] + signature[at + 1] + signature[at] + signature[at + 2 :]
    forged = [
        f"{header}.{mallory}.{signature}",
        f"{header}.{swapped}.{signature}",
        f"{header}.{payload}.{reordered}",
        token + "A",
    ]
    for other in forged:
        assert other != token
        hits = v.cache_info()["hits"]
        with pytest.raises(TokenValidationError):
            v.validate(other, keys, now=NOW)
        assert v.cache_info()["hits"] == hits, other
    assert v.validate(token, keys, now=NOW) is cached


def test_cache_size_is_checked() -> None:
    for bad in (-1, 10**9, 1.5, True):
        with pytest.raises(ConfigurationError, match="cache_size"):
            validator(cache_size=bad)


def test_memory_stays_bounded_with_many_distinct_tokens(keys: KeySet) -> None:
    # 20,000 distinct valid tokens (about 1 KB each) through a 1,024-entry cache: resident
    # memory must not follow the number of tokens (unbounded, the entries alone would hold
    # 20,000 x ~3 KB = ~60 MB).
    v = validator(cache_size=1024)
    padding = "x" * 600

    def run(start: int, count: int) -> None:
        for i in range(start, start + count):
            user = v.validate(mint("ES256", make_claims(jti=f"m{i}", pad=padding)), keys, now=NOW)
            assert user.claims["jti"] == f"m{i}"  # builds the Python views too

    run(0, 2_000)  # fill the cache and warm the allocators
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    run(2_000, 18_000)
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert v.cache_info()["size"] == 1024
    assert grown_kib < 10_000, f"resident memory grew by {grown_kib} KiB"
