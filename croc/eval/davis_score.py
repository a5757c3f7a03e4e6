"""Score a folder of predicted DAVIS-2017 masks (official layout) against a DAVIS root.

Predictions: `<predictions_dir>/<video>/<stem>.png`, one per annotation of the split (same stem), single-channel
PNGs (palette 'P' or grey 'L') read as raw ids, the size of their annotation. The statistics are those of
croc.eval.davis_metrics (objects = ids of the first annotation, first and last frames excluded).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from croc.data.davis import FULLY_ANNOTATED, Davis2017
from croc.errors import InputError
from croc.eval.davis_metrics import evaluate_video, summarize

PREDICTION_MODES = ("P", "L")


def read_prediction(path: Path, expected_shape: tuple[int, int], annotation: Path) -> np.ndarray:
    """The predicted ids uint8 [H, W] of `path`; InputError if missing, not single-channel, or of another size."""
    if not path.is_file():
        raise InputError(f"prediction missing: expected {path} (for annotation {annotation})")
    try:
        with Image.open(path) as image:
            if image.mode not in PREDICTION_MODES:
                raise InputError(f"prediction {path} has mode {image.mode!r}: expected an indexed ('P') or grey "
                                 "('L') PNG holding one object id per pixel")
            ids = np.asarray(image)
    except (OSError, SyntaxError, ValueError) as error:  # PIL: not an image, truncated or corrupt data
        raise InputError(f"prediction {path} is not a readable PNG ({type(error).__name__}: {error})") from None
    if ids.shape != expected_shape:
        raise InputError(f"prediction {path} is {ids.shape[0]}x{ids.shape[1]} (HxW) but its annotation {annotation} "
                         f"is {expected_shape[0]}x{expected_shape[1]}")
    return ids


def _video_results(davis: Davis2017, video: str, video_dir: Path) -> dict[str, Any]:
    if not video_dir.is_dir():
        raise InputError(f"prediction folder of video {video!r} missing: expected {video_dir}")
    truths, predictions = [], []
    for annotation in davis.annotation_paths(video):
        truth = davis.load_annotation(annotation).numpy().astype(np.uint8)  # [H, W], 255 = void
        predictions.append(read_prediction(video_dir / f"{annotation.stem}.png", truth.shape, annotation))
        truths.append(truth)
    return evaluate_video(predictions, truths, video)


def _plain(result: dict[str, Any]) -> dict[str, Any]:
    """evaluate_video's dict with numpy arrays turned into lists (JSON-ready)."""
    return {key: value.tolist() if isinstance(value, np.ndarray) else value for key, value in result.items()}


def score_predictions(predictions_dir: str | os.PathLike, davis_root: str | os.PathLike, split: str = "val",
                      resolution: str = "480p", videos: list[str] | None = None) -> dict[str, Any]:
    """J and F of the predictions of every video of `split` (or of `videos`).

    Returns summarize()'s dict (J-mean, F-mean, J&F, J-recall, F-recall, per_object) plus ``per_video``:
    {video: {objects, J, F (per frame, first and last excluded), J-mean, F-mean, J-recall, F-recall}}.
    """
    davis = Davis2017(davis_root, split, resolution)
    if split not in FULLY_ANNOTATED:
        raise InputError(f"split {split!r} has no annotation after the first frame: only "
                         f"{', '.join(FULLY_ANNOTATED)} can be scored")
    root = Path(predictions_dir)
    if not root.is_dir():
        raise InputError(f"predictions folder not found: {root} (expected <folder>/<video>/<frame>.png)")
    chosen = list(davis.videos) if videos is None else list(videos)
    unknown = [video for video in chosen if video not in davis.videos]
    if unknown:
        raise InputError(f"videos {unknown} are not in the DAVIS-2017 {split} split of {davis.root}")
    per_video = {video: _video_results(davis, video, root / video) for video in chosen}
    summary = summarize(per_video)
    summary["per_video"] = {video: _plain(result) for video, result in per_video.items()}
    return summary
