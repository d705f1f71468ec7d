"""Session fixtures over the shared test keys (see ``token_factory``)."""

from __future__ import annotations

import pytest

from mcp_oauth2 import KeySet, TokenValidator
from token_factory import (
    KEY_IDS,
    TRUSTED_KEY_IDS,
    PrivateKey,
    default_validator,
    jwks_for,
    private_key,
)


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


@pytest.fixture(scope="session")
def validator() -> TokenValidator:
    """``default_validator()``: every algorithm, default leeway and required claims."""
    return default_validator()


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    """Async tests run on asyncio (the loop uvicorn and the MCP SDK use)."""
    return "asyncio"
