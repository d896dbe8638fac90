"""Options that more than one module's commands share, spelt once (cli.py, receipts_command.py)."""
from __future__ import annotations

import enum

import typer

from ..input.rows import FORMATS

# rows.FORMATS are the readers; "tsv" is their CSV reader with a tab (open_source takes it)
FORMAT_CHOICES = ("csv", "tsv") + tuple(f for f in FORMATS if f != "csv")
Format = enum.Enum("Format", {f: f for f in FORMAT_CHOICES}, type=str)
FORMAT = typer.Option(None, "--format", "-f", metavar="[" + "|".join(FORMAT_CHOICES) + "]", case_sensitive=False,
                      help="The input's format (default: from the extension, or sniffed from stdin).")


def value(choice) -> str | None:
    """The plain string of an enum choice (what the modules below the CLI take)."""
    return None if choice is None else getattr(choice, "value", choice)
