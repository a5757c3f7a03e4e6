"""Frozen dense features of a ViT: the tokens of the last n blocks, each through the final norm, CLS dropped.

Conventions (docs/evaluation.md, "Shared conventions"): ImageNet mean/std normalisation; "last n blocks" =
the outputs of the n last transformer blocks, each passed through the final LayerNorm, concatenated on the
channel axis in block order (ViT-S, n=2 -> 768 channels). Any input size that is a multiple of the patch size
is accepted: the positional embedding is interpolated bicubically the way DINO's evaluation code does it (scale
factor (grid + 0.1) / old grid, align_corners=False), and cached per grid size.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from croc.errors import InputError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DINO_VIDEO_STD = (0.228, 0.224, 0.225)  # DINO's DAVIS script (color_normalize) divides red by 0.228


def normalize_images(images: torch.Tensor, std: tuple[float, float, float] = IMAGENET_STD) -> torch.Tensor:
    """uint8 [B, 3, H, W] (0..255) or float in [0, 1] -> float32 normalised with the ImageNet mean and `std`."""
    if images.dim() != 4 or images.shape[1] != 3:
        raise InputError(f"images: expected [B, 3, H, W], got {list(images.shape)}")
    x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(std, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def interpolate_pos_embed(pos_embed: torch.Tensor, grid: tuple[int, int], num_prefix: int = 1) -> torch.Tensor:
    """pos_embed [1, P+N, D] trained on a square sqrt(N) grid -> [1, P+gh*gw, D] for grid (gh, gw).

    DINO's interpolate_pos_encoding: bicubic with scale factors ((gh + 0.1) / sqrt(N), (gw + 0.1) / sqrt(N)),
    the +0.1 avoiding floating point error in the output size. The prefix (CLS) embedding is kept as is.
    """
    prefix, patch = pos_embed[:, :num_prefix], pos_embed[:, num_prefix:]
    n, dim = patch.shape[1], patch.shape[2]
    side = math.isqrt(n)
    if side * side != n:
        raise InputError(f"positional embedding with {n} patch positions is not a square grid")
    gh, gw = grid
    if (gh, gw) == (side, side):
        return pos_embed
    square = patch.float().reshape(1, side, side, dim).permute(0, 3, 1, 2)
    resized = F.interpolate(square, scale_factor=((gh + 0.1) / side, (gw + 0.1) / side), mode="bicubic",
                            align_corners=False)
    if resized.shape[-2:] != (gh, gw):  # cannot happen with the +0.1; guards a future change of rounding
        raise InputError(f"positional embedding resized to {tuple(resized.shape[-2:])}, expected {(gh, gw)}")
    resized = resized.permute(0, 2, 3, 1).reshape(1, gh * gw, dim).to(pos_embed.dtype)
    return torch.cat([prefix, resized], dim=1)


class DenseFeatures(nn.Module):
    """A frozen timm VisionTransformer -> dense features [B, last_n * D, H/p, W/p] (eval mode, no gradients)."""

    def __init__(self, vit: nn.Module, last_n: int = 1) -> None:
        super().__init__()
        depth = len(vit.blocks)
        if not 1 <= last_n <= depth:
            raise InputError(f"last_n={last_n}: must lie in [1, {depth}] for this backbone")
        if getattr(vit, "pos_embed", None) is None or getattr(vit, "no_embed_class", False):
            raise InputError("only ViTs with a learned positional embedding that covers the CLS token are supported")
        self.vit = vit.eval().requires_grad_(False)
        self.last_n = last_n
        self.patch_size = int(vit.patch_embed.patch_size[0])
        self.embed_dim = int(vit.embed_dim)
        self._pos_cache: dict[tuple[int, int, torch.device, torch.dtype], torch.Tensor] = {}

    @property
    def channels(self) -> int:
        return self.last_n * self.embed_dim

    def train(self, mode: bool = True) -> DenseFeatures:  # frozen: always evaluation mode
        return super().train(False)

    def _pos(self, grid: tuple[int, int], like: torch.Tensor) -> torch.Tensor:
        key = (*grid, like.device, like.dtype)
        if key not in self._pos_cache:
            self._pos_cache[key] = interpolate_pos_embed(self.vit.pos_embed, grid, self.vit.num_prefix_tokens)
        return self._pos_cache[key]

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images [B, 3, H, W] normalised (see normalize_images), H and W multiples of the patch size."""
        b, _, h, w = images.shape
        p = self.patch_size
        if h % p or w % p:
            raise InputError(f"image size {h}x{w} is not a multiple of the patch size {p}")
        grid = (h // p, w // p)
        vit = self.vit
        x = vit.patch_embed.proj(images).flatten(2).transpose(1, 2)  # [B, N, D]
        if getattr(vit.patch_embed, "norm", None) is not None:
            x = vit.patch_embed.norm(x)
        x = torch.cat([vit.cls_token.expand(b, -1, -1), x], dim=1) + self._pos(grid, x)
        x = vit.norm_pre(x)
        outputs = []
        first_kept = len(vit.blocks) - self.last_n
        for i, block in enumerate(vit.blocks):
            x = block(x)
            if i >= first_kept:
                outputs.append(vit.norm(x)[:, vit.num_prefix_tokens:])
        tokens = torch.cat(outputs, dim=-1)  # [B, N, n*D]
        return tokens.transpose(1, 2).reshape(b, self.channels, *grid)
