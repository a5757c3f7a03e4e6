"""Semi-supervised video object segmentation by label propagation, as in DINO (docs/evaluation.md, section 3).

A frame's labels are a weighted average of the labels of context frames (the first frame and the
`n_last_frames` most recent ones), the weights coming from the similarity of frozen dense features:

- Frames: short side `short_side`, long side rounded DOWN to a multiple of `size_multiple` (854x480 -> 832x480;
  a square frame has its width rounded, as DINO's read_frame does). Resampling is bilinear, align_corners=False,
  without antialiasing: torch's equivalent of cv2.resize(INTER_LINEAR), which DINO uses.
- Features: `features(normalised frame)` (mean 0.485/0.456/0.406, std 0.228/0.224/0.225 as in DINO's
  color_normalize; DenseFeatures: last block through the final norm), L2-normalised per
  token, computed once per frame; only the first frame's and the `n_last_frames` latest frames' are kept.
- First-frame labels: the annotation (void 255 -> background 0) nearest-resized to the patch grid (exactly as
  PIL's NEAREST, which DINO's read_seg uses), one-hot with K = max id + 1 channels (the max id
  of the full-resolution annotation, so an object that vanishes on the patch grid keeps its channel).
- Affinity: exp(cosine / temperature) between every target token and every context token, zero for sources
  more than `neighborhood` patches away in either axis (0 disables the restriction, as in DINO); then, per target
  token, the `topk` largest values jointly over all context frames are kept (values tied with the k-th are kept
  too: DINO's `aff < kth -> 0` rule), the rest zeroed, and the kept ones normalised to sum 1.
- Labels of the target = context labels x affinity: a SOFT map [K, h, w] that becomes context for later frames.
- Output mask: soft map upsampled x`upsample` bilinearly (align_corners=False), each channel shifted to min 0 and
  divided by its max when that is > 0, argmax over channels (ties -> lowest id), nearest-resized (exactly as PIL's
  NEAREST, which DINO uses) to the original frame size.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from croc.errors import InputError
from croc.eval.features import DINO_VIDEO_STD, normalize_images
from croc.eval.settings import PropagationConfig

VOID = 255

FeatureExtractor = Callable[[torch.Tensor], torch.Tensor]  # normalised [B, 3, H, W] -> [B, C, H/p, W/p]; .patch_size
FrameSource = torch.Tensor | Callable[[], torch.Tensor]  # uint8 [3, H, W], or a function that loads it


# ---------------------------------------------------------------------------------------------- frame sizing


def resized_frame_size(height: int, width: int, short_side: int, size_multiple: int) -> tuple[int, int]:
    """(H, W) of a frame -> (h, w): the short side becomes `short_side`, the long one is rounded down to a multiple.

    DINO's read_frame: portrait (H > W) -> w = short_side; otherwise (landscape or square) h = short_side.
    """
    if height < 1 or width < 1:
        raise InputError(f"frame size {height}x{width}: both sides must be >= 1")
    if height > width:
        long_side = short_side * height // (width * size_multiple) * size_multiple
        size = (long_side, short_side)
    else:
        long_side = short_side * width // (height * size_multiple) * size_multiple
        size = (short_side, long_side)
    if min(size) < 1:
        raise InputError(f"frame size {height}x{width} resized to {size[0]}x{size[1]} (short side {short_side}, "
                         f"long side rounded down to a multiple of {size_multiple}): too elongated")
    return size


def resize_frame(frame: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """uint8 [3, H, W] (or float in [0, 1]) -> float [1, 3, h, w] in [0, 1]; bilinear, no antialiasing."""
    if frame.dim() != 3 or frame.shape[0] != 3:
        raise InputError(f"frame: expected [3, H, W], got {list(frame.shape)}")
    image = frame.float().unsqueeze(0) / 255.0 if frame.dtype == torch.uint8 else frame.float().unsqueeze(0)
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    return F.interpolate(image, size=size, mode="bilinear", align_corners=False, antialias=False)


def nearest_indices(size_in: int, size_out: int) -> torch.Tensor:
    """int64 [size_out]: the source index of each output index under PIL's NEAREST resize (which DINO uses).

    PIL walks the source in float64 steps of size_in / size_out starting at half a step and floors, accumulating
    the steps (so exact ties fall where PIL's rounding puts them); a closed form floor((i + 0.5) * scale) differs
    from it at a few ties (e.g. column 640 of 832 -> 854).
    """
    step = size_in / size_out
    positions = np.full(size_out, step)
    positions[0] = step * 0.5
    indices = np.floor(np.cumsum(positions)).astype(np.int64)  # np.cumsum adds sequentially, as PIL does
    return torch.from_numpy(np.minimum(indices, size_in - 1))


def resize_label_map(labels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """int [H, W] -> int64 [h, w] = size, by nearest neighbour exactly as PIL's Image.resize(size, NEAREST)."""
    rows = nearest_indices(labels.shape[0], size[0]).to(labels.device)  # [h]
    cols = nearest_indices(labels.shape[1], size[1]).to(labels.device)  # [w]
    return labels.long()[rows][:, cols]


# ---------------------------------------------------------------------------------------------- propagation


def neighborhood_mask(h: int, w: int, radius: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """bool [h*w (target), h*w (source)]: True where |di| <= radius and |dj| <= radius (row-major tokens)."""
    rows = torch.arange(h, device=device).repeat_interleave(w)  # [N] row of each token
    cols = torch.arange(w, device=device).repeat(h)  # [N] column of each token
    near_rows = (rows[:, None] - rows[None, :]).abs() <= radius  # [N, N]
    near_cols = (cols[:, None] - cols[None, :]).abs() <= radius  # [N, N]
    return near_rows & near_cols


def affinity_weights(target_feats: torch.Tensor, context_feats: torch.Tensor, neighborhood: torch.Tensor | None,
                     temperature: float, topk: int) -> torch.Tensor:
    """Propagation weights [N (target), M*N (context frame m, source token s)], each row summing to 1.

    target_feats [N, C], context_feats [M, N, C] (L2-normalised here), neighborhood bool [N, N] or None.
    """
    if target_feats.dim() != 2 or context_feats.dim() != 3 or context_feats.shape[-1] != target_feats.shape[-1]:
        raise InputError(f"target_feats [N, C] and context_feats [M, N, C] expected, got "
                         f"{list(target_feats.shape)} and {list(context_feats.shape)}")
    m, n_source, channels = context_feats.shape
    target = F.normalize(target_feats.float(), dim=-1)  # [N, C]
    context = F.normalize(context_feats.float(), dim=-1).reshape(m * n_source, channels)  # [M*N, C]
    affinity = torch.exp(target @ context.T / temperature)  # [N, M*N]
    if neighborhood is not None:
        if tuple(neighborhood.shape) != (target.shape[0], n_source):
            raise InputError(f"neighborhood mask {list(neighborhood.shape)}: expected {[target.shape[0], n_source]}")
        affinity = (affinity.view(-1, m, n_source) * neighborhood[:, None, :]).view(-1, m * n_source)
    k = min(topk, m * n_source)
    kth_largest = affinity.topk(k, dim=1).values[:, -1:]  # [N, 1]
    affinity = torch.where(affinity >= kth_largest, affinity, torch.zeros_like(affinity))
    return affinity / affinity.sum(dim=1, keepdim=True)


def propagate_frame(target_feats: torch.Tensor, context_feats: torch.Tensor, context_labels: torch.Tensor,
                    neighborhood: torch.Tensor | None, temperature: float, topk: int) -> torch.Tensor:
    """Soft labels [K, N] of the target tokens: context_labels [M, K, N] averaged with the affinity weights.

    target_feats [N, C]; context_feats [M, N, C]; neighborhood bool [N (target), N (source)] or None.
    """
    m, k, n_source = context_labels.shape
    if context_feats.shape[:2] != (m, n_source):
        raise InputError(f"context_labels {list(context_labels.shape)} do not match context_feats "
                         f"{list(context_feats.shape)} (expected [M, K, N] and [M, N, C])")
    weights = affinity_weights(target_feats, context_feats, neighborhood, temperature, topk)  # [N, M*N]
    labels = context_labels.float().permute(1, 0, 2).reshape(k, m * n_source)  # [K, M*N], same (m, s) order
    return labels @ weights.T  # [K, N]


# ---------------------------------------------------------------------------------------------- labels in and out


def first_frame_labels(first_mask: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """int [H, W] annotation -> one-hot float [K, h*w] on the patch grid (void 255 -> 0; K = max id + 1)."""
    ids = torch.where(first_mask == VOID, torch.zeros_like(first_mask), first_mask).long()
    if ids.min() < 0:
        raise InputError(f"first mask holds a negative id ({int(ids.min())})")
    num_labels = int(ids.max()) + 1
    small = resize_label_map(ids, grid)  # [h, w]
    return F.one_hot(small.flatten(), num_labels).T.float()  # [K, h*w]


def normalize_channels(maps: torch.Tensor) -> torch.Tensor:
    """[K, H, W] -> each channel minus its min, divided by its (new) max where that max is > 0."""
    shifted = maps - maps.amin(dim=(1, 2), keepdim=True)
    peak = shifted.amax(dim=(1, 2), keepdim=True)
    return torch.where(peak > 0, shifted / peak.clamp_min(torch.finfo(maps.dtype).tiny), shifted)


def soft_labels_to_mask(soft: torch.Tensor, upsample: int, size: tuple[int, int]) -> torch.Tensor:
    """Soft labels [K, h, w] -> int64 [H, W] = size: upsample, normalise channels, argmax, nearest resize."""
    upsampled = F.interpolate(soft[None].float(), scale_factor=upsample, mode="bilinear", align_corners=False,
                              recompute_scale_factor=False)[0]  # [K, h*u, w*u]
    labels = normalize_channels(upsampled).argmax(dim=0)  # [h*u, w*u]
    return resize_label_map(labels, size)


# ---------------------------------------------------------------------------------------------- one video


def _frame_tokens(features: FeatureExtractor, frame: torch.Tensor, size: tuple[int, int],
                  grid: tuple[int, int], device: torch.device | str) -> torch.Tensor:
    """uint8 [3, H, W] -> L2-normalised tokens [h*w, C] of the frame resized to `size`."""
    image = normalize_images(resize_frame(frame.to(device), size), DINO_VIDEO_STD)  # [1, 3, h*p, w*p]
    dense = features(image)  # [1, C, h, w]
    if tuple(dense.shape[-2:]) != tuple(grid):
        raise InputError(f"features of a {size[0]}x{size[1]} frame have grid {tuple(dense.shape[-2:])}, "
                         f"expected {grid}")
    return F.normalize(dense[0].flatten(1).T.float(), dim=-1)  # [N, C]


def _load(source: FrameSource) -> torch.Tensor:
    return source() if callable(source) else source


@torch.no_grad()
def propagate_video(features: FeatureExtractor, frames: Iterable[FrameSource], first_mask: torch.Tensor,
                    config: PropagationConfig | None = None, device: torch.device | str = "cpu",
                    ) -> Iterator[torch.Tensor]:
    """Masks int64 [H, W] (on the CPU) of every frame, lazily: frame 0 is `first_mask` itself, then propagated.

    `frames`: uint8 [3, H, W] frames in time order, or zero-argument callables that load them (so that only the
    current frame is in memory). `features` is DenseFeatures-like: normalised [1, 3, h, w] -> [1, C, h/p, w/p],
    with a `patch_size` attribute; it must already live on `device`.
    """
    config = config or PropagationConfig()
    sources = iter(frames)
    try:
        first = _load(next(sources))
    except StopIteration:
        raise InputError("propagate_video: no frames") from None
    frame_size = tuple(first.shape[-2:])
    if first_mask.dim() != 2 or tuple(first_mask.shape) != frame_size:
        raise InputError(f"first mask {list(first_mask.shape)} must be [H, W] of the first frame {list(frame_size)}")
    size = resized_frame_size(*frame_size, config.short_side, config.size_multiple)
    patch = int(features.patch_size)
    if size[0] % patch or size[1] % patch:
        raise InputError(f"frames {frame_size[0]}x{frame_size[1]} resize to {size[0]}x{size[1]} (short_side="
                         f"{config.short_side}, size_multiple={config.size_multiple}), not a multiple of the patch "
                         f"size {patch}")
    grid = (size[0] // patch, size[1] // patch)

    first_feats = _frame_tokens(features, first, size, grid, device)  # [N, C]
    first_labels = first_frame_labels(first_mask.to(device), grid)  # [K, N]
    num_labels = first_labels.shape[0]
    near = neighborhood_mask(*grid, config.neighborhood, device) if config.neighborhood > 0 else None
    recent: deque[tuple[torch.Tensor, torch.Tensor]] = deque(maxlen=config.n_last_frames)  # (feats, soft labels)
    yield first_mask.detach().cpu().long()
    for index, source in enumerate(sources, 1):
        frame = _load(source)
        if tuple(frame.shape[-2:]) != frame_size:
            raise InputError(f"frame {index} is {tuple(frame.shape[-2:])}, the first frame {frame_size}")
        target_feats = _frame_tokens(features, frame, size, grid, device)  # [N, C]
        context_feats = torch.stack([first_feats, *(feats for feats, _ in recent)])  # [M, N, C]
        context_labels = torch.stack([first_labels, *(labels for _, labels in recent)])  # [M, K, N]
        soft = propagate_frame(target_feats, context_feats, context_labels, near, config.temperature,
                               config.topk)  # [K, N]
        recent.append((target_feats, soft))
        yield soft_labels_to_mask(soft.view(num_labels, *grid), config.upsample or patch, frame_size).cpu()
