"""`croc bench train`: Ray Train's overhead on one worker against the same step in a plain loop.

Both read the same shards through the same Ray Data pipeline and run the same TrainStep for the same number of
steps after the same warm-up; only the harness differs (a TorchTrainer worker with its dataset shard, or a loop
in the driver over the dataset's iterator).
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from croc.batch import prepare_batch
from croc.model import CrOC
from croc.train_step import TrainStep
from pipelines.config import PretrainConfig
from pipelines.terminal import make_console
from pipelines.train.data_pipeline import view_batches


def timed_steps(cfg: PretrainConfig, shard: Any, shard_dir: str, warmup: int, steps: int) -> float:
    """images/s of `steps` training steps after `warmup` ones, reading `shard` (a Ray DataIterator)."""
    torch.manual_seed(cfg.seed)
    train_config = cfg.to_train_config()
    device = torch.device("cpu")
    model = CrOC(train_config)
    step_fn = TrainStep(model, train_config, warmup + steps, device)
    settings = cfg.data_settings(shard_dir)
    start = None
    for i, (views, _) in enumerate(view_batches(shard, cfg.optim.batch_size, warmup + steps, settings)):
        if i == warmup:
            start = time.perf_counter()
        images, xy = prepare_batch(views, train_config.model.patch_size, device)
        float(step_fn(images, xy, i)["loss"])  # synchronise every step in both harnesses alike
    return steps * cfg.optim.batch_size / (time.perf_counter() - start)


def _worker(config: dict) -> None:
    import ray.train

    rate = timed_steps(config["config"], ray.train.get_dataset_shard("train"), config["shard_dir"], config["warmup"],
                       config["steps"])
    Path(config["out"]).write_text(json.dumps({"images_per_s": rate, "threads": torch.get_num_threads()}))


def run_train_bench(cfg: PretrainConfig, warmup: int, steps: int) -> dict:
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from pipelines.cluster import connect_ray, plan_resources
    from pipelines.datasets import training_shards
    from pipelines.train.data_pipeline import view_dataset

    shards = training_shards(cfg, make_console(stderr=True))
    shard_dir = shards.folder
    connect_ray()
    import ray

    dataset, _ = view_dataset(cfg.data_settings(shard_dir), manifest=shards.manifest)
    needed = (warmup + steps) * cfg.optim.batch_size
    if shards.num_images < needed:
        raise SystemExit(f"the shards hold {shards.num_images} images; the bench needs {needed}: "
                         "raise data.synthetic.train_images or lower --steps")
    plan = plan_resources(ray.cluster_resources().get("CPU", 1.0), 1, False)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "rate.json"
        TorchTrainer(_worker, train_loop_config={"config": cfg, "shard_dir": shard_dir,
                                                 "warmup": warmup, "steps": steps, "out": str(out)},
                     scaling_config=ScalingConfig(num_workers=1, resources_per_worker={"CPU": plan.cpus_per_worker}),
                     run_config=RunConfig(name=f"bench-train-{time.time_ns()}", storage_path=tmp),
                     datasets={"train": dataset}).fit()
        worker = json.loads(out.read_text())
    threads = torch.get_num_threads()
    torch.set_num_threads(worker["threads"])  # the worker's thread count (Ray sets it from its CPUs): same compute
    try:
        plain = timed_steps(cfg, dataset.iterator(), shard_dir, warmup, steps)
    finally:
        torch.set_num_threads(threads)
    trained = worker["images_per_s"]
    result = {"bench": "train", "steps": steps, "batch": cfg.optim.batch_size, "plain_images_per_s": round(plain, 2),
              "ray_train_images_per_s": round(trained, 2), "overhead_pct": round(100 * (plain / trained - 1), 1),
              "torch_threads": worker["threads"]}
    print(json.dumps(result), flush=True)
    return result
