"""The public API is what the documentation promises: each public module's ``__all__`` is exactly
its row of the table in ``docs/api.md`` ("Public API"), every name in it exists, and every other
module of the package is internal (a name part starting with ``_``)."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import mcp_oauth2

API_PAGE = Path(__file__).resolve().parent.parent / "docs" / "api.md"
TABLE_HEADER = "| module | names |"
EVERY_ERROR = "and every name of `mcp_oauth2.errors`"


def documented() -> dict[str, set[str]]:
    """The table of ``docs/api.md``: module -> the names of its row."""
    text = API_PAGE.read_text(encoding="utf-8")
    assert text.startswith("# Public API\n")
    table = text.split(TABLE_HEADER + "\n", 1)[1].split("\n\n", 1)[0]
    rows: dict[str, set[str]] = {}
    for line in table.splitlines():
        match = re.fullmatch(r"\| `(mcp_oauth2[\w.]*)` \| (.*) \|", line)
        if match:
            module, names = match.groups()
            # The first backticked word of each comma-separated item: the name it lists.
            found = re.findall(r"(?:^|, )`(\w+)`", names.replace(EVERY_ERROR, ""))
            rows[module] = set(found)
            if EVERY_ERROR in names:
                rows[module] |= {"errors:*"}
    return rows


DOCUMENTED = documented()


def test_the_page_lists_the_public_modules() -> None:
    assert set(DOCUMENTED) == {
        "mcp_oauth2",
        "mcp_oauth2.lowlevel",
        "mcp_oauth2.errors",
        "mcp_oauth2.fastapi",
        "mcp_oauth2.mcp_sdk",
        "mcp_oauth2.testing",
        "mcp_oauth2.telemetry",
        "mcp_oauth2.cli",
    }


@pytest.mark.parametrize("module_name", sorted(DOCUMENTED))
def test_all_is_what_the_page_documents(module_name: str) -> None:
    module = importlib.import_module(module_name)
    expected = set(DOCUMENTED[module_name])
    if "errors:*" in expected:
        expected.remove("errors:*")
        expected |= set(DOCUMENTED["mcp_oauth2.errors"])
    exported = list(module.__all__)
    assert len(exported) == len(set(exported)), "a name listed twice"
    assert set(exported) == expected
    for name in exported:
        assert hasattr(module, name), name


def test_every_other_module_is_internal() -> None:
    public = set()
    for info in pkgutil.walk_packages(mcp_oauth2.__path__, "mcp_oauth2."):
        parts = info.name.split(".")[1:]
        if not any(part.startswith("_") for part in parts):
            public.add(info.name)
    assert public | {"mcp_oauth2"} == set(DOCUMENTED)
