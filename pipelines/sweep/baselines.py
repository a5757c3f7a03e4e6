"""A sweep's baselines (e.g. random init), evaluated once on the base config's tasks, as children of the sweep run."""

from __future__ import annotations

from mlflow.tracking import MlflowClient
from rich.console import Console

from croc.eval.registry import task_dataset, task_kind
from pipelines import cluster
from pipelines.config import PretrainConfig
from pipelines.evaluate.evaluations import Evaluations
from pipelines.evaluate.outputs import evaluation_dir
from pipelines.evaluate.requests import EvalSummary, baseline_label
from pipelines.sweep.sweep_file import SweepConfig


def evaluate_baselines(sweep: SweepConfig, base: PretrainConfig, sweep_run_id: str,
                       console: Console) -> list[EvalSummary]:
    """The sweep's baselines (e.g. random init) on the base tasks, once: done ones are not rerun on resume."""
    if not sweep.baselines or not base.evaluation.tasks:
        return []
    client = MlflowClient(base.tracking.tracking_uri)
    experiment = client.get_experiment_by_name(sweep.name)
    done = {(r.data.tags.get("croc.checkpoint_source"), r.data.tags.get("croc.task"),
             r.data.tags.get("croc.eval_dataset"))
            for r in client.search_runs([experiment.experiment_id],
                                        f"tags.mlflow.parentRunId = '{sweep_run_id}' and attributes.status = "
                                        "'FINISHED'")}
    todo = {spec: [t for t in base.evaluation.tasks if (spec, task_kind(t), task_dataset(t))
                   not in done] for spec in sweep.baselines}
    todo = {spec: tasks for spec, tasks in todo.items() if tasks}
    if not todo:
        return []
    cluster.connect_ray()
    evaluations = Evaluations(base, evaluation_dir(base, sweep.name))
    for spec, tasks in todo.items():
        evaluations.submit(spec, baseline_label(spec), tasks, method="external", parent_run_id=sweep_run_id,
                           source_tags={"croc.checkpoint_source": spec, "croc.sweep": sweep.name})
    return evaluations.collect(console, title=None)  # they join the sweep's own table
