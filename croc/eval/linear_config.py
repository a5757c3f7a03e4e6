"""The linear probe's result; its settings (`LinearProbeConfig`, torch-free) live in croc/eval/settings.py."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from croc.eval.settings import LinearProbeConfig

__all__ = ["Example", "LinearProbeConfig", "LinearProbeResult"]

Example = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # image uint8 [3,S,S], pred int64 [S,S], label int64 [S,S]


@dataclass
class LinearProbeResult:
    """Val mIoU / per-class IoU [K] of the best and the last evaluation (of the chosen lr in iteration mode).

    ``best_epoch``: 1-based epoch of the best evaluation, or its iteration count in iteration mode.
    ``history``: one dict per evaluation: epoch mode {"epoch", "train_loss", "val_miou"}; iteration mode
    {"lr", "iteration", "train_loss" (mean since the previous evaluation), "val_miou"}, every lr included.
    ``examples``: the first ``n_examples`` val images with the best evaluation's predictions.
    ``miou_by_lr``: best mIoU of every learning rate tried.
    """

    miou_best: float
    miou_last: float
    best_epoch: int
    iou_best: np.ndarray
    iou_last: np.ndarray
    class_names: tuple[str, ...]
    history: list[dict]
    lr: float
    examples: list[Example]
    miou_by_lr: dict[float, float] = field(default_factory=dict)
