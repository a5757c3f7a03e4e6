"""Ray Data: Parquet shards -> streaming read -> decode -> two uint8 views + boxes + flips -> Train workers.

Driver side: `view_dataset(...)` builds the dataset passed to `TorchTrainer(datasets={"train": ds})`.
Worker side: `view_batches(...)` turns the worker's shard (`ray.train.get_dataset_shard("train")`) into exactly
`steps_per_epoch` full batches, every worker the same number (Train splits with `equal=True`; a record that
cannot be decoded is replaced by the next good one, so no step is lost, however many records are corrupt, as long
as one decodes).
Order: the shard files are shuffled with a seed, anew for each epoch (the same seed gives the same sequence
of orders), then a seeded local shuffle buffer mixes rows. Crops are drawn fresh every epoch.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import ray
import torch
from ray.data import FileShuffleConfig

from croc.batch import ViewBatch
from croc.data.decode_views import decode_batch
from croc.data.shards import shard_paths
from croc.errors import InputError
from pipelines.config.data_settings import DataSettings
from pipelines.datasets import read_manifest


def _decode_rows(batch: dict[str, np.ndarray], image_size: int, scale: tuple[float, float],
                 with_ids: bool) -> dict[str, np.ndarray]:
    generator = torch.Generator().manual_seed(int(np.random.SeedSequence().generate_state(1)[0]))
    out = decode_batch(batch["image"], batch["width"], batch["height"], batch["id"], image_size, generator, scale)
    rows = {"views": out.views, "boxes": out.boxes, "flips": out.flips, "replaced": out.replaced, "valid": out.valid}
    return {"id": batch["id"], **rows} if with_ids else rows


def read_shards(files: list[str], seed: int) -> ray.data.Dataset:
    """Shard files -> rows {id, image, width, height}; the file order reshuffled with `seed` for every execution.

    Ray 2.60's file-datasource V2 lists and sizes every file in one task before the first row moves; the V1 Parquet
    reader starts sooner (docs/benchmarks.md, `croc bench data`). One read block per file keeps Ray from splitting
    each file into more, smaller read tasks.
    """
    context = ray.data.DataContext.get_current()
    saved = context.use_datasource_v2, context.enable_progress_bars
    context.use_datasource_v2, context.enable_progress_bars = False, False
    try:
        return ray.data.read_parquet(files, columns=["id", "image", "width", "height"],
                                     shuffle=FileShuffleConfig(seed=seed, reseed_after_execution=True),
                                     override_num_blocks=len(files))
    finally:
        context.use_datasource_v2, context.enable_progress_bars = saved


def view_dataset(settings: DataSettings, with_ids: bool = False,
                 manifest: dict[str, Any] | None = None) -> tuple[ray.data.Dataset, dict[str, Any]]:
    """-> (dataset of rows {views [2,3,S,S] uint8, boxes [2,4], flips [2], replaced (, id)}, the manifest).

    Image ids (strings) are left out by default: training batches are tensors only. `manifest`: the shards' manifest
    when the caller has read it already (pipelines.datasets.read_manifest), else it is read here.
    """
    manifest = manifest or read_manifest(settings.shard_dir).manifest
    dataset = read_shards([str(p) for p in shard_paths(settings.shard_dir, manifest)], settings.seed)
    # Read blocks of at most a few decode calls: one block is decoded by one task on one core.
    dataset.context.target_max_block_size = settings.read_block_bytes
    # Ray Data reserves an equal share of the CPUs for each operator; the read needs milliseconds per shard, so on
    # a small machine that share idles while the decode runs one task at a time (2 CPUs: 1.0 -> 1.8 tasks at once).
    dataset.context.op_resource_reservation_enabled = False
    dataset.context.enable_progress_bars = False  # the driver draws its own progress; Ray's bars flood job logs
    dataset.context.print_on_execution_start = False
    dataset = dataset.map_batches(_decode_rows, fn_kwargs={"image_size": settings.image_size,
                                                           "scale": tuple(settings.scale), "with_ids": with_ids},
                                  batch_size=settings.decode_rows, batch_format="numpy",
                                  num_cpus=settings.decode_cpus)
    return dataset, manifest


def steps_per_epoch(num_images: int, global_batch: int) -> int:
    """Full batches per epoch for every worker, fixed from the manifest's image count."""
    steps = num_images // global_batch
    if steps < 1:
        raise InputError(f"{num_images} images cannot fill one batch of {global_batch}: lower optim.batch_size")
    return steps


def _fill_invalid(batch: dict[str, torch.Tensor]) -> ViewBatch | None:
    """A batch's views with rows that no record could fill (valid False) replaced by its valid rows, cycled;
    None when the batch has no valid row."""
    valid = batch["valid"].bool()
    take = torch.arange(valid.numel())
    if not bool(valid.all()):
        good = torch.nonzero(valid).flatten()
        if good.numel() == 0:
            return None
        bad = torch.nonzero(~valid).flatten()
        take[bad] = good[torch.arange(bad.numel()) % good.numel()]
    views = batch["views"][take].transpose(0, 1)  # [B, 2, ...] -> [2, B, ...]
    return ViewBatch(views, batch["boxes"][take].transpose(0, 1), batch["flips"][take].transpose(0, 1).bool())


def view_batches(shard: Any, batch_size: int, steps: int, settings: DataSettings,
                 epoch: int = 0) -> Iterator[tuple[ViewBatch, torch.Tensor]]:
    """Exactly `steps` batches from a worker's shard -> (ViewBatch with views [2, B, 3, S, S], replaced count).

    Corrupt records never stop a run that has a decodable one: the decode stage replaces them within its call,
    rows it could not fill are replaced here within the batch, a batch with none left is dropped and the steps it
    leaves are made up at the end with the last good batch. All of them are counted in the replaced count.
    """
    iterator = shard.iter_torch_batches(
        batch_size=batch_size, drop_last=True, prefetch_batches=settings.prefetch_batches,
        local_shuffle_buffer_size=settings.shuffle_buffer or None,
        local_shuffle_seed=settings.seed * 100_003 + epoch if settings.shuffle_buffer else None)
    done, rows, pending = 0, 0, torch.zeros((), dtype=torch.int64)
    last_good: ViewBatch | None = None
    for batch in iterator:
        rows += batch_size
        pending = pending + batch["replaced"].sum()
        views = _fill_invalid(batch)
        if views is None:
            continue
        last_good = views
        yield views, pending
        pending = torch.zeros((), dtype=torch.int64)
        done += 1
        if done == steps:
            return
    if rows < steps * batch_size:
        raise InputError(f"the data shard ran out after {done} of {steps} batches of {batch_size}: "
                         "the shards hold fewer images than their manifest says")
    if last_good is None:
        raise InputError(f"none of the {rows} records this worker read could be decoded (corrupt bytes, not images, "
                         "or a stored width/height that differs from the image's): prepare the shards again with "
                         "`croc data prepare`")
    while done < steps:  # batches dropped for want of a decodable record: the last good one again, counted
        yield last_good, pending + batch_size
        pending = torch.zeros((), dtype=torch.int64)
        done += 1


def bytes_per_image(image_size: int) -> int:
    """What one pre-training image costs on the wire: two uint8 views, two boxes, two flags."""
    return 2 * 3 * image_size * image_size + 2 * 4 * 4 + 2 + 1

