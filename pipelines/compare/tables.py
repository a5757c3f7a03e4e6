"""`croc compare`, the data side: read an experiment's MLflow runs into pandas and build the paper's tables.

Only the platform's tags, params and metrics are read (tags are the contract, see `pipelines/tracking.py`):

* pre-training runs (``croc.kind=pretrain``) define rows, labelled by ``croc.method`` / ``croc.dataset`` / run name;
* their evaluations (``croc.kind=eval`` with ``mlflow.parentRunId`` = the pre-training run) fill the cells; only the
  final checkpoint counts: ``croc.checkpoint_label`` 'final' (``croc pretrain``) or the run's own name (what
  ``croc evaluate --checkpoint runs:/<id>`` labels the run's final backbone with);
* evaluations of external checkpoints (random init, the authors' or timm's weights: no parent, or a sweep run as
  parent) form rows of their own, one per ``croc.checkpoint_label`` (else ``croc.checkpoint``).

When several evaluations compete for one cell, the latest FINISHED one wins; with none finished, the latest one
says why the cell is empty ("failed", "stopped" when killed, "running"). A cell with no evaluation at all says
"missing" (or the pre-training run's own state when it failed, was stopped or is still running). Values are shown
in percent, one decimal, like the paper.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

from croc.errors import InputError
from croc.eval.registry import EVAL_DATASETS
from croc.registry import QKV_INDEX
from pipelines.compare.reading import load_runs
from pipelines.compare.subjects import (  # noqa: F401 (re-exported: the tables' building blocks)
    DONE,
    FINAL_LABEL,
    METHOD_ORDER,
    UNFINISHED_CELLS,
    Cell,
    Column,
    Subject,
    average_cell,
    cell_for,
    evaluation_runs,
    external_subjects,
    kind_mask,
    pick_evaluation,
    pretrain_subjects,
    select_subjects,
    unfinished_state,
)

SEGMENTATION_SETS = EVAL_DATASETS["unsup"]  # the columns of Tables 1 and 3 (ADE20K: its own table)
DATASET_TITLES = {"voc": "PVOC12", "coco_things": "COCO-Things", "coco_stuff": "COCO-Stuff", "ade20k": "ADE20K"}
MAIN_TABLES = ("linear", "ade20k", "unsup", "davis")
ABLATION_TABLES = ("ablation_lambda_pos", "ablation_k", "ablation_tokens")
TABLE_NAMES = MAIN_TABLES + ABLATION_TABLES
TOKEN_ORDER = ("last", *QKV_INDEX)  # the paper's order: the last block's tokens, then queries, keys, values
# Params that differ between otherwise identical runs (names, paths, where things run): not part of a run's recipe.
NON_RECIPE_PARAMS = ("name", "data.shard_dir", "data.synthetic.out_dir", "evaluation.output_dir")
NON_RECIPE_PREFIXES = ("tracking.", "checkpoint.", "resources.", "evaluation.resources.")


@dataclass
class ComparisonTable:
    """A built table: `frame` holds the strings shown (label columns first), `values` the numbers behind the metric
    columns (percent, NaN where a cell has no value), `axis` the ablated value of each row (ablations only)."""

    name: str
    title: str
    frame: pd.DataFrame
    values: pd.DataFrame
    axis: list[str] = field(default_factory=list)
    axis_name: str = ""
    note: str = ""
    errors: pd.DataFrame | None = None  # the std behind each value where the metric has one (NaN elsewhere)

    @property
    def has_values(self) -> bool:
        """False when no cell holds a number (nothing in the experiment was evaluated for this table)."""
        return not self.values.empty and bool(self.values.notna().to_numpy().any())


@dataclass(frozen=True)
class MainSpec:
    title: str
    columns: tuple[Column, ...]
    average: bool = False


MAIN_SPECS = {
    "linear": MainSpec("Table 1: linear segmentation, mIoU (%)",
                       tuple(Column(DATASET_TITLES[d], "linear", d, "miou_best") for d in SEGMENTATION_SETS),
                       average=True),
    "ade20k": MainSpec("Table 2: linear segmentation on ADE20K, mIoU (%)",
                       (Column("ADE20K", "linear", "ade20k", "miou_best"),)),
    "unsup": MainSpec("Table 3: unsupervised segmentation (K-Means), mIoU mean ± std (%)",
                      tuple(Column(DATASET_TITLES[d], "unsup", d, "miou_mean", "miou_std") for d in SEGMENTATION_SETS),
                      average=True),
    "davis": MainSpec("Table A1: DAVIS-2017 video object segmentation (%)",
                      (Column("J&F", "davis", "davis", "jf_mean"), Column("J-mean", "davis", "davis", "j_mean"),
                       Column("F-mean", "davis", "davis", "f_mean"))),
}


@dataclass(frozen=True)
class AblationSpec:
    title: str
    param: str
    axis_name: str


ABLATION_SPECS = {
    "ablation_lambda_pos": AblationSpec("Table 4: ablation of the positional weight λ_pos, mIoU (%)",
                                        "clustering.lambda_pos", "lambda_pos"),
    "ablation_k": AblationSpec("Table 5: ablation of the number of initial centroids K, mIoU (%)",
                               "clustering.n_init", "K"),
    "ablation_tokens": AblationSpec("Table 6: ablation of the tokens clustered, mIoU (%)", "method.tokens", "tokens"),
}
ABLATION_COLUMNS = tuple(
    column for d in SEGMENTATION_SETS for column in (
        Column(f"{DATASET_TITLES[d]} unsup", "unsup", d, "miou_mean"),
        Column(f"{DATASET_TITLES[d]} linear", "linear", d, "miou_best"),
    )
)


def _frames(label_columns: list[str], labels: list[dict[str, str]], cells: list[list[Cell]],
            headers: list[str]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """-> (the strings shown, label columns first; the numbers behind the metric columns; their stds)."""
    text = [{**label, **{h: c.text() for h, c in zip(headers, row, strict=True)}} for label, row in
            zip(labels, cells, strict=True)]
    frame = pd.DataFrame(text, columns=[*label_columns, *headers], dtype=object)
    numbers = [[c.value if c.present else math.nan for c in row] for row in cells]
    values = pd.DataFrame(numbers, columns=headers, dtype=float, index=frame.index)
    spreads = [[c.std if c.present and c.std is not None else math.nan for c in row] for row in cells]
    errors = pd.DataFrame(spreads, columns=headers, dtype=float, index=frame.index)
    return frame, values, errors


def main_table(name: str, subjects: Sequence[Subject]) -> ComparisonTable:
    """Tables 1-3 and A1: one row per subject, one column per metric (plus the average where the paper has one)."""
    spec = MAIN_SPECS[name]
    headers = [c.header for c in spec.columns] + (["Average"] if spec.average else [])
    labels, cells = [], []
    for subject in subjects:
        row = [cell_for(subject, column) for column in spec.columns]
        if spec.average:
            row.append(average_cell(row))
        labels.append({"Method": subject.method, "Dataset": subject.dataset, "Run": subject.run})
        cells.append(row)
    headers, note = _mark_synthetic(headers, cells)
    frame, values, errors = _frames(["Method", "Dataset", "Run"], labels, cells, headers)
    return ComparisonTable(name, spec.title, frame, values, errors=errors, note=note)


SYNTHETIC_NOTE = ("(synthetic): measured on the embedded synthetic benchmark in that dataset's layout, not on the "
                  "dataset itself")


def _mark_synthetic(headers: list[str], cells: list[list[Cell]]) -> tuple[list[str], str]:
    """Headers of the columns holding a synthetic stand-in get ' (synthetic)', and the table a note saying so."""
    marked = {i for row in cells for i, cell in enumerate(row) if cell.synthetic}
    if not marked:
        return headers, ""
    return [f"{h} (synthetic)" if i in marked else h for i, h in enumerate(headers)], SYNTHETIC_NOTE


def ablation_table(name: str, subjects: Sequence[Subject]) -> ComparisonTable:
    """Tables 4-6: one row per pre-training run of the ablation, sorted by the ablated value."""
    spec = ABLATION_SPECS[name]
    rows, note = ablation_rows([s for s in subjects if s.is_pretrain], spec.param)
    rows = sorted(rows, key=lambda s: ablation_sort_key(spec.param, s.params[spec.param]))
    labels = [{spec.axis_name: s.params[spec.param], "Method": s.method, "Run": s.run} for s in rows]
    cells = [[cell_for(s, column) for column in ABLATION_COLUMNS] for s in rows]
    headers, synthetic_note = _mark_synthetic([c.header for c in ABLATION_COLUMNS], cells)
    frame, values, errors = _frames([spec.axis_name, "Method", "Run"], labels, cells, headers)
    note = " ".join(n for n in (note, synthetic_note) if n)
    return ComparisonTable(name, spec.title, frame, values, axis=[s.params[spec.param] for s in rows],
                           axis_name=spec.axis_name, note=note, errors=errors)


def recipe(params: dict[str, str], ignore: str) -> tuple[tuple[str, str], ...]:
    """The params that define a run's recipe, without `ignore` and without names / paths / resources."""
    return tuple(sorted((k, v) for k, v in params.items() if k != ignore and k not in NON_RECIPE_PARAMS
                        and not k.startswith(NON_RECIPE_PREFIXES)))


def ablation_rows(subjects: Sequence[Subject], param: str) -> tuple[list[Subject], str]:
    """The runs of an ablation of `param`: groups of runs whose recipes differ in `param` only (and in >1 value).
    Without such a group, every run that has `param` when it takes >1 value across them, with a note saying so.
    -> (rows, note)."""
    having = [s for s in subjects if param in s.params]
    groups: dict[tuple, list[Subject]] = {}
    for subject in having:
        groups.setdefault(recipe(subject.params, param), []).append(subject)
    strict = [s for group in groups.values() if _varies(group, param) for s in group]
    if strict:
        return strict, ""
    if _varies(having, param):
        return having, f"these runs also differ in other parameters than {param}"
    return [], f"no pre-training runs differ in {param}"


def _varies(subjects: Sequence[Subject], param: str) -> bool:
    return len({s.params[param] for s in subjects}) > 1


def ablation_sort_key(param: str, value: str) -> tuple:
    """Numbers numerically, tokens in the paper's order (last, queries, keys, values), anything else by text."""
    if param == "method.tokens" and value in TOKEN_ORDER:
        return (0, TOKEN_ORDER.index(value), "")
    try:
        return (0, float(value), "")
    except ValueError:
        return (1, 0.0, value)


def build_table(name: str, subjects: Sequence[Subject]) -> ComparisonTable:
    if name in MAIN_SPECS:
        return main_table(name, subjects)
    if name in ABLATION_SPECS:
        return ablation_table(name, subjects)
    raise InputError(f"table {name!r}: allowed {', '.join(TABLE_NAMES)}")


def parse_names(text: str | None, allowed: Sequence[str] | None = None) -> list[str]:
    """'a, b,,c' -> ['a', 'b', 'c']; with `allowed`, an unknown name raises InputError naming the allowed ones."""
    names = [part.strip() for part in (text or "").split(",") if part.strip()]
    unknown = [n for n in names if allowed is not None and n not in allowed]
    if unknown:
        raise InputError(f"unknown table(s) {', '.join(unknown)}: allowed {', '.join(allowed or ())}")
    return names


@dataclass
class Comparison:
    """What `croc compare` shows: the tables, and warnings about the selection."""

    experiment: str
    tables: list[ComparisonTable]
    warnings: list[str]


def compare_runs(runs: pd.DataFrame, experiment: str, selection: Sequence[str] | None = None,
                 tables: Sequence[str] = TABLE_NAMES) -> Comparison:
    """Build `tables` from an experiment's runs (the DataFrame of `load_runs`), restricted to `selection`."""
    subjects, warnings = select_subjects(pretrain_subjects(runs) + external_subjects(runs), selection)
    return Comparison(experiment, [build_table(name, subjects) for name in tables], warnings)


def compare_experiment(tracking_uri: str, experiment: str, selection: Sequence[str] | None = None,
                       tables: Sequence[str] = TABLE_NAMES) -> Comparison:
    """Read the experiment from the tracking store and build its tables."""
    return compare_runs(load_runs(tracking_uri, experiment), experiment, selection, tables)
