"""Pictures of the clusters found on both views of an image (as the paper's Fig. A1)."""

from __future__ import annotations

import numpy as np
import torch

from croc.augment import IMAGENET_MEAN, IMAGENET_STD

# Distinct colours for up to 12 clusters (grey = pruned: not present in both views).
PALETTE = np.array([[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48], [145, 30, 180],
                    [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 212], [0, 128, 128],
                    [220, 190, 255]], np.float32)
PRUNED = np.array([128, 128, 128], np.float32)


def denormalize(view: torch.Tensor) -> np.ndarray:
    """A normalised view [3, S, S] -> uint8 [S, S, 3]."""
    mean = torch.tensor(IMAGENET_MEAN, device=view.device)[:, None, None]
    std = torch.tensor(IMAGENET_STD, device=view.device)[:, None, None]
    pixels = ((view.float() * std + mean).clamp(0, 1) * 255).round().byte()
    return pixels.permute(1, 2, 0).cpu().numpy()


def cluster_picture(views: tuple[np.ndarray, np.ndarray], assignments: torch.Tensor, valid: torch.Tensor,
                    patch_size: int, alpha: float = 0.55, gap: int = 4) -> np.ndarray:
    """Both views side by side, each patch tinted with the colour of its cluster.

    views: two uint8 [S, S, 3]; assignments [2, N, Kmax] (one problem, pruned per-view weights); valid [Kmax].
    -> uint8 [S, 2S + gap, 3].
    """
    size = views[0].shape[0]
    grid = size // patch_size
    weights = assignments.float().cpu()
    owner = weights.argmax(-1).numpy()  # [2, N]
    has_weight = (weights.sum(-1) > 0).numpy()
    keep = valid.cpu().numpy()
    colours = np.where(keep[:, None], PALETTE[np.arange(len(keep)) % len(PALETTE)], PRUNED)  # [Kmax, 3]
    panels = []
    for v in range(2):
        tint = np.where(has_weight[v][:, None], colours[owner[v]], PRUNED).reshape(grid, grid, 3)
        tint = tint.repeat(patch_size, 0).repeat(patch_size, 1)
        panel = (1 - alpha) * views[v].astype(np.float32) + alpha * tint
        panels.append(panel.round().clip(0, 255).astype(np.uint8))
    spacer = np.full((size, gap, 3), 255, np.uint8)
    return np.concatenate([panels[0], spacer, panels[1]], axis=1)
