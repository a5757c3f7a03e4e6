"""`croc pretrain`: CrOC (or DINO) pre-training on Ray Train, tracked in MLflow.

The driver validates the config, checks the tracking store, prepares the data (the synthetic benchmark is
generated and sharded when asked), checks that the cluster can hold the workers, builds the TorchTrainer and
waits, showing progress; then it exports the final backbone (timm safetensors), starts its evaluations and logs
the artifacts.
A run name that already exists under the storage path resumes that run (Ray Train restores its latest
checkpoint); a new run gets a new unique name.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mlflow.tracking import MlflowClient
from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchConfig, TorchTrainer
from rich.console import Console

from croc.checkpoint_layouts import BACKBONE_FILE
from pipelines import cluster
from pipelines.cluster import check_evaluations_fit, train_worker_cpus
from pipelines.config import PretrainConfig, check_run_name, config_hash, flat_params
from pipelines.datasets import in_submitted_job, training_shards
from pipelines.evaluate.checks import check_roots
from pipelines.evaluate.evaluations import Evaluations
from pipelines.evaluate.outputs import evaluation_dir
from pipelines.evaluate.requests import EvalSummary, baseline_label
from pipelines.terminal import make_console
from pipelines.tracking import (
    DESCRIPTION,
    bound_retries,
    check_tracking_uri,
    git_sha,
    log_training_dataset,
    pretrain_description,
    run_tags,
    start_run,
)
from pipelines.train.artifacts import export_final_backbone, log_artifacts
from pipelines.train.data_pipeline import steps_per_epoch, view_dataset
from pipelines.train.headlines import log_headlines
from pipelines.train.pictures import has_pictures, pictures_run_name, start_pictures_run
from pipelines.train.progress import ProgressBoard, fit_with_progress
from pipelines.train.resume import check_resume, record_config_change
from pipelines.train.train_loop import WorkerRun, train_loop


@dataclass(frozen=True)
class PretrainResult:
    run_name: str
    run_id: str
    tracking_uri: str
    checkpoint: str
    backbone: str
    steps: int
    evaluations: list[EvalSummary] = field(default_factory=list)


def job_warnings(cfg: PretrainConfig) -> list[str]:
    """What a submitted job should be warned about: outputs inside Ray's temporary copy of the working directory
    (lost with it), and an unknown commit (`ray job submit` does not upload .git/)."""
    if not in_submitted_job():
        return []
    warnings = []
    cwd = Path.cwd()
    for key, where in (("checkpoint.storage_path", cfg.checkpoint.storage_path),
                       ("tracking.tracking_uri", cfg.tracking.tracking_uri.removeprefix("sqlite:///"))):
        if Path(where).is_relative_to(cwd):
            warnings.append(f"{key}={where} lies inside this job's copy of the working directory and will be lost: "
                            "use shared storage / a remote MLflow server")
    if git_sha() == "unknown":
        warnings.append("the runs record croc.git_sha=unknown: `ray job submit` does not upload .git/; "
                        "`croc submit -- <command>` records the commit and whether the tree was dirty")
    return warnings


def _mark_failed(client: MlflowClient, run_ids: list[str], console: Console) -> None:
    """End the MLflow runs FAILED; where MLflow itself is down, say so and leave the training error to be raised."""
    try:
        for run_id in run_ids:
            client.set_terminated(run_id, status="FAILED")
    except Exception as error:  # an outage: the run stays RUNNING until a resume ends it
        console.print(f"[red]MLflow did not answer[/] ({type(error).__name__}); run {run_ids[0]} could not be "
                      "marked FAILED: resuming the run (same --run-name) once MLflow is back ends it and logs every "
                      "step")


def run_pretrain(cfg: PretrainConfig, run_name: str | None = None, console: Console | None = None,
                 fault: dict | list[dict] | None = None, baselines: Sequence[str] = (),
                 parent_run_id: str | None = None,
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
    `fault` injects failures (tests).
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
    for warning in job_warnings(cfg):
        console.print(f"[yellow]warning:[/] {warning}")
    cpus_per_worker = train_worker_cpus(cfg, reserved_cpus)
    run_name = run_name or f"{cfg.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    eval_dir = None
    if tasks:  # everything the evaluations need is checked before training, not after
        check_evaluations_fit(cfg.evaluation)
        check_roots(cfg, tasks)
        eval_dir = evaluation_dir(cfg, run_name)

    storage = cfg.checkpoint.storage_path
    client = MlflowClient(tracking_uri)
    tags = run_tags("pretrain", cfg.method.method, cfg.data.source, config_hash(cfg),
                    {DESCRIPTION: pretrain_description(cfg, shards.num_images, total,
                                                       pictures_run_name(run_name) if has_pictures(cfg) else None),
                     **(extra_tags or {})})
    experiment = cfg.tracking.experiment or cfg.name
    run_id = start_run(client, experiment, run_name, tags, flat_params(cfg), parent_run_id=parent_run_id)
    pictures_run_id = start_pictures_run(client, cfg, experiment, run_name, run_id, tags)
    own_runs = [run_id] + ([pictures_run_id] if pictures_run_id else [])
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
        train_loop_config={"run": WorkerRun(
            config=cfg, shard_dir=shard_dir, steps_per_epoch=per_epoch, tracking_uri=tracking_uri, run_id=run_id,
            pictures_run_id=pictures_run_id,
            threads=cfg.resources.threads_per_worker or max(1, math.ceil(cpus_per_worker)), progress=board,
            export_dir=export_dir, fault=fault)},
        scaling_config=ScalingConfig(num_workers=cfg.resources.num_workers, use_gpu=cfg.resources.use_gpu,
                                     resources_per_worker={"CPU": cpus_per_worker}),
        torch_config=TorchConfig(backend="nccl" if cfg.resources.use_gpu else "gloo"),
        run_config=RunConfig(name=run_name, storage_path=storage,
                             failure_config=FailureConfig(max_failures=cfg.resources.max_failures),
                             checkpoint_config=CheckpointConfig(num_to_keep=cfg.checkpoint.keep_last)),
        datasets={"train": dataset},
    )
    evaluations = Evaluations(cfg, eval_dir) if tasks else None

    def evaluate(checkpoint: str, label: str, step: int) -> None:
        evaluations.submit(checkpoint, label, tasks, method=cfg.method.method, parent_run_id=run_id,
                           source_tags={"croc.checkpoint_step": str(step), **(extra_tags or {})})

    def evaluate_intermediate(exports: list[tuple[int, str]]) -> None:
        if evaluations is None:
            return
        for step, backbone_file in exports:
            if step < total:  # the final checkpoint is evaluated below, labelled 'final'
                evaluate(backbone_file, f"step {step}", step)
        if on_evaluation is not None:
            for summary in evaluations.newly_finished():
                on_evaluation(summary)

    try:
        result = fit_with_progress(trainer, board, total, console, on_tick=evaluate_intermediate)
    except BaseException:
        _mark_failed(client, own_runs, console)
        raise
    final = None
    if evaluations is not None:  # the final backbone, exported once; its tasks run while the driver logs and ends
        final = export_final_backbone(result.checkpoint, cfg, eval_dir / "final" / BACKBONE_FILE,
                                      cfg.evaluation.network)
        evaluate(str(final), "final", total)
        for baseline in baselines:
            evaluations.submit(baseline, baseline_label(baseline), tasks, method="external",
                               parent_run_id=parent_run_id,
                               source_tags={"croc.checkpoint_source": baseline, **(extra_tags or {})})
    backbone = log_artifacts(client, run_id, cfg, result.checkpoint,
                             final if cfg.evaluation.network == "teacher" else None)
    for own in own_runs:
        client.set_terminated(own, status="FINISHED")
    console.print(f"done: {total} steps; checkpoint {result.checkpoint.path}; backbone {backbone}; "
                  f"MLflow run {run_id}")
    summaries: list[EvalSummary] = []
    if evaluations:
        console.print(f"evaluations: {len(evaluations)} Ray task(s) ({', '.join(tasks)}); outputs in {eval_dir}")
        summaries = evaluations.collect(console, title=f"evaluation results ({run_name})")
        log_headlines(client, run_id, summaries, total)
    outcome = PretrainResult(run_name, run_id, tracking_uri, result.checkpoint.path, backbone, total, summaries)
    console.print(f"MLflow: `mlflow ui --backend-store-uri {tracking_uri}` (experiment "
                  f"{cfg.tracking.experiment or cfg.name})")
    return outcome
