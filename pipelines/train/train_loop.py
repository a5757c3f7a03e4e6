"""The Ray Train worker: CrOC pre-training on the worker's data shard, checkpoints, buffered MLflow metrics.

Reads everything from `ray.train` (context, dataset shard, checkpoint); the driver only builds the trainer.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray.train
import ray.train.torch
import torch
import torch.distributed as dist
from mlflow.tracking import MlflowClient

from croc.batch import prepare_batch
from croc.checkpoint import load_training_state, restore_training_state, save_training_state
from croc.checkpoint_layouts import BACKBONE_FILE
from croc.collapse import CollapseAlert, CollapseMonitor
from croc.export import export_network_backbone
from croc.model import CrOC
from croc.train_step import TrainStep
from croc.visualize import cluster_figure
from pipelines.config import PretrainConfig
from pipelines.tracking import MetricBuffer, bound_retries, system_metrics
from pipelines.train.data_pipeline import view_batches

logger = logging.getLogger(__name__)


TRAIN_PREFIX = "train/"  # the MLflow names of the training metrics: train/loss, train/lr, ...


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; the run stops, its last good checkpoint stays."""


def _sum_across_workers(value: torch.Tensor) -> torch.Tensor:
    if dist.is_available() and dist.is_initialized():
        value = value.clone()
        dist.all_reduce(value)
    return value


def inject_fault(fault: dict | list[dict] | None, rank: int, step: int, images: torch.Tensor) -> torch.Tensor:
    """Failure injection for the tests: one or several {"rank", "step", "kind": "exit" | "nan", "marker": a file
    that makes an exit happen once}."""
    for one in [fault] if isinstance(fault, dict) else (fault or []):
        if one["rank"] != rank or one["step"] != step:
            continue
        marker = Path(one["marker"])
        if one["kind"] == "exit" and not marker.exists():
            marker.write_text(f"worker {rank} killed at step {step}")
            os._exit(1)
        if one["kind"] == "nan":
            images = images * float("nan")
    return images


@dataclass(frozen=True)
class WorkerRun:
    """What each training worker receives (typed, as is, through Ray: nothing is rebuilt from a dict)."""

    config: PretrainConfig
    shard_dir: str
    steps_per_epoch: int
    tracking_uri: str
    run_id: str
    pictures_run_id: str | None  # the child run the cluster pictures go to (pipelines/train/pictures.py); None: none
    threads: int  # torch threads: resources.threads_per_worker, or one per CPU held (a fractional share rounds up)
    progress: Any = None  # the driver's ProgressBoard actor (rank 0 reports to it)
    export_dir: str | None = None  # evaluation.after=all_checkpoints: each checkpoint's backbone goes here
    fault: dict | list[dict] | None = None  # failures to inject (tests)


def train_loop(loop_config: dict[str, WorkerRun]) -> None:
    """Ray Train's worker function; `loop_config["run"]` is the `WorkerRun`."""
    run = loop_config["run"]
    cfg = run.config
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    device = ray.train.torch.get_device()
    train_config = cfg.to_train_config()
    steps_per_epoch = run.steps_per_epoch
    total_steps = steps_per_epoch * cfg.optim.epochs
    per_worker_batch = cfg.optim.batch_size // world
    torch.set_num_threads(run.threads)

    torch.manual_seed(cfg.seed)  # identical initial weights on every worker (teacher = copy of the student)
    model = CrOC(train_config).to(device)
    student = ray.train.torch.prepare_model(model.student) if world > 1 else model.student
    step_fn = TrainStep(model, train_config, steps_per_epoch, device, student=student)
    step = 0
    bound_retries()
    tracker = (MetricBuffer(MlflowClient(run.tracking_uri), run.run_id, f"{TRAIN_PREFIX}loss",
                            pictures_run_id=run.pictures_run_id) if rank == 0 else None)
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            state = load_training_state(folder, map_location=device)
            if tracker is not None:  # the metrics an outage kept from MLflow, logged now
                tracker.replay(folder)
        step, _ = restore_training_state(state, model=model, optimizer=step_fn.optimizer, scaler=step_fn.scaler)
    torch.manual_seed(cfg.seed * 1000 + rank + 7919 * step)  # per worker, per resumption: fresh augmentation draws
    if train_config.optim.compile:
        model.compile_passes()

    collapse = CollapseMonitor.for_training(train_config, steps_per_epoch) if rank == 0 else None
    progress = run.progress if rank == 0 else None
    settings = cfg.data_settings(run.shard_dir)
    photometric = cfg.photometric()
    shard = ray.train.get_dataset_shard("train")
    skipped = torch.zeros((), dtype=torch.float64)
    window_start, window_images = time.perf_counter(), 0
    monitor = (system_metrics(run.tracking_uri, run.run_id, cfg.tracking.system_metrics_every_s,
                              resumed=checkpoint is not None) if rank == 0 else None)

    while step < total_steps:
        epoch = step // steps_per_epoch
        remaining = steps_per_epoch - step % steps_per_epoch  # a resumed epoch runs only its missing steps
        for views, replaced in view_batches(shard, per_worker_batch, remaining, settings, epoch):
            images, patch_xy = prepare_batch(views, train_config.model.patch_size, device, photometric=photometric)
            images = inject_fault(run.fault, rank, step, images)
            metrics = step_fn(images, patch_xy, step, check_inputs=step == 0)
            skipped += replaced
            step += 1
            window_images += per_worker_batch * world
            if step % cfg.tracking.log_every_steps == 0 or step == total_steps:
                values = {k: float(v) for k, v in metrics.items()}  # the one host sync, at log steps only
                if not math.isfinite(values["loss"]):
                    raise NonFiniteLossError(f"non-finite loss {values['loss']} at step {step - 1} (epoch {epoch}); "
                                        "the last good checkpoint is kept")
                now = time.perf_counter()
                values.update(images_per_s=window_images / (now - window_start), epoch=float(epoch),
                              skipped_records=float(_sum_across_workers(skipped)))
                window_start, window_images = now, 0
                if tracker is not None:  # MLflow groups the training curves under train/ (evaluations: eval/)
                    tracker.add(step, {f"{TRAIN_PREFIX}{key}": value for key, value in values.items()})
                if collapse is not None:
                    _report_collapse(collapse.observe(step, values), tracker)
                if progress is not None:
                    progress.update.remote(step, values["loss"])
            every = cfg.tracking.cluster_pictures_every_steps
            if (tracker is not None and run.pictures_run_id and every and step % every == 0
                    and step_fn.last_clusters is not None):
                clusters = step_fn.last_clusters
                tracker.picture(step, cluster_figure(images, clusters.assignments, clusters.valid,
                                                     train_config.model.patch_size, step))
            at_epoch_end = step % steps_per_epoch == 0
            if step % cfg.checkpoint.every_steps == 0 or at_epoch_end:
                _report(step, epoch + int(at_epoch_end), model, step_fn, cfg, rank, tracker)
                if rank == 0 and run.export_dir:
                    _export_for_evaluation(model, cfg, step, Path(run.export_dir), progress)
    if monitor is not None:
        monitor.finish()


def _report_collapse(alerts: list[CollapseAlert], tracker: MetricBuffer | None) -> None:
    """Each alert (at most one per head and direction in a run) goes to the worker's log and to an MLflow tag."""
    for alert in alerts:
        logger.warning(alert.message)
        if tracker is not None:
            tracker.tag(f"croc.collapse_warning.{alert.metric}.{alert.direction}", alert.message)


def _export_for_evaluation(model: CrOC, cfg: PretrainConfig, step: int, folder: Path, progress: Any) -> None:
    """evaluation.after=all_checkpoints: the evaluated network's backbone, kept outside the checkpoint rotation."""
    path = export_network_backbone(model.state_dict(), cfg.evaluation.network,
                                   folder / f"step_{step}" / BACKBONE_FILE, cfg.model.arch,
                                   cfg.model.patch_size, cfg.data.image_size)
    if progress is not None:
        progress.exported.remote(step, str(path))


def _report(step: int, epoch: int, model: CrOC, step_fn: TrainStep, cfg: PretrainConfig, rank: int,
            tracker: MetricBuffer | None) -> None:
    """All workers report together (a barrier); rank 0 attaches the checkpoint, then flushes its metrics."""
    metrics = {"step": step, "epoch": epoch}
    if rank != 0:
        ray.train.report(metrics, checkpoint=None)
        return
    with tempfile.TemporaryDirectory() as folder:
        save_training_state(folder, model=model, optimizer=step_fn.optimizer, scaler=step_fn.scaler, step=step,
                            epoch=epoch, data_seed=cfg.seed, config=cfg.model_dump(mode="json"))
        if tracker is not None:
            tracker.save_pending(folder)  # the checkpoint counts with its metrics: an outage loses none of them
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(folder))
    if tracker is not None:
        tracker.flush()
