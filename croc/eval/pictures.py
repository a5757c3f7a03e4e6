"""Pictures of evaluation results: image | prediction | ground truth rows, and propagated video masks."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from croc.data.palette import voc_palette

_COLOURS = np.array(voc_palette(), np.uint8).reshape(256, 3)
IGNORE_COLOUR = np.array([255, 255, 255], np.uint8)


def colour_labels(labels: torch.Tensor | np.ndarray, ignore_index: int = 255) -> np.ndarray:
    """int labels [H, W] -> uint8 [H, W, 3] with the VOC colour map (class 0 black, ignore white)."""
    values = np.asarray(labels, dtype=np.int64)
    out = _COLOURS[np.clip(values, 0, 255)]
    out[values == ignore_index] = IGNORE_COLOUR
    return out


def _hwc(image: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """uint8 [3, h, w] -> uint8 [H, W, 3] resized (bilinear) to `size`."""
    x = image.float()[None]
    if tuple(x.shape[-2:]) != size:
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    return x[0].round().clamp(0, 255).byte().permute(1, 2, 0).numpy()


def segmentation_rows(examples: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]], gap: int = 4) -> np.ndarray:
    """(image uint8 [3,h,w], prediction [H,W], label [H,W]) per example -> uint8 picture, one row per example:
    the image, the prediction and the ground truth side by side (labels upscaled by nearest to the image size)."""
    if not examples:
        raise ValueError("no examples to draw")
    rows = []
    for image, pred, label in examples:
        height, width = image.shape[-2:]
        panels = [_hwc(image, (height, width))]
        for mask in (pred, label):
            grown = F.interpolate(torch.as_tensor(mask)[None, None].float(), size=(height, width), mode="nearest")
            panels.append(colour_labels(grown[0, 0].long()))
        spacer = np.full((height, gap, 3), 255, np.uint8)
        rows.append(np.concatenate([panels[0], spacer, panels[1], spacer, panels[2]], axis=1))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, gap), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    return np.concatenate(rows, axis=0)


def video_strip(frames: list[torch.Tensor], masks: list[np.ndarray], alpha: float = 0.5, gap: int = 4) -> np.ndarray:
    """Frames uint8 [3,H,W] with their masks [H,W] (0 = background) blended in, side by side -> uint8 picture."""
    panels = []
    for frame, mask in zip(frames, masks, strict=True):
        pixels = frame.permute(1, 2, 0).numpy().astype(np.float32)
        mask = np.asarray(mask)
        tint = colour_labels(mask).astype(np.float32)
        blended = np.where((mask > 0)[..., None], (1 - alpha) * pixels + alpha * tint, pixels)
        panels.append(blended.round().clip(0, 255).astype(np.uint8))
        panels.append(np.full((pixels.shape[0], gap, 3), 255, np.uint8))
    return np.concatenate(panels[:-1], axis=1)
