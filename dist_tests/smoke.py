"""Smoke test of an installed mcp-oauth2: run it with only the base dependencies installed.

    python dist_tests/smoke.py

Used by ``make dist-test`` (on the wheel built from the sdist) and by the release workflow (on
each platform's wheel). It imports every module that needs no extra, then validates an RS256
and an ES256 token against their keys, and checks that a tampered token and a wrong audience
are refused. The tokens were signed once with pyca/cryptography and the private keys thrown
away; a fixed ``now`` keeps them valid forever. On free-threaded CPython it also checks that
importing the extension left the GIL off (``gil_used = false``). Exits non-zero on the first
failure.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import sysconfig

import mcp_oauth2
from mcp_oauth2.errors import InvalidAudienceError, InvalidSignatureError
from mcp_oauth2.lowlevel import KeySet, TokenValidator

# Modules that need an extra (``pip install "mcp-oauth2[EXTRA]"``); each says so with an
# ImportError when it is missing. ``dist_tests/test_imports.py`` checks them extra by extra.
NEEDS_EXTRA = frozenset(
    {"mcp_oauth2.fastapi", "mcp_oauth2.mcp_sdk", "mcp_oauth2.testing", "mcp_oauth2.telemetry"}
)

ISSUER = "https://auth.example.com"
AUDIENCE = "https://mcp.example.com/mcp"
NOW = 1_800_000_100
JWKS = {
    "keys": [
        {
            "kty": "RSA",
            "kid": "smoke-rsa",
            "alg": "RS256",
            "use": "sig",
            "e": "AQAB",
            "n": "3_8DitJ763rKDqohPcU26EomMq1S-KHu7wj1brTuVGVShGIY3VcUWnjaDqFjSsWyETIk8lIEKY6f6XSg"
            "VM8YgOtNNzD5Ssxyf07n7xCr-B5scHby609UHRFyOtR6QLWlMJYlRKhsejN_lbH4DTKFxd8bQt-_HSWM7-45"
            "DOUj8XwG9UKGY36FktQ2Do_ae5wKVTZ1roEYGMaaSdjb4swXJCT0eor-8IjC1gHPqma3vCbTVYmRdens4246"
            "psNKifSYBNO4NKtIh8mzODwMdqw03gIkQEfMQQw85HaTsSL0p8gAt8L7o14MdaxSZYf6YEMOis4dBwelsycU"
            "A7XHWyylCQ",
        },
        {
            "kty": "EC",
            "kid": "smoke-ec",
            "alg": "ES256",
            "use": "sig",
            "crv": "P-256",
            "x": "E9pN6irBpjvj--c37xMO_ABYE9GTn3jwQrK-P6OFQfM",
            "y": "aYjP8hD-xGAjlKVUiH11TZu4U5AYjBEtuvGMUXVPTS0",
        },
    ]
}
_CLAIMS = (
    "eyJpc3MiOiJodHRwczovL2F1dGguZXhhbXBsZS5jb20iLCJhdWQiOiJodHRwczovL21jcC5leGFtcGxlLmNvbS9tY3Ai"
    "LCJzdWIiOiJzbW9rZS11c2VyIiwic2NvcGUiOiJtY3A6dG9vbHMiLCJpYXQiOjE4MDAwMDAwMDAsImV4cCI6MTgwMDAw"
    "MzYwMH0"
)
TOKENS = {
    "RS256": "eyJhbGciOiJSUzI1NiIsImtpZCI6InNtb2tlLXJzYSIsInR5cCI6IkpXVCJ9."
    + _CLAIMS
    + ".2g-vUqrCIfjB5rXarMKhDV55XDmFmpjKuN6YZkYx3t3j_ds_Wg1OtKNAcfQmCWOfu0iRcp54bBFsE4s5sLcCGcwJ"
    "IecVLP8MZJtrdrIP_1eh7cb6t5K8kTUNtmSxQwo-RWET_dqkwj-5m04fT-6O4dGYDnftEEKR7Un7tkar78pcdDzS0F"
    "Am6gVsOs4FciuuGYKfCjE0oArbTvFjlSg2pO31AragX9ZfYdBd55LjnSWbnBGak1Avu6dNaccr4ezZkMgqsAWsxukIX"
    "0cq9kDBQL6ZuESmOIx6XEGP_5paWYJ5UpOm6yiBJDJEOW9nhCK-BgkNMQ6a589OHqaeqDiuQg",
    "ES256": "eyJhbGciOiJFUzI1NiIsImtpZCI6InNtb2tlLWVjIiwidHlwIjoiSldUIn0."
    + _CLAIMS
    + ".mdn7GdvAIioH0nr_GC2EYfW0Q4n3aZjshVRdf6qxW4ojyg9pYKFIUSbq_a-DbI5xohGs_p7cE78NZVQBekcwAw",
}


def import_modules() -> list[str]:
    """Import every module of the package; a module that needs an extra may only miss it."""
    imported = []
    for info in pkgutil.iter_modules(mcp_oauth2.__path__, "mcp_oauth2."):
        try:
            importlib.import_module(info.name)
        except ImportError:
            if info.name not in NEEDS_EXTRA:
                raise
        else:
            imported.append(info.name)
    return imported


def check_tokens() -> None:
    keys = KeySet.from_jwks(JWKS)
    assert keys.key_ids == ("smoke-rsa", "smoke-ec"), keys.key_ids
    validator = TokenValidator(ISSUER, AUDIENCE, algorithms=("RS256", "ES256"))
    for alg, token in TOKENS.items():
        user = validator.validate(token, keys, now=NOW)
        assert (user.subject, user.scopes) == ("smoke-user", frozenset({"mcp:tools"})), alg
        head, payload, signature = token.split(".")
        flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
        try:
            validator.validate(f"{head}.{payload}.{flipped}", keys, now=NOW)
        except InvalidSignatureError:
            pass
        else:
            raise AssertionError(f"{alg}: a tampered signature was accepted")
        other = TokenValidator(ISSUER, "https://other.example.com", algorithms=(alg,))
        try:
            other.validate(token, keys, now=NOW)
        except InvalidAudienceError:
            pass
        else:
            raise AssertionError(f"{alg}: a token for another audience was accepted")


def check_free_threading() -> str:
    """On a free-threaded build, CPython turns the GIL back on for an extension that does not
    declare itself safe without it; ours does, so it must still be off."""
    if not sysconfig.get_config_var("Py_GIL_DISABLED"):
        return "GIL build"
    is_gil_enabled = getattr(sys, "_is_gil_enabled")  # noqa: B009 - 3.13+ only
    assert not is_gil_enabled(), "importing mcp_oauth2 turned the GIL back on"
    return "free-threaded, GIL still off"


def main() -> int:
    modules = import_modules()
    check_tokens()
    threading_mode = check_free_threading()
    print(
        f"mcp-oauth2 {mcp_oauth2.__version__} on Python {sys.version.split()[0]}: "
        f"{len(modules)} modules imported, RS256 and ES256 validated, tampering refused "
        f"({threading_mode})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
