"""Hungarian matching of clusters to classes (docs/evaluation.md, unsupervised "Matching").

On valid pixels only (label != ignore_index), the IoU between every cluster k and every class c is computed
over the whole split: IoU[k, c] = n(k, c) / max(n(k) + n(c) - n(k, c), 1e-8). The assignment maximising the
total IoU is found with ``scipy.optimize.linear_sum_assignment`` on 1 - IoU. With more clusters than classes
the clusters left unassigned map to ``ignore_index`` (their pixels then count as false negatives); with as
many clusters as classes every cluster gets a class.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from croc.errors import InputError
from croc.eval.miou import IOU_EPS, ConfusionMatrix, check_range, to_int_array, valid_pixels


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InputError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


class ClusterClassCounts:
    """Streaming [num_clusters, num_classes] pixel co-occurrence counts over valid pixels of a split."""

    def __init__(self, num_clusters: int, num_classes: int, ignore_index: int = 255) -> None:
        self.num_clusters = _positive_int(num_clusters, "num_clusters")
        self.num_classes = _positive_int(num_classes, "num_classes")
        if 0 <= ignore_index < self.num_classes:
            raise InputError(f"ignore_index {ignore_index} must lie outside the class range [0, {self.num_classes})")
        self.ignore_index = int(ignore_index)
        self.counts = np.zeros((self.num_clusters, self.num_classes), dtype=np.int64)

    def update(self, cluster_ids: Any, labels: Any) -> None:
        """Add one batch; ``cluster_ids`` and ``labels`` are integer arrays (torch or numpy) of equal shape."""
        k, c = valid_pixels(cluster_ids, labels, ("cluster_ids", "labels"), self.ignore_index)
        check_range(c, self.num_classes, "labels")
        check_range(k, self.num_clusters, "cluster_ids")
        flat = np.bincount(k * self.num_classes + c, minlength=self.num_clusters * self.num_classes)
        self.counts += flat.reshape(self.num_clusters, self.num_classes)

    def merge(self, other: ClusterClassCounts) -> ClusterClassCounts:
        """Add the counts of ``other`` (another worker's) into these; returns self."""
        if not isinstance(other, ClusterClassCounts):
            raise InputError(f"other must be a ClusterClassCounts, got {type(other).__name__}")
        if (other.num_clusters, other.num_classes, other.ignore_index) != (
            self.num_clusters,
            self.num_classes,
            self.ignore_index,
        ):
            raise InputError(
                f"other has (num_clusters, num_classes, ignore_index)="
                f"{(other.num_clusters, other.num_classes, other.ignore_index)}; "
                f"expected {(self.num_clusters, self.num_classes, self.ignore_index)}"
            )
        self.counts += other.counts
        return self

    def iou_matrix(self) -> np.ndarray:
        """[num_clusters, num_classes] float64 IoU between every cluster and every class."""
        inter = self.counts.astype(np.float64)
        union = inter.sum(axis=1, keepdims=True) + inter.sum(axis=0, keepdims=True) - inter
        return inter / np.maximum(union, IOU_EPS)

    def match(self) -> tuple[np.ndarray, np.ndarray]:
        """Return (mapping [num_clusters] int64 cluster -> class or ignore_index, IoU matrix)."""
        iou = self.iou_matrix()
        rows, cols = linear_sum_assignment(1.0 - iou)
        mapping = np.full(self.num_clusters, self.ignore_index, dtype=np.int64)
        mapping[rows] = cols
        return mapping, iou

    def confusion(self, mapping: np.ndarray | None = None) -> ConfusionMatrix:
        """ConfusionMatrix of the split after relabelling clusters by ``mapping`` (default: ``match()``'s)."""
        if mapping is None:
            mapping, _ = self.match()
        m = to_int_array(mapping, "mapping")
        if m.shape != (self.num_clusters,):
            raise InputError(f"mapping shape {tuple(m.shape)} is not ({self.num_clusters},)")
        assigned = m != self.ignore_index
        check_range(m[assigned], self.num_classes, "mapping")
        cm = ConfusionMatrix(self.num_classes, self.ignore_index)
        matrix = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)
        # matrix[class, mapping[k]] += counts[k, class]
        np.add.at(matrix.T, m[assigned], self.counts[assigned])
        cm.add_counts(matrix, self.counts[~assigned].sum(axis=0))
        return cm


def hungarian_match(
    cluster_ids: Any, labels: Any, num_clusters: int, num_classes: int, ignore_index: int = 255
) -> tuple[np.ndarray, np.ndarray]:
    """Match clusters to classes over one split; returns (mapping [num_clusters], IoU matrix [K, C])."""
    counts = ClusterClassCounts(num_clusters, num_classes, ignore_index)
    counts.update(cluster_ids, labels)
    return counts.match()


def cluster_miou(
    cluster_ids: Any, labels: Any, num_classes: int, num_clusters: int | None = None, ignore_index: int = 255
) -> float:
    """mIoU of the clusters after Hungarian matching (num_clusters defaults to num_classes)."""
    k = to_int_array(cluster_ids, "cluster_ids")
    c = to_int_array(labels, "labels")
    mapping, _ = hungarian_match(k, c, num_classes if num_clusters is None else num_clusters, num_classes, ignore_index)
    valid = c != ignore_index
    pred = np.full(c.shape, ignore_index, dtype=np.int64)
    pred[valid] = mapping[k[valid]]
    cm = ConfusionMatrix(num_classes, ignore_index)
    cm.update(pred, c)
    return cm.miou()
