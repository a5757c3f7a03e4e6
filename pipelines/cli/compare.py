"""`croc compare`: an experiment's MLflow runs as the paper's tables (terminal, Markdown, CSV) and, with --plot,
charts logged to MLflow. Registered in the CLI with ``app.command("compare")(compare)``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from pipelines.cli.errors import exit_2_on_input_error
from pipelines.terminal import make_console

# The names of pipelines.compare.tables.TABLE_NAMES, repeated so that loading the CLI does not import pandas and MLflow.
TABLE_CHOICES = ("linear", "ade20k", "unsup", "davis", "ablation_lambda_pos", "ablation_k", "ablation_tokens")


def default_tracking_uri() -> str:
    """The platform's default store: mlflow.db in the current directory (as `tracking.tracking_uri: null`)."""
    return f"sqlite:///{Path.cwd().resolve()}/mlflow.db"


def default_out_dir(experiment: str) -> Path:
    return Path("compare") / experiment.replace("/", "_").replace("\\", "_")


def compare(
    experiment: str = typer.Option(..., "--experiment", "-e", help="the MLflow experiment to read"),
    runs: str | None = typer.Option(None, "--runs", help="comma-separated pre-training run ids or names (and "
                                    "external checkpoint labels, e.g. 'random init'); default: all"),
    tracking_uri: str | None = typer.Option(None, "--tracking-uri", help="default sqlite:///CWD/mlflow.db"),
    out: str | None = typer.Option(None, "--out", help="folder for the tables, Markdown and CSV "
                                    "(default ./compare/EXPERIMENT)"),
    plot: bool = typer.Option(False, "--plot", help="also PNG charts (matplotlib), logged with the tables to the "
                              "experiment's compare run (tagged croc.kind=compare; one per --runs selection, reused)"),
    tables: str | None = typer.Option(None, "--tables", help=f"comma-separated, among {', '.join(TABLE_CHOICES)} "
                                      "(default: all)"),
) -> None:
    """Print the paper's tables (linear, ADE20K, unsupervised, DAVIS, ablations) from an experiment's runs and write
    them as Markdown and CSV; missing or failed evaluations show as such in their cells."""
    from pipelines.compare.tables import compare_experiment, parse_names

    console = make_console()
    uri = tracking_uri or default_tracking_uri()
    with exit_2_on_input_error():
        names = parse_names(tables, TABLE_CHOICES) or list(TABLE_CHOICES)
        comparison = compare_experiment(uri, experiment, parse_names(runs), names)
    from pipelines.compare.render import NO_VALUES, rich_table, write_tables

    for warning in comparison.warnings:
        console.print(f"[yellow]warning[/] {warning}")
    for table in comparison.tables:
        if table.has_values:
            console.print(rich_table(table))
        else:  # a table no run of the experiment has numbers for: one line, not a table of "missing"
            console.print(f"[dim]{table.title}: {NO_VALUES}[/]")
    out_dir = Path(out) if out else default_out_dir(experiment)
    written = write_tables(comparison.tables, out_dir)
    console.print(f"wrote {len(written)} files to {out_dir}")
    if plot:
        _plot(console, uri, experiment, comparison.tables, out_dir, parse_names(runs), written)


def _plot(console: Console, uri: str, experiment: str, tables, out_dir: Path, selection: list[str],
          written: list[Path]) -> None:
    """Charts with matplotlib when installed (skipped with a message otherwise), logged with the tables to MLflow."""
    from pipelines.compare.render import log_compare_run, matplotlib_available, write_plots

    if not matplotlib_available():
        console.print("[yellow]--plot skipped[/]: matplotlib is not installed (pip install matplotlib)")
        return
    charts = write_plots(tables, out_dir)
    if not charts:
        console.print("--plot: no table has values to chart")
        return
    run_id = log_compare_run(uri, experiment, [*charts, *written], selection)
    console.print(f"wrote {len(charts)} chart(s) to {out_dir}; logged to MLflow run {run_id} (croc.kind=compare)")
