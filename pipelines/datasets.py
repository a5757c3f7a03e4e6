"""Where a config's data lives: the embedded synthetic benchmark (generated once), the training shards with their
manifest (read here, and once per run), and the evaluation datasets' root folders."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from croc.data.pretrain_images import list_pretrain_images
from croc.data.shards import load_manifest, write_shards
from croc.errors import InputError
from croc.eval.registry import SYNTHETIC_ROOTS
from croc.synthetic.benchmark import VERSION, generate_benchmark
from pipelines.config import PretrainConfig


def synthetic_benchmark_dir(cfg: PretrainConfig) -> Path:
    """data.synthetic.out_dir, or a default folder named after the benchmark's version and spec (a new version of
    the generator writes a new folder rather than meeting the old one)."""
    synth = cfg.data.synthetic
    out = synth.out_dir or f"data/{VERSION}-s{synth.seed}-n{synth.train_images}-{synth.height}x{synth.width}"
    return Path(out).resolve()


def in_submitted_job() -> bool:
    """True in the entrypoint of a Ray job (`ray job submit`, `croc submit`), whose working directory is Ray's
    temporary copy of the uploaded one."""
    return "RAY_JOB_CONFIG_JSON_ENV_VAR" in os.environ


def ensure_synthetic_benchmark(cfg: PretrainConfig) -> Path:
    """Generate the benchmark when missing (a complete one with the same spec is left untouched) -> its folder.

    In a submitted job, a benchmark that would be written into the job's temporary working copy is refused: it
    would be generated again by every job and lost with the copy."""
    synth = cfg.data.synthetic
    out = synthetic_benchmark_dir(cfg)
    if in_submitted_job() and out.is_relative_to(Path.cwd().resolve()):
        raise InputError(f"data.synthetic.out_dir={synth.out_dir or 'unset'} puts the synthetic benchmark in this "
                         f"job's temporary copy of the working directory ({out}), where it is lost when the job "
                         "ends: set data.synthetic.out_dir to a folder the cluster keeps, e.g. "
                         "data.synthetic.out_dir=/shared/data/croc-synthetic")
    generate_benchmark(out, synth.spec())
    return out


@dataclass(frozen=True)
class Shards:
    """A shard folder and its manifest, checked against the shards."""

    folder: str
    manifest: dict[str, Any]

    @property
    def num_images(self) -> int:
        return int(self.manifest["num_images"])


def read_manifest(folder: str | Path) -> Shards:
    """The shard folder's manifest, read and checked (an InputError naming the folder, before any worker starts)."""
    return Shards(str(folder), load_manifest(folder))


def training_shards(cfg: PretrainConfig, console: Console) -> Shards:
    """The shards to train on; for the synthetic source, generate the benchmark and shard it (cached)."""
    if cfg.data.source == "shards":
        return read_manifest(cfg.data.shard_dir)
    out = ensure_synthetic_benchmark(cfg)
    console.print(f"synthetic benchmark at {out} (generated once, reused)")
    shard_dir = out / "shards" / "coco_train2017"
    write_shards(list_pretrain_images("coco", out / "coco"), shard_dir, images_per_shard=64, kind="coco",
                 root=str(out / "coco"))
    return read_manifest(shard_dir)


def dataset_roots(cfg: PretrainConfig) -> dict[str, str | None]:
    """evaluation.datasets, with unset roots pointing into the synthetic benchmark when it is asked for."""
    roots = cfg.evaluation.datasets.model_dump(exclude={"synthetic"})
    if cfg.evaluation.datasets.synthetic:
        out = ensure_synthetic_benchmark(cfg)
        for key in SYNTHETIC_ROOTS:
            roots[key] = roots[key] or str(out / key)
    return roots
