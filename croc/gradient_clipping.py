"""Gradient clipping: DINO's per-parameter rule (the default, as in the CrOC authors' code) or torch's global norm.

Per parameter (DINO's `utils.clip_gradients`): every gradient g with a norm above `max_norm` is scaled by
max_norm / (|g| + 1e-6); the others are left as they are. Global norm: all gradients are scaled together so that
their joint norm is at most `max_norm` (`torch.nn.utils.clip_grad_norm_`). Neither synchronises with the host.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from croc.errors import InputError
from croc.registry import CLIP_GRAD_MODES

EPS = 1e-6  # DINO's: coef = max_norm / (norm + 1e-6)


def clip_gradients_(parameters: Iterable[torch.Tensor], max_norm: float, mode: str = "per_parameter") -> None:
    """Clip, in place, the gradients of the parameters that have one."""
    params = [p for p in parameters if p.grad is not None]
    if mode == "per_parameter":
        clip_each_gradient_([p.grad for p in params], max_norm)
    elif mode == "global_norm":
        torch.nn.utils.clip_grad_norm_(params, max_norm)
    else:
        raise InputError(f"optim.clip_grad_mode={mode!r}: allowed {list(CLIP_GRAD_MODES)}")


@torch.no_grad()
def clip_each_gradient_(grads: list[torch.Tensor], max_norm: float) -> None:
    """g <- g * min(1, max_norm / (|g| + 1e-6)) for each gradient separately (a factor of 1 leaves g unchanged)."""
    if not grads:
        return
    norms = torch.stack(torch._foreach_norm(grads, 2))  # [P]
    coefs = (max_norm / (norms + EPS)).clamp(max=1.0)  # [P], DINO's arithmetic
    torch._foreach_mul_(grads, list(coefs.unbind()))
