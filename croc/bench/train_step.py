"""Benchmarks of the training step, runnable with nothing but torch, timm and numpy installed.

    python -m croc.bench step --methods croc dino --modes eager compiled --batch 128 --arch vit_small

Prints one JSON object per (method, mode): images/s and ms/iter over timed steps (synchronised only at the
ends), the per-phase split from separate steps synchronised around each phase, and peak memory.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time

import torch

from croc.augment import patch_centres
from croc.bench.dense_rows import dense_row_compaction
from croc.bench.timing import PhaseTimer, clustering_share, peak_memory_gib, reset_peak, sync
from croc.config import ClusteringConfig, MethodConfig, ModelConfig, OptimConfig, TrainConfig
from croc.model import CrOC
from croc.registry import ARCHITECTURES, METHODS, PATCH_SIZES, PRECISIONS, TOKENS
from croc.train_step import PHASES, TrainStep

MODES = ("eager", "compiled")  # torch.compile off / on


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def bench_config(args: argparse.Namespace, method: str) -> tuple[TrainConfig, int]:
    """The step's settings from the command line, and the number of steps the run takes in all."""
    model = ModelConfig(arch=args.arch, patch_size=args.patch_size, drop_path_rate=0.1, out_dim=args.out_dim,
                        out_dim_c=args.out_dim_c)
    clustering = ClusteringConfig(n_init=args.k, n_centroids_max=args.n_centroids_max, lambda_pos=args.lambda_pos)
    total = args.warmup + 2 * args.steps + 1
    optim = OptimConfig(epochs=1, batch_size=args.batch, warmup_epochs=0, freeze_last_layer_epochs=0,
                        precision=args.precision)
    config = TrainConfig(model=model, method=MethodConfig(method=method, tokens=args.tokens, clustering=clustering,
                                                          warmup_teacher_temp_epochs=1),
                         optim=optim, image_size=args.image_size)
    return config, total


def synthetic_inputs(batch: int, size: int, patch: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Random normalised views [2B, 3, S, S] and patch centres [2, B, N, 2] of random crops of a 480x640 image."""
    g = torch.Generator().manual_seed(0)
    images = torch.randn(2 * batch, 3, size, size, generator=g)
    heights = torch.rand(2 * batch, generator=g) * 300 + 150
    tops = torch.rand(2 * batch, generator=g) * (480 - heights)
    lefts = torch.rand(2 * batch, generator=g) * (640 - heights)
    boxes = torch.stack([tops, lefts, heights, heights], 1)
    flips = torch.rand(2 * batch, generator=g) < 0.5
    xy = patch_centres(boxes, flips, size, patch).view(2, batch, -1, 2)
    return images.to(device), xy.to(device)


def bench_step(args: argparse.Namespace, method: str, compiled: bool,
               device: torch.device) -> tuple[TrainStep, torch.Tensor, torch.Tensor]:
    """The step to time (seeded model, compiled when asked) and its synthetic inputs (views, patch centres)."""
    torch.manual_seed(0)
    config, total = bench_config(args, method)
    model = CrOC(config).to(device)
    if compiled:
        model.compile_passes()
    step = TrainStep(model, config, steps_per_epoch=total, device=device)
    images, xy = synthetic_inputs(args.batch, args.image_size, args.patch_size, device)
    return step, images, xy


def run_one(args: argparse.Namespace, method: str, compiled: bool, device: torch.device) -> dict:
    step, images, xy = bench_step(args, method, compiled, device)

    it = 0
    for _ in range(args.warmup):
        metrics = step(images, xy, it)
        it += 1
    sync(device)
    reset_peak(device)
    start = time.perf_counter()
    for _ in range(args.steps):
        metrics = step(images, xy, it)
        it += 1
    sync(device)
    elapsed = time.perf_counter() - start

    timer = PhaseTimer(device)
    for _ in range(args.steps):
        metrics = step(images, xy, it, phase=timer)
        it += 1

    sync_free = check_no_sync(step, images, xy, it, device) if args.check_sync else None
    it += 1 if args.check_sync else 0
    compaction = dense_row_compaction(step, images, xy)

    ms_per_iter = 1000 * elapsed / args.steps
    phases = timer.ms_per_step(PHASES, args.steps)
    peak = peak_memory_gib(device)
    loss = float(metrics["loss"])
    return {
        "bench": "step", "method": method, "mode": "compiled" if compiled else "eager", "device": _device_name(device),
        "arch": f"{args.arch}/{args.patch_size}", "batch": args.batch, "image_size": args.image_size,
        "precision": args.precision if device.type == "cuda" else "fp32", "tokens": args.tokens, "k": args.k,
        "out_dims": [args.out_dim, args.out_dim_c], "images_per_s": round(args.batch / (elapsed / args.steps), 1),
        "ms_per_iter": round(ms_per_iter, 2), "phases_ms": phases,
        "clustering_share": clustering_share(phases),
        "peak_memory_gib": round(peak, 3), "sync_free_step": sync_free, "final_loss": round(loss, 4),
        "dense_row_compaction": compaction, "torch": torch.__version__,
    }


def check_no_sync(step: TrainStep, images: torch.Tensor, xy: torch.Tensor, it: int, device: torch.device) -> bool | str:
    """Run one step with CUDA's sync debug mode set to error: True when nothing synchronised with the host."""
    if device.type != "cuda":
        return "n/a (cpu)"
    torch.cuda.set_sync_debug_mode("error")
    try:
        step(images, xy, it)
        return True
    except RuntimeError as error:
        print(f"[croc.bench] synchronising operation in the step: {error}", file=sys.stderr)
        return False
    finally:
        torch.cuda.set_sync_debug_mode("default")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m croc.bench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="bench", required=True)
    step = sub.add_parser("step", help="time the training step")
    # the method's settings default to the paper's (croc/config.py) and choose from croc/registry.py
    model, method, clustering, optim = ModelConfig(), MethodConfig(), ClusteringConfig(), OptimConfig()
    step.add_argument("--methods", nargs="+", default=[method.method], choices=METHODS)
    step.add_argument("--modes", nargs="+", default=["eager"], choices=MODES)
    step.add_argument("--arch", default=model.arch, choices=tuple(ARCHITECTURES))
    step.add_argument("--patch-size", type=int, default=model.patch_size, choices=PATCH_SIZES)
    step.add_argument("--batch", type=int, default=128, help="images per step (the GPU targets' batch)")
    step.add_argument("--image-size", type=int, default=TrainConfig().image_size)
    step.add_argument("--out-dim", type=int, default=model.out_dim)
    step.add_argument("--out-dim-c", type=int, default=model.out_dim_c)
    step.add_argument("--tokens", default=method.tokens, choices=TOKENS)
    step.add_argument("--k", type=int, default=clustering.n_init)
    step.add_argument("--n-centroids-max", type=int, default=clustering.n_centroids_max)
    step.add_argument("--lambda-pos", type=float, default=clustering.lambda_pos)
    step.add_argument("--precision", default=optim.precision, choices=PRECISIONS)
    step.add_argument("--steps", type=int, default=20, help="timed steps (and as many phase-timed steps)")
    step.add_argument("--warmup", type=int, default=5)
    step.add_argument("--check-sync", action="store_true", help="prove one step runs without host sync (CUDA)")
    step.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    return parser


def main(argv: list[str] | None = None) -> list[dict]:
    args = build_parser().parse_args(argv)
    if args.steps < 1 or args.batch < 1 or args.warmup < 0:
        raise SystemExit("--steps and --batch must be >= 1, --warmup >= 0")
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    results = []
    for method in args.methods:
        for mode in args.modes:
            print(f"[croc.bench] {method} {mode} on {_device_name(device)} ...", file=sys.stderr, flush=True)
            result = run_one(args, method, mode == "compiled", device)
            print(json.dumps(result), flush=True)
            results.append(result)
    return results


if __name__ == "__main__":
    main()
