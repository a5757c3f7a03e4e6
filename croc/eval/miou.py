"""Split-level confusion matrix and mIoU (docs/evaluation.md, "Shared conventions").

One confusion matrix is accumulated over every valid pixel of a whole split (never averaged per image).
Pixels whose label is ``ignore_index`` are removed before counting. A prediction equal to ``ignore_index``
on a valid pixel (e.g. a cluster left unmatched by the Hungarian assignment) is kept: it predicts no
class, so it counts as a false negative of its ground-truth class and as nobody's false positive.

IoU_c = TP / max(TP + FP + FN, 1e-8); mIoU = plain mean over ALL classes (an absent class counts 0), the
published protocols' rule. ``miou("present")`` averages over the classes that have ground-truth pixels in the
split instead: the rule for a split that holds only some of its label set (the synthetic benchmark's VOC layout
has 7 of the 21 classes), where absent classes would add zeros that no method can change.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from croc.errors import InputError
from croc.eval.registry import CLASS_RULES  # which classes mIoU averages over

__all__ = [
    "CLASS_RULES",
    "IOU_EPS",
    "ConfusionMatrix",
    "check_class_rule",
    "check_range",
    "to_int_array",
    "valid_pixels",
]

IOU_EPS = 1e-8


def to_int_array(x: Any, name: str) -> np.ndarray:
    """Return ``x`` (torch tensor or numpy array of integers) as an int64 numpy array."""
    if isinstance(x, torch.Tensor):
        if x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
            raise InputError(f"{name} must hold integers, got torch dtype {x.dtype}")
        return x.detach().cpu().numpy().astype(np.int64, copy=False)
    arr = np.asarray(x)
    if not np.issubdtype(arr.dtype, np.integer):
        raise InputError(f"{name} must hold integers, got dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)


def valid_pixels(values: Any, labels: Any, names: tuple[str, str], ignore_index: int) -> tuple[np.ndarray, np.ndarray]:
    """Two integer arrays of equal shape -> their flat entries where the label is not `ignore_index`."""
    v, lab = to_int_array(values, names[0]), to_int_array(labels, names[1])
    if v.shape != lab.shape:
        raise InputError(f"{names[0]} shape {tuple(v.shape)} differs from {names[1]} shape {tuple(lab.shape)}")
    valid = lab != ignore_index
    return v[valid], lab[valid]


def check_range(values: np.ndarray, upper: int, name: str) -> None:
    """Raise InputError naming the first value of ``values`` outside [0, upper)."""
    bad = (values < 0) | (values >= upper)
    if bad.any():
        raise InputError(f"{name} holds value {int(values[bad][0])}, outside [0, {upper}) and not the ignore index")


class ConfusionMatrix:
    """Confusion matrix over a whole split; rows = ground truth, columns = prediction."""

    def __init__(self, num_classes: int, ignore_index: int = 255) -> None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
            raise InputError(f"num_classes must be a positive integer, got {num_classes!r}")
        if 0 <= ignore_index < num_classes:
            raise InputError(f"ignore_index {ignore_index} must lie outside the class range [0, {num_classes})")
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        # Last column: valid pixels predicted as ignore_index (no class).
        self._counts = np.zeros((self.num_classes, self.num_classes + 1), dtype=np.int64)

    @property
    def matrix(self) -> np.ndarray:
        """[C, C] int64 counts, rows = ground truth, columns = prediction (ignore predictions not included)."""
        return self._counts[:, : self.num_classes].copy()

    @property
    def unassigned(self) -> np.ndarray:
        """[C] int64: valid pixels of each ground-truth class predicted as ``ignore_index`` (false negatives)."""
        return self._counts[:, self.num_classes].copy()

    def update(self, pred: Any, target: Any) -> None:
        """Add one batch: ``pred`` and ``target`` integer arrays (torch or numpy) of equal shape."""
        p, t = valid_pixels(pred, target, ("pred", "target"), self.ignore_index)
        check_range(t, self.num_classes, "target")
        p_ign = p == self.ignore_index
        check_range(p[~p_ign], self.num_classes, "pred")
        p = np.where(p_ign, self.num_classes, p)
        width = self.num_classes + 1
        counts = np.bincount(t * width + p, minlength=self.num_classes * width)
        self._counts += counts.reshape(self.num_classes, width)

    def add_counts(self, matrix: np.ndarray, unassigned: np.ndarray | None = None) -> None:
        """Add precomputed counts: ``matrix`` [C, C] and optionally ``unassigned`` [C]."""
        m = np.asarray(matrix)
        if m.shape != (self.num_classes, self.num_classes):
            raise InputError(f"matrix shape {m.shape} is not ({self.num_classes}, {self.num_classes})")
        self._counts[:, : self.num_classes] += m.astype(np.int64)
        if unassigned is not None:
            u = np.asarray(unassigned)
            if u.shape != (self.num_classes,):
                raise InputError(f"unassigned shape {u.shape} is not ({self.num_classes},)")
            self._counts[:, self.num_classes] += u.astype(np.int64)

    def merge(self, other: ConfusionMatrix) -> ConfusionMatrix:
        """Add the counts of ``other`` (e.g. another worker's) into this matrix; returns self."""
        if not isinstance(other, ConfusionMatrix):
            raise InputError(f"other must be a ConfusionMatrix, got {type(other).__name__}")
        if other.num_classes != self.num_classes or other.ignore_index != self.ignore_index:
            raise InputError(
                f"other has num_classes={other.num_classes}, ignore_index={other.ignore_index}; "
                f"expected {self.num_classes}, {self.ignore_index}"
            )
        self._counts += other._counts
        return self

    def reset(self) -> None:
        self._counts[:] = 0

    def iou(self) -> np.ndarray:
        """[C] float64 per-class IoU = TP / max(TP + FP + FN, 1e-8)."""
        tp = np.diag(self._counts[:, : self.num_classes]).astype(np.float64)
        gt = self._counts.sum(axis=1).astype(np.float64)  # TP + FN (incl. ignore predictions)
        pr = self._counts[:, : self.num_classes].sum(axis=0).astype(np.float64)  # TP + FP
        return tp / np.maximum(gt + pr - tp, IOU_EPS)

    def present(self) -> np.ndarray:
        """[C] bool: classes with at least one valid ground-truth pixel."""
        return self._counts.sum(axis=1) > 0

    def miou(self, classes: str = "all") -> float:
        """Plain mean of ``iou()`` over all classes, or over the present ones (0.0 when none is present)."""
        check_class_rule(classes)
        iou = self.iou()
        if classes == "all":
            return float(iou.mean())
        present = self.present()
        return float(iou[present].mean()) if present.any() else 0.0


def check_class_rule(classes: str, name: str = "classes") -> None:
    if classes not in CLASS_RULES:
        raise InputError(f"{name}={classes!r}: allowed {', '.join(CLASS_RULES)}")
