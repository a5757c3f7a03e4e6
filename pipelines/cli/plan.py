"""`croc pretrain --dry-run`: the resolved config and what the run would do, with nothing started."""

from __future__ import annotations

import os

from croc.errors import InputError
from pipelines.config import PretrainConfig, config_hash, dump_config
from pipelines.terminal import make_console


def _images(cfg: PretrainConfig) -> tuple[int | None, str]:
    """(images per epoch, where they come from); None when a shard folder cannot be read yet."""
    if cfg.data.source == "synthetic":
        s = cfg.data.synthetic
        return s.train_images, f"synthetic benchmark (seed {s.seed}, {s.height}x{s.width}, generated on first use)"
    from pipelines.datasets import read_manifest

    try:
        return read_manifest(cfg.data.shard_dir).num_images, f"shards in {cfg.data.shard_dir}"
    except InputError as error:
        return None, f"shards in {cfg.data.shard_dir} ({error})"


def print_plan(cfg: PretrainConfig, run_name: str | None = None) -> None:
    """Print the config as it would run (YAML, with its hash) and the plan: data, steps, workers, CPUs, outputs."""
    from pipelines.cluster import plan_resources

    console = make_console()
    console.print(dump_config(cfg), markup=False, highlight=False)
    images, source = _images(cfg)
    batch, workers, epochs = cfg.optim.batch_size, cfg.resources.num_workers, cfg.optim.epochs
    per_epoch = images // batch if images else None
    cpus = float(os.cpu_count() or 1)
    plan = plan_resources(cpus, workers, cfg.resources.use_gpu)
    per_worker_cpus = cfg.resources.cpus_per_worker or plan.cpus_per_worker
    where = ("the cluster in RAY_ADDRESS (its CPUs decide the split)" if os.environ.get("RAY_ADDRESS")
             else f"a local Ray on this machine's {cpus:g} CPUs")
    lines = [
        f"config hash {config_hash(cfg)}; run name {run_name or cfg.name + '-<date>-<time>'}",
        f"data: {source}; {images if images is not None else '?'} images, views of {cfg.data.image_size} px",
        (f"steps: {per_epoch} per epoch x {epochs} epochs = {per_epoch * epochs}" if per_epoch
         else f"steps: unknown until the data can be read ({epochs} epochs)"),
        f"batch: {batch} in all, {batch // workers} per worker; {cfg.method.method} on {cfg.model.arch}/"
        f"{cfg.model.patch_size}",
        f"resources: {workers} worker(s) x {per_worker_cpus:g} CPU{' + 1 GPU' if cfg.resources.use_gpu else ''} "
        f"on {where}; {plan.data_cpus:g} CPU(s) left for Ray Data",
        f"checkpoints: every {cfg.checkpoint.every_steps} steps, last {cfg.checkpoint.keep_last} kept, in "
        f"{cfg.checkpoint.storage_path}",
        f"tracking: {cfg.tracking.tracking_uri} (experiment {cfg.tracking.experiment or cfg.name})",
        f"evaluations after training: {', '.join(cfg.evaluation.tasks) or 'none'}",
        "dry run: nothing was started",
    ]
    for line in lines:
        console.print(line, markup=False, highlight=False)
