"""The `croc` command line (typer). The console script `croc = "pipelines.cli:main"` and `python -m pipelines.cli`
both run `main`; `app` is the typer app the tests invoke."""

from pipelines.cli.commands import app, main

__all__ = ["app", "main"]
