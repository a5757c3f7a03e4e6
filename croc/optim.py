"""AdamW with DINO's parameter groups: no weight decay on biases and norms."""

from __future__ import annotations

import torch
from torch import nn


def parameter_groups(module: nn.Module) -> list[dict]:
    """[decayed, not decayed]: biases and 1-D parameters (norms) are not decayed. Frozen parameters are left out."""
    decay, no_decay = [], []
    for name, param in module.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if name.endswith(".bias") or param.ndim == 1 else decay).append(param)
    return [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(module: nn.Module, device: torch.device, fused: bool = True) -> torch.optim.AdamW:
    """AdamW whose lr and first group's weight decay are set by the schedules every step."""
    use_fused = fused and device.type in ("cuda", "cpu")
    return torch.optim.AdamW(parameter_groups(module), lr=0.0, weight_decay=0.0, fused=use_fused or None,
                             foreach=None if use_fused else True)


def last_layer_parameters(module: nn.Module) -> list[nn.Parameter]:
    """The heads' last layers (frozen during the first epoch(s))."""
    return [p for n, p in module.named_parameters() if ".last_layer" in n or n.startswith("last_layer")]
