"""The one ``--format`` type of every command: what a command writes on stdout.

``table`` and ``text`` are one format, for people (a Rich table or lines of text; each command
has kept the name it had since its first release as its default, and takes the other as well);
``json`` is for scripts; ``csv`` for spreadsheets, where a command has rows to give; ``html``
for a printable page written to a file (``report``). A command
names the formats it offers with :func:`offered`; asking for another is a usage error (exit 2),
before any work. :func:`write_output` is the one dispatch: JSON as one indented document, CSV as the
text given, and for people a Rich console that prints input-derived text (references, reasons,
a server's software name) as it is, never as markup or emoji codes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from enum import StrEnum
from typing import Any

import typer
from rich.console import Console

__all__ = ["OutputFormat", "offered", "write_output"]


class OutputFormat(StrEnum):
    table = "table"
    text = "text"
    json = "json"
    csv = "csv"
    html = "html"

    @property
    def for_people(self) -> bool:
        return self in (OutputFormat.table, OutputFormat.text)


def offered(fmt: OutputFormat, *machine: OutputFormat, people: bool = True) -> OutputFormat:
    """``fmt`` when the command offers it: the format for people (unless ``people`` is False, for
    a command that only writes files), and ``machine`` (e.g. ``json``, ``csv``); otherwise a usage
    error naming what the command offers."""
    if (people and fmt.for_people) or fmt in machine:
        return fmt
    names = ", ".join([*(["table (or text)"] if people else []), *machine])
    raise typer.BadParameter(f"{fmt} is not offered here; use {names}", param_hint="--format")


def write_output(fmt: OutputFormat, *, people: Callable[[Console], None],
          document: Callable[[], Any] | None = None, csv: Callable[[], str] | None = None) -> None:
    """Write the command's result on stdout in ``fmt``: ``document()`` as indented JSON,
    ``csv()`` as it is, else ``people`` on a console that takes the text literally. Only what
    is written is built. ``fmt`` must have passed :func:`offered`."""
    if fmt is OutputFormat.json and document is not None:
        typer.echo(json.dumps(document(), indent=2))
    elif fmt is OutputFormat.csv and csv is not None:
        typer.echo(csv(), nl=False)
    else:
        people(Console(markup=False, emoji=False, highlight=False))
