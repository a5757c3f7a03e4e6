"""A batch of view pairs as it travels (uint8 views + crop boxes + flips) and its preparation on the device."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch

from croc.augment import DINO_PHOTOMETRIC, Photometric, make_global_views, patch_centres, photometric_views


class ViewBatch(NamedTuple):
    views: torch.Tensor  # [2, B, 3, S, S] uint8
    boxes: torch.Tensor  # [2, B, 4] float32 (top, left, height, width) in the original image
    flips: torch.Tensor  # [2, B] bool


def views_of_images(images: Sequence[torch.Tensor], size: int, generator: torch.Generator | None = None,
                    scale: tuple[float, float] = (0.25, 1.0)) -> ViewBatch:
    """Geometric augmentation of each uint8 image [3, H, W] (any size) into a ViewBatch."""
    pairs = [make_global_views(image, size=size, scale=scale, generator=generator) for image in images]
    return ViewBatch(torch.stack([p[0] for p in pairs], 1), torch.stack([p[1] for p in pairs], 1),
                     torch.stack([p[2] for p in pairs], 1))


def prepare_batch(batch: ViewBatch, patch_size: int, device: torch.device, generator: torch.Generator | None = None,
                  photometric: Photometric = DINO_PHOTOMETRIC) -> tuple[torch.Tensor, torch.Tensor]:
    """-> images [2B, 3, S, S] normalised float (view 1s, then view 2s), patch_xy [2, B, N, 2] on the device.

    The photometric augmentation runs here, batched on the device.
    """
    views = batch.views.to(device, non_blocking=True)
    view1, view2 = photometric_views(views[0], views[1], generator=generator, settings=photometric)
    two, b = batch.flips.shape
    size = views.shape[-1]
    xy = patch_centres(batch.boxes.to(device).flatten(0, 1), batch.flips.to(device).flatten(), size, patch_size)
    return torch.cat([view1, view2]), xy.view(two, b, -1, 2)
