"""Benchmarks of the evaluations, runnable with nothing but torch, timm, numpy, scipy and faiss installed.

    python -m croc.eval.bench [--arch vit_small] [--images 1449] [--device cpu|cuda] [--parts extract unsup davis]

Prints one JSON object per part:
- extract: frozen feature extraction at the protocol's 448x448 (images/s, last n blocks);
- unsup:   everything after extraction for a PVOC12-val-sized split (1,449 images, 28x28 tokens, masks 100x100,
           PCA 50, K=21, 5 seeds x 5 restarts x 100 iterations): seconds per stage and peak memory. The tokens are
           random (timing and memory do not depend on their values);
- davis:   label propagation at 480x832 (30x52 tokens, 7+1 context frames): ms per frame for the feature pass and
           for the propagation.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time

import torch

from croc.backbone import create_backbone
from croc.eval.features import DenseFeatures
from croc.eval.propagation import neighborhood_mask, propagate_frame
from croc.eval.unsupervised import UnsupervisedConfig, evaluate_tokens
from croc.registry import ARCHITECTURES


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def _timed(fn, device: torch.device, repeats: int) -> float:
    """Mean seconds per call over `repeats`, after one warm-up call."""
    fn()
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    _sync(device)
    return (time.perf_counter() - start) / repeats


def bench_extract(model: torch.nn.Module, device: torch.device, batch: int, repeats: int) -> dict:
    features = DenseFeatures(model, last_n=2).to(device)
    images = torch.randn(batch, 3, 448, 448, device=device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")

    def step() -> None:
        with autocast:
            features(images)

    seconds = _timed(step, device, repeats)
    return {"part": "extract", "size": "448x448", "last_n": 2, "batch": batch, "images_per_s": batch / seconds}


def bench_unsup(channels: int, images: int, seeds: int, device_name: str) -> dict:
    generator = torch.Generator().manual_seed(0)
    tokens = torch.randn(images, channels, 28, 28, generator=generator).half()  # [N, C, 28, 28]
    labels = torch.randint(0, 21, (images, 100, 100), generator=generator)
    labels[:, :5] = 255
    names = tuple(f"class{i}" for i in range(21))
    config = UnsupervisedConfig(seeds=tuple(range(seeds)))
    start = time.perf_counter()
    result = evaluate_tokens(tokens, labels, names, config)
    total = time.perf_counter() - start
    return {"part": "unsup", "images": images, "channels": channels, "grid": "28x28 -> 100x100", "K": 21,
            "seeds": seeds, "restarts": config.restarts, "iterations": config.iterations, "seconds": total,
            "stages_s": {k: round(v, 2) for k, v in result.timings.items()}, "peak_rss_gib": _peak_rss_gib(),
            "device": device_name}


def bench_davis(model: torch.nn.Module, device: torch.device, repeats: int) -> dict:
    features = DenseFeatures(model, last_n=1).to(device)
    frame = torch.randn(1, 3, 480, 832, device=device)
    h, w = 30, 52
    extract_s = _timed(lambda: features(frame), device, repeats)
    feats = torch.nn.functional.normalize(features(frame)[0].flatten(1).T, dim=1)  # [N, C]
    context = feats.expand(8, -1, -1).contiguous()  # first frame + 7 previous: [8, N, C]
    labels = torch.softmax(torch.randn(8, 4, h * w, device=device), dim=1)  # [8, K, N]
    mask = neighborhood_mask(h, w, 12, device)
    propagate_s = _timed(lambda: propagate_frame(feats, context, labels, mask, 0.1, 5), device, repeats)
    return {"part": "davis", "size": "480x832", "grid": f"{h}x{w}", "context_frames": 8,
            "features_ms_per_frame": 1000 * extract_s, "propagation_ms_per_frame": 1000 * propagate_s}


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(prog="python -m croc.eval.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="vit_small", choices=tuple(ARCHITECTURES))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--parts", nargs="+", default=["extract", "unsup", "davis"],
                        choices=("extract", "unsup", "davis"))
    parser.add_argument("--images", type=int, default=1449, help="split size for the unsupervised part")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=4, help="images per feature-extraction batch")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = create_backbone(args.arch, 16, 0.0).to(device).eval()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    results = []
    for part in args.parts:
        if part == "extract":
            result = bench_extract(model, device, args.batch, args.repeats)
        elif part == "unsup":
            result = bench_unsup(model.embed_dim, args.images, args.seeds, name)
        else:
            result = bench_davis(model, device, args.repeats)
        result.update(arch=args.arch, device=name)
        print(json.dumps(result), flush=True)
        results.append(result)
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
