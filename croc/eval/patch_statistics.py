"""Hand-made dense features: per-patch colour and texture statistics, the floor a learned backbone must clear.

A pre-trained backbone's segmentation numbers mean little without reference points: a random-init ViT, and
features that know nothing but what a patch looks like on its own. These extractors have the surface of
``DenseFeatures`` (normalised images [B, 3, H, W] -> [B, C, H/p, W/p], ``.channels``, ``.patch_size``), so every
evaluation runs on them unchanged; they are chosen with the checkpoint spec ``stats:colour[:<patch>]`` or
``stats:texture[:<patch>]``.

- ``colour`` (6 channels): the mean and standard deviation of each RGB channel over the patch's pixels, in the
  units of the normalised input (ImageNet mean / std), so that every channel has about the scale of a ViT token's
  and a linear probe trains on them at the same learning rate.
- ``texture`` (6 + 16 channels): the colour statistics, plus the mean energy (squared response) of a bank of
  oriented filters on the luminance: Gabor pairs at 4 orientations (0, 45, 90, 135 deg) and 2 wavelengths (4
  and 8 pixels), each the sum of the even and odd responses' squares (phase invariant), then log(1 + energy).

Every channel is then a plain average over the patch, so a linear probe on them is a linear function of
patch-level colour and texture energy: anything a learned backbone adds on top is context and shape.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from croc.checkpoint_layouts import PATCH_STATISTICS
from croc.errors import InputError
from croc.eval.features import IMAGENET_MEAN, IMAGENET_STD

KINDS = PATCH_STATISTICS  # croc/checkpoint_layouts.py: the `stats:<kind>` backbones
WAVELENGTHS = (4.0, 8.0)  # pixels
ORIENTATIONS = (0.0, 45.0, 90.0, 135.0)  # degrees
LUMINANCE = (0.299, 0.587, 0.114)


def gabor_bank(wavelengths: tuple[float, ...] = WAVELENGTHS,
               orientations: tuple[float, ...] = ORIENTATIONS) -> torch.Tensor:
    """[2 * W * O, 1, S, S] zero-mean, unit-L2 Gabor kernels: (even, odd) for each (wavelength, orientation)."""
    size = 2 * math.ceil(max(wavelengths)) + 1
    r = torch.arange(size, dtype=torch.float64) - size // 2
    y, x = torch.meshgrid(r, r, indexing="ij")
    kernels = []
    for wavelength in wavelengths:
        sigma = 0.56 * wavelength  # one-octave bandwidth
        envelope = torch.exp(-(x * x + y * y) / (2 * sigma * sigma))
        for degrees in orientations:
            theta = math.radians(degrees)
            u = x * math.cos(theta) + y * math.sin(theta)
            for carrier in (torch.cos(2 * math.pi * u / wavelength), torch.sin(2 * math.pi * u / wavelength)):
                k = envelope * carrier
                k = k - envelope * (k.sum() / envelope.sum())  # zero mean: no response to flat colour
                kernels.append(k / k.norm())
    return torch.stack(kernels)[:, None].float()


class PatchStatistics(nn.Module):
    """Normalised images [B, 3, H, W] -> per-patch statistics [B, C, H/p, W/p] (see the module docstring)."""

    def __init__(self, kind: str = "texture", patch_size: int = 16) -> None:
        super().__init__()
        if kind not in KINDS:
            raise InputError(f"patch statistics kind {kind!r}: allowed {', '.join(KINDS)}")
        if patch_size < 1:
            raise InputError(f"patch_size={patch_size}: must be >= 1")
        self.kind, self.patch_size = kind, int(patch_size)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("luminance", torch.tensor(LUMINANCE).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("bank", gabor_bank() if kind == "texture" else torch.zeros(0, 1, 1, 1),
                             persistent=False)

    @property
    def channels(self) -> int:
        return 6 + self.bank.shape[0] // 2

    def train(self, mode: bool = True) -> PatchStatistics:  # nothing to train: always evaluation mode
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        h, w = images.shape[-2:]
        p = self.patch_size
        if h % p or w % p:
            raise InputError(f"image size {h}x{w} is not a multiple of the patch size {p}")
        x = images.float()  # normalised
        mean = F.avg_pool2d(x, p)  # [B, 3, h, w]
        std = (F.avg_pool2d(x * x, p) - mean * mean).clamp_min(0).sqrt()
        out = [mean, std]
        if self.kind == "texture":
            grey = ((x * self.std + self.mean) * self.luminance).sum(1, keepdim=True)  # [B, 1, H, W] in [0, 1]
            pad = self.bank.shape[-1] // 2
            responses = F.conv2d(F.pad(grey, (pad,) * 4, mode="reflect"), self.bank)  # [B, 2F, H, W]
            energy = responses[:, 0::2] ** 2 + responses[:, 1::2] ** 2  # [B, F, H, W]: even^2 + odd^2
            out.append(torch.log1p(F.avg_pool2d(energy, p) * 100.0))
        return torch.cat(out, dim=1)
