"""What compacting the dense head's rows would save: a candidate optimisation of the step, measured in isolation.

The clustering returns Q * Kmax centroid rows per view (Q = B * heads problems, Kmax = n_centroids_max), padded:
only the rows of clusters present in both views are `valid`, and the dense loss masks the others. Running only the
valid rows through the student's projection head would save their share of the head, but the valid count changes
every step, so compaction costs a host sync (or a static bound). This measures both sides on the step's own tensors:
the valid fraction, and the student head's forward + backward on the padded rows and on the valid rows alone.
"""

from __future__ import annotations

import time

import torch

from croc.bench.timing import sync
from croc.train_step import TrainStep


def _head_ms(step: TrainStep, cls: torch.Tensor, centroids: torch.Tensor, repeats: int) -> float:
    """ms of one student head forward + backward over the image rows and these centroid rows (median of repeats)."""
    head = step.model.student.head
    times = []
    for _ in range(repeats + 1):  # the first one warms up
        sync(cls.device)
        start = time.perf_counter()
        with step._autocast():
            images, cents = head.forward_both(cls, centroids)
        (images.float().sum() + cents.float().sum()).backward()
        sync(cls.device)
        times.append(1000 * (time.perf_counter() - start))
    head.zero_grad(set_to_none=True)
    return sorted(times[1:])[repeats // 2]


def dense_row_compaction(step: TrainStep, images: torch.Tensor, xy: torch.Tensor, repeats: int = 3) -> dict | None:
    """{rows, valid_rows, valid_fraction, head_ms_padded, head_ms_valid_rows} for one batch; None for DINO."""
    model = step.model
    if not model.dense:
        return None
    with torch.no_grad(), step._autocast():
        features = model.teacher_features(images)
        located, _ = model.teacher_clusters(features, xy)
    cls = features.cls.detach().float()  # [2B, D] stands for the student's CLS rows (same count and width)
    padded = located.centroids.flatten(0, 1).detach().float()  # [2 * Q * Kmax, D]
    keep = located.valid.repeat(2)  # [2 * Q * Kmax] the same pairs in both views
    valid = padded[keep]  # a host sync: outside the timed calls
    rows, kept = padded.shape[0], valid.shape[0]
    return {"rows": rows, "valid_rows": kept, "valid_fraction": round(kept / rows, 3),
            "head_ms_padded": round(_head_ms(step, cls, padded, repeats), 2),
            "head_ms_valid_rows": round(_head_ms(step, cls, valid, repeats), 2)}
