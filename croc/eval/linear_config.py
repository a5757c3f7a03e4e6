"""The linear probe's settings (validated, every protocol constant a field) and its result."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from croc.errors import InputError
from croc.eval.miou import CLASS_RULES

Example = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # image uint8 [3,S,S], pred int64 [S,S], label int64 [S,S]


def _fail(name: str, value: Any, allowed: str) -> None:
    raise InputError(f"LinearProbeConfig.{name}={value!r}: allowed {allowed}")


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_positive_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


@dataclass(frozen=True)
class LinearProbeConfig:
    """Every constant of the protocol; defaults = PASCAL VOC 2012 (pass ``epochs=10`` for COCO).

    ADE20K: ``iterations=40000, crop_size=512, lrs=(...), eval_every=4000``.
    """

    image_size: int = 448  # epoch mode: train and val resized to image_size x image_size
    last_n: int = 2  # feature blocks (must match the extractor's last_n when it has one)
    epochs: int = 45  # epoch mode only
    lr: float = 1e-3  # epoch mode only (iteration mode uses lrs)
    batch_size: int = 16
    scale: tuple[float, float] = (0.75, 1.25)  # zoom factor range about the centre (output size kept)
    rotation_deg: float = 5.0  # rotation angle range +-rotation_deg
    flip: bool = True  # horizontal flip with probability 1/2
    seed: int = 0
    max_train_images: int | None = None  # keep the first N train images (None: all)
    max_val_images: int | None = None  # keep the first N val images (None: all)
    iterations: int | None = None  # set: iteration mode (ADE20K)
    crop_size: int = 512  # iteration mode: train crops and val resize
    lrs: tuple[float, ...] = (1e-3,)  # iteration mode: one run per learning rate, the best is reported
    eval_every: int = 4000  # iteration mode: evaluate every eval_every steps and at the end
    cache_val_features_gb: float = 2.0  # cache val features (fp16, CPU) when they fit in this many GB (0: never)
    n_examples: int = 4  # first val images returned with their best-epoch predictions
    num_workers: int = 0  # DataLoader workers for reading and resizing
    classes: str = "all"  # mIoU over "all" classes (the protocol) or the "present" ones (croc.eval.miou)

    def __post_init__(self) -> None:
        for name in ("image_size", "last_n", "epochs", "batch_size", "crop_size", "eval_every"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                _fail(name, value, "an integer >= 1")
        for name in ("n_examples", "num_workers"):
            value = getattr(self, name)
            if not _is_int(value) or value < 0:
                _fail(name, value, "an integer >= 0")
        for name in ("max_train_images", "max_val_images", "iterations"):
            value = getattr(self, name)
            if value is not None and (not _is_int(value) or value < 1):
                _fail(name, value, "None or an integer >= 1")
        if self.classes not in CLASS_RULES:
            _fail("classes", self.classes, " or ".join(CLASS_RULES))
        if not _is_int(self.seed):
            _fail("seed", self.seed, "an integer")
        if not _is_positive_number(self.lr):
            _fail("lr", self.lr, "a finite number > 0")
        if not isinstance(self.lrs, tuple) or not self.lrs or not all(_is_positive_number(v) for v in self.lrs):
            _fail("lrs", self.lrs, "a non-empty tuple of finite numbers > 0")
        if (not isinstance(self.scale, tuple) or len(self.scale) != 2
                or not all(_is_positive_number(v) for v in self.scale) or self.scale[0] > self.scale[1]):
            _fail("scale", self.scale, "a tuple (min, max) with 0 < min <= max")
        if not isinstance(self.rotation_deg, (int, float)) or isinstance(self.rotation_deg, bool) \
                or not 0 <= self.rotation_deg <= 180:
            _fail("rotation_deg", self.rotation_deg, "a number in [0, 180]")
        if not isinstance(self.flip, bool):
            _fail("flip", self.flip, "True or False")
        if not isinstance(self.cache_val_features_gb, (int, float)) or isinstance(self.cache_val_features_gb, bool) \
                or not self.cache_val_features_gb >= 0:
            _fail("cache_val_features_gb", self.cache_val_features_gb, "a number >= 0")

    @property
    def iteration_mode(self) -> bool:
        return self.iterations is not None

    @property
    def val_size(self) -> int:
        """Side of the square val images and masks (image_size, or crop_size in iteration mode)."""
        return self.crop_size if self.iteration_mode else self.image_size


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
