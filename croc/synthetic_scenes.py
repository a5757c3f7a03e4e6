"""Procedural scene-centric images for the demo and the benchmark (no files, no downloads).

A scene: a few 'stuff' regions (vertical bands split by a wavy boundary) with their own textures, and a few
'thing' objects (ellipses, rectangles, triangles) whose class sets shape and texture, placed with occlusion.
Deterministic for a seed. The full benchmark with labels and official layouts is built on this in the data layer.
"""

from __future__ import annotations

import numpy as np
import torch

N_STUFF, N_THINGS = 4, 6


def _texture(kind: int, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A [h, w, 3] float texture in [0, 1]; kind sets the statistics (frequency, orientation, contrast)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = rng.uniform(0.2, 0.8, size=3).astype(np.float32)
    freq = 0.08 + 0.09 * (kind % 5)
    angle = np.pi * ((kind * 0.37) % 1.0) + rng.uniform(-0.2, 0.2)
    phase = rng.uniform(0, 2 * np.pi)
    wave = np.sin(freq * (np.cos(angle) * xx + np.sin(angle) * yy) + phase)
    if kind % 3 == 1:
        wave = np.sign(wave)  # hard stripes / checks
    if kind % 3 == 2:
        wave = wave * np.sin(freq * (np.cos(angle + np.pi / 2) * xx + np.sin(angle + np.pi / 2) * yy))
    noise = rng.normal(0, 0.04 + 0.03 * (kind % 4), size=(h, w)).astype(np.float32)
    amplitude = 0.1 + 0.05 * (kind % 4)
    return np.clip(base[None, None] + (amplitude * wave + noise)[..., None], 0, 1)


def _shape_mask(kind: int, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A boolean [h, w] mask of one object of class `kind` at a random position and scale."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cy, cx = rng.uniform(0.15, 0.85) * h, rng.uniform(0.15, 0.85) * w
    ry, rx = rng.uniform(0.08, 0.25) * h, rng.uniform(0.08, 0.25) * w
    shape = kind % 3
    if shape == 0:
        return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    if shape == 1:
        return (np.abs(yy - cy) <= ry) & (np.abs(xx - cx) <= rx)
    return (yy - cy + ry >= 0) & (np.abs(xx - cx) <= (yy - cy + ry) * rx / (2 * ry)) & (yy - cy <= ry)


def synthetic_scene(seed: int, height: int = 128, width: int = 160) -> tuple[torch.Tensor, np.ndarray]:
    """-> (image uint8 [3, H, W], label map int64 [H, W]: stuff classes 0..N_STUFF-1, things after)."""
    rng = np.random.default_rng(seed)
    image = np.zeros((height, width, 3), np.float32)
    labels = np.zeros((height, width), np.int64)
    n_regions = rng.integers(2, 4)
    stuff = rng.choice(N_STUFF, size=n_regions, replace=False)
    xx = np.arange(width)[None].repeat(height, 0)
    yy = np.arange(height)[:, None].repeat(width, 1)
    cuts = np.sort(rng.uniform(0.2, 0.8, size=n_regions - 1)) * height
    wobble = 6 * np.sin(xx / rng.uniform(8, 20) + rng.uniform(0, 6))
    region = np.searchsorted(cuts, yy + wobble)
    for r, kind in enumerate(stuff):
        mask = region == r
        image[mask] = _texture(int(kind), height, width, rng)[mask]
        labels[mask] = kind
    for _ in range(rng.integers(1, 4)):
        kind = int(rng.integers(N_THINGS))
        mask = _shape_mask(kind, height, width, rng)
        image[mask] = _texture(N_STUFF + kind, height, width, rng)[mask]
        labels[mask] = N_STUFF + kind
    pixels = torch.from_numpy(np.round(image * 255).astype(np.uint8)).permute(2, 0, 1).contiguous()
    return pixels, labels
