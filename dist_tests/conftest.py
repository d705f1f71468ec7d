"""Fixtures of the distribution checks (``make dist-test``): the built files, fresh virtual
environments made with uv, and the locked constraints they install under.

The Makefile passes ``MCP_OAUTH2_DIST`` (the folder ``make wheel`` wrote), ``MCP_OAUTH2_UV``
and ``MCP_OAUTH2_CONSTRAINTS``; without them these tests cannot run and say so.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent

Venv = Callable[[str, Sequence[str]], Path]


def _setting(name: str) -> Path:
    value = os.environ.get(name)
    if not value:
        raise pytest.UsageError(f"{name} is not set: run these checks with `make dist-test`")
    return Path(value).resolve()


@pytest.fixture(scope="session")
def dist_dir() -> Path:
    return _setting("MCP_OAUTH2_DIST")


@pytest.fixture(scope="session")
def wheel(dist_dir: Path) -> Path:
    (found,) = dist_dir.glob("*.whl")
    return found


@pytest.fixture(scope="session")
def sdist(dist_dir: Path) -> Path:
    (found,) = dist_dir.glob("*.tar.gz")
    return found


def run(args: Sequence[str | Path], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run a command; on failure the assertion shows its output."""
    done: subprocess.CompletedProcess[str] = subprocess.run(  # noqa: S603 - fixed tools, arguments from this test suite
        [str(a) for a in args], capture_output=True, text=True, check=False, **kwargs
    )
    assert done.returncode == 0, f"{' '.join(map(str, args))}\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="session")
def make_venv(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    """``make_venv(name, requirements)``: a fresh venv (this interpreter's CPython) holding
    exactly ``requirements`` and what they depend on, at the locked versions."""
    uv = _setting("MCP_OAUTH2_UV")
    constraints = _setting("MCP_OAUTH2_CONSTRAINTS")

    def make(name: str, requirements: Sequence[str]) -> Path:
        venv = tmp_path_factory.mktemp(name) / "venv"
        run([uv, "venv", "--quiet", "--seed", "--python", sys.executable, venv])
        python = venv / "bin" / "python"
        if requirements:
            run([uv, "pip", "install", "--quiet", "--python", python, "-c", constraints,
                 *requirements])  # fmt: skip
        return python

    return make
