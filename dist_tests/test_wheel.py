"""What the release wheel holds and says about itself: exactly the package, its stub, ``py.typed``
and the licence, with a manylinux tag that ``auditwheel`` agrees with."""

from __future__ import annotations

import email.parser
import re
import sys
import tomllib
import zipfile
from pathlib import Path

from conftest import ROOT, run

PACKAGE = ROOT / "python" / "mcp_oauth2"
# The glibc floor the Makefile asks zig for (MANYLINUX := manylinux2014).
PLATFORM_TAG = "manylinux_2_17_x86_64"


def cargo_version() -> str:
    return str(tomllib.loads((ROOT / "Cargo.toml").read_text())["package"]["version"])


def test_wheel_holds_the_package_and_nothing_else(wheel: Path) -> None:
    dist_info = f"mcp_oauth2-{cargo_version()}.dist-info"
    expected = {
        f"mcp_oauth2/{source.relative_to(PACKAGE).as_posix()}" for source in PACKAGE.rglob("*.py")
    }
    expected |= {
        "mcp_oauth2/_rust.abi3.so",
        "mcp_oauth2/_rust.pyi",
        "mcp_oauth2/py.typed",
        f"{dist_info}/METADATA",
        f"{dist_info}/WHEEL",
        f"{dist_info}/RECORD",
        f"{dist_info}/licenses/LICENSE",
        f"{dist_info}/licenses/THIRD_PARTY_LICENSES.txt",
        # The CycloneDX list of the Rust crates compiled into _rust (with their licences).
        f"{dist_info}/sboms/mcp-oauth2.cyclonedx.json",
    }
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    if project.get("scripts") or project.get("entry-points"):
        expected.add(f"{dist_info}/entry_points.txt")  # console commands
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert "mcp_oauth2/demo.py" not in names
    assert names - expected == set(), "unexpected files in the wheel"
    assert expected - names == set(), "files missing from the wheel"


def test_wheel_metadata(wheel: Path) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    with zipfile.ZipFile(wheel) as archive:
        dist_info = next(n.split("/")[0] for n in archive.namelist() if ".dist-info/" in n)
        metadata = email.parser.Parser().parsestr(archive.read(f"{dist_info}/METADATA").decode())
        wheel_file = archive.read(f"{dist_info}/WHEEL").decode()
    assert metadata["Name"] == "mcp-oauth2"
    assert metadata["Version"] == cargo_version()
    assert metadata["License-Expression"] == project["license"] == "Apache-2.0"
    assert metadata.get_all("License-File") == ["LICENSE", "THIRD_PARTY_LICENSES.txt"]
    assert metadata["Requires-Python"] == project["requires-python"]
    assert sorted(metadata.get_all("Provides-Extra") or []) == sorted(
        project["optional-dependencies"]
    )
    assert "Root-Is-Purelib: false" in wheel_file
    assert f"Tag: cp311-abi3-{PLATFORM_TAG}" in wheel_file


def test_tag_is_abi3_manylinux2014(wheel: Path) -> None:
    name, version, python, abi, platforms = wheel.stem.split("-")
    assert (name, version, python, abi) == ("mcp_oauth2", cargo_version(), "cp311", "abi3")
    assert PLATFORM_TAG in platforms.split(".")


def test_auditwheel_agrees_with_the_tag(wheel: Path) -> None:
    shown = run([Path(sys.executable).parent / "auditwheel", "show", wheel]).stdout
    text = " ".join(shown.split())
    consistent = re.search(r'is consistent with the following platform tag: "([^"]+)"', text)
    assert consistent is not None, shown
    assert consistent.group(1) == PLATFORM_TAG
    # Only the C library: AWS-LC and everything else is linked in statically.
    libraries = set(re.findall(r"(\S+\.so\.\d+) with versions", text))
    assert libraries <= {"libc.so.6", "libpthread.so.0", "libdl.so.2", "libm.so.6"}, libraries
