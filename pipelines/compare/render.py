"""`croc compare`, the output side: rich tables for the terminal, Markdown and CSV files, PNG charts (matplotlib,
when installed) and their logging to MLflow as a run tagged ``croc.kind=compare``."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path

from mlflow.tracking import MlflowClient
from rich.table import Table
from rich.text import Text

from pipelines.compare.tables import ComparisonTable
from pipelines.tracking import git_sha

CELL_STYLES = {"failed": "red", "stopped": "yellow", "missing": "dim", "running": "yellow", "n/a": "dim"}


NO_VALUES = "no values: nothing in this experiment was evaluated for this table"


# -------------------------------------------------------------------------------------------------------- terminal
def rich_table(table: ComparisonTable) -> Table:
    """The table for the terminal: labels left, numbers right, failed cells in red, missing ones dimmed."""
    numeric = set(table.values.columns)
    out = Table(title=table.title, caption=table.note or None)
    for column in table.frame.columns:
        out.add_column(str(column), justify="right" if column in numeric else "left")
    for _, row in table.frame.iterrows():
        out.add_row(*(Text(str(value), style=CELL_STYLES.get(str(value), "")) for value in row))
    return out


# ----------------------------------------------------------------------------------------------------------- files
def markdown(table: ComparisonTable) -> str:
    """A GitHub Markdown table under a heading with the title (and the note, when there is one)."""
    columns = [str(c) for c in table.frame.columns]
    numeric = set(table.values.columns)
    lines = [f"### {table.title}", ""]
    lines.append("| " + " | ".join(_escape(c) for c in columns) + " |")
    lines.append("|" + "|".join("---:" if c in numeric else ":---" for c in columns) + "|")
    for _, row in table.frame.iterrows():
        lines.append("| " + " | ".join(_escape(str(v)) for v in row) + " |")
    if table.frame.empty:
        lines.append("")
        lines.append("_no rows_")
    elif not table.has_values:
        lines += ["", f"_{NO_VALUES}_"]
    if table.note:
        lines += ["", f"_{table.note}_"]
    return "\n".join(lines) + "\n"


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def write_tables(tables: Sequence[ComparisonTable], out_dir: Path) -> list[Path]:
    """`<name>.md` and `<name>.csv` for each table in `out_dir` (created) -> the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for table in tables:
        md, csv = out_dir / f"{table.name}.md", out_dir / f"{table.name}.csv"
        md.write_text(markdown(table), encoding="utf-8")
        table.frame.to_csv(csv, index=False)
        written += [md, csv]
    return written


# ----------------------------------------------------------------------------------------------------------- plots
def matplotlib_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def plottable(table: ComparisonTable) -> bool:
    """A table worth a chart: at least one value."""
    return table.has_values


def write_plots(tables: Sequence[ComparisonTable], out_dir: Path) -> list[Path]:
    """One PNG per table with values: ablations as mIoU against the ablated value, the others as grouped bars.
    Requires matplotlib (check `matplotlib_available` first) -> the files written."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for table in tables:
        if not plottable(table):
            continue
        figure = _ablation_figure(plt, table) if table.axis_name else _bar_figure(plt, table)
        path = out_dir / f"{table.name}.png"
        figure.savefig(path, dpi=120, bbox_inches="tight")
        plt.close(figure)
        written.append(path)
    return written


def _ablation_figure(plt, table: ComparisonTable):
    """mIoU (%) against the ablated value: one line per dataset and protocol (linear solid, unsupervised dashed)."""
    figure, axes = plt.subplots(figsize=(6.4, 4.0))
    positions, ticks = _axis_positions(table.axis)
    for column in table.values.columns:
        points = [(x, y) for x, y in zip(positions, table.values[column], strict=True) if not math.isnan(y)]
        if points:
            xs, ys = zip(*points, strict=True)
            axes.plot(xs, ys, marker="o", linestyle="--" if "unsup" in column else "-", label=column)
    if ticks:
        axes.set_xticks(range(len(ticks)), ticks)
    axes.set_xlabel(table.axis_name)
    axes.set_ylabel("mIoU (%)")
    axes.set_title(table.title, fontsize=9)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return figure


def _axis_positions(axis: Sequence[str]) -> tuple[list[float], list[str]]:
    """Numbers where every value is numeric (ticks: none); else category positions in row order (ticks: labels)."""
    try:
        return [float(v) for v in axis], []
    except ValueError:
        categories = list(dict.fromkeys(axis))
        return [float(categories.index(v)) for v in axis], categories


def _bar_figure(plt, table: ComparisonTable):
    """Grouped bars: one group per column, one bar per row (run), missing values left out."""
    rows = [" · ".join(str(v) for v in label if v and v != "—") for label in _row_labels(table)]
    columns = list(table.values.columns)
    figure, axes = plt.subplots(figsize=(max(6.4, 1.6 * len(columns)), 4.0))
    width = 0.8 / max(1, len(rows))
    for i, row in enumerate(rows):
        values = [table.values.iloc[i][c] for c in columns]
        kept = [j for j, v in enumerate(values) if not math.isnan(v)]
        spreads = None
        if table.errors is not None:
            spreads = [table.errors.iloc[i][columns[j]] for j in kept]
            spreads = [0.0 if math.isnan(e) else e for e in spreads] if any(not math.isnan(e) for e in spreads) \
                else None
        axes.bar([j + i * width for j in kept], [values[j] for j in kept], width=width, label=row, yerr=spreads,
                 capsize=3 if spreads else 0)
    axes.set_xticks([j + 0.4 - width / 2 for j in range(len(columns))], columns)
    axes.set_ylabel("%")
    axes.set_title(table.title, fontsize=9)
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return figure


def _row_labels(table: ComparisonTable) -> list[tuple]:
    label_columns = [c for c in table.frame.columns if c not in set(table.values.columns)]
    return list(table.frame[label_columns].itertuples(index=False, name=None))


# ---------------------------------------------------------------------------------------------------------- MLflow
def log_compare_run(tracking_uri: str, experiment: str, files: Sequence[Path], selection: Sequence[str]) -> str:
    """The experiment's compare run for this selection of runs (tagged croc.kind=compare), created on first use and
    reused after, holding `files` as artifacts (a later call replaces them) -> its run id."""
    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise ValueError(f"no experiment {experiment!r} at {tracking_uri}")
    key = ",".join(selection)[:5000] if selection else "all"
    existing = [run for run in client.search_runs([found.experiment_id], "tags.`croc.kind` = 'compare'")
                if run.data.tags.get("croc.compare_runs", "all") == key]
    if existing:
        run_id = existing[0].info.run_id
        client.update_run(run_id, status="RUNNING")
        client.set_tag(run_id, "croc.git_sha", git_sha())
    else:
        tags = {"croc.kind": "compare", "croc.git_sha": git_sha(), "croc.compare_runs": key}
        name = "compare" if not selection else "compare-" + "_".join(selection)[:80]
        run_id = client.create_run(found.experiment_id, run_name=_safe_name(name), tags=tags).info.run_id
    try:
        for path in files:
            client.log_artifact(run_id, str(path), artifact_path="charts" if path.suffix == ".png" else "tables")
    except BaseException:
        client.set_terminated(run_id, status="FAILED")
        raise
    client.set_terminated(run_id, status="FINISHED")
    return run_id


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-]", "_", name)
