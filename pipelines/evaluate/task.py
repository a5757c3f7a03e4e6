"""The Ray task: one evaluation in its own process, with its own resources, recorded as its own MLflow run.

The task takes the backbone file as an argument; it records its run (tags, params, metrics, per-class CSV, pictures)
and returns a small summary. A failing task marks its run FAILED with the error and leaves the other tasks alone.
"""

from __future__ import annotations

import csv
import io
import time
import traceback
from collections.abc import Sequence
from typing import Any

import ray
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from croc.checkpoint_layouts import named_kind
from croc.eval.registry import task_dataset, task_kind
from pipelines.config.evaluation import EvaluationSection
from pipelines.evaluate.requests import EvalRequest, EvalSummary
from pipelines.tracking import DESCRIPTION, experiment_id


def _log_table(client: MlflowClient, run_id: str, name: str, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    client.log_text(run_id, buffer.getvalue(), name)


def _start_eval_run(client: MlflowClient, request: EvalRequest, source: str) -> str:
    tags = {**request.tags, "croc.kind": "eval", "croc.task": task_kind(request.task),
            "croc.eval_dataset": task_dataset(request.task),
            "croc.checkpoint": source, "croc.checkpoint_label": request.label,
            DESCRIPTION: f"{request.task} evaluation of {request.label} ({source}"
                         + (")" if named_kind(source) else f", its {request.network})")}
    if request.parent_run_id:
        tags["mlflow.parentRunId"] = request.parent_run_id
    run = client.create_run(experiment_id(client, request.experiment),
                            run_name=request.run_name or f"{request.task} @ {request.label}", tags=tags)
    params: dict[str, str] = {"task": request.task, "checkpoint": source, **request.params}
    items = [Param(k, v[:6000]) for k, v in params.items()]
    for i in range(0, len(items), 100):
        client.log_batch(run.info.run_id, params=items[i:i + 100])
    return run.info.run_id


def _record(client: MlflowClient, run_id: str, outcome: Any) -> None:
    now = int(time.time() * 1000)
    metrics = [Metric(k, float(v), now, 0) for k, v in outcome.metrics.items()]
    metrics += [Metric(name, float(v), now, int(step)) for name, points in outcome.series.items()
                for step, v in points]
    for i in range(0, len(metrics), 1000):
        client.log_batch(run_id, metrics=metrics[i:i + 1000])
    for name, rows in outcome.tables.items():
        _log_table(client, run_id, name, rows)
    for name, picture in outcome.pictures.items():
        client.log_image(run_id, picture, artifact_file=name)


def _evaluate(request: EvalRequest, checkpoint: str, board: Any, cpus: float) -> EvalSummary:
    import torch

    from croc.eval.backbones import load_backbone
    from croc.eval.tasks import run_task

    torch.set_num_threads(max(1, int(cpus)))
    client = MlflowClient(request.tracking_uri)
    source = str(checkpoint)
    run_id = _start_eval_run(client, request, source)
    key = f"{request.task} @ {request.label}"

    def progress(description: str, done: int, total: int) -> None:
        if board is not None:
            board.post.remote(key, description, done, total)

    try:
        backbone = load_backbone(checkpoint, which=request.network)
        client.log_batch(run_id, tags=[RunTag("croc.arch", f"{backbone.arch}/{backbone.patch_size}")])
        device = "cuda" if torch.cuda.is_available() else "cpu"
        outcome = run_task(request.task, backbone, request.protocol, request.roots, request.out_dir, device,
                           progress, pictures=request.pictures)
        _record(client, run_id, outcome)
    except BaseException as error:
        client.log_text(run_id, traceback.format_exc(), "error.txt")
        client.log_batch(run_id, tags=[RunTag("croc.error", f"{type(error).__name__}: {error}"[:5000])])
        client.set_terminated(run_id, status="FAILED")
        return EvalSummary(request.task, request.label, run_id, error=f"{type(error).__name__}: {error}")
    finally:
        progress("done", 1, 1)
    client.set_terminated(run_id, status="FINISHED")
    return EvalSummary(request.task, request.label, run_id, dict(outcome.metrics))


@ray.remote(max_retries=0)
def evaluation_task(request: EvalRequest, checkpoint: str, board: Any = None, cpus: float = 1.0) -> EvalSummary:
    """One evaluation in its own process; `checkpoint` may arrive as the result of an export task."""
    return _evaluate(request, checkpoint, board, cpus)


def submit(requests: Sequence[EvalRequest], checkpoint: Any, evaluation: EvaluationSection,
           board: Any = None) -> list[tuple[EvalRequest, ray.ObjectRef]]:
    """Start the tasks (they wait for `checkpoint` if it is an ObjectRef); returns immediately."""
    res = evaluation.resources
    # "DEFAULT": outside the caller's placement group (a Tune trial holds a 0.1-CPU one that would capture them)
    options = {"num_cpus": res.cpus_per_task, "num_gpus": res.gpus_per_task, "scheduling_strategy": "DEFAULT"}
    return [(r, evaluation_task.options(**options).remote(r, checkpoint, board, res.cpus_per_task))
            for r in requests]
