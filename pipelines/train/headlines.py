"""The evaluations' headline numbers, also logged on the pre-training run they evaluate."""

from __future__ import annotations

import time
from collections.abc import Sequence

from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from croc.eval.registry import HEADLINE, HEADLINE_NAMES, task_kind
from pipelines.evaluate.requests import EvalSummary

__all__ = ["HEADLINE_NAMES", "log_headlines"]  # HEADLINE_NAMES: eval/<task>/<name> on the pre-training run


def log_headlines(client: MlflowClient, run_id: str, evaluations: Sequence[EvalSummary], final_step: int) -> None:
    """Each finished evaluation's headline also on its pre-training run, at its checkpoint's step, under one name
    pattern for every task (eval/linear_voc/miou, eval/unsup_voc/miou, eval/davis/jf): MLflow's runs table can
    then rank pre-trainings by result, and its charts show results over checkpoints. Baselines are not logged."""
    now, metrics = int(time.time() * 1000), []
    for summary in evaluations:
        step = final_step if summary.label == "final" else (
            int(summary.label.removeprefix("step ")) if summary.label.startswith("step ") else None)
        kind = task_kind(summary.task)
        value = summary.metrics.get(HEADLINE.get(kind, ""))
        if summary.error or step is None or value is None:
            continue
        name = summary.task.replace(":", "_")
        metrics.append(Metric(f"eval/{name}/{HEADLINE_NAMES[kind]}", float(value), now, step))
    if metrics:
        client.log_batch(run_id, metrics=metrics)
