"""Encoded image bytes -> two uint8 global views with their crop boxes and flip flags (the CPU stage).

Cheap by construction: the crop boxes are drawn from the stored width and height BEFORE decoding; a JPEG is
decoded at the coarsest DCT scale (1/2, 1/4, 1/8) that still gives both crops at least their output resolution
(PIL's draft mode), or, when no reduction applies, by libjpeg-turbo through TurboJPEG (simplejpeg) straight into
one array (no PIL image, no copy of the bytes); each crop's source region alone is copied out channels-last and
resized (antialiased bicubic on uint8), and only uint8 views travel on (2 x 3 x S x S bytes per image) with 2 x 4
floats of boxes and 2 flags. The measurements behind these choices (decoders, resizing from a channels-last copy)
and `croc bench data`'s figures for the whole stage are in docs/benchmarks.md.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.io import ImageReadMode, decode_jpeg

try:  # libjpeg-turbo's TurboJPEG API (a pinned dependency of the platform)
    import simplejpeg
except ImportError:  # a minimal install (the bare GPU image): torchvision's libjpeg-turbo, the same pixels
    simplejpeg = None

from croc.augment import CROP_RATIO, GLOBAL_SCALE, sample_crop_box
from croc.errors import InputError


class DecodedViews(NamedTuple):
    views: np.ndarray  # [n, 2, 3, S, S] uint8 (zeros where not valid)
    boxes: np.ndarray  # [n, 2, 4] float32 (top, left, height, width) in the original image
    flips: np.ndarray  # [n, 2] bool
    replaced: np.ndarray  # [n] bool, True where the record could not be decoded (replaced, or left invalid)
    valid: np.ndarray  # [n] bool, False where neither the record nor any other of its batch could be decoded


def draft_factor(boxes: Sequence[tuple[int, int, int, int]], size: int) -> int:
    """Largest JPEG DCT reduction (1, 2, 4, 8) keeping every crop at least `size` pixels on its short side."""
    short = min(min(box[2], box[3]) for box in boxes)
    factor = 1
    while factor < 8 and short / (factor * 2) >= size:
        factor *= 2
    return factor


def is_jpeg(data: bytes) -> bool:
    return data[:3] == b"\xff\xd8\xff"


def _check_size(width: int, height: int, decoded_width: int, decoded_height: int) -> None:
    if (decoded_width, decoded_height) != (width, height):
        raise InputError(f"stored size {width}x{height} differs from the decoded {decoded_width}x{decoded_height}")


def decode_frame(data: bytes, width: int, height: int, factor: int) -> torch.Tensor:
    """Encoded bytes -> [1, 3, h, w] uint8 RGB, (h, w) = the stored size reduced by `factor` (JPEG DCT scaling).

    A JPEG at full scale goes through TurboJPEG or, without simplejpeg, through torchvision: both libjpeg-turbo,
    the same pixels as PIL, grayscale converted to RGB. CMYK/YCCK JPEGs, reduced scales and other formats go
    through PIL (TurboJPEG's CMYK conversion differs from PIL's by one level). A stored size that differs from the
    image's raises. (torchvision 0.29 marks its codecs deprecated; the fallback is for installs without simplejpeg.)
    """
    if factor == 1 and is_jpeg(data):
        if simplejpeg is None:
            frame = decode_jpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB)
            _check_size(width, height, frame.shape[2], frame.shape[1])
            return frame[None]
        decoded_height, decoded_width, colorspace, _ = simplejpeg.decode_jpeg_header(data)
        _check_size(width, height, decoded_width, decoded_height)
        if colorspace not in ("CMYK", "YCCK"):
            pixels = simplejpeg.decode_jpeg(data, colorspace="RGB")  # [h, w, 3]; strict: a truncated file raises
            return torch.from_numpy(pixels).permute(2, 0, 1)[None]  # channels-last memory, no copy
    with Image.open(io.BytesIO(data)) as image:
        _check_size(width, height, *image.size)
        if factor > 1 and image.format == "JPEG":
            image.draft("RGB", (-(-width // factor), -(-height // factor)))
        pixels = np.array(image if image.mode == "RGB" else image.convert("RGB"))  # [h, w, 3] (writable, one copy)
    return torch.from_numpy(pixels).permute(2, 0, 1)[None]  # [1, 3, h, w], channels-last memory, no copy


def two_views(data: bytes, width: int, height: int, size: int, generator: torch.Generator,
              scale: tuple[float, float] = GLOBAL_SCALE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One image's bytes -> (views [2, 3, S, S] uint8, boxes [2, 4] float32, flips [2] bool).

    Decoded pixels stay uint8 throughout: the crops are resized with torch's antialiased bicubic uint8 kernel
    (about 3x faster than PIL's). With draft decoding, each box is snapped outwards to whole decoded pixels
    and the returned box is the region actually used, so the patch positions stay exact.
    """
    boxes = [sample_crop_box(height, width, scale, CROP_RATIO, generator) for _ in range(2)]
    flips = (torch.rand(2, generator=generator) < 0.5).numpy()
    frame = decode_frame(data, width, height, draft_factor(boxes, size))  # [1, 3, h, w] uint8
    decoded_h, decoded_w = frame.shape[-2:]
    sy, sx = decoded_h / height, decoded_w / width  # decoded pixels per original pixel
    views = np.empty((2, 3, size, size), np.uint8)
    used = np.empty((2, 4), np.float32)
    for v, (top, left, h, w) in enumerate(boxes):
        t0, l0 = math.floor(top * sy), math.floor(left * sx)
        t1, l1 = min(decoded_h, math.ceil((top + h) * sy)), min(decoded_w, math.ceil((left + w) * sx))
        # Copied out first: torch's vectorised uint8 kernel wants a contiguous channels-last input; a strided
        # window of the frame costs more per view even counting the copy (docs/benchmarks.md, `croc bench data`).
        region = frame[:, :, t0:t1, l0:l1].contiguous(memory_format=torch.channels_last)
        crop = F.interpolate(region, size=(size, size), mode="bicubic", antialias=True)[0].numpy()  # [3, S, S]
        views[v] = crop[:, :, ::-1] if flips[v] else crop
        used[v] = (t0 / sy, l0 / sx, (t1 - t0) / sy, (l1 - l0) / sx)
    return views, used, flips


def decode_batch(images: Sequence[bytes], widths: Sequence[int], heights: Sequence[int], ids: Sequence[str],
                 size: int, generator: torch.Generator, scale: tuple[float, float] = GLOBAL_SCALE) -> DecodedViews:
    """Views for a batch of records; an undecodable record is replaced by the next good one (fresh crops).

    Never raises for bad bytes: a record that fails (corrupt, not an image, wrong stored size, or a decoder that
    rejects at one scale what it took at another) is replaced by a donor from the batch, and where no donor
    decodes either, its row is returned with `valid` False, for the consumer to replace (`view_batches`).
    """
    n = len(images)
    out = DecodedViews(np.zeros((n, 2, 3, size, size), np.uint8), np.zeros((n, 2, 4), np.float32),
                       np.zeros((n, 2), bool), np.zeros(n, bool), np.zeros(n, bool))

    def decode_into(row: int, source: int) -> bool:
        try:
            out.views[row], out.boxes[row], out.flips[row] = two_views(
                images[source], int(widths[source]), int(heights[source]), size, generator, scale)
        except Exception:  # corrupt bytes, not an image, wrong size, a decoder's refusal: counted by the caller
            return False
        out.valid[row] = True
        return True

    good = [i for i in range(n) if decode_into(i, i)]
    out.replaced[:] = ~out.valid
    for i in np.flatnonzero(out.replaced):
        donors = [j for j in good if j > i] + [j for j in good if j < i]  # the next good one first
        for donor in donors:
            if decode_into(int(i), donor):
                break
    return out
