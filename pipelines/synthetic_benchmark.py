"""The embedded synthetic benchmark a config names (data.synthetic): where it lives, generated once there."""

from __future__ import annotations

from pathlib import Path

from croc.synthetic.benchmark import VERSION, SynthSpec, generate_benchmark
from pipelines.config import PretrainConfig


def synthetic_benchmark_dir(cfg: PretrainConfig) -> Path:
    """data.synthetic.out_dir, or a default folder named after the benchmark's version and spec (a new version of
    the generator writes a new folder rather than meeting the old one)."""
    synth = cfg.data.synthetic
    out = synth.out_dir or f"data/{VERSION}-s{synth.seed}-n{synth.train_images}-{synth.height}x{synth.width}"
    return Path(out).resolve()


def ensure_synthetic_benchmark(cfg: PretrainConfig) -> Path:
    """Generate the benchmark when missing (a complete one with the same spec is left untouched) -> its folder."""
    synth = cfg.data.synthetic
    out = synthetic_benchmark_dir(cfg)
    generate_benchmark(out, SynthSpec(seed=synth.seed, coco_train=synth.train_images, height=synth.height,
                                      width=synth.width))
    return out
