"""Geometric transforms of (image, label) pairs for the linear segmentation probe (docs/evaluation.md).

Conventions:
- image: uint8 [3, H, W] (one pair) or float [B, 3, H, W] in 0..1 (a batch, before ImageNet normalisation);
  label: int64 [H, W] / [B, H, W], classes 0..K-1 and 255 = ignore.
- Resizing: image bicubic (antialiased, rounded and clamped to uint8 by torchvision), label nearest (PIL's rule,
  "nearest-exact", as the reference protocol's PIL transforms).
- Padding: wherever an output pixel has no source pixel (zoom-out, rotation corners, crops of small images) the
  image is 0 (a black pixel, before normalisation) and the label 255 (ignored by the loss and by the mIoU).
- Train-time augmentation (batched, on any device): horizontal flip, zoom about the centre by a factor in
  ``scale`` (the output size is kept: > 1 zooms in, < 1 zooms out and pads) and rotation by an angle in
  ``[-rotation_deg, rotation_deg]`` (positive = counter-clockwise as displayed). The three are one affine map
  sampled with ``grid_sample`` (align_corners=False): bilinear for the image, nearest for the label. With flip
  off, scale 1 and angle 0 the map is the identity, pixel for pixel.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from croc.errors import InputError

IGNORE_INDEX = 255
IMAGE_FILL = 0


def _check_pair(image: torch.Tensor, label: torch.Tensor) -> None:
    if image.dim() != 3 or image.shape[0] != 3:
        raise InputError(f"image: expected [3, H, W], got {list(image.shape)}")
    if label.dim() != 2 or tuple(label.shape) != tuple(image.shape[1:]):
        raise InputError(f"label: expected [H, W] = {list(image.shape[1:])}, got {list(label.shape)}")
    if label.is_floating_point() or label.dtype == torch.bool:
        raise InputError(f"label must hold integers, got dtype {label.dtype}")
    if label.numel() and (int(label.min()) < 0 or int(label.max()) > IGNORE_INDEX):
        raise InputError(f"label values must lie in [0, {IGNORE_INDEX}], got [{int(label.min())}, {int(label.max())}]")


def resize_pair(image: torch.Tensor, label: torch.Tensor, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """image uint8 [3, H, W], label int64 [H, W] -> image uint8 [3, h, w] (bicubic), label int64 [h, w] (nearest).

    ``size`` = (h, w). Nearest keeps the label values: no new class and no blend with 255 appears.
    """
    _check_pair(image, label)
    h, w = (int(s) for s in size)
    if h < 1 or w < 1:
        raise InputError(f"size must be positive, got {size}")
    if image.dtype != torch.uint8:
        raise InputError(f"image must be uint8, got {image.dtype}")
    if tuple(image.shape[1:]) == (h, w):
        return image, label.long()
    resized_image = TF.resize(image, [h, w], interpolation=InterpolationMode.BICUBIC, antialias=True)
    resized_label = TF.resize(label.to(torch.uint8)[None], [h, w], interpolation=InterpolationMode.NEAREST_EXACT)[0]
    return resized_image, resized_label.long()


def random_crop_pair(image: torch.Tensor, label: torch.Tensor, crop: int,
                     generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """image [3, H, W], label [H, W] -> a random crop x crop window: image [3, crop, crop], label int64 [crop, crop].

    A side shorter than ``crop`` is padded at the bottom / right (image 0, label 255) before cropping, so every
    source pixel can appear. ``generator`` must be a CPU generator (None: global RNG).
    """
    _check_pair(image, label)
    if crop < 1:
        raise InputError(f"crop must be >= 1, got {crop}")
    h, w = image.shape[1:]
    pad_h, pad_w = max(crop - h, 0), max(crop - w, 0)
    if pad_h or pad_w:
        image = F.pad(image, (0, pad_w, 0, pad_h), value=IMAGE_FILL)
        label = F.pad(label, (0, pad_w, 0, pad_h), value=IGNORE_INDEX)
    top = int(torch.randint(image.shape[1] - crop + 1, (1,), generator=generator))
    left = int(torch.randint(image.shape[2] - crop + 1, (1,), generator=generator))
    return image[:, top:top + crop, left:left + crop], label[top:top + crop, left:left + crop].long()


@dataclass(frozen=True)
class AffineParams:
    """Per-image augmentation draws: flip bool [B], scale float32 [B] (zoom factor), angle_deg float32 [B]."""

    flip: torch.Tensor
    scale: torch.Tensor
    angle_deg: torch.Tensor

    @classmethod
    def identity(cls, batch: int) -> AffineParams:
        return cls(torch.zeros(batch, dtype=torch.bool), torch.ones(batch), torch.zeros(batch))


def sample_affine_params(batch: int, scale: tuple[float, float] = (0.75, 1.25), rotation_deg: float = 5.0,
                         flip: bool = True, generator: torch.Generator | None = None) -> AffineParams:
    """Draw ``batch`` independent augmentations on the CPU: flip with probability 1/2 (if ``flip``), zoom factor
    uniform in ``scale``, angle uniform in [-rotation_deg, rotation_deg]. Same generator state -> same draws."""
    lo, hi = scale
    if not 0 < lo <= hi:
        raise InputError(f"scale must satisfy 0 < min <= max, got {scale}")
    if rotation_deg < 0:
        raise InputError(f"rotation_deg must be >= 0, got {rotation_deg}")
    flips = torch.rand(batch, generator=generator) < 0.5
    scales = lo + (hi - lo) * torch.rand(batch, generator=generator)
    angles = rotation_deg * (2 * torch.rand(batch, generator=generator) - 1)
    return AffineParams(flips & flip, scales, angles)


def affine_theta(params: AffineParams, height: int, width: int) -> torch.Tensor:
    """[B, 2, 3] float32 ``affine_grid`` matrices: output normalised coordinates -> input normalised coordinates.

    In pixel units about the image centre (y down): p_in = (1 / scale) * R^T * Flip * p_out, where R rotates the
    content counter-clockwise on screen. Normalised <-> pixel units: D = diag(W / 2, H / 2), theta = D^-1 M D.
    """
    angle = torch.deg2rad(params.angle_deg.float())
    cos, sin = torch.cos(angle), torch.sin(angle)
    flip_sign = 1.0 - 2.0 * params.flip.float()  # -1 mirrors x
    inv_scale = 1.0 / params.scale.float()
    aspect = height / width  # D^-1 M D scales the off-diagonal terms by the aspect ratio
    theta = torch.zeros(len(angle), 2, 3)
    theta[:, 0, 0] = inv_scale * cos * flip_sign
    theta[:, 0, 1] = -inv_scale * sin * aspect
    theta[:, 1, 0] = inv_scale * sin * flip_sign / aspect
    theta[:, 1, 1] = inv_scale * cos
    return theta


def affine_pair(images: torch.Tensor, labels: torch.Tensor,
                params: AffineParams) -> tuple[torch.Tensor, torch.Tensor]:
    """images float [B, 3, H, W], labels int64 [B, H, W] -> the same shapes, flipped / zoomed / rotated.

    Bilinear for the image (padding 0), nearest for the label (padding 255). Runs on the device of ``images``.
    """
    if images.dim() != 4 or images.shape[1] != 3 or not images.is_floating_point():
        raise InputError(f"images: expected float [B, 3, H, W], got {images.dtype} {list(images.shape)}")
    b, _, h, w = images.shape
    if tuple(labels.shape) != (b, h, w):
        raise InputError(f"labels: expected [B, H, W] = {[b, h, w]}, got {list(labels.shape)}")
    if len(params.flip) != b:
        raise InputError(f"params hold {len(params.flip)} draws for a batch of {b}")
    theta = affine_theta(params, h, w).to(images.device)
    grid = F.affine_grid(theta, [b, 3, h, w], align_corners=False)  # [B, H, W, 2]
    out_images = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    # Labels shifted by one, so that the zero padding of grid_sample marks pixels without a source.
    shifted = (labels.to(images.dtype if images.dtype == torch.float64 else torch.float32) + 1)[:, None]
    sampled = F.grid_sample(shifted, grid, mode="nearest", padding_mode="zeros", align_corners=False)[:, 0]
    sampled = sampled.round().long()
    out_labels = torch.where(sampled == 0, torch.full_like(sampled, IGNORE_INDEX), sampled - 1)
    return out_images, out_labels

