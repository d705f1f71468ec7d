"""Writes THIRD_PARTY_LICENSES.txt: the licences of the Rust crates compiled into the extension.

    python scripts/third_party_licenses.py          # rewrite the file from Cargo.lock
    python scripts/third_party_licenses.py --check  # fail if the file is out of date

The wheel links AWS-LC and a few Rust crates statically into ``mcp_oauth2/_rust``; their
licences require their notices to travel with the binary. The crates are the normal (not build,
not dev) dependencies of the ``python`` feature, less proc-macro crates, which run at compile time
only; their licence files are read from cargo's sources. The file goes into the wheel's
``.dist-info/licenses/`` through ``license-files`` in pyproject.toml.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "THIRD_PARTY_LICENSES.txt"
CARGO_METADATA = ["cargo", "metadata", "--format-version", "1", "--locked", "--features", "python"]
LICENCE_PREFIXES = ("LICENSE", "LICENCE", "COPYING", "NOTICE", "COPYRIGHT")
HEADER = """\
Third-party software compiled into the native extension mcp_oauth2/_rust.

mcp-oauth2 itself is licensed under Apache-2.0 (LICENSE). The extension statically links the
Rust crates below, AWS-LC (through aws-lc-sys) among them; each one's licence files follow.
Generated from Cargo.lock by scripts/third_party_licenses.py; do not edit by hand.
"""


def linked_packages() -> list[dict[str, object]]:
    """The packages whose code ends up in the extension, sorted by name."""
    metadata = json.loads(
        subprocess.run(  # noqa: S603 - cargo from PATH, fixed arguments
            CARGO_METADATA,
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    packages = {p["id"]: p for p in metadata["packages"]}
    nodes = {n["id"]: n for n in metadata["resolve"]["nodes"]}
    root = metadata["resolve"]["root"]
    seen: set[str] = set()
    pending = [root]
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        for dep in nodes[current]["deps"]:
            normal = any(kind["kind"] is None for kind in dep["dep_kinds"])
            targets = packages[dep["pkg"]]["targets"]
            proc_macro = any("proc-macro" in target["kind"] for target in targets)
            if normal and not proc_macro:
                pending.append(dep["pkg"])
    seen.discard(root)
    return sorted((packages[i] for i in seen), key=lambda p: (str(p["name"]), str(p["version"])))


def render() -> str:
    parts = [HEADER]
    for package in linked_packages():
        folder = Path(str(package["manifest_path"])).parent
        files = sorted(f for f in folder.iterdir() if f.name.upper().startswith(LICENCE_PREFIXES))
        if not files:
            raise SystemExit(f"{package['name']} {package['version']}: no licence file in {folder}")
        rule = "=" * 100
        title = f"{package['name']} {package['version']}  ({package['license']})"
        source = package.get("repository") or "crates.io"
        parts.append(f"\n{rule}\n{title}\n{source}\n{rule}\n")
        for file in files:
            parts.append(f"\n--- {file.name} ---\n\n{file.read_text(errors='replace').strip()}\n")
    return "".join(parts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else "")
    parser.add_argument("--check", action="store_true", help="fail if the file is out of date")
    text = render()
    if parser.parse_args().check:
        if not OUTPUT.is_file() or OUTPUT.read_text() != text:
            print(f"{OUTPUT.name} is out of date: run `make licenses`", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT.name} ({len(text):,} characters)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
