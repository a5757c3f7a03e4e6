"""What MLflow records of a sweep's trials, and what `croc sweep --resume` reads back: each trial's pre-training
run carries its status (`croc.trial_status`: done or stopped_early), its final metrics and its overrides (JSON)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlflow.entities import RunTag
from mlflow.tracking import MlflowClient

from croc.errors import InputError
from croc.eval.registry import HEADLINE
from pipelines.sweep.sweep_file import PlannedTrial

STATUS_TAG, METRICS_TAG, OVERRIDES_TAG = "croc.trial_status", "croc.trial_metrics", "croc.trial_overrides"
RECORDED = {"done": "done", "stopped_early": "stopped early"}  # a trial with one of these is not run again
MAX_TAG = 7000  # characters; MLflow keeps 8000


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def trial_tags(sweep_name: str, key: str, overrides: dict[str, Any]) -> dict[str, str]:
    """The tags of a trial's pre-training run (and its evaluations): the sweep, the trial key, its overrides."""
    return {"croc.sweep": sweep_name, "croc.trial": key, OVERRIDES_TAG: _json(overrides)}


def record_trial(client: MlflowClient, run_id: str, status: str, metrics: dict[str, Any]) -> None:
    """Tag the trial's pre-training run: `croc.trial_status` (done / stopped_early) and its final metrics (JSON)."""
    kept = {k: v for k, v in metrics.items() if isinstance(v, (int, float, str, bool))}
    text = _json(kept)
    if len(text) > MAX_TAG:  # only the headline numbers and the bookkeeping
        headlines = set(HEADLINE.values())
        text = _json({k: v for k, v in kept.items() if "/" not in k or k.rsplit("/", 1)[1] in headlines})[:MAX_TAG]
    client.log_batch(run_id, tags=[RunTag(STATUS_TAG, status), RunTag(METRICS_TAG, text)])


def recorded_trials(client: MlflowClient, sweep_name: str) -> dict[str, Any]:
    """The sweep's trial pre-training runs in MLflow, by trial key (a later run of a key wins)."""
    experiment = client.get_experiment_by_name(sweep_name)
    if experiment is None:
        return {}
    runs, token = [], None
    while True:
        page = client.search_runs([experiment.experiment_id], f"tags.`croc.sweep` = '{sweep_name}' and "
                                  "tags.`croc.kind` = 'pretrain'", order_by=["attributes.start_time ASC"],
                                  page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            break
    return {run.data.tags["croc.trial"]: run for run in runs if "croc.trial" in run.data.tags}


def recorded_metrics(run: Any) -> dict[str, Any]:
    try:
        metrics = json.loads(run.data.tags.get(METRICS_TAG, "{}"))
    except ValueError:
        return {}
    return metrics if isinstance(metrics, dict) else {}


def check_plan(path: str | Path, plan: list[PlannedTrial], recorded: dict[str, Any]) -> None:
    """A resumed sweep's file must still plan each recorded trial with the values it ran with."""
    for trial in plan:
        run = recorded.get(trial.key)
        if run is None or OVERRIDES_TAG not in run.data.tags:
            continue
        try:
            ran_with = json.loads(run.data.tags[OVERRIDES_TAG])
        except ValueError:
            ran_with = run.data.tags[OVERRIDES_TAG]
        if ran_with != json.loads(_json(trial.overrides)):
            raise InputError(f"{path}: trial {trial.key} ran with {ran_with}, the sweep file now plans "
                             f"{trial.overrides}: the file changed since the sweep started; restore it, or rename "
                             "the sweep to start a new one")
