"""`croc davis-score`: J and F of a folder of predicted DAVIS-2017 masks (official layout), as a table or JSON."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.table import Table

from pipelines.cli.errors import exit_2_on_input_error
from pipelines.terminal import make_console

GLOBAL_COLUMNS = ("J&F", "J-mean", "J-recall", "F-mean", "F-recall")
PER_OBJECT_COLUMNS = ("J-mean", "F-mean", "J-recall", "F-recall")


def global_table(result: dict[str, Any]) -> Table:
    table = Table(title="DAVIS-2017 global results")
    for column in GLOBAL_COLUMNS:
        table.add_column(column, justify="right")
    table.add_row(*(f"{result[column]:.3f}" for column in GLOBAL_COLUMNS))
    return table


def per_object_table(result: dict[str, Any]) -> Table:
    """One row per object, named `<video>_<object id>` like the official toolkit's per-sequence results."""
    table = Table(title="Per-sequence results")
    table.add_column("Sequence")
    for column in PER_OBJECT_COLUMNS:
        table.add_column(column, justify="right")
    for row in result["per_object"]:
        table.add_row(f"{row['video']}_{row['object']}", *(f"{row[column]:.3f}" for column in PER_OBJECT_COLUMNS))
    return table


def davis_score(
    predictions: str = typer.Option(..., "--predictions", help="folder of VIDEO/FRAME.png indexed masks"),
    davis_root: str = typer.Option(..., "--davis-root", help="DAVIS root (ImageSets/, JPEGImages/, Annotations/)"),
    split: str = typer.Option("val", "--set", help="the split to score (train or val)"),
    as_json: bool = typer.Option(False, "--json", help="print the full results as JSON instead of tables"),
) -> None:
    """Score predicted masks with the DAVIS-2017 semi-supervised J and F (first and last frames excluded)."""
    from croc.eval.davis_score import score_predictions

    with exit_2_on_input_error():
        result = score_predictions(predictions, davis_root, split)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    console = make_console()
    console.print(global_table(result))
    console.print(per_object_table(result))
