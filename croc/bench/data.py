"""`croc bench data`, the parts that need nothing but torch, torchvision, PIL and numpy: the synthetic shards it reads,
and the measurements on one core (the authors' way, our decode kernel, the photometric stage); the Ray Data
measurement and the whole bench are pipelines/bench/data.py. Also our decode kernel on every core at once, one
process per core (`croc bench gpu`'s data part). Rates are steady-state: the clock starts after the first batches
(imports, worker start-up).
"""

from __future__ import annotations

import io
import random
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFilter, ImageOps
from torchvision import transforms as T
from torchvision.transforms import functional as TF

from croc.augment import IMAGENET_MEAN, IMAGENET_STD, photometric_views
from croc.data.decode_views import decode_batch
from croc.data.pretrain_images import ImageRecord
from croc.data.shards import write_shards
from croc.synthetic.benchmark import SynthSpec, render_scene


@dataclass(frozen=True)
class DataBenchSettings:
    shard_dir: str | None = None
    cpus: int = 2
    images: int = 128  # distinct synthetic images (ignored with shard_dir)
    stream: int = 2048  # images per epoch through the Ray Data pipeline (synthetic images repeat under new ids)
    baseline_images: int = 384  # images through the baseline (slow: a few per second per core)
    size: int = 224
    batch: int = 32


def synthetic_shards(folder: Path, count: int, stream: int, height: int = 480, width: int = 640) -> Path:
    """Write `count` synthetic scenes as JPEGs (quality 90) and shard a stream of `stream` rows cycling over them."""
    spec = SynthSpec(seed=0, height=height, width=width)
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = images / f"{i:06d}.jpg"
        if not path.exists():
            Image.fromarray(render_scene(i, height, width, spec).image).save(path, quality=90)
        paths.append(path)
    records = [ImageRecord(f"{i:06d}", "synthetic", paths[i % count]) for i in range(max(count, stream))]
    write_shards(records, folder / "shards", images_per_shard=64)
    return folder / "shards"


class SteadyRate:
    """images/s counted after the first `skip` batches (start-up excluded)."""

    def __init__(self, skip: int) -> None:
        self.skip, self.batches, self.images, self.start = skip, 0, 0, 0.0

    def add(self, images: int) -> None:
        self.batches += 1
        if self.batches == self.skip:
            self.start = time.perf_counter()
        elif self.batches > self.skip:
            self.images += images

    def rate(self) -> float:
        if self.batches <= self.skip:
            raise ValueError(f"only {self.batches} batches: nothing timed after the {self.skip} start-up batches")
        return self.images / (time.perf_counter() - self.start)


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
    """images/s of the authors' way with `cpus` DataLoader workers (after each worker's first batch)."""
    loader = torch.utils.data.DataLoader(AuthorsStyleViews(rows, settings.size), batch_size=settings.batch,
                                         num_workers=settings.cpus, shuffle=True, drop_last=True,
                                         persistent_workers=False)
    meter = SteadyRate(skip=settings.cpus)
    for views, _positions in loader:
        meter.add(views[0].shape[0])
    return meter.rate()


def bench_ours_kernel(rows: list[dict], settings: DataBenchSettings) -> float:
    """images/s of our CPU stage on one thread without Ray (best of 5 passes over up to 64 images)."""
    rows = rows[:64]
    images, widths = [r["image"] for r in rows], [r["width"] for r in rows]
    heights, ids = [r["height"] for r in rows], [r["id"] for r in rows]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        generator, best = torch.Generator().manual_seed(0), 0.0
        for _ in range(5):
            start = time.perf_counter()
            for i in range(0, len(rows), settings.batch):
                end = i + settings.batch
                decode_batch(images[i:end], widths[i:end], heights[i:end], ids[i:end], settings.size, generator)
            best = max(best, len(rows) / (time.perf_counter() - start))
        return best
    finally:
        torch.set_num_threads(threads)


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


def synthetic_jpegs(count: int, height: int = 480, width: int = 640) -> list[bytes]:
    """`count` synthetic scenes of the embedded benchmark as JPEG bytes (quality 90), COCO's typical size."""
    spec = SynthSpec(seed=0, height=height, width=width)
    out = []
    for i in range(count):
        buffer = io.BytesIO()
        Image.fromarray(render_scene(i, height, width, spec).image).save(buffer, format="JPEG", quality=90)
        out.append(buffer.getvalue())
    return out


def _single_thread() -> None:
    torch.set_num_threads(1)


def decode_passes(images: list[bytes], height: int, width: int, size: int, passes: int, seed: int) -> tuple[int, float]:
    """Decode `images` into two views each, `passes` times, in batches of 32 -> (images done, seconds)."""
    generator = torch.Generator().manual_seed(seed)
    n = len(images)
    ids = [str(i) for i in range(n)]
    start = time.perf_counter()
    for _ in range(passes):
        for i in range(0, n, 32):
            chunk = images[i:i + 32]
            decode_batch(chunk, [width] * len(chunk), [height] * len(chunk), ids[i:i + 32], size, generator)
    return passes * n, time.perf_counter() - start


def bench_kernel_all_cores(cores: int, count: int, passes: int, size: int, height: int = 480,
                           width: int = 640) -> dict:
    """The CPU stage (decode + two views, `decode_batch`) in one single-threaded process per core, all cores at
    once, on `count` synthetic JPEGs decoded `passes` times by each process (`croc bench gpu`'s data part)."""
    images = synthetic_jpegs(count, height, width)
    with ProcessPoolExecutor(cores, mp_context=get_context("spawn"), initializer=_single_thread) as pool:
        # every process imports torch and decodes once before the clock starts
        list(pool.map(decode_passes, *zip(*[(images[:2], height, width, size, 1, i)
                                             for i in range(4 * cores)], strict=True)))
        start = time.perf_counter()
        jobs = [pool.submit(decode_passes, images, height, width, size, passes, i)
                for i in range(cores)]
        done = [job.result() for job in jobs]
        wall = time.perf_counter() - start
    per_process = [count / seconds for count, seconds in done]
    total = sum(count for count, _ in done) / wall
    try:
        import simplejpeg  # noqa: F401

        decoder = "simplejpeg"
    except ImportError:
        decoder = "torchvision (simplejpeg not installed)"
    return {
        "part": "data", "cores": cores, "image": f"{width}x{height}", "view_size": size,
        "mean_jpeg_kb": round(float(np.mean([len(b) for b in images])) / 1024, 1), "decoder": decoder,
        "images_per_s": round(total, 1), "images_per_s_per_core": round(total / cores, 1),
        "process_images_per_s_median": round(statistics.median(per_process), 1),
    }
