"""The one ``--format`` type of every command: what a command writes on stdout.

``table`` and ``text`` are one format, for people (a Rich table or lines of text; each command
has kept the name it had since its first release as its default, and takes the other as well);
``json`` is for scripts; ``csv`` for spreadsheets, where a command has rows to give. A command
names the formats it offers with :func:`offered`; asking for another is a usage error (exit 2),
before any work.
"""

from __future__ import annotations

from enum import StrEnum

import typer

__all__ = ["OutputFormat", "offered"]


class OutputFormat(StrEnum):
    table = "table"
    text = "text"
    json = "json"
    csv = "csv"

    @property
    def for_people(self) -> bool:
        return self in (OutputFormat.table, OutputFormat.text)


def offered(fmt: OutputFormat, *machine: OutputFormat) -> OutputFormat:
    """``fmt`` when the command offers it: the format for people always, and ``machine`` (e.g.
    ``json``, ``csv``); otherwise a usage error naming what the command offers."""
    if fmt.for_people or fmt in machine:
        return fmt
    names = ", ".join(["table (or text)", *machine])
    raise typer.BadParameter(f"{fmt} is not offered here; use {names}", param_hint="--format")
