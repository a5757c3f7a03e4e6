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


def cluster_figure(images: torch.Tensor, assignments: torch.Tensor, valid: torch.Tensor, patch_size: int,
                   step: int | None = None, count: int = 2) -> np.ndarray:
    """The clusters of the first head on both views of the first `count` images, labelled: one row per image,
    columns view 1 | view 2, a title with the step, and a legend of the cluster colours and of pruned grey.

    images [2B, 3, S, S] (normalised, view 1 of every image first); assignments [2, Q, N, Kmax] with Q = B * heads;
    valid [Q, Kmax] -> uint8 [height, width, 3].
    """
    from croc.eval.pictures import MIN_PANEL, labelled_grid

    b = images.shape[0] // 2
    heads = valid.shape[0] // b
    scale = max(1, -(-MIN_PANEL // images.shape[-1]))
    rows, labels, kept = [], [], 0
    for i in range(min(count, b)):
        q = i * heads  # head 0 of image i
        views = (denormalize(images[i]), denormalize(images[b + i]))
        picture = cluster_picture(views, assignments[:, q], valid[q], patch_size, gap=0)  # [S, 2S, 3]
        size = views[0].shape[0]
        panels = [torch.from_numpy(np.ascontiguousarray(picture[:, v * size:(v + 1) * size])).permute(2, 0, 1)
                  for v in range(2)]
        rows.append([p.repeat_interleave(scale, 1).repeat_interleave(scale, 2) for p in panels])
        labels.append(f"image {i + 1}")
        kept = max(kept, int(valid[q].sum()))
    title = "clusters found on both views (first head)" + (f", step {step}" if step is not None else "")
    legend = [(f"cluster {k + 1}", tuple(int(c) for c in PALETTE[k % len(PALETTE)])) for k in range(kept)]
    legend.append(("pruned (not in both views)", tuple(int(c) for c in PRUNED)))
    return labelled_grid(rows, ("view 1", "view 2"), title, row_labels=labels, legend=legend)
