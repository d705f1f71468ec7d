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

    def as_json(self) -> dict[str, str]:
        return {"name": self.name, "status": self.status, "detail": self.detail}


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
    first = True
    for block in report.blocks:
        if isinstance(block, Heading):
            if not first:
                out.write("\n")
            out.write(printable(block.text) + "\n")
        elif isinstance(block, Line):
            out.write("  " + printable(block.text) + "\n")
        elif isinstance(block, Fields):
            width = max((len(name) for name, _ in block.rows), default=0)
            for name, value in block.rows:
                out.write(f"  {printable(name).ljust(width)}  {printable(value)}\n")
        elif isinstance(block, Table):
            _plain_table(block, out)
        elif isinstance(block, Checks):
            width = max((len(check.name) for check in block.items), default=0)
            for check in block.items:
                status = _PLAIN_STATUS[check.status]
                name = printable(check.name).ljust(width)
                out.write(f"  {status:<4}  {name}  {printable(check.detail)}\n")
        elif isinstance(block, Document):
            for line in _json_text(block.value).splitlines():
                out.write("    " + line + "\n")
        else:
            out.write(("\n" if not first else "") + printable(block.text) + "\n")
        first = False


def _plain_table(table: Table, out: IO[str]) -> None:
    cells = [[printable(c) for c in table.columns]]
    cells += [[printable(c) for c in row] for row in table.rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(table.columns))]
    for row in cells:
        padded = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
        out.write("  " + "  ".join(padded).rstrip() + "\n")


# -- rich --------------------------------------------------------------------------------------


def _render_rich(report: Report, out: IO[str], *, force: bool) -> None:
    from rich import box
    from rich.console import Console
    from rich.padding import Padding
    from rich.table import Table as RichTable
    from rich.text import Text

    console = Console(
        file=out,
        force_terminal=True if force else None,
        highlight=False,
        markup=False,
        emoji=False,
        soft_wrap=False,
    )

    def text(value: str, style: Style = "plain") -> Text:
        return Text(printable(value), style=_RICH_STYLE[style])

    first = True
    for block in report.blocks:
        if isinstance(block, Heading):
            if not first:
                console.print()
            console.print(Text(printable(block.text), style="bold"))
        elif isinstance(block, Line):
            console.print(Padding(text(block.text, block.style), (0, 0, 0, 2)))
        elif isinstance(block, Fields):
            grid = RichTable.grid(padding=(0, 2))
            grid.add_column(style="cyan", no_wrap=True)
            grid.add_column()
            for name, value in block.rows:
                grid.add_row(text(name), text(value))
            console.print(Padding(grid, (0, 0, 0, 2)))
        elif isinstance(block, Table):
            table = RichTable(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
            for column in block.columns:
                table.add_column(printable(column), header_style="bold")
            for index, row in enumerate(block.rows):
                style = block.row_styles[index] if index < len(block.row_styles) else "plain"
                table.add_row(*(text(cell) for cell in row), style=_RICH_STYLE[style])
            console.print(Padding(table, (0, 0, 0, 2)))
        elif isinstance(block, Checks):
            grid = RichTable.grid(padding=(0, 2))
            grid.add_column(no_wrap=True)
            grid.add_column(style="bold", no_wrap=True)
            grid.add_column()
            for check in block.items:
                style = _STATUS_STYLE[check.status]
                grid.add_row(
                    text(_RICH_STATUS[check.status], style), text(check.name), text(check.detail)
                )
            console.print(Padding(grid, (0, 0, 0, 2)))
        elif isinstance(block, Document):
            console.print(Padding(Text(_json_text(block.value)), (0, 0, 0, 4)))
        else:
            if not first:
                console.print()
            verdict_style = "bold green" if block.ok else "bold red"
            console.print(Text(printable(block.text), style=verdict_style))
        first = False
