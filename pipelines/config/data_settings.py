"""The Ray Data pipeline's settings (plain values, built from the config by `PretrainConfig.data_settings`); the
defaults here are the `data` section's defaults too."""

from __future__ import annotations

from dataclasses import dataclass

from croc.augment_settings import GLOBAL_SCALE


@dataclass(frozen=True)
class DataSettings:
    shard_dir: str
    image_size: int = 224
    scale: tuple[float, float] = GLOBAL_SCALE
    seed: int = 0
    decode_rows: int = 32  # rows per decode call
    decode_cpus: float = 1.0  # CPUs per decode task
    read_block_bytes: int = 8 * 2**20  # encoded bytes per read block
    shuffle_buffer: int = 256  # rows in each worker's local shuffle buffer (0 = off)
    prefetch_batches: int = 2
