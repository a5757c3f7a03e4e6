"""One Tune trial: a small driver function (holding 0.1 CPU) that pre-trains with the trial's overrides through
`run_pretrain` (its own TorchTrainer and evaluation tasks), reports the evaluations to Tune and records the trial."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlflow.tracking import MlflowClient

from croc.eval.registry import headline_metric
from pipelines.config import PretrainConfig, apply_overrides
from pipelines.evaluate.requests import EvalSummary
from pipelines.sweep.records import record_trial, trial_tags
from pipelines.sweep.sweep_file import tune_metric

TRIAL_CPU = 0.1  # the trial's own driver; its Train workers and evaluation tasks ask for their own resources


@dataclass(frozen=True)
class TrialOutcome:
    """A trial as the sweep ends: run now (`recorded=False`) or kept from an earlier attempt's MLflow record."""

    key: str
    overrides: dict[str, Any]
    status: str  # done | stopped early | error
    metrics: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    recorded: bool = False


def _trial_metrics(summaries: list[EvalSummary]) -> dict[str, float]:
    """Evaluation summaries -> flat Tune metrics: '<task>/<metric>' (e.g. 'unsup_voc/miou_mean')."""
    metrics: dict[str, float] = {}
    for summary in summaries:
        if summary.error is None:
            prefix = summary.task.replace(":", "_")
            metrics.update({f"{prefix}/{k}": float(v) for k, v in summary.metrics.items()})
    return metrics


def sweep_trial(trial_config: dict[str, Any], base: dict[str, Any], trials: dict[str, dict[str, Any]],
                sweep_name: str, sweep_run_id: str, scheduler_task: str | None) -> None:
    """One Tune trial (`trial_config` = {"trial": key}): pre-train with that trial's overrides, report the
    intermediate and final evaluations, and record the trial as done in MLflow before the final report."""
    from ray import tune

    key = trial_config["trial"]
    overrides = trials[key]
    cfg = apply_overrides(PretrainConfig.model_validate(base), overrides)
    reports = {"n": 0}

    def report_intermediate(summary: EvalSummary) -> None:
        if summary.error is None and summary.task == scheduler_task and summary.label != "final":
            reports["n"] += 1
            tune.report({tune_metric(summary.task): summary.metrics[headline_metric(summary.task)],
                         "evaluations": reports["n"], "done": 0})

    tags = trial_tags(sweep_name, key, overrides)
    result = run_pretrain_for_trial(cfg, f"{sweep_name}-{key}", sweep_run_id, tags, report_intermediate)
    final = _trial_metrics([s for s in result.evaluations if s.label == "final"])
    report = {**final, "evaluations": reports["n"] + 1, "done": 1, "pretrain_run_id": result.run_id}
    record_trial(MlflowClient(cfg.tracking.tracking_uri), result.run_id, "done", report)
    tune.report(report)


def run_pretrain_for_trial(cfg: PretrainConfig, run_name: str, parent_run_id: str, tags: dict[str, str],
                           on_evaluation: Any) -> Any:
    from pipelines.train.pretrain import run_pretrain  # Ray Train: loaded in the trial's process only

    return run_pretrain(cfg, run_name=run_name, parent_run_id=parent_run_id, extra_tags=tags,
                        on_evaluation=on_evaluation, reserved_cpus=TRIAL_CPU)
