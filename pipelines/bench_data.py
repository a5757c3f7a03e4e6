"""`croc bench data`: images/s per CPU core of the two-view augmentation with positions.

Three measurements on the same shards (by default synthetic 480x640 JPEGs, COCO's typical size):
- baseline: the authors' way — a torch DataLoader with torchvision PIL transforms, each view carrying a
  per-pixel coordinate map resized like the image, photometric augmentation on the CPU, float views shipped;
- ours, CPU stage: Ray Data decoding two uint8 views with boxes (JPEG draft decoding, crop before resize);
- ours, photometric stage: the batched photometric augmentation, timed on the CPU (and on the GPU if present),
  to place it where it is cheapest.
"""

from __future__ import annotations

import io
import json
import random
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFilter, ImageOps
from torchvision import transforms as T
from torchvision.transforms import functional as TF

from croc.augment import IMAGENET_MEAN, IMAGENET_STD, photometric_views
from croc.data.pretrain_images import ImageRecord
from croc.data.shards import iter_rows, load_manifest, shard_paths, write_shards
from croc.data.synthetic import SynthSpec, render_scene


@dataclass(frozen=True)
class DataBenchSettings:
    shard_dir: str | None = None
    cpus: int = 2
    images: int = 192
    size: int = 224
    batch: int = 32


def synthetic_shards(folder: Path, count: int, height: int = 480, width: int = 640) -> Path:
    """Write `count` synthetic scenes as JPEGs (quality 90) and shard them."""
    spec = SynthSpec(seed=0, height=height, width=width)
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    records = []
    for i in range(count):
        path = images / f"{i:06d}.jpg"
        if not path.exists():
            Image.fromarray(render_scene(i, height, width, spec).image).save(path, quality=90)
        records.append(ImageRecord(f"{i:06d}", "synthetic", path))
    write_shards(records, folder / "shards", images_per_shard=64)
    return folder / "shards"


class _Blur:
    def __init__(self, p: float) -> None:
        self.p = p

    def __call__(self, image: Image.Image) -> Image.Image:
        if random.random() > self.p:
            return image
        return image.filter(ImageFilter.GaussianBlur(radius=random.uniform(0.1, 2.0)))


class _Solarize:
    def __init__(self, p: float) -> None:
        self.p = p

    def __call__(self, image: Image.Image) -> Image.Image:
        return ImageOps.solarize(image) if random.random() < self.p else image


class AuthorsStyleViews(torch.utils.data.Dataset):
    """The baseline: PIL decode, crop + resize of the image AND of a [2, H, W] coordinate map, float views."""

    def __init__(self, rows: list[dict], size: int) -> None:
        self.rows, self.size = rows, size
        self.crop = T.RandomResizedCrop(size, scale=(0.25, 1.0), interpolation=T.InterpolationMode.BICUBIC)
        jitter = T.Compose([T.RandomApply([T.ColorJitter(0.4, 0.4, 0.2, 0.1)], p=0.8), T.RandomGrayscale(p=0.2)])
        normalize = T.Compose([T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
        self.photometric = [T.Compose([jitter, _Blur(1.0), normalize]),
                            T.Compose([jitter, _Blur(0.1), _Solarize(0.2), normalize])]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int):
        image = Image.open(io.BytesIO(self.rows[index]["image"])).convert("RGB")
        width, height = image.size
        ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32),
                                indexing="ij")
        coordinates = torch.stack([xs, ys])  # [2, H, W] per-pixel positions in the original frame
        views, positions = [], []
        for v in range(2):
            top, left, h, w = self.crop.get_params(image, self.crop.scale, self.crop.ratio)
            view = TF.resized_crop(image, top, left, h, w, [self.size, self.size], T.InterpolationMode.BICUBIC)
            pos = TF.resized_crop(coordinates, top, left, h, w, [self.size, self.size],
                                  T.InterpolationMode.BICUBIC, antialias=True)
            if random.random() < 0.5:
                view, pos = TF.hflip(view), TF.hflip(pos)
            views.append(self.photometric[v](view))
            positions.append(pos)
        return views, positions


def bench_baseline(rows: list[dict], settings: DataBenchSettings) -> float:
    """images/s of the authors' way with `cpus` DataLoader workers (after the first batch)."""
    loader = torch.utils.data.DataLoader(AuthorsStyleViews(rows, settings.size), batch_size=settings.batch,
                                         num_workers=settings.cpus, shuffle=True, drop_last=True,
                                         persistent_workers=False)
    count, start = 0, None
    for views, _positions in loader:
        if start is None:
            start = time.perf_counter()
            continue
        count += views[0].shape[0]
    return count / (time.perf_counter() - start)


def bench_ours_cpu_stage(shard_dir: str, settings: DataBenchSettings) -> float:
    """images/s of the Ray Data stage on a private local Ray with `cpus` CPUs (second pass, warm)."""
    import os

    import ray

    from pipelines.data_pipeline import DataSettings, view_dataset

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(address="local", num_cpus=settings.cpus, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        dataset, _ = view_dataset(DataSettings(shard_dir=shard_dir, image_size=settings.size, decode_rows=32))
        rates = []
        for _ in range(2):
            count, start = 0, time.perf_counter()
            for batch in dataset.iter_torch_batches(batch_size=settings.batch, drop_last=True):
                count += batch["views"].shape[0]
            rates.append(count / (time.perf_counter() - start))
        return rates[-1]
    finally:
        ray.shutdown()


def bench_photometric(size: int, batch: int, device: torch.device) -> float:
    """images/s (two views each) of the batched photometric stage; one thread on the CPU."""
    views = torch.randint(0, 256, (2, batch, 3, size, size), dtype=torch.uint8, device=device)
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)
    try:
        photometric_views(views[0], views[1])
        if device.type == "cuda":
            torch.cuda.synchronize()
        start, repeats = time.perf_counter(), 3
        for _ in range(repeats):
            photometric_views(views[0], views[1])
        if device.type == "cuda":
            torch.cuda.synchronize()
        return repeats * batch / (time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)


def run_data_bench(settings: DataBenchSettings) -> dict:
    if settings.batch * 4 > settings.images:  # several timed batches after the first (warm-up) one
        settings = replace(settings, batch=max(1, settings.images // 4))
    with tempfile.TemporaryDirectory() as tmp:
        shard_dir = settings.shard_dir or str(synthetic_shards(Path(tmp), settings.images))
        manifest = load_manifest(shard_dir)
        rows = list(iter_rows(shard_paths(shard_dir, manifest)))[: settings.images]
        baseline = bench_baseline(rows, settings)
        ours_cpu = bench_ours_cpu_stage(shard_dir, settings)
        photometric_cpu = bench_photometric(settings.size, 16, torch.device("cpu"))
        photometric_gpu = (bench_photometric(settings.size, 128, torch.device("cuda"))
                           if torch.cuda.is_available() else None)
    per_core = settings.cpus
    ours_all_cpu = 1.0 / (1.0 / (ours_cpu / per_core) + 1.0 / photometric_cpu)  # both stages on the same cores
    return {
        "bench": "data", "cpus": settings.cpus, "images": len(rows), "size": settings.size,
        "mean_image": f"{np.mean([r['width'] for r in rows]):.0f}x{np.mean([r['height'] for r in rows]):.0f}",
        "baseline_images_per_s_per_core": round(baseline / per_core, 1),
        "ours_cpu_stage_images_per_s_per_core": round(ours_cpu / per_core, 1),
        "ours_photometric_cpu_images_per_s_per_core": round(photometric_cpu, 1),
        "ours_all_on_cpu_images_per_s_per_core": round(ours_all_cpu, 1),
        "ours_photometric_gpu_images_per_s": round(photometric_gpu, 1) if photometric_gpu else None,
        "bytes_per_image_shipped": {"ours": 2 * 3 * settings.size**2 + 2 * 4 * 4 + 2,
                                    "baseline": 2 * 3 * settings.size**2 * 4 + 2 * 2 * settings.size**2 * 4},
    }


def main(settings: DataBenchSettings) -> dict:
    result = run_data_bench(settings)
    print(json.dumps(result), flush=True)
    return result
