"""`croc evaluate`: evaluate any checkpoint (ours, an MLflow run's, the authors', timm's, random init) as Ray tasks.

A checkpoint from an MLflow run gets its evaluation runs nested under that run; any other checkpoint gets
top-level evaluation runs tagged croc.method=external with croc.checkpoint naming the file.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from mlflow.tracking import MlflowClient
from rich.console import Console

from croc.checkpoint_layouts import named_kind
from croc.errors import InputError
from croc.eval.backbones import load_backbone
from pipelines import cluster
from pipelines.cluster import check_evaluations_fit
from pipelines.config import PretrainConfig
from pipelines.evaluate.checks import check_roots
from pipelines.evaluate.evaluations import Evaluations
from pipelines.evaluate.outputs import evaluation_dir
from pipelines.evaluate.requests import EvalSummary
from pipelines.evaluate.resolve import resolve_checkpoint
from pipelines.terminal import make_console
from pipelines.tracking import check_tracking_uri, experiment_id


def run_evaluate(cfg: PretrainConfig, checkpoint: str, tasks: Sequence[str] | None = None, label: str | None = None,
                 console: Console | None = None) -> list[EvalSummary]:
    """Evaluate one checkpoint on `tasks` (default: the config's evaluation.tasks); print and return the results."""
    console = console or make_console()
    tasks = list(tasks or cfg.evaluation.tasks)
    if not tasks:
        raise InputError("no evaluation tasks: pass --tasks (e.g. linear:voc,unsup:voc,davis) or set "
                         "evaluation.tasks in the config")
    check_tracking_uri(cfg.tracking.tracking_uri)
    # the store and the experiment exist before the tasks start (concurrent first use of a sqlite store races)
    experiment_id(MlflowClient(cfg.tracking.tracking_uri), cfg.tracking.experiment or cfg.name)
    loadable, parent_run_id = resolve_checkpoint(checkpoint, cfg.tracking.tracking_uri)
    # before Ray starts, not inside each task (which left a FAILED run per task): the checkpoint loads (weights
    # only; a known random:/stats: spec) and every task's dataset root is there
    load_backbone(loadable)
    check_roots(cfg, tasks)
    method, source_tags = "external", {"croc.checkpoint_source": checkpoint}
    if parent_run_id:
        parent = MlflowClient(cfg.tracking.tracking_uri).get_run(parent_run_id)
        method = parent.data.tags.get("croc.method", "external")
        label = label or parent.info.run_name or parent_run_id
    label = label or (checkpoint if named_kind(checkpoint) else Path(checkpoint).name)
    cluster.connect_ray()
    check_evaluations_fit(cfg.evaluation)
    out_dir = evaluation_dir(cfg, f"evaluate-{time.strftime('%Y%m%d-%H%M%S')}")
    console.print(f"evaluating {checkpoint} on {', '.join(tasks)} ({len(tasks)} Ray task(s), "
                  f"{cfg.evaluation.resources.cpus_per_task:g} CPU / {cfg.evaluation.resources.gpus_per_task:g} GPU "
                  f"each); outputs in {out_dir}")
    evaluations = Evaluations(cfg.model_copy(update={"evaluation": cfg.evaluation.model_copy(update={"tasks": tasks})}),
                              out_dir)
    evaluations.submit(loadable, label, tasks, method=method, parent_run_id=parent_run_id, source_tags=source_tags)
    summaries = evaluations.collect(console)
    console.print(f"MLflow: `mlflow ui --backend-store-uri {cfg.tracking.tracking_uri}`")
    return summaries
