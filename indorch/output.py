"""How the CLI prints: a table for people, `--json` for scripts, errors as one line on stderr."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

console = Console()
error_console = Console(stderr=True, highlight=False, soft_wrap=True)


def print_rows(rows: Sequence[dict[str, Any]], columns: Sequence[str], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(list(rows), indent=2, default=str))
        return
    if not rows:
        console.print("(none)")
        return
    table = Table(*columns)
    for row in rows:
        table.add_row(*(_cell(row.get(column)) for column in columns))
    console.print(table)


def print_record(record: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(record, indent=2, default=str))
        return
    for key, value in record.items():
        console.print(f"[bold]{key}[/bold]: {_cell(value)}")


def print_error(message: str) -> None:
    error_console.print(f"error: {message}", markup=False)


def print_warning(message: str) -> None:
    error_console.print(f"warning: {message}", markup=False)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list | dict):
        return json.dumps(value, default=str)
    return str(value)
