"""Fixtures over the shared test keys (see ``token_factory``), and the check that the suite runs
against an installed copy of the package when ``make dist-test`` says it must."""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
from pathlib import Path

import pytest

import mcp_oauth2
from mcp_oauth2.lowlevel import KeySet, TokenValidator
from token_factory import (
    KEY_IDS,
    TRUSTED_KEY_IDS,
    PrivateKey,
    default_validator,
    jwks_for,
    private_key,
)

SOURCE_PACKAGE = Path(__file__).resolve().parent.parent / "python"


def installed_copy_problems() -> list[str]:
    """Why this run is not testing the package as users install it (empty when it is)."""
    problems = []
    package = Path(mcp_oauth2.__file__).resolve()
    site_packages = Path(sysconfig.get_paths()["platlib"]).resolve()
    if sys.prefix == sys.base_prefix:
        problems.append(f"not in a virtual environment: {sys.prefix}")
    if not package.is_relative_to(site_packages):
        problems.append(f"mcp_oauth2 comes from {package}, not from {site_packages}")
    if any(Path(entry or ".").resolve() == SOURCE_PACKAGE for entry in sys.path):
        problems.append(f"the source tree {SOURCE_PACKAGE} is on sys.path")
    problems += [
        f"{tool} is on PATH" for tool in ("cargo", "rustc", "rustup") if shutil.which(tool)
    ]
    return problems


def pytest_report_header() -> str:
    return f"mcp_oauth2 {mcp_oauth2.__version__} from {Path(mcp_oauth2.__file__).parent}"


def pytest_sessionstart(session: pytest.Session) -> None:
    """``MCP_OAUTH2_EXPECT_INSTALLED=1`` (``make dist-test``): refuse to run against anything
    but the wheel installed in this environment, with no Rust toolchain reachable."""
    if os.environ.get("MCP_OAUTH2_EXPECT_INSTALLED") == "1" and (
        problems := installed_copy_problems()
    ):
        raise pytest.UsageError("not testing the installed wheel: " + "; ".join(problems))


@pytest.fixture(scope="session")
def private_keys() -> dict[str, PrivateKey]:
    """Every test key by key id (generated once per session)."""
    return {kid: private_key(kid) for kid in KEY_IDS}


@pytest.fixture(scope="session")
def jwks() -> dict[str, list[dict[str, str]]]:
    """The trusted JWKS document: ``TRUSTED_KEY_IDS`` (not ``rsa-2``)."""
    return jwks_for(TRUSTED_KEY_IDS)


@pytest.fixture(scope="session")
def keyset(jwks: dict[str, list[dict[str, str]]]) -> KeySet:
    """The trusted JWKS parsed by the native core."""
    return KeySet.from_jwks(jwks)


@pytest.fixture
def validator() -> TokenValidator:
    """``default_validator()``: every algorithm, default leeway and required claims.

    A fresh one per test: its verified-token cache never answers one test from an entry another
    test left behind.
    """
    return default_validator()


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    """Async tests run on asyncio (the loop uvicorn and the MCP SDK use)."""
    return "asyncio"
