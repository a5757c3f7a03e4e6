"""DAVIS-2017 label propagation over a whole split: read, propagate, write official-layout PNGs, score.

Predictions go to `<out_dir>/<video>/<stem>.png`: indexed PNGs with the palette of the video's first annotation
(the DAVIS colour map when that annotation is grey), one per frame, named like the frame's annotation; frame 0 is
the given first annotation itself, so every folder is complete and scoreable by croc.eval.davis_score.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from croc.data.davis import FULLY_ANNOTATED, Davis2017
from croc.data.layout import LayoutError
from croc.data.palette import voc_palette
from croc.errors import InputError
from croc.eval.davis_score import score_predictions
from croc.eval.features import DenseFeatures
from croc.eval.propagation import FeatureExtractor, PropagationConfig, propagate_video
from croc.files import write_atomically


@dataclass
class DavisResult:
    """What run_davis did: the scores (None for a split without full annotations), where the PNGs are, the speed."""

    summary: dict[str, Any] | None  # score_predictions(): J-mean, F-mean, J&F, J-recall, F-recall, per_object, ...
    videos: list[str]
    predictions_dir: Path
    seconds_per_frame: float  # read + features + propagation + PNG write, per propagated frame (frame 0 excluded)


def dense_features(vit: nn.Module, config: PropagationConfig) -> DenseFeatures:
    """The frozen feature extractor of the protocol: the tokens of the config's last_n blocks."""
    return DenseFeatures(vit, last_n=config.last_n)


def encode_indexed_png(mask: torch.Tensor, palette: list[int]) -> bytes:
    """int [H, W] ids in 0..255 -> the bytes of a palette ('P') PNG."""
    if mask.numel() and (int(mask.min()) < 0 or int(mask.max()) > 255):
        raise InputError(f"mask ids must lie in 0..255 to be written as an indexed PNG, got "
                         f"{int(mask.min())}..{int(mask.max())}")
    image = Image.fromarray(mask.cpu().numpy().astype(np.uint8))  # mode 'L'
    image.putpalette(palette)  # -> mode 'P'
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _palette(davis: Davis2017, video: str) -> list[int]:
    try:
        return davis.palette(video)
    except LayoutError:  # a grey first annotation: write with the standard DAVIS colour map
        return voc_palette()


def propagate_and_write(features: FeatureExtractor, davis: Davis2017, video: str, video_dir: Path,
                        config: PropagationConfig, device: torch.device | str) -> int:
    """Propagate the first annotation of `video` through its frames and write every mask; return the frame count."""
    frame_paths = davis.frames(video)
    first_mask = davis.first_annotation(video)  # int64 [H, W]
    palette = _palette(davis, video)
    loaders = [partial(davis.load_frame, path) for path in frame_paths]
    count = 0
    for path, mask in zip(frame_paths, propagate_video(features, loaders, first_mask, config, device), strict=True):
        write_atomically(video_dir / f"{path.stem}.png", encode_indexed_png(mask, palette))
        count += 1
    return count


def _check_features(features: FeatureExtractor, config: PropagationConfig) -> None:
    last_n = getattr(features, "last_n", None)
    if last_n is not None and last_n != config.last_n:
        raise InputError(f"features use the last {last_n} blocks but config.last_n={config.last_n}; build them "
                         "with dense_features(vit, config)")
    if not hasattr(features, "patch_size"):
        raise InputError("features need a patch_size attribute (DenseFeatures-like)")


def run_davis(features: FeatureExtractor, davis_root: str | os.PathLike, out_dir: str | os.PathLike,
              config: PropagationConfig | None = None, split: str = "val", device: torch.device | str = "cpu",
              progress: Callable[[int, int, str], None] | None = None) -> DavisResult:
    """Propagate every video of `split` (the first config.max_videos), write the PNGs, then score the folder.

    `features` (DenseFeatures-like) is moved to `device` when it is an nn.Module. `progress(done, total, video)` is
    called after each video.
    """
    config = config or PropagationConfig()
    _check_features(features, config)
    davis = Davis2017(davis_root, split)
    videos = list(davis.videos[: config.max_videos])
    out = Path(out_dir)
    if isinstance(features, nn.Module):
        features.to(device)
    seconds, propagated = 0.0, 0
    for done, video in enumerate(videos, 1):
        start = time.perf_counter()
        count = propagate_and_write(features, davis, video, out / video, config, device)
        seconds += time.perf_counter() - start
        propagated += count - 1
        if progress is not None:
            progress(done, len(videos), video)
    scoreable = split in FULLY_ANNOTATED
    summary = score_predictions(out, davis_root, split, davis.resolution, videos) if scoreable else None
    return DavisResult(summary=summary, videos=videos, predictions_dir=out,
                       seconds_per_frame=seconds / propagated if propagated else 0.0)
