"""The sweep's results table: one row per trial (its values and final headline numbers), one per baseline."""

from __future__ import annotations

from rich.table import Table

from croc.eval.registry import headline_metric
from pipelines.evaluate.requests import EvalSummary
from pipelines.sweep.sweep_file import SweepConfig, tune_metric
from pipelines.sweep.trial import TrialOutcome


def results_table(sweep: SweepConfig, outcomes: list[TrialOutcome], baselines: list[EvalSummary],
                   tasks: list[str]) -> Table:
    keys = list(sweep.search_space)
    table = Table("trial", *keys, *tasks, "status", title=f"sweep {sweep.name}")
    for outcome in outcomes:
        values = [str(outcome.overrides.get(k, "-")) for k in keys]
        cells = [f"{100 * outcome.metrics[tune_metric(t)]:.1f}"
                 if isinstance(outcome.metrics.get(tune_metric(t)), (int, float)) else "-" for t in tasks]
        table.add_row(outcome.key, *values, *cells, outcome.status + (" (recorded)" if outcome.recorded else ""))
    for label in dict.fromkeys(s.label for s in baselines):
        cells = {s.task: s for s in baselines if s.label == label}
        row = [f"{100 * cells[t].metrics[headline_metric(t)]:.1f}"
               if t in cells and not cells[t].error else "-" for t in tasks]
        table.add_row(label, *["-"] * len(keys), *row, "baseline")
    return table
