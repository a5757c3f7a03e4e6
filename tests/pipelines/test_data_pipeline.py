"""Ray Data pipeline on a 2-CPU local Ray: order, equal work across workers with corrupt records, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from croc.data.pretrain_images import ImageRecord
from croc.data.shards import write_shards
from croc.errors import InputError
from pipelines.cluster import plan_resources
from pipelines.config.data_settings import DataSettings
from pipelines.train.data_pipeline import steps_per_epoch, view_batches, view_dataset

SIZE = 32


def make_shards(folder: Path, count: int, per_shard: int, corrupt: tuple[int, ...] = ()) -> Path:
    images = folder / "images"
    images.mkdir(parents=True)
    rng = np.random.default_rng(0)
    records = []
    for i in range(count):
        path = images / f"{i:03d}.jpg"
        Image.fromarray(rng.integers(0, 255, (40 + i % 7, 50, 3), dtype=np.uint8)).save(path)
        records.append(ImageRecord(f"{i:03d}", "synthetic", path))
    out = folder / "shards"
    manifest = write_shards(records, out, images_per_shard=per_shard)
    for index in corrupt:  # bit rot after sharding: the bytes no longer decode
        shard = out / manifest["shards"][index // per_shard]["file"]
        table = pq.read_table(shard).to_pydict()
        table["image"][index % per_shard] = b"\xff\xd8 corrupted"
        pq.write_table(pa.table(table, schema=pq.read_schema(shard)), shard)
    return out


def test_resource_plan_leaves_cpus_for_data() -> None:
    small = plan_resources(2, 2, gpus=False)
    assert small.cpus_per_worker * 2 + small.data_cpus == pytest.approx(2)
    assert small.data_cpus >= 1
    assert plan_resources(16, 2, gpus=True).data_cpus == 14
    with pytest.raises(InputError, match="num_workers"):
        plan_resources(2, 0, gpus=False)


def test_steps_per_epoch_and_empty_input(tmp_path: Path) -> None:
    assert steps_per_epoch(100, 16) == 6
    with pytest.raises(InputError, match="cannot fill one batch"):
        steps_per_epoch(10, 16)
    with pytest.raises(InputError, match=r"manifest\.json not found"):
        view_dataset(DataSettings(shard_dir=str(tmp_path)))


def test_same_seed_same_order(tmp_path: Path, ray_session) -> None:
    shard_dir = make_shards(tmp_path, 24, per_shard=4)
    ctx = ray_session.data.DataContext.get_current()
    old = ctx.execution_options.preserve_order
    ctx.execution_options.preserve_order = True
    try:
        def epochs(seed: int, count: int) -> list[list[str]]:
            dataset, _ = view_dataset(DataSettings(shard_dir=str(shard_dir), image_size=SIZE, seed=seed), with_ids=True)
            ids = dataset.select_columns(["id"])
            return [[row["id"] for row in ids.iter_rows()] for _ in range(count)]  # one execution per epoch

        first, again, other = epochs(3, 2), epochs(3, 2), epochs(4, 1)
    finally:
        ctx.execution_options.preserve_order = old
    assert first == again  # the same seed gives the same sequence of epoch orders
    assert sorted(first[0]) == sorted(first[1]) == sorted(other[0]) == [f"{i:03d}" for i in range(24)]
    assert first[0] != first[1]  # the shard order is drawn anew for each epoch
    assert first[0] != other[0]


def test_two_workers_get_equal_full_batches_despite_corrupt_records(tmp_path: Path, ray_session) -> None:
    import ray.train
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    shard_dir = make_shards(tmp_path, 26, per_shard=5, corrupt=(2, 11, 12))
    settings = DataSettings(shard_dir=str(shard_dir), image_size=SIZE, shuffle_buffer=8)
    dataset, manifest = view_dataset(settings)
    batch, workers = 3, 2
    steps = steps_per_epoch(manifest["num_images"], batch * workers)  # 26 // 6 = 4
    report_dir = tmp_path / "reports"
    report_dir.mkdir()

    def loop(config: dict) -> None:
        shard = ray.train.get_dataset_shard("train")
        rank = ray.train.get_context().get_world_rank()
        seen, replaced = [], 0
        for epoch in range(2):
            for views, n_replaced in view_batches(shard, config["batch"], config["steps"], config["settings"], epoch):
                assert views.views.shape == (2, config["batch"], 3, SIZE, SIZE)
                assert views.boxes.shape == (2, config["batch"], 4) and views.flips.shape == (2, config["batch"])
                seen.append(epoch)
                replaced += int(n_replaced)
        Path(config["out"], f"{rank}.json").write_text(json.dumps({"batches": len(seen), "replaced": replaced}))

    plan = plan_resources(2, workers, gpus=False)
    trainer = TorchTrainer(
        loop, train_loop_config={"batch": batch, "steps": steps, "settings": settings, "out": str(report_dir)},
        scaling_config=ScalingConfig(num_workers=workers, resources_per_worker={"CPU": plan.cpus_per_worker}),
        run_config=RunConfig(name="data-pipeline-test", storage_path=str(tmp_path / "train")),
        datasets={"train": dataset})
    trainer.fit()
    reports = [json.loads(p.read_text()) for p in sorted(report_dir.glob("*.json"))]
    assert [r["batches"] for r in reports] == [2 * steps, 2 * steps]
    # corrupt records reach the metrics (those inside the consumed batches; at most 3 per epoch)
    assert 0 < sum(r["replaced"] for r in reports) <= 6


def test_an_image_ships_at_most_0_3_mb() -> None:
    from pipelines.train.data_pipeline import bytes_per_image

    assert bytes_per_image(224) <= 0.3 * 2**20  # two uint8 views + boxes + flags (the authors ship ~4 MB)


@pytest.mark.slow
def test_bench_data_prints_all_figures(tmp_path: Path) -> None:
    import subprocess
    import sys

    args = [sys.executable, "-m", "pipelines.cli", "bench", "data", "--images", "32", "--stream", "256",
            "--baseline-images", "64", "--size", "32", "--cpus", "1"]
    out = subprocess.run(args, capture_output=True, text=True, check=True, timeout=300,
                         env={**__import__("os").environ, "RAY_AUTH_MODE": "disabled"}).stdout
    result = json.loads(next(line for line in out.splitlines() if line.startswith('{"bench": "data"')))
    for key in ("baseline_images_per_s_per_core", "ours_kernel_images_per_s_per_core",
                "ours_ray_data_images_per_s_per_core", "ours_photometric_cpu_images_per_s_per_core"):
        assert result[key] > 0, key
    by_epoch = result["ours_ray_data_images_per_s_per_core_by_epoch"]
    assert len(by_epoch) == 3 and min(by_epoch) > 0
    assert result["ours_ray_data_images_per_s_per_core"] == max(by_epoch[1:])  # the best warm epoch


class PreparedShard:
    """Stands in for a worker's shard: `iter_torch_batches` yields the given decoded batches, as Ray's would."""

    def __init__(self, batches: list[dict]) -> None:
        self.batches = batches

    def iter_torch_batches(self, **_: object):
        return iter(self.batches)


def decoded(tags: list[int], valid: list[bool]) -> dict:
    """A decoded batch whose rows' views are filled with their tag (so copies can be traced)."""
    n = len(tags)
    views = torch.tensor(tags, dtype=torch.uint8).view(n, 1, 1, 1, 1).expand(n, 2, 3, 2, 2).clone()
    return {"views": views, "boxes": torch.zeros(n, 2, 4), "flips": torch.zeros(n, 2, dtype=torch.bool),
            "replaced": ~torch.tensor(valid), "valid": torch.tensor(valid)}


def tags_of(batch) -> list[int]:
    return batch.views[0, :, 0, 0, 0].tolist()


def test_rows_no_record_could_fill_are_replaced_in_the_batch_and_empty_batches_made_up() -> None:
    settings = DataSettings(shard_dir="unused", image_size=2)
    shard = PreparedShard([decoded([1, 2, 3, 4], [True] * 4), decoded([5, 6, 7, 8], [True, False, True, False]),
                           decoded([9, 10, 11, 12], [False] * 4), decoded([13, 14, 15, 16], [True] * 4)])
    out = list(view_batches(shard, 4, 3, settings))
    assert [tags_of(b) for b, _ in out] == [[1, 2, 3, 4], [5, 5, 7, 7], [13, 14, 15, 16]]
    assert [int(n) for _, n in out] == [0, 2, 4]  # the dropped batch's four rows are counted with the next
    out = list(view_batches(shard, 4, 4, settings))  # the dropped batch is made up at the end: the last good again
    assert [tags_of(b) for b, _ in out][3] == [13, 14, 15, 16] and int(out[3][1]) == 4
    with pytest.raises(InputError, match="none of the 8 records this worker read could be decoded"):
        list(view_batches(PreparedShard([decoded([1, 2, 3, 4], [False] * 4)] * 2), 4, 2, settings))
    with pytest.raises(InputError, match="ran out after 1 of 3"):
        list(view_batches(PreparedShard([decoded([1, 2, 3, 4], [True] * 4)]), 4, 3, settings))


@pytest.mark.parametrize("corrupt", [(4,), (1, 4, 5, 9, 14, 18, 22), tuple(range(24))],
                         ids=["one-record-alone-in-its-decode-call", "30-percent", "all"])
def test_corrupt_records_short_of_all_never_stop_an_epoch(tmp_path: Path, ray_session, corrupt) -> None:
    shard_dir = make_shards(tmp_path, 24, per_shard=5, corrupt=corrupt)  # row 4 ends its shard: a call of its own
    settings = DataSettings(shard_dir=str(shard_dir), image_size=SIZE, decode_rows=4, shuffle_buffer=0)
    dataset, manifest = view_dataset(settings)
    steps = steps_per_epoch(manifest["num_images"], 4)  # 6
    if len(corrupt) == 24:
        with pytest.raises(InputError, match="none of the 24 records this worker read could be decoded"):
            list(view_batches(dataset, 4, steps, settings))
        return
    batches = list(view_batches(dataset, 4, steps, settings))
    assert len(batches) == steps
    assert all(b.views.shape == (2, 4, 3, SIZE, SIZE) and b.views.flatten(1).any(1).all() for b, _ in batches)
    assert sum(int(n) for _, n in batches) == len(corrupt)  # every row is read once: each corrupt one counted
