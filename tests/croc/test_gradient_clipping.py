"""Gradient clipping: DINO's per-parameter rule against a hand loop, the global norm against torch, the config."""

from __future__ import annotations

import pytest
import torch

from croc.config import OptimConfig
from croc.errors import InputError
from croc.gradient_clipping import clip_gradients_


def parameters_with_gradients() -> list[torch.nn.Parameter]:
    """Norms 5 (above a threshold of 2), 0.5 (below), 0 (zero gradient), and one parameter without a gradient."""
    above = torch.nn.Parameter(torch.zeros(2, 2))
    above.grad = torch.tensor([[3.0, 0.0], [0.0, 4.0]])  # |g| = 5
    below = torch.nn.Parameter(torch.zeros(3))
    below.grad = torch.tensor([0.3, 0.4, 0.0])  # |g| = 0.5
    zero = torch.nn.Parameter(torch.zeros(4))
    zero.grad = torch.zeros(4)
    no_grad = torch.nn.Parameter(torch.zeros(2))
    return [above, below, zero, no_grad]


def dino_clip_by_hand(params: list[torch.nn.Parameter], clip: float) -> None:
    """DINO's utils.clip_gradients, written out."""
    for p in params:
        if p.grad is not None:
            norm = p.grad.norm(2)
            coef = clip / (norm + 1e-6)
            if coef < 1:
                p.grad.mul_(coef)


def test_per_parameter_follows_dinos_rule() -> None:
    ours, theirs = parameters_with_gradients(), parameters_with_gradients()
    clip_gradients_(ours, 2.0, "per_parameter")
    dino_clip_by_hand(theirs, 2.0)
    for a, b in zip(ours, theirs, strict=True):
        if b.grad is None:
            assert a.grad is None
        else:
            torch.testing.assert_close(a.grad, b.grad, rtol=0, atol=0)
    # by hand: the norm-5 gradient is scaled by 2 / (5 + 1e-6), the others are untouched
    torch.testing.assert_close(ours[0].grad, torch.tensor([[3.0, 0.0], [0.0, 4.0]]) * (2.0 / (5.0 + 1e-6)))
    torch.testing.assert_close(ours[0].grad.norm(), torch.tensor(2.0))
    assert torch.equal(ours[1].grad, torch.tensor([0.3, 0.4, 0.0]))
    assert torch.equal(ours[2].grad, torch.zeros(4))


def test_global_norm_equals_torch_clip_grad_norm() -> None:
    ours, theirs = parameters_with_gradients(), parameters_with_gradients()
    clip_gradients_(ours, 2.0, "global_norm")
    torch.nn.utils.clip_grad_norm_(theirs, 2.0)
    for a, b in zip(ours[:3], theirs[:3], strict=True):
        torch.testing.assert_close(a.grad, b.grad)
    # by hand: the joint norm is sqrt(25 + 0.25): every gradient, the small one too, is scaled to a joint norm of 2
    scale = 2.0 / (25.25 ** 0.5 + 1e-6)
    torch.testing.assert_close(ours[1].grad, torch.tensor([0.3, 0.4, 0.0]) * scale)


def test_the_modes_differ_where_one_gradient_dominates() -> None:
    per, joint = parameters_with_gradients(), parameters_with_gradients()
    clip_gradients_(per, 2.0, "per_parameter")
    clip_gradients_(joint, 2.0, "global_norm")
    assert not torch.allclose(per[1].grad, joint[1].grad)


def test_an_unknown_mode_is_refused() -> None:
    with pytest.raises(InputError, match=r"optim\.clip_grad_mode='layerwise'.*per_parameter.*global_norm"):
        OptimConfig(clip_grad_mode="layerwise")
    with pytest.raises(InputError, match="clip_grad_mode"):
        clip_gradients_(parameters_with_gradients(), 1.0, "layerwise")
    assert OptimConfig().clip_grad_mode == "per_parameter" and OptimConfig().clip_grad == 0.0
