"""DAVIS-2017 semi-supervised metrics: region similarity J and boundary F (docs/evaluation.md, "Metrics").

Conventions (written from the protocol text, not from the official toolkit's code):

- Objects of a video = ids 1..max id of the FIRST ground-truth annotation; ground truth 255 -> 0.
- The first and the last frame are excluded from the statistics.
- J = |P & G| / |P | G| of one object's binary masks in one frame; 1 when both masks are empty.
- Boundary map: pixel (i, j) is a boundary pixel when the mask value differs from its east (i, j+1), south
  (i+1, j) or south-east (i+1, j+1) neighbour. Neighbours that fall outside the image do not exist and are
  not compared, so the last column is compared with its south neighbour only, the last row with its east
  neighbour only, and the bottom-right pixel is never a boundary pixel (equivalently: the image is extended
  by replicating its last row and column). The image frame itself is therefore never a boundary.
- F: tolerance d = ceil(0.008 * sqrt(H^2 + W^2)) pixels (8 for 480x854); each boundary is dilated with a disk
  of radius d (offsets with dy^2 + dx^2 <= d^2). P = predicted boundary pixels inside the dilated true
  boundary / predicted boundary pixels; R = true boundary pixels inside the dilated predicted boundary / true
  boundary pixels; F = 2PR / (P + R), 0 when P + R = 0. No predicted and no true boundary -> P = R = 1;
  only a true boundary -> P = 1, R = 0; only a predicted one -> P = 0, R = 1.
- Per object: mean over frames and recall = fraction of frames with a value > 0.5. J-mean / F-mean /
  recalls of a benchmark: means over all objects of all videos; J&F = (J-mean + F-mean) / 2.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.ndimage import binary_dilation

from croc.errors import InputError

BOUNDARY_TOLERANCE_RATIO = 0.008
RECALL_THRESHOLD = 0.5
_GT_IGNORE = 255


def _mask2d(mask: Any, name: str) -> np.ndarray:
    arr = np.asarray(mask)
    if arr.ndim != 2:
        raise InputError(f"{name} must be a 2-D mask, got shape {arr.shape}")
    return arr


def _pair(pred_mask: Any, true_mask: Any) -> tuple[np.ndarray, np.ndarray]:
    p = _mask2d(pred_mask, "pred_mask").astype(bool)
    t = _mask2d(true_mask, "true_mask").astype(bool)
    if p.shape != t.shape:
        raise InputError(f"pred_mask shape {p.shape} differs from true_mask shape {t.shape}")
    return p, t


def region_similarity(pred_mask: Any, true_mask: Any) -> float:
    """J: IoU of two binary masks (nonzero = object); 1.0 when both are empty."""
    p, t = _pair(pred_mask, true_mask)
    union = np.count_nonzero(p | t)
    if union == 0:
        return 1.0
    return float(np.count_nonzero(p & t) / union)


def boundary_map(mask: Any) -> np.ndarray:
    """Bool map of pixels whose value differs from their east, south or south-east neighbour (see module doc)."""
    m = _mask2d(mask, "mask")
    b = np.zeros(m.shape, dtype=bool)
    b[:, :-1] |= m[:, :-1] != m[:, 1:]  # east
    b[:-1, :] |= m[:-1, :] != m[1:, :]  # south
    b[:-1, :-1] |= m[:-1, :-1] != m[1:, 1:]  # south-east
    return b


def boundary_tolerance(height: int, width: int, ratio: float = BOUNDARY_TOLERANCE_RATIO) -> int:
    """d = ceil(ratio * sqrt(H^2 + W^2)) pixels."""
    return math.ceil(ratio * math.sqrt(height * height + width * width))


def disk(radius: int) -> np.ndarray:
    """Bool (2r+1, 2r+1) disk structuring element: offsets with dy^2 + dx^2 <= r^2."""
    if radius < 0:
        raise InputError(f"radius must be >= 0, got {radius}")
    yy, xx = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    return yy * yy + xx * xx <= radius * radius


def boundary_f_measure(
    pred_mask: Any, true_mask: Any, ratio: float = BOUNDARY_TOLERANCE_RATIO
) -> tuple[float, float, float]:
    """Boundary (F, precision, recall) of two binary masks (nonzero = object)."""
    p, t = _pair(pred_mask, true_mask)
    pb = boundary_map(p)
    tb = boundary_map(t)
    n_p = int(np.count_nonzero(pb))
    n_t = int(np.count_nonzero(tb))
    if n_p == 0 and n_t == 0:
        precision, recall = 1.0, 1.0
    elif n_p == 0:
        precision, recall = 1.0, 0.0
    elif n_t == 0:
        precision, recall = 0.0, 1.0
    else:
        se = disk(boundary_tolerance(*p.shape, ratio=ratio))
        precision = np.count_nonzero(pb & binary_dilation(tb, structure=se)) / n_p
        recall = np.count_nonzero(tb & binary_dilation(pb, structure=se)) / n_t
    f = 0.0 if precision + recall == 0 else 2.0 * precision * recall / (precision + recall)
    return float(f), float(precision), float(recall)


def evaluate_video(pred_frames: list[Any], true_frames: list[Any], name: str = "video") -> dict[str, Any]:
    """Per-object J and F of one video.

    Returns a dict: ``objects`` (list of ids), ``J`` and ``F`` ([n_objects, n_frames - 2] per-frame values,
    first and last frames excluded), ``J-mean``, ``F-mean``, ``J-recall``, ``F-recall`` ([n_objects] each).
    """
    if len(pred_frames) != len(true_frames):
        raise InputError(f"video {name!r}: {len(pred_frames)} predicted frames but {len(true_frames)} annotations")
    if len(true_frames) < 3:
        raise InputError(f"video {name!r}: needs at least 3 frames (first and last excluded), got {len(true_frames)}")
    preds, trues = [], []
    for i, (pf, tf) in enumerate(zip(pred_frames, true_frames, strict=True)):
        p = np.asarray(pf)
        t = np.asarray(tf)
        if p.ndim != 2 or p.shape != t.shape:
            raise InputError(
                f"video {name!r}, frame {i}: predicted shape {p.shape} and annotation shape {t.shape} "
                "must be equal and 2-D"
            )
        for arr, what in ((p, "prediction"), (t, "annotation")):
            if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool):
                raise InputError(f"video {name!r}, frame {i}: {what} must hold integers, got dtype {arr.dtype}")
        t = np.where(t == _GT_IGNORE, 0, t)
        preds.append(p)
        trues.append(t)
    n_obj = max(int(trues[0].max()), 0)
    objects = list(range(1, n_obj + 1))
    n_eval = len(trues) - 2
    j = np.zeros((n_obj, n_eval), dtype=np.float64)
    f = np.zeros((n_obj, n_eval), dtype=np.float64)
    for col, idx in enumerate(range(1, len(trues) - 1)):
        for row, obj in enumerate(objects):
            pm = preds[idx] == obj
            tm = trues[idx] == obj
            j[row, col] = region_similarity(pm, tm)
            f[row, col] = boundary_f_measure(pm, tm)[0]
    return {
        "objects": objects,
        "J": j,
        "F": f,
        "J-mean": j.mean(axis=1),
        "F-mean": f.mean(axis=1),
        "J-recall": (j > RECALL_THRESHOLD).mean(axis=1),
        "F-recall": (f > RECALL_THRESHOLD).mean(axis=1),
    }


_PER_OBJECT_KEYS = ("J-mean", "F-mean", "J-recall", "F-recall")


def summarize(videos: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Benchmark summary over videos (each the dict of ``evaluate_video``): means over ALL objects.

    Returns ``J-mean``, ``F-mean``, ``J&F``, ``J-recall``, ``F-recall`` (floats) and ``per_object``: a list of
    dicts with ``video``, ``object`` and the four per-object statistics.
    """
    table: list[dict[str, Any]] = []
    for vname, res in videos.items():
        missing = [k for k in ("objects", *_PER_OBJECT_KEYS) if k not in res]
        if missing:
            raise InputError(f"video {vname!r}: result lacks {missing}")
        for i, obj in enumerate(res["objects"]):
            row: dict[str, Any] = {"video": vname, "object": int(obj)}
            for key in _PER_OBJECT_KEYS:
                row[key] = float(res[key][i])
            table.append(row)
    if not table:
        raise InputError("videos hold no objects; nothing to summarize")
    out: dict[str, Any] = {key: float(np.mean([r[key] for r in table])) for key in _PER_OBJECT_KEYS}
    out["J&F"] = (out["J-mean"] + out["F-mean"]) / 2.0
    out["per_object"] = table
    return out
