"""How every command ends on a bad input: one line naming the cause, exit status 2 (no traceback)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console

from croc.errors import InputError


@contextmanager
def exit_2_on_input_error(console: Console | None = None) -> Iterator[None]:
    """An `InputError` (a config, a path, a layout, a value the user gave) -> "error: <message>" and exit 2."""
    try:
        yield
    except InputError as error:
        if console is not None:
            console.print(f"[red]error:[/] {error}")
        else:
            typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
