"""Self-distillation losses: DINO cross-entropy on the image level and on the cross-view centroid pairs.

Teacher outputs are centred (an EMA of their batch mean, all-reduced when distributed) and sharpened;
student outputs are divided by the student temperature. No host synchronisation: counts stay tensors.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from croc.config import MethodConfig


def _all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(tensor)
    return tensor


def cross_entropy(teacher_probs: torch.Tensor, student_logits: torch.Tensor, student_temp: float) -> torch.Tensor:
    """Per row: -sum p_t log softmax(s / T_s). [R, C] x [R, C] -> [R]."""
    return -(teacher_probs * F.log_softmax(student_logits.float() / student_temp, dim=-1)).sum(dim=-1)


class ImageLoss(nn.Module):
    """DINO loss across the two global views: mean of CE(t1, s2) and CE(t2, s1)."""

    def __init__(self, out_dim: int, student_temp: float = MethodConfig.student_temp,
                 center_momentum: float = MethodConfig.center_momentum) -> None:
        super().__init__()
        self.student_temp = student_temp
        self.center_momentum = center_momentum
        self.register_buffer("center", torch.zeros(1, out_dim))

    def teacher_probs(self, teacher_logits: torch.Tensor, teacher_temp: float) -> torch.Tensor:
        return F.softmax((teacher_logits.float() - self.center) / teacher_temp, dim=-1)

    def forward(self, student: torch.Tensor, teacher: torch.Tensor,
                teacher_temp: float) -> tuple[torch.Tensor, torch.Tensor]:
        """student, teacher: [2, B, C] logits -> (loss [], teacher entropy [])."""
        probs = self.teacher_probs(teacher.detach(), teacher_temp)
        loss = 0.5 * (cross_entropy(probs[0], student[1], self.student_temp).mean()
                      + cross_entropy(probs[1], student[0], self.student_temp).mean())
        entropy = -(probs * probs.clamp_min(1e-12).log()).sum(-1).mean()
        self.update_center(teacher.detach())
        return loss, entropy

    @torch.no_grad()
    def update_center(self, teacher: torch.Tensor) -> None:
        flat = teacher.float().flatten(0, -2)
        count = torch.full((1,), float(flat.shape[0]), device=flat.device)  # a fill, not a host copy
        total = _all_reduce_sum(torch.cat([flat.sum(0), count]))
        batch_center = total[:-1] / total[-1]
        self.center.mul_(self.center_momentum).add_(batch_center[None], alpha=1 - self.center_momentum)


class CentroidLoss(nn.Module):
    """Dense loss on centroid pairs across views, both directions, averaged over the valid pairs.

    A batch without a valid pair gives 0 (and leaves the centre unchanged).
    """

    def __init__(self, out_dim: int, student_temp: float = MethodConfig.student_temp,
                 center_momentum: float = MethodConfig.center_momentum) -> None:
        super().__init__()
        self.student_temp = student_temp
        self.center_momentum = center_momentum
        self.register_buffer("center", torch.zeros(1, out_dim))

    def forward(self, student: torch.Tensor, teacher: torch.Tensor, valid: torch.Tensor,
                teacher_temp: float) -> tuple[torch.Tensor, torch.Tensor]:
        """student, teacher: [2, R, C] logits; valid [R] bool -> (loss [], teacher entropy [] over valid)."""
        weight = valid.float()
        count = weight.sum()
        probs = F.softmax((teacher.detach().float() - self.center) / teacher_temp, dim=-1)
        per_pair = 0.5 * (cross_entropy(probs[0], student[1], self.student_temp)
                          + cross_entropy(probs[1], student[0], self.student_temp))  # [R]
        loss = (per_pair * weight).sum() / count.clamp_min(1.0)
        entropy = (-(probs * probs.clamp_min(1e-12).log()).sum(-1) * weight).sum() / (2 * count).clamp_min(1.0)
        self.update_center(teacher.detach(), weight)
        return loss, entropy

    @torch.no_grad()
    def update_center(self, teacher: torch.Tensor, weight: torch.Tensor) -> None:
        weighted = (teacher.float() * weight[None, :, None]).sum(dim=(0, 1))  # [C]
        total = _all_reduce_sum(torch.cat([weighted, (2 * weight.sum())[None]]))
        batch_center = total[:-1] / total[-1].clamp_min(1.0)
        updated = self.center * self.center_momentum + batch_center[None] * (1 - self.center_momentum)
        self.center.copy_(torch.where(total[-1] > 0, updated, self.center))
