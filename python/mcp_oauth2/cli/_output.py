"""What the command prints: a report of simple blocks, rendered as plain text or with ``rich``.

Commands build a ``Report`` (headings, fields, tables, checks, JSON documents, a verdict) and
never print directly. ``--json`` prints the command's JSON result instead. On a terminal the
report is drawn with ``rich`` (the ``cli`` extra) when it is installed; piped, or without
``rich``, it is plain text with no escape sequences, so it can be grepped and diffed.

Every string that may come from a token, a key document or a server is passed through
``printable`` first: a hostile token cannot put terminal escape sequences on the screen.
"""

from __future__ import annotations

import json
import sys
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO, Any, Literal

__all__ = [
    "Check",
    "Checks",
    "Document",
    "Fields",
    "Heading",
    "Line",
    "Report",
    "Status",
    "Table",
    "Verdict",
    "printable",
    "render",
    "write_json",
]

Status = Literal["pass", "fail", "warn", "skip", "not_reached"]
Style = Literal["plain", "ok", "fail", "warn", "dim"]
ColorChoice = Literal["auto", "always", "never"]

_STATUS_STYLE: dict[str, Style] = {
    "pass": "ok",
    "fail": "fail",
    "warn": "warn",
    "skip": "dim",
    "not_reached": "dim",
}
# How each status reads in plain text (upper case where the eye should stop).
_PLAIN_STATUS = {
    "pass": "pass",
    "fail": "FAIL",
    "warn": "WARN",
    "skip": "skip",
    "not_reached": "----",
}
_RICH_STATUS = {
    "pass": "✔ pass",
    "fail": "✘ FAIL",
    "warn": "! warn",
    "skip": "· skip",
    "not_reached": "· not reached",
}
_RICH_STYLE = {"plain": "", "ok": "green", "fail": "bold red", "warn": "yellow", "dim": "dim"}


def printable(text: object) -> str:
    """``text`` with control and format characters escaped (``\\x1b`` stays visible as text)."""
    value = str(text)
    if value.isprintable():
        return value
    out = []
    for char in value:
        if char.isprintable() or char == " ":
            out.append(char)
        elif unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp", "Co", "Cs", "Cn"):
            code = ord(char)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(char)
    return "".join(out)


@dataclass(frozen=True, slots=True)
class Heading:
    text: str


@dataclass(frozen=True, slots=True)
class Line:
    text: str
    style: Style = "plain"


@dataclass(frozen=True, slots=True)
class Fields:
    """Aligned ``name  value`` rows."""

    rows: Sequence[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class Table:
    columns: Sequence[str]
    rows: Sequence[Sequence[str]]
    row_styles: Sequence[Style] = ()


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: Status
    detail: str
    hint: str | None = None
    """What the command adds beside the check's own words (shown after them)."""

    def as_json(self) -> dict[str, str | None]:
        return {"name": self.name, "status": self.status, "detail": self.detail, "hint": self.hint}

    @property
    def text(self) -> str:
        """The detail and the hint, as one line reads them."""
        if not self.hint:
            return self.detail
        return f"{self.detail} ({self.hint})" if self.detail else self.hint


@dataclass(frozen=True, slots=True)
class Checks:
    items: Sequence[Check]


@dataclass(frozen=True, slots=True)
class Document:
    """A JSON value shown pretty-printed (decoded header and claims, a metadata document)."""

    value: Any


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    text: str


Block = Heading | Line | Fields | Table | Checks | Document | Verdict


@dataclass(slots=True)
class Report:
    blocks: list[Block] = field(default_factory=list)

    def add(self, *blocks: Block) -> None:
        self.blocks.extend(blocks)


def write_json(value: Any, stream: IO[str] | None = None, *, compact: bool = False) -> None:
    """The ``--json`` output: one JSON document (ASCII, so no byte can act on a terminal)."""
    out = stream or sys.stdout
    out.write(json.dumps(value, indent=None if compact else 2, ensure_ascii=True) + "\n")
    out.flush()


def render(report: Report, color: ColorChoice = "auto", stream: IO[str] | None = None) -> None:
    """Draw ``report``: with ``rich`` on a terminal (or ``color="always"``), else plain text."""
    out = stream or sys.stdout
    wants_rich = color == "always" or (color == "auto" and _isatty(out))
    if wants_rich:
        try:
            _render_rich(report, out, force=color == "always")
            return
        except ImportError:
            pass  # the `cli` extra is not installed: plain text it is
    _render_plain(report, out)
    out.flush()


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _json_text(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=True)


# -- plain text ------------------------------------------------------------------------------


def _render_plain(report: Report, out: IO[str]) -> None:
    for index, block in enumerate(report.blocks):
        if isinstance(block, Heading | Verdict) and index:
            out.write("\n")  # a blank line before each heading and the verdict
        out.write(_plain_block(block))


def _plain_block(block: Block) -> str:
    """``block`` as lines of plain text, indented under its heading."""
    if isinstance(block, Heading | Verdict):
        return printable(block.text) + "\n"
    if isinstance(block, Line):
        return "  " + printable(block.text) + "\n"
    if isinstance(block, Fields):
        return _plain_rows([(printable(name), printable(value)) for name, value in block.rows])
    if isinstance(block, Table):
        return _plain_table(block)
    if isinstance(block, Checks):
        rows = [
            (f"{_PLAIN_STATUS[check.status]:<4}  {printable(check.name)}", printable(check.text))
            for check in block.items
        ]
        width = max((len(check.name) for check in block.items), default=0) + 6
        return "".join(f"  {left.ljust(width)}  {right}\n" for left, right in rows)
    return "".join("    " + line + "\n" for line in _json_text(block.value).splitlines())


def _plain_rows(rows: list[tuple[str, str]]) -> str:
    width = max((len(name) for name, _ in rows), default=0)
    return "".join(f"  {name.ljust(width)}  {value}\n" for name, value in rows)


def _plain_table(table: Table) -> str:
    cells = [[printable(c) for c in table.columns]]
    cells += [[printable(c) for c in row] for row in table.rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(table.columns))]
    lines = []
    for row in cells:
        padded = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
        lines.append("  " + "  ".join(padded).rstrip() + "\n")
    return "".join(lines)


# -- rich --------------------------------------------------------------------------------------


def _render_rich(report: Report, out: IO[str], *, force: bool) -> None:
    from rich.console import Console
    from rich.padding import Padding

    console = Console(
        file=out,
        force_terminal=True if force else None,
        highlight=False,
        markup=False,
        emoji=False,
        soft_wrap=False,
    )
    for index, block in enumerate(report.blocks):
        if isinstance(block, Heading | Verdict):
            if index:
                console.print()  # a blank line before each heading and the verdict
            console.print(_rich_heading(block))
        else:
            indent = 4 if isinstance(block, Document) else 2
            console.print(Padding(_rich_block(block), (0, 0, 0, indent)))


def _rich_text(value: str, style: Style = "plain") -> Any:
    from rich.text import Text

    return Text(printable(value), style=_RICH_STYLE[style])


def _rich_heading(block: Heading | Verdict) -> Any:
    from rich.text import Text

    style = "bold" if isinstance(block, Heading) else "bold green" if block.ok else "bold red"
    return Text(printable(block.text), style=style)


def _rich_block(block: Line | Fields | Table | Checks | Document) -> Any:
    """``block`` as a rich renderable (``rich`` is imported only when drawing with it)."""
    from rich import box
    from rich.table import Table as RichTable
    from rich.text import Text

    if isinstance(block, Line):
        return _rich_text(block.text, block.style)
    if isinstance(block, Document):
        return Text(_json_text(block.value))
    if isinstance(block, Table):
        table = RichTable(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
        for column in block.columns:
            table.add_column(printable(column), header_style="bold")
        for index, row in enumerate(block.rows):
            style = block.row_styles[index] if index < len(block.row_styles) else "plain"
            table.add_row(*(_rich_text(cell) for cell in row), style=_RICH_STYLE[style])
        return table
    grid = RichTable.grid(padding=(0, 2))
    if isinstance(block, Fields):
        grid.add_column(style="cyan", no_wrap=True)
        grid.add_column()
        for name, value in block.rows:
            grid.add_row(_rich_text(name), _rich_text(value))
        return grid
    grid.add_column(no_wrap=True)
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    for check in block.items:
        status = _rich_text(_RICH_STATUS[check.status], _STATUS_STYLE[check.status])
        grid.add_row(status, _rich_text(check.name), _rich_text(check.text))
    return grid
