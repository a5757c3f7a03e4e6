"""`croc pretrain`: CrOC (or DINO) pre-training on Ray Train, tracked in MLflow.

The driver validates the config, checks the tracking store, prepares the data (the synthetic benchmark is
generated and sharded when asked), checks that the cluster can hold the workers, builds the TorchTrainer and
waits, showing progress; then it exports the teacher backbone (timm safetensors) and logs the artifacts.
A run name that already exists under the storage path resumes that run (Ray Train restores its latest
checkpoint); a new run gets a new unique name.
"""

from __future__ import annotations

import math
import os
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray
from mlflow.tracking import MlflowClient
from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchConfig, TorchTrainer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from croc.checkpoint import load_training_state
from croc.export import export_backbone_weights
from pipelines import cluster
from pipelines.cluster import check_evaluations_fit, train_worker_cpus
from pipelines.config import PretrainConfig, check_run_name, config_hash, dump_config, flat_params
from pipelines.data_pipeline import steps_per_epoch, view_dataset
from pipelines.datasets import training_shards
from pipelines.evaluate import (
    EvalBoard,
    EvalSummary,
    baseline_label,
    check_roots,
    collect,
    eval_requests,
    export_checkpoint,
    failures,
    finished,
    results_table,
    submit,
)
from pipelines.evaluate_run import evaluation_dir
from pipelines.resume import check_resume, record_config_change
from pipelines.terminal import make_console
from pipelines.tracking import bound_retries, check_tracking_uri, log_training_dataset, run_tags, start_run
from pipelines.train_loop import train_loop
from pipelines.worker_errors import worker_input_error


@dataclass(frozen=True)
class PretrainResult:
    run_name: str
    run_id: str
    tracking_uri: str
    checkpoint: str
    backbone: str
    steps: int
    evaluations: list[EvalSummary] = field(default_factory=list)


@ray.remote(num_cpus=0)
class ProgressBoard:
    """Rank 0 posts (step, loss) at log steps; the driver reads it to draw the progress bar."""

    def __init__(self) -> None:
        self.step, self.loss = 0, float("nan")
        self.exports: list[tuple[int, str]] = []  # (step, backbone file) of checkpoints exported for evaluation

    def update(self, step: int, loss: float) -> None:
        self.step, self.loss = step, loss

    def exported(self, step: int, path: str) -> None:
        self.exports.append((step, path))

    def read(self) -> tuple[int, float, list[tuple[int, str]]]:
        return self.step, self.loss, list(self.exports)


def warn_if_written_inside_job_copy(cfg: PretrainConfig, console: Console) -> None:
    """Under `ray job submit` the working directory is Ray's temporary copy: what is written there is lost."""
    if "RAY_JOB_CONFIG_JSON_ENV_VAR" not in os.environ:  # set by Ray for a submitted job's entrypoint
        return
    cwd = Path.cwd()
    for key, where in (("checkpoint.storage_path", cfg.checkpoint.storage_path),
                       ("tracking.tracking_uri", cfg.tracking.tracking_uri.removeprefix("sqlite:///"))):
        if Path(where).is_relative_to(cwd):
            console.print(f"[yellow]warning:[/] {key}={where} lies inside this job's copy of the working directory "
                          "and will be lost: use shared storage / a remote MLflow server")


def _fit_with_progress(trainer: TorchTrainer, board: Any, total: int, console: Console,
                       on_tick: Callable[[list[tuple[int, str]]], None] | None = None) -> Any:
    """trainer.fit() in a thread; every second: the progress bar, and `on_tick(new exports)` (step, backbone)."""
    outcome: dict[str, Any] = {}

    def fit() -> None:
        try:
            outcome["result"] = trainer.fit()
        except BaseException as error:  # re-raised in the driver thread
            outcome["error"] = error

    thread = threading.Thread(target=fit, daemon=True)
    thread.start()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("ETA"), TimeRemainingColumn(), TextColumn("loss {task.fields[loss]}"))
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("pre-training", total=total, loss="-")
        seen, running = 0, True
        while running:
            thread.join(timeout=1.0)
            running = thread.is_alive()  # one more read after the end: no export announcement is missed
            step, loss, exports = ray.get(board.read.remote())
            progress.update(task, completed=step, loss=f"{loss:.4f}")
            if on_tick is not None:
                on_tick(exports[seen:])  # intermediate evaluations start now, training goes on
            seen = len(exports)
    if "error" in outcome:
        cause = worker_input_error(outcome["error"])  # a worker's own one-line message, not Ray's traceback
        if cause is not None:
            raise cause from outcome["error"]
        raise outcome["error"]
    return outcome["result"]


HEADLINE_NAMES = {"linear": "miou", "unsup": "miou", "davis": "jf"}  # eval/<task>/<name> on the pre-training run


def log_headlines(client: MlflowClient, run_id: str, evaluations: Sequence[EvalSummary], final_step: int) -> None:
    """Each finished evaluation's headline also on its pre-training run, at its checkpoint's step, under one name
    pattern for every task (eval/linear_voc/miou, eval/unsup_voc/miou, eval/davis/jf): MLflow's runs table can
    then rank pre-trainings by result, and its charts show results over checkpoints. Baselines are not logged."""
    from mlflow.entities import Metric

    from pipelines.sweep_config import HEADLINE_METRIC

    now, metrics = int(time.time() * 1000), []
    for summary in evaluations:
        step = final_step if summary.label == "final" else (
            int(summary.label.removeprefix("step ")) if summary.label.startswith("step ") else None)
        kind = summary.task.partition(":")[0]
        value = summary.metrics.get(HEADLINE_METRIC.get(kind, ""))
        if summary.error or step is None or value is None:
            continue
        name = summary.task.replace(":", "_")
        metrics.append(Metric(f"eval/{name}/{HEADLINE_NAMES[kind]}", float(value), now, step))
    if metrics:
        client.log_batch(run_id, metrics=metrics)


def _mark_failed(client: MlflowClient, run_id: str, console: Console) -> None:
    """End the MLflow run FAILED; where MLflow itself is down, say so and leave the training error to be raised."""
    try:
        client.set_terminated(run_id, status="FAILED")
    except Exception as error:  # an outage: the run stays RUNNING until a resume ends it
        console.print(f"[red]MLflow did not answer[/] ({type(error).__name__}); run {run_id} could not be marked "
                      "FAILED: resuming the run (same --run-name) once MLflow is back ends it and logs every step")


def run_pretrain(cfg: PretrainConfig, run_name: str | None = None, console: Console | None = None,
                 fault: dict | None = None, baselines: Sequence[str] = (), parent_run_id: str | None = None,
                 extra_tags: Mapping[str, str] | None = None,
                 on_evaluation: Callable[[EvalSummary], None] | None = None, accept_config_change: bool = False,
                 reserved_cpus: float = 0.0) -> PretrainResult:
    """Pre-train as configured, then run the configured evaluations as dependent Ray tasks.

    `run_name` of an existing run resumes it. `baselines` (e.g. 'random:vit_tiny') are evaluated on the same
    tasks once training ends, as top-level runs (children of `parent_run_id` when given), for the results table.
    `parent_run_id` / `extra_tags`: the MLflow run this one belongs to (a sweep) and tags to add.
    `on_evaluation` receives each intermediate evaluation as soon as it finishes (Tune reports them), while
    training goes on. `reserved_cpus`: CPUs already held by the caller (a Tune trial), left out of the plan.
    `accept_config_change`: resume a run whose config differs from the saved one (recorded on the run).
    `fault` injects a failure (tests).
    """
    if run_name is not None:
        check_run_name(run_name)  # it becomes a folder under checkpoint.storage_path and an MLflow name
    console = console or make_console()
    tasks = list(cfg.evaluation.tasks)
    tracking_uri = cfg.tracking.tracking_uri
    bound_retries()  # an MLflow outage fails the run within a minute, not after minutes of retries
    check_tracking_uri(tracking_uri)
    resumed_from, changes = (check_resume(cfg.checkpoint.storage_path, run_name, cfg.model_dump(mode="json"),
                                          accept_config_change) if run_name else (0, []))
    shards = training_shards(cfg, console)
    shard_dir, manifest = shards.folder, shards.manifest
    per_epoch = steps_per_epoch(shards.num_images, cfg.optim.batch_size)
    total = per_epoch * cfg.optim.epochs

    cluster.connect_ray()
    warn_if_written_inside_job_copy(cfg, console)
    cpus_per_worker = train_worker_cpus(cfg, reserved_cpus)
    run_name = run_name or f"{cfg.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    eval_dir = None
    if tasks:  # everything the evaluations need is checked before training, not after
        check_evaluations_fit(cfg.evaluation)
        check_roots(cfg, tasks)
        eval_dir = evaluation_dir(cfg, run_name)

    storage = cfg.checkpoint.storage_path
    client = MlflowClient(tracking_uri)
    run_id = start_run(client, cfg.tracking.experiment or cfg.name, run_name,
                       run_tags("pretrain", cfg.method.method, cfg.data.source, config_hash(cfg), extra_tags),
                       flat_params(cfg), parent_run_id=parent_run_id)
    record_config_change(client, run_id, resumed_from, changes, config_hash(cfg))
    if not resumed_from:
        log_training_dataset(client, run_id, shard_dir, manifest)
    console.print(f"run {run_name}: {total} steps ({per_epoch}/epoch) on {cfg.resources.num_workers} worker(s), "
                  f"{manifest['num_images']} images; MLflow run {run_id}")

    dataset, _ = view_dataset(cfg.data_settings(shard_dir), manifest=manifest)
    export_dir = str(eval_dir) if tasks and cfg.evaluation.after == "all_checkpoints" else None
    board = ProgressBoard.remote()
    trainer = TorchTrainer(
        train_loop,
        train_loop_config={"config": cfg.model_dump(mode="json"), "shard_dir": shard_dir,
                           "steps_per_epoch": per_epoch, "tracking_uri": tracking_uri, "run_id": run_id,
                           "progress": board, "fault": fault, "export_dir": export_dir,
                           "threads": cfg.resources.threads_per_worker or max(1, math.ceil(cpus_per_worker))},
        scaling_config=ScalingConfig(num_workers=cfg.resources.num_workers, use_gpu=cfg.resources.use_gpu,
                                     resources_per_worker={"CPU": cpus_per_worker}),
        torch_config=TorchConfig(backend="nccl" if cfg.resources.use_gpu else "gloo"),
        run_config=RunConfig(name=run_name, storage_path=storage,
                             failure_config=FailureConfig(max_failures=cfg.resources.max_failures),
                             checkpoint_config=CheckpointConfig(num_to_keep=cfg.checkpoint.keep_last)),
        datasets={"train": dataset},
    )
    eval_board = EvalBoard.remote() if tasks else None
    pending: list = []

    reported: set = set()

    def evaluate_intermediate(exports: list[tuple[int, str]]) -> None:
        for step, backbone_file in exports:
            if step < total:  # the final checkpoint is evaluated below, labelled 'final'
                requests = eval_requests(cfg, tasks, f"step {step}", eval_dir, method=cfg.method.method,
                                         parent_run_id=run_id, source_tags={"croc.checkpoint_step": str(step),
                                                                            **(extra_tags or {})})
                pending.extend(submit(requests, backbone_file, cfg.evaluation, eval_board))
        if on_evaluation is not None:
            for summary in finished(pending, reported):
                on_evaluation(summary)

    try:
        result = _fit_with_progress(trainer, board, total, console, on_tick=evaluate_intermediate)
    except BaseException:
        _mark_failed(client, run_id, console)
        raise
    if tasks:  # depend on the final checkpoint through its export task: the driver does not wait in between
        exported = export_checkpoint.remote(result.checkpoint.path, str(eval_dir / "final" / "backbone.safetensors"),
                                            cfg.evaluation.network)
        requests = eval_requests(cfg, tasks, "final", eval_dir, method=cfg.method.method, parent_run_id=run_id,
                                 source_tags={"croc.checkpoint_step": str(total), **(extra_tags or {})})
        pending.extend(submit(requests, exported, cfg.evaluation, eval_board))
        for baseline in baselines:
            requests = eval_requests(cfg, tasks, baseline_label(baseline), eval_dir, method="external",
                                     parent_run_id=parent_run_id,
                                     source_tags={"croc.checkpoint_source": baseline, **(extra_tags or {})})
            pending.extend(submit(requests, baseline, cfg.evaluation, eval_board))
    backbone = _log_artifacts(client, run_id, cfg, result.checkpoint)
    client.set_terminated(run_id, status="FINISHED")
    console.print(f"done: {total} steps; checkpoint {result.checkpoint.path}; backbone {backbone}; "
                  f"MLflow run {run_id}")
    evaluations: list[EvalSummary] = []
    if pending:
        console.print(f"evaluations: {len(pending)} Ray task(s) ({', '.join(tasks)}); outputs in {eval_dir}")
        evaluations = collect(pending, eval_board, console)
        log_headlines(client, run_id, evaluations, total)
        console.print(results_table(evaluations, title=f"evaluation results ({run_name})"))
        for line in failures(evaluations):
            console.print(f"[red]failed[/] {line}")
    outcome = PretrainResult(run_name, run_id, tracking_uri, result.checkpoint.path, backbone, total, evaluations)
    console.print(f"MLflow: `mlflow ui --backend-store-uri {tracking_uri}` (experiment "
                  f"{cfg.tracking.experiment or cfg.name})")
    return outcome


def _log_artifacts(client: MlflowClient, run_id: str, cfg: PretrainConfig, checkpoint: Any) -> str:
    """Log the resolved config and the teacher backbone (timm safetensors); -> the backbone's artifact URI."""
    with checkpoint.as_directory() as folder:
        state = load_training_state(folder)
    prefix = "teacher.backbone."
    weights = {k.removeprefix(prefix): v for k, v in state["model"].items() if k.startswith(prefix)}
    with tempfile.TemporaryDirectory() as tmp:
        config_path = Path(tmp) / "config.yaml"
        config_path.write_text(dump_config(cfg))
        client.log_artifact(run_id, str(config_path))
        path = export_backbone_weights(weights, Path(tmp) / "backbone.safetensors", cfg.model.arch,
                                       cfg.model.patch_size, cfg.data.image_size)
        client.log_artifact(run_id, str(path))
    return f"{client.get_run(run_id).info.artifact_uri}/backbone.safetensors"
