"""`croc compare`, reading: an experiment's MLflow runs -> one pandas row per run (tags, params, metrics)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.tracking import MlflowClient

from croc.errors import InputError


class ExperimentNotFoundError(InputError):
    """The experiment named on the command line is not in the tracking store."""


def load_runs(tracking_uri: str, experiment: str) -> pd.DataFrame:
    """All active runs of `experiment` -> one row per run: run_id, run_name, status, start_time (ms), parent_run_id,
    and `tags.<key>`, `params.<key>`, `metrics.<key>` columns (the layout of `mlflow.search_runs`).

    Raises ExperimentNotFoundError naming the experiment and listing the existing ones.
    """
    check_store_exists(tracking_uri)
    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        names = sorted(e.name for e in client.search_experiments())
        raise ExperimentNotFoundError(f"no experiment {experiment!r} at {tracking_uri}; existing experiments: "
                                 f"{', '.join(names) or '(none)'}")
    return runs_frame(_search_all(client, found.experiment_id))


def check_store_exists(tracking_uri: str) -> None:
    """A sqlite store that does not exist is an error (opening it would silently create an empty one)."""
    if tracking_uri.startswith("sqlite:///"):
        path = Path(tracking_uri.removeprefix("sqlite:///"))
        if not path.is_file():
            raise ExperimentNotFoundError(f"no MLflow store at {path} (--tracking-uri {tracking_uri}); run from the "
                                     "folder holding mlflow.db or pass --tracking-uri")


def _search_all(client: MlflowClient, experiment_id: str) -> list[Any]:
    runs: list[Any] = []
    token = None
    while True:
        page = client.search_runs([experiment_id], max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def runs_frame(runs: Iterable[Any]) -> pd.DataFrame:
    """MLflow Run objects -> the DataFrame `load_runs` returns (object columns, None where absent)."""
    records = []
    for run in runs:
        record: dict[str, Any] = {
            "run_id": run.info.run_id, "run_name": run.info.run_name, "status": run.info.status,
            "start_time": run.info.start_time or 0, "parent_run_id": run.data.tags.get("mlflow.parentRunId"),
        }
        record.update({f"tags.{k}": v for k, v in run.data.tags.items()})
        record.update({f"params.{k}": v for k, v in run.data.params.items()})
        record.update({f"metrics.{k}": v for k, v in run.data.metrics.items()})
        records.append(record)
    base = ["run_id", "run_name", "status", "start_time", "parent_run_id"]
    frame = pd.DataFrame.from_records(records, columns=None if records else base)
    return frame.astype(object).where(frame.notna(), None)


def row_value(row: pd.Series | dict, key: str) -> Any:
    """The row's value for `key`, None when the column is absent or empty."""
    value = row.get(key)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value


def row_tag(row: pd.Series | dict, key: str) -> str | None:
    return row_value(row, f"tags.{key}")
