"""`croc bench gpu`: the platform's figures on one machine in one command (GPU when present), with its targets.

    python -m croc.bench gpu [--out FILE]          (or `croc bench gpu`, `make bench-gpu`)

Three parts, each printed as it ends, then one table and one JSON object:
- step: the training step, CrOC and DINO, eager and compiled, at the paper's setting (ViT-S/16, batch 128, two
  224-px views, bf16, K = 12, values, lambda_pos 4, n_centroids_max 4, heads 65536 / 8192): images/s and ms per
  step as the median of several timed windows (each window synchronised only at its ends), the per-phase split
  from steps synchronised around each phase, the clustering's share, peak memory, and the no-host-sync check;
- data: the CPU stage of the input pipeline (JPEG decode + two uint8 views with their boxes, `decode_batch`) on
  every core, one single-threaded process per core, on synthetic 640x480 JPEGs: images/s per core and in total;
- eval: frozen feature extraction at 448 px (the unsupervised protocol's size) and the unsupervised evaluation's
  stages after extraction (statistics, PCA, K-Means, assignment) for a PVOC12-val-sized split (1,449 images):
  time and peak memory.
It needs torch, timm and numpy; the data part uses simplejpeg when installed (as training does) and the K-Means
stage needs faiss (the part says "skipped" without it). Nothing here imports Ray, MLflow or pydantic.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from croc.bench.data import bench_kernel_all_cores
from croc.bench.dense_rows import dense_row_compaction
from croc.bench.timing import PhaseTimer, clustering_share, peak_memory_gib, reset_peak, sync
from croc.bench.train_step import MODES
from croc.config import ClusteringConfig, MethodConfig, ModelConfig, OptimConfig, TrainConfig
from croc.registry import METHODS

# The targets for the paper's setting on one GPU (docs/benchmarks.md)
TARGETS = {
    "croc_compiled_images_per_s": 2600.0,  # >= 4x the authors' CrOC step (644 images/s on an H200)
    "croc_vs_dino_compiled": 0.85,  # CrOC's compiled step within 15 % of our own DINO step
    "clustering_share": 0.05,  # clustering <= 5 % of the step
    "peak_memory_gib": 16.0,  # at batch 128
    "data_images_per_s_per_core": 200.0,  # so that 16 cores feed > 3,000 images/s
}


@dataclass(frozen=True)
class GpuBenchSettings:
    """What the command measures; the defaults are the paper's setting and sizes."""

    device: str = "auto"
    # training step
    methods: tuple[str, ...] = METHODS
    modes: tuple[str, ...] = MODES
    arch: str = ModelConfig.arch  # the method's settings: the paper's defaults (croc/config.py)
    patch_size: int = ModelConfig.patch_size
    batch: int = 128
    image_size: int = TrainConfig.image_size
    out_dim: int = ModelConfig.out_dim
    out_dim_c: int = ModelConfig.out_dim_c
    k: int = ClusteringConfig.n_init
    n_centroids_max: int = ClusteringConfig.n_centroids_max
    lambda_pos: float = ClusteringConfig.lambda_pos
    tokens: str = MethodConfig.tokens
    precision: str = OptimConfig.precision
    warmup: int = 5
    windows: int = 5
    window_steps: int = 10
    # data kernel
    data_cores: int = 0  # 0: every core of the machine
    data_images: int = 64
    data_passes: int = 3
    data_size: int = 224
    # evaluation
    eval_images: int = 1449
    eval_size: int = 448
    eval_batch: int = 32
    eval_seeds: int = 5
    parts: tuple[str, ...] = ("step", "data", "eval")

    def __post_init__(self) -> None:
        positive = ("patch_size", "batch", "image_size", "out_dim", "out_dim_c", "k", "n_centroids_max", "windows",
                    "window_steps", "data_images", "data_passes", "data_size", "eval_images", "eval_size",
                    "eval_batch", "eval_seeds")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1 (got {getattr(self, name)})")
        if self.warmup < 0 or self.data_cores < 0:
            raise ValueError("warmup and data_cores must be >= 0")
        unknown = set(self.parts) - {"step", "data", "eval"}
        if unknown:
            raise ValueError(f"unknown parts {sorted(unknown)}: choose from step, data, eval")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({os.cpu_count()} cores, {torch.get_num_threads()} threads)"


# ----------------------------------------------------------------------------------------------- training step


def _step_args(settings: GpuBenchSettings) -> argparse.Namespace:
    """The step benchmark's (croc.bench) namespace for these settings."""
    return argparse.Namespace(arch=settings.arch, patch_size=settings.patch_size, batch=settings.batch,
                              image_size=settings.image_size, out_dim=settings.out_dim, out_dim_c=settings.out_dim_c,
                              k=settings.k, n_centroids_max=settings.n_centroids_max, lambda_pos=settings.lambda_pos,
                              tokens=settings.tokens, precision=settings.precision, warmup=settings.warmup,
                              steps=settings.windows * settings.window_steps)


def _significant(value: float, digits: int = 4) -> float:
    """A rate or a time to `digits` significant digits (a CPU's 0.35 images/s keeps its precision, a GPU's 2612.3
    loses nothing that the timing noise does not)."""
    return float(f"{value:.{digits}g}")


def bench_step(settings: GpuBenchSettings, method: str, compiled: bool, device: torch.device) -> dict:
    """One (method, mode): median images/s over timed windows, phase split, peak memory, no-sync check."""
    from croc.bench.train_step import bench_step as build_step
    from croc.bench.train_step import check_no_sync
    from croc.train_step import PHASES

    step, images, xy = build_step(_step_args(settings), method, compiled, device)
    it = 0
    start = time.perf_counter()
    for _ in range(max(settings.warmup, 1)):  # compilation happens here
        step(images, xy, it)
        it += 1
    sync(device)
    warmup_s = time.perf_counter() - start
    reset_peak(device)
    window_rates = []
    for _ in range(settings.windows):
        start = time.perf_counter()
        for _ in range(settings.window_steps):
            metrics = step(images, xy, it)
            it += 1
        sync(device)
        window_rates.append(settings.batch * settings.window_steps / (time.perf_counter() - start))
    peak = peak_memory_gib(device)

    timer = PhaseTimer(device)
    for _ in range(settings.window_steps):
        metrics = step(images, xy, it, phase=timer)
        it += 1
    phases = timer.ms_per_step(PHASES, settings.window_steps)
    sync_free = check_no_sync(step, images, xy, it, device)
    compaction = dense_row_compaction(step, images, xy) if not compiled else None  # the same rows either way
    rate = statistics.median(window_rates)
    return {
        "part": "step", "method": method, "mode": "compiled" if compiled else "eager",
        "arch": f"{settings.arch}/{settings.patch_size}", "batch": settings.batch, "image_size": settings.image_size,
        "precision": settings.precision if device.type == "cuda" else "fp32",
        "images_per_s": _significant(rate), "ms_per_step": _significant(1000 * settings.batch / rate),
        "window_images_per_s": [_significant(r) for r in window_rates],
        "phases_ms": phases,
        "clustering_share": clustering_share(phases),
        "peak_memory_gib": round(peak, 3), "sync_free_step": sync_free, "warmup_s": round(warmup_s, 1),
        "final_loss": round(float(metrics["loss"]), 4), "dense_row_compaction": compaction,
    }


# -------------------------------------------------------------------------------------------------- evaluation


def bench_eval(settings: GpuBenchSettings, device: torch.device) -> dict:
    """Feature extraction at eval_size for eval_images images, then the unsupervised stages after extraction."""
    from croc.backbone import create_backbone
    from croc.errors import InputError
    from croc.eval.features import DenseFeatures
    from croc.eval.unsupervised import UnsupervisedConfig, evaluate_tokens

    torch.manual_seed(0)
    model = create_backbone(settings.arch, settings.patch_size, 0.0).to(device).eval()
    features = DenseFeatures(model, last_n=1).to(device)
    batch = min(settings.eval_batch, settings.eval_images)
    images = torch.randn(batch, 3, settings.eval_size, settings.eval_size, device=device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    batches = -(-settings.eval_images // batch)
    with torch.inference_mode(), autocast:
        features(images)  # warm-up
        sync(device)
        reset_peak(device)
        start = time.perf_counter()
        for _ in range(batches):
            tokens = features(images)  # [b, C, h, w]
        sync(device)
        extract_s = time.perf_counter() - start
    result: dict[str, Any] = {
        "part": "eval", "arch": f"{settings.arch}/{settings.patch_size}", "images": settings.eval_images,
        "size": settings.eval_size, "extract_batch": batch, "extract_s": round(extract_s, 2),
        "extract_images_per_s": round(batches * batch / extract_s, 1),
        "extract_peak_gib": round(peak_memory_gib(device), 3),
    }
    grid = tuple(tokens.shape[-2:])
    mask = max(1, round(settings.eval_size * 100 / 448))  # the protocol's 100x100 masks at 448 px
    generator = torch.Generator().manual_seed(0)
    cpu_tokens = torch.randn(settings.eval_images, tokens.shape[1], *grid, generator=generator).half()
    labels = torch.randint(0, 21, (settings.eval_images, mask, mask), generator=generator)
    labels[:, :2] = 255
    config = UnsupervisedConfig(image_size=settings.eval_size, mask_size=mask, seeds=tuple(range(settings.eval_seeds)))
    start = time.perf_counter()
    try:
        outcome = evaluate_tokens(cpu_tokens, labels, tuple(f"class{i}" for i in range(21)), config)
    except InputError as error:  # faiss missing
        result.update(unsup="skipped", unsup_reason=str(error))
        return result
    result.update(unsup_s=round(time.perf_counter() - start, 2),
                  unsup_stages_s={k: round(v, 2) for k, v in outcome.timings.items()},
                  unsup_peak_rss_gib=round(peak_memory_gib(torch.device("cpu")), 3),
                  unsup_tokens=f"{grid[0]}x{grid[1]}", unsup_mask=f"{mask}x{mask}", unsup_seeds=settings.eval_seeds)
    return result


# ----------------------------------------------------------------------------------------------------- report


@dataclass
class Report:
    settings: GpuBenchSettings
    device: str
    results: list[dict] = field(default_factory=list)

    def step(self, method: str, mode: str) -> dict | None:
        return next((r for r in self.results if r["part"] == "step" and r["method"] == method
                     and r["mode"] == mode), None)

    def part(self, name: str) -> dict | None:
        return next((r for r in self.results if r["part"] == name), None)

    def targets(self) -> dict[str, dict]:
        """Each target with its measured value and whether it is met (None: not measured in this run)."""
        croc, dino = self.step("croc", "compiled"), self.step("dino", "compiled")
        data = self.part("data")
        measured = {
            "croc_compiled_images_per_s": croc and croc["images_per_s"],
            "croc_vs_dino_compiled": croc and dino and round(croc["images_per_s"] / dino["images_per_s"], 3),
            "clustering_share": croc and croc["clustering_share"],
            "peak_memory_gib": croc and croc["peak_memory_gib"],
            "data_images_per_s_per_core": data and data["images_per_s_per_core"],
        }
        out = {}
        for name, target in TARGETS.items():
            value = measured[name]
            upper = name in ("clustering_share", "peak_memory_gib")
            met = None if value is None else (value <= target if upper else value >= target)
            out[name] = {"target": f"{'<=' if upper else '>='} {target:g}", "measured": value, "met": met}
        return out

    def table(self) -> str:
        lines = [f"croc bench gpu on {self.device}", "",
                 f"{'step':<18}{'images/s':>10}{'ms/step':>10}{'clustering':>12}{'peak GiB':>10}{'no sync':>12}"]
        for r in (r for r in self.results if r["part"] == "step"):
            share = "-" if r["clustering_share"] is None else f"{100 * r['clustering_share']:.1f} %"
            lines.append(f"{r['method'] + ' ' + r['mode']:<18}{r['images_per_s']:>10.1f}{r['ms_per_step']:>10.2f}"
                         f"{share:>12}{r['peak_memory_gib']:>10.2f}{r['sync_free_step']!s:>12}")
        for r in (r for r in self.results if r["part"] == "step" and r.get("dense_row_compaction")):
            c = r["dense_row_compaction"]
            lines.append(f"dense head rows ({r['method']} {r['mode']}): {c['valid_rows']} of {c['rows']} valid "
                         f"({100 * c['valid_fraction']:.1f} %); student head fwd+bwd {c['head_ms_padded']:.2f} ms "
                         f"on all rows, {c['head_ms_valid_rows']:.2f} ms on the valid rows alone")
        if data := self.part("data"):
            lines += ["", f"data kernel: {data['images_per_s']:.0f} images/s on {data['cores']} cores, "
                          f"{data['images_per_s_per_core']:.1f} per core ({data['decoder']})"]
        if ev := self.part("eval"):
            unsup = (f"unsupervised stages {ev['unsup_s']:.1f} s" if "unsup_s" in ev
                     else f"unsupervised stages skipped ({ev['unsup_reason']})")
            lines += [f"eval: extraction {ev['extract_images_per_s']:.1f} images/s at {ev['size']} px "
                      f"({ev['extract_s']:.1f} s for {ev['images']} images, peak {ev['extract_peak_gib']:.2f} GiB); "
                      f"{unsup}"]
        lines += ["", f"{'target':<30}{'wanted':>12}{'measured':>12}  met"]
        for name, t in self.targets().items():
            value = "-" if t["measured"] is None else f"{t['measured']:g}"
            lines.append(f"{name:<30}{t['target']:>12}{value:>12}  {'-' if t['met'] is None else t['met']}")
        return "\n".join(lines)

    def as_json(self) -> dict:
        return {"bench": "gpu", "device": self.device, "torch": torch.__version__,
                "settings": asdict(self.settings), "results": self.results, "targets": self.targets()}


def _release(device: torch.device) -> None:
    """Free what the last measurement held (compiled graphs included) so that each peak is its own."""
    import gc

    torch._dynamo.reset()
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def run(settings: GpuBenchSettings, log: Callable[[str], None] | None = None) -> Report:
    """Every part in turn; each result is logged as one JSON line as soon as it is measured."""
    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    device = resolve_device(settings.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    report = Report(settings, device_name(device))
    start = time.perf_counter()

    def add(result: dict) -> None:
        report.results.append(result)
        log(f"[bench gpu {time.perf_counter() - start:6.1f} s] {json.dumps(result)}")

    if "step" in settings.parts:
        for method in settings.methods:
            for mode in settings.modes:
                log(f"[bench gpu {time.perf_counter() - start:6.1f} s] step: {method} {mode} ...")
                add(bench_step(settings, method, mode == "compiled", device))
                _release(device)
    if "data" in settings.parts:
        log(f"[bench gpu {time.perf_counter() - start:6.1f} s] data kernel ...")
        cores = settings.data_cores or os.cpu_count() or 1
        add(bench_kernel_all_cores(cores, settings.data_images, settings.data_passes, settings.data_size))
    if "eval" in settings.parts:
        log(f"[bench gpu {time.perf_counter() - start:6.1f} s] evaluation ...")
        add(bench_eval(settings, device))
    return report


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m croc.bench gpu", description=__doc__.splitlines()[0])
    defaults = GpuBenchSettings()
    parser.add_argument("--out", help="also write the JSON object to this file")
    parser.add_argument("--parts", nargs="+", default=list(defaults.parts), choices=["step", "data", "eval"])
    parser.add_argument("--methods", nargs="+", default=list(defaults.methods), choices=METHODS)
    parser.add_argument("--modes", nargs="+", default=list(defaults.modes), choices=MODES)
    for name, value in asdict(defaults).items():
        if name in ("parts", "methods", "modes"):
            continue
        flag = "--" + name.replace("_", "-")
        parser.add_argument(flag, type=type(value), default=value, help=f"(default {value})")
    return parser


def main(argv: list[str] | None = None) -> Report:
    args = vars(build_parser().parse_args(argv))
    out = args.pop("out")
    for name in ("parts", "methods", "modes"):
        args[name] = tuple(args[name])
    try:
        settings = GpuBenchSettings(**args)
    except ValueError as error:
        raise SystemExit(f"croc bench gpu: {error}") from error
    report = run(settings)
    print(report.table(), flush=True)
    payload = json.dumps(report.as_json())
    print(payload, flush=True)
    if out:
        with open(out, "w") as handle:
            handle.write(payload + "\n")
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
