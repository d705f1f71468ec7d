"""One version source: Cargo.toml. maturin writes it into the package metadata, and
``mcp_oauth2.__version__`` reads it back from there."""

from __future__ import annotations

import importlib.metadata
import tomllib
from pathlib import Path

from packaging.version import Version

import mcp_oauth2
from mcp_oauth2 import _rust

CARGO_TOML = Path(__file__).resolve().parent.parent / "Cargo.toml"


def test_version_is_the_installed_distribution_version() -> None:
    assert mcp_oauth2.__version__ == importlib.metadata.version("mcp-oauth2")


def test_version_comes_from_cargo_toml() -> None:
    cargo_version = tomllib.loads(CARGO_TOML.read_text())["package"]["version"]
    # Equal as PEP 440 versions: Cargo's "1.0.0-rc.1" is the wheel's "1.0.0rc1".
    assert Version(mcp_oauth2.__version__) == Version(cargo_version)
    assert _rust.__version__ == cargo_version
