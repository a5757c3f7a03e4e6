"""`croc compare`'s building blocks: the subjects of a comparison (pre-trainings, external checkpoints) and the
cells their evaluations fill (pipelines/compare/tables.py arranges them into the paper's tables).

A cell is the latest FINISHED evaluation of its subject and column; with none finished, the latest one says why the
cell is empty ("failed", "stopped" when killed, "running"); a cell with no evaluation at all says "missing" (or the
pre-training run's own state when it failed, was stopped or is still running).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

from croc.registry import METHODS
from pipelines.compare.reading import row_tag, row_value

METHOD_ORDER = METHODS
FINAL_LABEL = "final"
DONE = "FINISHED"
# MLflow run status -> what an empty cell says; any other unfinished status (RUNNING, SCHEDULED) says "running".
UNFINISHED_CELLS = {"FAILED": "failed", "KILLED": "stopped", "MISSING": "missing"}


# ----------------------------------------------------------------------------------------------------------- cells
@dataclass(frozen=True)
class Cell:
    """One table cell: a value in percent (with an optional std), or the reason there is none."""

    state: str  # "ok" | "missing" | "failed" | "stopped" | "running" | "n/a"
    value: float | None = None
    std: float | None = None
    note: str = ""  # e.g. "2/3" for an average over some of the cells only
    synthetic: bool = False  # measured on the synthetic benchmark in the dataset's layout, not on the dataset

    @property
    def present(self) -> bool:
        return self.state == "ok" and self.value is not None

    def text(self) -> str:
        """'62.3', '41.0 ± 0.4', '45.1 (2/3)', or the state ('missing', 'failed', ...)."""
        if not self.present:
            return self.state
        out = f"{self.value:.1f}"
        if self.std is not None:
            out += f" ± {self.std:.1f}"
        return f"{out} ({self.note})" if self.note else out


def average_cell(cells: Sequence[Cell]) -> Cell:
    """The mean over the present cells; '(k/n)' marks a partial average, 'n/a' when no cell is present."""
    values = [c.value for c in cells if c.present]
    if not values:
        return Cell("n/a")
    note = "" if len(values) == len(cells) else f"{len(values)}/{len(cells)}"
    return Cell("ok", sum(values) / len(values), note=note, synthetic=any(c.synthetic for c in cells if c.present))


@dataclass(frozen=True)
class Column:
    """A metric column: which evaluation (task, dataset) and which metric (fractions, shown ×100)."""

    header: str
    task: str
    dataset: str
    metric: str
    std_metric: str | None = None


# ------------------------------------------------------------------------------------------------------ subjects
@dataclass(eq=False)
class Subject:
    """A table row's source: a pre-training run, or an external checkpoint (random init, ...)."""

    key: str  # the run id, or 'external:<label>'
    method: str  # 'croc', 'dino', 'external (random init)'
    dataset: str
    run: str  # the run name, or the checkpoint evaluated
    status: str  # the pre-training run's status (FINISHED for externals); 'MISSING' for an unknown --runs entry
    params: dict[str, str] = field(default_factory=dict)
    evaluations: pd.DataFrame = field(default_factory=pd.DataFrame)
    names: frozenset[str] = frozenset()  # what --runs may call it

    @property
    def is_pretrain(self) -> bool:
        return not self.key.startswith(("external:", "missing:"))


def pretrain_subjects(runs: pd.DataFrame) -> list[Subject]:
    """One subject per pre-training run, with the evaluations of its final checkpoint; croc, dino, then others,
    each in start order."""
    pretrain = runs[kind_mask(runs, "pretrain")].sort_values("start_time", kind="stable")
    evals = evaluation_runs(runs)
    subjects = []
    for _, row in pretrain.iterrows():
        name = row["run_name"] or row["run_id"]
        mine = evals[(evals["parent_run_id"] == row["run_id"])
                     & evals["tags.croc.checkpoint_label"].isin([FINAL_LABEL, name])]
        params = {k.removeprefix("params."): v for k, v in row.items() if k.startswith("params.") and v is not None}
        subjects.append(Subject(row["run_id"], row_tag(row, "croc.method") or "?", row_tag(row, "croc.dataset") or "?",
                                name, row["status"], params, mine, frozenset({row["run_id"], name})))
    return sorted(subjects, key=lambda s: _method_rank(s.method))


def _method_rank(method: str) -> int:
    return METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER)


def kind_mask(runs: pd.DataFrame, kind: str) -> pd.Series:
    """Which runs have `croc.kind` = kind."""
    if "tags.croc.kind" not in runs:
        return pd.Series(False, index=runs.index)
    return runs["tags.croc.kind"] == kind


def evaluation_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """The evaluation runs, with the tag columns the tables read always present."""
    evals = runs[kind_mask(runs, "eval")].copy()
    for tag in ("croc.task", "croc.eval_dataset", "croc.checkpoint_label", "croc.checkpoint", "croc.method"):
        if f"tags.{tag}" not in evals:
            evals[f"tags.{tag}"] = None
    return evals


def external_subjects(runs: pd.DataFrame) -> list[Subject]:
    """One subject per external checkpoint, named by its label, in first-seen order: the evaluations whose parent is
    not a pre-training run (none, for `croc pretrain` baselines and `croc evaluate <file>`; the sweep run, for a
    sweep's baselines)."""
    evals = evaluation_runs(runs)
    pretrain_ids = set(runs.loc[kind_mask(runs, "pretrain"), "run_id"])
    top = evals[~evals["parent_run_id"].isin(pretrain_ids)].sort_values("start_time", kind="stable")
    if top.empty:
        return []
    labels = top["tags.croc.checkpoint_label"].where(top["tags.croc.checkpoint_label"].notna(),
                                                     top["tags.croc.checkpoint"]).fillna("?")
    subjects = []
    for label in dict.fromkeys(labels):
        mine = top[labels == label]
        latest = mine.iloc[-1]
        checkpoint = row_tag(latest, "croc.checkpoint") or label
        method = row_tag(latest, "croc.method") or "external"
        names = {label, checkpoint, *mine["run_id"], *(n for n in mine["run_name"] if n)}
        subjects.append(Subject(f"external:{label}", f"{method} ({label})", "—", checkpoint, DONE, {}, mine,
                                frozenset(names)))
    return subjects


def select_subjects(subjects: list[Subject], selection: Sequence[str] | None) -> tuple[list[Subject], list[str]]:
    """Keep the subjects `selection` names (run id or name; an external's label or checkpoint), in `selection`'s
    order; a name that matches nothing becomes a row of 'missing' cells and a warning."""
    if not selection:
        return subjects, []
    chosen: list[Subject] = []
    warnings: list[str] = []
    for name in selection:
        matches = [s for s in subjects if name in s.names and s not in chosen]
        if not matches and not any(name in s.names for s in chosen):
            warnings.append(f"--runs {name}: no pre-training run or external checkpoint of that id or name")
            matches = [Subject(f"missing:{name}", "?", "?", name, "MISSING", names=frozenset({name}))]
        chosen.extend(matches)
    return chosen, warnings


# --------------------------------------------------------------------------------------------------------- cells
def cell_for(subject: Subject, column: Column) -> Cell:
    """The subject's value for one column (see the module docstring for the precedence)."""
    evals = subject.evaluations
    if not evals.empty:
        evals = evals[(evals["tags.croc.task"] == column.task) & (evals["tags.croc.eval_dataset"] == column.dataset)]
    if evals.empty:
        return Cell("missing" if subject.status == DONE else unfinished_state(subject.status))
    chosen = pick_evaluation(evals)
    if chosen["status"] != DONE:
        return Cell(unfinished_state(chosen["status"]))
    value = row_value(chosen, f"metrics.{column.metric}")
    if value is None:
        return Cell("missing")
    std = row_value(chosen, f"metrics.{column.std_metric}") if column.std_metric else None
    synthetic = chosen.get("tags.croc.eval_synthetic") == "true"
    return Cell("ok", 100 * float(value), None if std is None else 100 * float(std), synthetic=synthetic)


def unfinished_state(status: str) -> str:
    """'failed', 'stopped', 'missing' or 'running' for an MLflow run status other than FINISHED."""
    return UNFINISHED_CELLS.get(status, "running")


def pick_evaluation(evals: pd.DataFrame) -> pd.Series:
    """The latest FINISHED evaluation, else the latest one (which says why there is no value)."""
    ordered = evals.sort_values("start_time", kind="stable")
    finished = ordered[ordered["status"] == DONE]
    return (finished if not finished.empty else ordered).iloc[-1]


# --------------------------------------------------------------------------------------------------------- tables
