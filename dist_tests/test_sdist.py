"""The sdist: what it holds, and that ``pip wheel`` builds a working wheel from it in a clean
environment (this one needs Rust and a C compiler, as any build from source does)."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from conftest import ROOT, Venv, run


def sdist_files(sdist: Path) -> set[str]:
    with tarfile.open(sdist) as archive:
        return {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}


def test_sdist_holds_sources_licences_and_tests(sdist: Path) -> None:
    files = sdist_files(sdist)
    assert {
        "LICENSE",
        "THIRD_PARTY_LICENSES.txt",
        "README.md",
        "pyproject.toml",
        "Cargo.toml",
        "Cargo.lock",
        "PKG-INFO",
    } <= files
    assert {
        "rust/src/lib.rs",
        "python/mcp_oauth2/__init__.py",
        "python/mcp_oauth2/_rust.pyi",
    } <= files
    assert "python/mcp_oauth2/py.typed" in files
    # Bundled test vectors travel with their licences.
    vectors = {
        Path(f).parent for f in files if f.startswith("tests/vectors/") and f.endswith(".json")
    }
    assert vectors == {Path("tests/vectors/wycheproof"), Path("tests/vectors/rfc")}
    for folder in vectors:
        assert f"{folder}/LICENSE" in files, folder
    assert not [f for f in files if f.startswith(("benches/", ".ci/", ".github/"))]
    tracked = run(["git", "-C", ROOT, "ls-files", "python", "rust"]).stdout.split()
    assert set(tracked) <= files, set(tracked) - files


@pytest.mark.timeout(1200)  # a release build of the extension and AWS-LC from clean
def test_pip_wheel_from_sdist_works(sdist: Path, make_venv: Venv, tmp_path: Path) -> None:
    builder = make_venv("sdist-build", [])
    run([builder, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", tmp_path, sdist])
    (built,) = tmp_path.glob("mcp_oauth2-*.whl")
    python = make_venv("sdist-smoke", [str(built)])
    done = run([python, ROOT / "dist_tests" / "smoke.py"], cwd=tmp_path)
    assert "RS256 and ES256 validated" in done.stdout
