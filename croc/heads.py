"""DINO projection heads: a shared MLP and weight-normalised last layers (image-level and centroid-level)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from croc.config import ModelConfig


class WeightNormLinear(nn.Module):
    """y = x W^T with W = g * v / |v| per output row, no bias. g is frozen at 1 when norm_last_layer."""

    def __init__(self, in_dim: int, out_dim: int, norm_last_layer: bool) -> None:
        super().__init__()
        init = nn.Linear(in_dim, out_dim, bias=False)
        self.weight_v = nn.Parameter(init.weight.detach().clone())  # [out, in]
        self.weight_g = nn.Parameter(torch.ones(out_dim, 1), requires_grad=not norm_last_layer)  # [out, 1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight_g * F.normalize(self.weight_v, dim=1))


class ProjectionHead(nn.Module):
    """MLP in->hidden->hidden->bottleneck (GELU), L2-normalised bottleneck, then the last layer(s).

    The image-level layer (out_dim) and the centroid layer (out_dim_c, absent for DINO) share the MLP.
    """

    def __init__(self, in_dim: int, out_dim: int = ModelConfig.out_dim, out_dim_c: int | None = ModelConfig.out_dim_c,
                 hidden_dim: int = ModelConfig.hidden_dim, bottleneck_dim: int = ModelConfig.bottleneck_dim,
                 norm_last_layer: bool = ModelConfig.norm_last_layer) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(in_dim, hidden_dim), nn.GELU(),
            nn.Linear(hidden_dim, hidden_dim), nn.GELU(),
            nn.Linear(hidden_dim, bottleneck_dim),
        )
        for layer in self.mlp:
            if isinstance(layer, nn.Linear):
                nn.init.trunc_normal_(layer.weight, std=0.02)
                nn.init.zeros_(layer.bias)
        self.last_layer = WeightNormLinear(bottleneck_dim, out_dim, norm_last_layer)
        self.last_layer_c = WeightNormLinear(bottleneck_dim, out_dim_c, norm_last_layer) if out_dim_c else None

    def bottleneck(self, x: torch.Tensor) -> torch.Tensor:
        """[R, in] -> [R, bottleneck] L2-normalised."""
        return F.normalize(self.mlp(x), dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Image-level logits [R, out_dim]."""
        return self.last_layer(self.bottleneck(x))

    def forward_both(self, images: torch.Tensor, centroids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One MLP pass over images [R1, in] and centroids [R2, in] -> ([R1, out_dim], [R2, out_dim_c])."""
        if self.last_layer_c is None:
            raise ValueError("this head has no centroid layer (method dino)")
        z = self.bottleneck(torch.cat([images, centroids]))
        return self.last_layer(z[: images.shape[0]]), self.last_layer_c(z[images.shape[0]:])
