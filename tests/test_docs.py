"""The documentation cannot rot: its examples run, its tables match the code.

Python examples in ``docs/*.md`` and ``README.md`` are marked by an HTML comment on the line
before the fence (invisible once rendered):

- ``<!-- run -->``: the block is a complete script; it runs on its own;
- ``<!-- run: NAME -->``: the block continues the earlier blocks of the same page marked with the
  same NAME (they run together, in order, up to this one);
- ``<!-- no-run: why -->``: a fragment, not run (docs/ only; README fragments need no mark).

Each runnable example runs in a fresh interpreter, in an empty directory, with no ``MCP_OAUTH2_*``
variables; examples that need servers start real ones on loopback (``LocalIssuer``,
``AppServer``) and must stop them. Every Python block in ``docs/`` must carry one of the marks.

The tables that restate the code are checked against it: the settings of
``docs/configuration.md`` against ``OAuth2Config``, the exit codes of ``docs/cli.md``, and the
commands of ``CONTRIBUTING.md`` against the Makefile.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic_core import PydanticUndefined

from mcp_oauth2 import OAuth2Config
from mcp_oauth2.cli._app import build_parser
from mcp_oauth2.cli._outcome import ExitCode

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = ROOT / "README.md"
CONTRIBUTING = ROOT / "CONTRIBUTING.md"
MAKEFILE = ROOT / "Makefile"
MARK = re.compile(r"<!--\s*(run(?::\s*(?P<session>[\w-]+))?|no-run:[^>]*)\s*-->")
EXAMPLE_TIMEOUT = 120


@dataclass(frozen=True)
class Block:
    path: Path
    line: int
    language: str
    code: str
    mark: str | None
    session: str | None

    @property
    def runnable(self) -> bool:
        return self.mark is not None and self.mark.startswith("run")

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def blocks(path: Path) -> list[Block]:
    """The fenced code blocks of a Markdown file, with the mark on the line before each."""
    found = []
    lines = path.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        fence = re.match(r"^```(\w*)\s*$", lines[index])
        if not fence:
            index += 1
            continue
        start = index
        index += 1
        body = []
        while index < len(lines) and lines[index].rstrip() != "```":
            body.append(lines[index])
            index += 1
        previous = lines[start - 1].strip() if start else ""
        mark = MARK.fullmatch(previous)
        found.append(
            Block(
                path=path,
                line=start + 1,
                language=fence.group(1),
                code="\n".join(body) + "\n",
                mark=mark.group(1) if mark else None,
                session=mark.group("session") if mark else None,
            )
        )
        index += 1
    return found


def doc_pages() -> list[Path]:
    return sorted(DOCS.rglob("*.md"))


def runnable_blocks() -> list[Block]:
    return [b for path in [*doc_pages(), README] for b in blocks(path) if b.runnable]


def script_for(block: Block) -> str:
    """The code to run for ``block``: with a session, every earlier block of it too."""
    if block.session is None:
        return block.code
    chain = [
        b.code
        for b in blocks(block.path)
        if b.runnable and b.session == block.session and b.line <= block.line
    ]
    return "\n".join(chain)


def test_every_python_block_in_docs_is_marked() -> None:
    unmarked = [
        b.name
        for path in doc_pages()
        for b in blocks(path)
        if b.language == "python" and not b.mark
    ]
    assert unmarked == [], "mark each with <!-- run -->, <!-- run: NAME --> or <!-- no-run: why -->"


def test_there_are_examples_to_run() -> None:
    runnable = runnable_blocks()
    pages = {b.path for b in runnable}
    assert README in pages
    assert {"getting-started.md", "configuration.md", "answers.md"} <= {p.name for p in pages}
    assert all(b.language == "python" for b in runnable)


@pytest.mark.parametrize("block", runnable_blocks(), ids=lambda block: block.name)
def test_example_runs(block: Block, tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(script_for(block), encoding="utf-8")
    environ = {k: v for k, v in os.environ.items() if not k.upper().startswith("MCP_OAUTH2_")}
    environ["PYTHONWARNINGS"] = "error"
    done = subprocess.run(  # noqa: S603 - the documentation's own example
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=environ,
        timeout=EXAMPLE_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, f"{block.name} failed:\n{done.stdout}\n{done.stderr}"


# -- the configuration table ---------------------------------------------------------------------


def rendered_default(field: str) -> str | None:
    """How the table writes a field's default; None where it is described in words."""
    info = OAuth2Config.model_fields[field]
    if info.default_factory is not None:
        value: Any = info.default_factory()  # type: ignore[call-arg]
    elif info.default is PydanticUndefined:
        return "required"
    else:
        value = info.default
    if value is None:
        return None
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, float) and value.is_integer():
        return f"`{int(value)}`"
    if isinstance(value, int | float):
        return f"`{value}`"
    if isinstance(value, tuple):
        return f"`{','.join(value)}`" if value else "none"
    if isinstance(value, dict) and not value:
        return "`{}`"
    return f"`{value}`"


def config_table(path: Path) -> dict[str, tuple[str, str]]:
    """Rows of the table whose header is ``| setting | variable | default | meaning |``."""
    text = path.read_text(encoding="utf-8")
    start = text.index("| setting | variable | default | meaning |")
    rows = {}
    for line in text[start:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows[cells[0].strip("`")] = (cells[1].strip("`"), cells[2])
    return rows


def test_configuration_table_lists_every_setting() -> None:
    rows = config_table(DOCS / "configuration.md")
    assert list(rows) == list(OAuth2Config.model_fields), "one row per field, in model order"
    for field, (variable, default) in rows.items():
        assert variable == f"MCP_OAUTH2_{field.upper()}", field
        expected = rendered_default(field)
        if expected is not None:
            assert default == expected, f"{field}: the table says {default}, the model {expected}"


# -- the commands of CONTRIBUTING.md -------------------------------------------------------------


def documented_make_targets() -> set[str]:
    """The targets the Makefile documents: those ``make help`` lists (a ``## `` comment)."""
    text = MAKEFILE.read_text(encoding="utf-8")
    return set(re.findall(r"^([a-zA-Z0-9_.-]+):[^=\n]*## ", text, re.MULTILINE))


def test_contributing_lists_every_make_target() -> None:
    text = CONTRIBUTING.read_text(encoding="utf-8")
    rows = set(re.findall(r"^\| `make ([\w.-]+)` \|", text, re.MULTILINE))
    targets = documented_make_targets()
    assert len(targets) >= 30
    assert targets - rows == set(), "a make target without its row in CONTRIBUTING.md"
    assert rows - targets == set(), "a row of CONTRIBUTING.md for no documented make target"


# -- the command-line page -----------------------------------------------------------------------


def test_cli_page_lists_every_exit_code() -> None:
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    for code in ExitCode:
        assert re.search(rf"^\| {code.value} \| \S", text, re.MULTILINE), code
    assert max(ExitCode) == ExitCode.INTERNAL


def command_lines() -> list[tuple[str, list[str], str | None]]:
    """Every ``mcp-oauth2 ...`` line of a console/sh block in the docs and the README, with the
    error line shown after it (None when the docs show none)."""
    found: list[tuple[str, list[str], str | None]] = []
    for path in [*doc_pages(), README]:
        for block in blocks(path):
            if block.language not in ("console", "sh", "bash"):
                continue
            lines = block.code.splitlines()
            for number, line in enumerate(lines):
                if block.language == "console" and not line.startswith("$ "):
                    continue  # output, not a command
                text = line.removeprefix("$ ").split("  #")[0].strip()
                text = re.sub(r"^TOKEN=\$\((.*)\)$", r"\1", text)
                if "| mcp-oauth2 " in text:
                    text = text.split("| ", 1)[1]
                if not text.startswith("mcp-oauth2 "):
                    continue
                after = lines[number + 1] if number + 1 < len(lines) else ""
                error = after if re.match(r"^mcp-oauth2 \w+: error: ", after) else None
                found.append((f"{block.name}: {text}", shlex.split(text)[1:], error))
    return found


def test_docs_show_commands() -> None:
    lines = command_lines()
    assert len(lines) >= 10
    assert any(error is not None for _, _, error in lines)


@pytest.mark.parametrize(
    ("where", "args", "error"), command_lines(), ids=[where for where, _, _ in command_lines()]
)
def test_documented_command_lines_parse(
    where: str, args: list[str], error: str | None, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each command line the docs show is accepted by the real argument parser, and each error
    the docs show is the one it prints."""
    parser = build_parser()
    if error is None:
        try:
            parser.parse_args(args)
        except SystemExit as stopped:  # argparse exits on a bad argument (or --help)
            pytest.fail(f"{where}: exit {stopped.code}")
        return
    with pytest.raises(SystemExit) as exited:
        parser.parse_args(args)
    assert exited.value.code == ExitCode.USAGE
    assert capsys.readouterr().err.strip() == error


# -- the blocks `make interop` runs -------------------------------------------------------------

# Blocks marked `<!-- interop: NAME -->` (above any run mark) are what `make interop` follows
# literally against Keycloak (interop/first_hour.py): page, name, language, how many.
INTEROP_BLOCKS = [
    ("providers/keycloak.md", "keycloak-realm", "sh", 5),
    ("getting-started.md", "server", "python", 1),
    ("clients.md", "client", "python", 2),
    ("clients.md", "oauth-client", "python", 1),
    ("downstream.md", "keycloak-exchange", "sh", 2),
]


@pytest.mark.parametrize(("page", "name", "language", "count"), INTEROP_BLOCKS)
def test_the_blocks_make_interop_runs_are_there_and_parse(
    page: str, name: str, language: str, count: int
) -> None:
    text = (DOCS / page).read_text(encoding="utf-8")
    pattern = rf"<!-- interop: {name} -->\n(?:<!--[^\n]*-->\n)*```{language}\n(.*?)\n```"
    codes = re.findall(pattern, text, re.DOTALL)
    assert len(codes) == count, f"{page}: {len(codes)} blocks marked interop: {name}"
    script = "\n".join(codes) + "\n"
    if language == "sh":
        bash = shutil.which("bash")
        assert bash is not None
        done = subprocess.run(  # noqa: S603 - bash parses the page's commands (-n: runs nothing)
            [bash, "-n", "-c", script], capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stderr
    else:
        compile(script, f"{page}:{name}", "exec")
