"""Thread safety of the native core, shown on regular CPython by a threaded stress run.

The extension declares ``gil_used = false``, so free-threaded CPython runs it without a GIL.
Here many threads share one ``TokenValidator`` (and its verified-token cache), through
``validate`` and through ``authorize`` with several ``ScopeRules``, while other threads swap the
key set in use, clear the cache, read its counters and parse new key sets.
Every result is checked against what the token and the key set passed in say it must be; the
switch interval is shortened so threads interleave far more often than they normally would.
"""

from __future__ import annotations

import random
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from mcp_oauth2 import AuthenticatedUser
from mcp_oauth2._rust import ScopeRules  # not yet re-exported by the package
from mcp_oauth2.errors import (
    ExpiredTokenError,
    InvalidAudienceError,
    InvalidSignatureError,
    KeyNotFoundError,
    TokenValidationError,
)
from mcp_oauth2.lowlevel import KeySet, TokenValidator
from token_factory import AUDIENCE, ISSUER, NOW, jwks_for, make_claims, mint

WORKERS = 8
ROUNDS = 1500
# Small, so the workers keep evicting each other's entries.
CACHE_SIZE = 16
# The key that only one of the two key sets holds.
ROTATED_KID = "ec-256"


@dataclass(frozen=True)
class Case:
    """A token and what validating it must give under a key set with (and without) its key."""

    token: str
    kid: str
    subject: str | None
    token_id: str | None
    scopes: frozenset[str]
    error: type[TokenValidationError] | None

    def expected_error(self, keys: KeySet) -> type[TokenValidationError] | None:
        if self.kid not in keys:
            return KeyNotFoundError
        return self.error


def tampered(token: str) -> str:
    head, payload, signature = token.split(".")
    return f"{head}.{payload}.{signature[:-2]}{'A' if signature[-2] != 'A' else 'B'}{signature[-1]}"


def make_cases() -> list[Case]:
    cases = []
    for n in range(24):
        alg, kid = [("ES256", "ec-256"), ("RS256", "rsa-1"), ("EdDSA", "ed25519")][n % 3]
        scopes = frozenset({f"scope-{n}", "read"})
        claims = make_claims(sub=f"user-{n}", jti=f"token-{n}", scope=" ".join(sorted(scopes)))
        token = mint(alg, claims, key=kid)
        cases.append(Case(token, kid, f"user-{n}", f"token-{n}", scopes, None))
        if n % 4 == 0:
            cases.append(Case(tampered(token), kid, None, None, frozenset(), InvalidSignatureError))
        if n % 6 == 0:
            expired = mint(alg, make_claims(exp=NOW - 600, sub=f"user-{n}"), key=kid)
            cases.append(Case(expired, kid, None, None, frozenset(), ExpiredTokenError))
            foreign = mint(alg, make_claims(aud="https://other.example.com"), key=kid)
            cases.append(Case(foreign, kid, None, None, frozenset(), InvalidAudienceError))
    return cases


@pytest.fixture
def fast_switching() -> Iterator[None]:
    """Hand the GIL over every few microseconds, so threads interleave inside the test."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def run_threads(targets: list[Callable[[], None]], timeout: float = 90) -> list[BaseException]:
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(targets))

    def wrapped(target: Callable[[], None]) -> None:
        try:
            barrier.wait()
            target()
        except BaseException as error:  # collected, and reported by the test
            errors.append(error)

    threads = [threading.Thread(target=wrapped, args=(t,), daemon=True) for t in targets]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    assert not any(thread.is_alive() for thread in threads), "threads did not finish: deadlock?"
    return errors


def check_user(user: AuthenticatedUser, case: Case) -> None:
    # The lazily built views of a shared (cached) user object, first touched by many threads.
    assert user.subject == case.subject
    assert user.scopes == case.scopes
    assert user.audience == (AUDIENCE,)
    assert user.token_id == user.claims["jti"] == case.token_id
    assert user.claims["sub"] == case.subject
    assert user.has_scopes(*case.scopes)


# Scope rules for the workers on `authorize`: "read" implies a scope named after each rules.
RULES = [ScopeRules({"read": [f"implied-{n}"]}) for n in range(3)]


def expected_scopes(rules: ScopeRules, case: Case) -> tuple[str, ...]:
    return tuple(sorted(rules.effective(case.scopes)))


def test_shared_validator_under_concurrent_use(fast_switching: None) -> None:
    cases = make_cases()
    all_keys = KeySet.from_jwks(jwks_for())
    without_rotated = KeySet.from_jwks(jwks_for(["rsa-1", "ed25519"]))
    assert ROTATED_KID in all_keys and ROTATED_KID not in without_rotated
    current = [all_keys]  # swapped by one thread; each read takes whichever set is current
    validator = TokenValidator(
        ISSUER, AUDIENCE, algorithms=["ES256", "RS256", "EdDSA"], cache_size=CACHE_SIZE
    )
    done = threading.Event()
    checked = [0] * WORKERS

    def worker(index: int) -> Callable[[], None]:
        def work() -> None:
            rng = random.Random(index)
            for _ in range(ROUNDS):
                case = rng.choice(cases)
                keys = current[0]
                expected = case.expected_error(keys)
                refused: TokenValidationError | None = None
                # Half the workers go through the middleware's one-call path, each with its own
                # scope rules (the user objects they share remember one rules' answer).
                through_header = index % 2 == 1
                try:
                    if through_header:
                        rules = RULES[index % len(RULES)]
                        header = b"Bearer " + case.token.encode()
                        outcome = validator.authorize(header, keys, rules, now=NOW)
                        assert outcome is not None
                        user, effective = outcome
                        assert effective == expected_scopes(rules, case)
                    else:
                        user = validator.validate(case.token, keys, now=NOW)
                except TokenValidationError as error:
                    refused = error
                if refused is None:
                    assert expected is None, f"accepted, expected {expected.__name__}"
                    check_user(user, case)
                else:
                    assert type(refused) is expected, (refused, expected, case.subject)
                checked[index] += 1

        return work

    def swap_keys() -> None:
        while not done.is_set():
            current[0] = without_rotated if current[0] is all_keys else all_keys
            time.sleep(0.0005)

    def clear_and_count() -> None:
        while not done.is_set():
            info = validator.cache_info()
            assert 0 <= info["size"] <= info["capacity"] == CACHE_SIZE, info
            validator.cache_clear()
            time.sleep(0.001)

    def parse_keys() -> None:
        document = jwks_for()
        while not done.is_set():
            assert KeySet.from_jwks(document).key_ids == all_keys.key_ids

    workers = [worker(i) for i in range(WORKERS)]

    def workers_then_stop() -> None:
        errors = run_threads(workers)
        done.set()
        if errors:
            raise errors[0]

    errors = run_threads([workers_then_stop, swap_keys, clear_and_count, parse_keys])
    assert errors == [], errors
    assert checked == [ROUNDS] * WORKERS
    info = validator.cache_info()
    assert info["hits"] > 0 and info["misses"] > 0 and info["evictions"] > 0, info


def test_one_token_first_seen_by_many_threads(fast_switching: None) -> None:
    """Every thread validates the same new token at once: all get an equal user, and the
    cache ends up holding it once."""
    keys = KeySet.from_jwks(jwks_for(["ec-256"]))
    validator = TokenValidator(ISSUER, AUDIENCE, algorithms=["ES256"])
    for round_ in range(20):
        token = mint("ES256", make_claims(jti=f"race-{round_}"), key="ec-256")
        users: list[AuthenticatedUser] = []

        def validate(token: str = token, users: list[AuthenticatedUser] = users) -> None:
            user = validator.validate(token, keys, now=NOW)
            assert user.claims["jti"] == user.token_id
            users.append(user)

        assert run_threads([validate] * WORKERS) == []
        assert len(users) == WORKERS
        assert all(user == users[0] for user in users)
        assert {user.token_id for user in users} == {f"race-{round_}"}
    assert validator.cache_info()["size"] == 20
