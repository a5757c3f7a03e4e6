"""CrOC / DINO augmentation for two global views, split in two stages.

1. Geometric (per image, CPU, uint8, in data-loading workers): random resized crop + horizontal flip.
   Boxes are (top, left, height, width) in pixels of the original image; batched as float32 [B, 4].
2. Photometric (batched on the training device, float): colour jitter, grayscale, blur, solarisation,
   ImageNet normalisation. Every random decision is drawn per image as a tensor (no host-device sync).
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from croc.augment_settings import BLUR_SIGMA, GLOBAL_SCALE, Photometric

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CROP_RATIO = (3 / 4, 4 / 3)
BLUR_KERNEL = 2 * math.ceil(3 * BLUR_SIGMA[1]) + 1  # 13, enough for sigma 2.0
Box = tuple[int, int, int, int]  # (top, left, height, width)


# --------------------------------------------------------------------------- geometric stage
@functools.lru_cache(maxsize=8)
def _log_ratio(ratio: tuple[float, float]) -> tuple[float, float]:
    """log of the aspect-ratio bounds in float32, as torchvision computes them (once per ratio, not per box)."""
    low, high = torch.log(torch.tensor(ratio)).tolist()
    return low, high


def sample_crop_box(
    height: int,
    width: int,
    scale: tuple[float, float] = GLOBAL_SCALE,
    ratio: tuple[float, float] = CROP_RATIO,
    generator: torch.Generator | None = None,
) -> Box:
    """RandomResizedCrop box, same distribution (and same draws) as torchvision's get_params.

    `generator` must be a CPU generator (None: global RNG).
    """
    area = height * width
    log_low, log_high = _log_ratio(tuple(ratio))
    for _ in range(10):
        target_area = area * torch.empty(1).uniform_(scale[0], scale[1], generator=generator).item()
        u = torch.empty(1).uniform_(log_low, log_high, generator=generator)
        aspect = torch.exp(u).item()
        w = round(math.sqrt(target_area * aspect))
        h = round(math.sqrt(target_area / aspect))
        if 0 < w <= width and 0 < h <= height:
            top = int(torch.randint(0, height - h + 1, (1,), generator=generator))
            left = int(torch.randint(0, width - w + 1, (1,), generator=generator))
            return top, left, h, w
    # Fallback: central crop, aspect ratio clamped into `ratio`.
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, round(width / min(ratio))
    elif in_ratio > max(ratio):
        w, h = round(height * max(ratio)), height
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def crop_and_resize(image: torch.Tensor, box, size: int = 224, flip: bool = False) -> torch.Tensor:
    """[C, H, W] -> [C, size, size]: crop `box`, bicubic antialiased resize, optional horizontal flip.

    uint8 input gives uint8 output (rounded and clamped to 0..255 by torchvision);
    float input is returned unclamped (handy for coordinate maps).
    """
    top, left, h, w = (int(v) for v in box)
    out = TF.resized_crop(
        image, top, left, h, w, [size, size], interpolation=InterpolationMode.BICUBIC, antialias=True
    )
    return out.flip(-1) if flip else out


def make_global_views(
    image: torch.Tensor,
    size: int = 224,
    scale: tuple[float, float] = GLOBAL_SCALE,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """uint8 [3, H, W] -> views uint8 [2, 3, size, size], boxes float32 [2, 4], flips bool [2]."""
    height, width = image.shape[-2:]
    views, boxes, flips = [], [], []
    for _ in range(2):
        box = sample_crop_box(height, width, scale, CROP_RATIO, generator)
        flip = bool(torch.rand(1, generator=generator) < 0.5)
        views.append(crop_and_resize(image, box, size, flip))
        boxes.append(box)
        flips.append(flip)
    return torch.stack(views), torch.tensor(boxes, dtype=torch.float32), torch.tensor(flips)


def patch_centres(boxes: torch.Tensor, flips: torch.Tensor, size: int, patch_size: int) -> torch.Tensor:
    """(x, y) of every patch centre of each view, in original-image pixel-index coordinates.

    boxes [B, 4] (top, left, height, width), flips [B] bool -> [B, N, 2] float32, N = (size // patch_size)**2,
    row-major over the patch grid. Output pixel u of a crop (left L, width W) maps to
    x = L + (u + 0.5) * W / size - 0.5; a flipped view shows at u the column u' = size - 1 - u.
    """
    g = size // patch_size
    u = torch.arange(g, device=boxes.device, dtype=torch.float32) * patch_size + (patch_size - 1) / 2  # [g]
    top, left, height, width = boxes.float().unbind(-1)  # each [B]
    ux = torch.where(flips.to(boxes.device).bool()[:, None], size - 1 - u, u)  # [B, g]
    x = left[:, None] + (ux + 0.5) * width[:, None] / size - 0.5  # [B, g] (columns)
    y = top[:, None] + (u + 0.5) * height[:, None] / size - 0.5  # [B, g] (rows)
    xy = torch.stack(torch.broadcast_tensors(x[:, None, :], y[:, :, None]), dim=-1)  # [B, g, g, 2]
    return xy.reshape(boxes.shape[0], g * g, 2)


# --------------------------------------------------------------------------- photometric stage
def _per_image(f, x: torch.Tensor) -> torch.Tensor:
    """Scalar or [B] factor -> [B or 1, 1, 1, 1] on x's device/dtype."""
    return torch.as_tensor(f, dtype=x.dtype, device=x.device).reshape(-1, 1, 1, 1)


def _blend(a: torch.Tensor, b: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    return (f * a + (1 - f) * b).clamp(0, 1)


def to_grayscale(x: torch.Tensor) -> torch.Tensor:
    """[B, 3, H, W] -> [B, 3, H, W], ITU-R 601-2 luma repeated on 3 channels."""
    r, g, b = x.unbind(-3)
    luma = 0.299 * r + 0.587 * g + 0.114 * b  # [B, H, W]
    return luma.unsqueeze(-3).expand_as(x)


def adjust_brightness(x: torch.Tensor, factor) -> torch.Tensor:
    """x [B, 3, H, W] in [0, 1], factor scalar or [B]."""
    return (x * _per_image(factor, x)).clamp(0, 1)


def adjust_contrast(x: torch.Tensor, factor) -> torch.Tensor:
    """Blend with the per-image mean of the grayscale image."""
    mean = to_grayscale(x)[:, :1].mean(dim=(-3, -2, -1), keepdim=True)  # [B, 1, 1, 1]
    return _blend(x, mean, _per_image(factor, x))


def adjust_saturation(x: torch.Tensor, factor) -> torch.Tensor:
    """Blend with the grayscale image."""
    return _blend(x, to_grayscale(x), _per_image(factor, x))


def rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    """[B, 3, H, W] RGB in [0, 1] -> HSV, all channels in [0, 1]."""
    r, g, b = x.unbind(-3)
    maxc, minc = x.amax(-3), x.amin(-3)  # [B, H, W]
    delta = maxc - minc
    d = torch.where(delta > 0, delta, torch.ones_like(delta))
    s = delta / torch.where(delta > 0, maxc, torch.ones_like(maxc))
    h = torch.where(maxc == r, ((g - b) / d) % 6, torch.where(maxc == g, (b - r) / d + 2, (r - g) / d + 4))
    return torch.stack((h / 6, s, maxc), dim=-3)


def hsv_to_rgb(x: torch.Tensor) -> torch.Tensor:
    """[B, 3, H, W] HSV in [0, 1] -> RGB: c_n = v - v s clamp(min(k, 4 - k), 0, 1), k = (n + 6h) mod 6."""
    h, s, v = x.split(1, dim=-3)  # each [B, 1, H, W]
    n = torch.tensor([5.0, 3.0, 1.0], dtype=x.dtype, device=x.device).view(3, 1, 1)
    k = (n + 6 * h) % 6  # [B, 3, H, W]
    return v - v * s * torch.minimum(k, 4 - k).clamp(0, 1)


def adjust_hue(x: torch.Tensor, shift) -> torch.Tensor:
    """Rotate the hue by `shift` (scalar or [B], in [-0.5, 0.5]) turns."""
    hsv = rgb_to_hsv(x)
    h = (hsv[:, :1] + _per_image(shift, x)) % 1.0
    return hsv_to_rgb(torch.cat((h, hsv[:, 1:]), dim=1))


def gaussian_blur(x: torch.Tensor, sigma, kernel_size: int = BLUR_KERNEL) -> torch.Tensor:
    """Separable Gaussian blur with a per-image sigma (scalar or [B]), reflect padding."""
    b, c, h, w = x.shape
    half = kernel_size // 2
    t = torch.arange(kernel_size, dtype=x.dtype, device=x.device) - half  # [K]
    sig = _per_image(sigma, x).reshape(-1, 1).expand(b, 1)  # [B, 1]
    k = torch.exp(-0.5 * (t / sig) ** 2)
    k = (k / k.sum(-1, keepdim=True)).repeat_interleave(c, dim=0)  # [B*C, K]
    y = F.pad(x.reshape(1, b * c, h, w), (half, half, half, half), mode="reflect")
    y = F.conv2d(y, k.view(b * c, 1, 1, kernel_size), groups=b * c)  # horizontal
    y = F.conv2d(y, k.view(b * c, 1, kernel_size, 1), groups=b * c)  # vertical
    return y.view(b, c, h, w)


def solarize(x: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Invert pixels >= threshold (x in [0, 1])."""
    return torch.where(x >= threshold, 1 - x, x)


def normalize(x: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(IMAGENET_MEAN, dtype=x.dtype, device=x.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=x.dtype, device=x.device).view(3, 1, 1)
    return (x - mean) / std


def color_jitter(x, brightness, contrast, saturation, hue, order: torch.Tensor) -> torch.Tensor:
    """Apply the four jitter ops with per-image factors [B] in a per-image order.

    order [B, 4]: permutation of op ids (0 brightness, 1 contrast, 2 saturation, 3 hue).
    """
    ops = (
        lambda t: adjust_brightness(t, brightness),
        lambda t: adjust_contrast(t, contrast),
        lambda t: adjust_saturation(t, saturation),
        lambda t: adjust_hue(t, hue),
    )
    for step in range(4):
        op_id = order[:, step].to(x.device).view(-1, 1, 1, 1)
        out = x
        for i, op in enumerate(ops):
            out = torch.where(op_id == i, op(x), out)
        x = out
    return x


def _uniform(shape, lo: float, hi: float, generator: torch.Generator | None, device) -> torch.Tensor:
    """Uniform draws on the generator's device, moved to `device` (no sync)."""
    gen_device = generator.device if generator is not None else device
    return (lo + (hi - lo) * torch.rand(shape, generator=generator, device=gen_device)).to(device)


DINO_PHOTOMETRIC = Photometric()


def augment_view(
    view: torch.Tensor,
    blur_p: float,
    solarize_p: float,
    generator: torch.Generator | None = None,
    normalize_output: bool = True,
    settings: Photometric = DINO_PHOTOMETRIC,
) -> torch.Tensor:
    """uint8 [B, 3, S, S] -> float [B, 3, S, S]: jitter, grayscale, blur, solarize (strengths from `settings`)."""
    n, dev = view.shape[0], view.device
    x = view.float() / 255
    s = settings

    def draw(lo=0.0, hi=1.0, shape=(n,)):
        return _uniform(shape, lo, hi, generator, dev)

    def mask(p):  # [B, 1, 1, 1] bool
        return (draw() < p).view(-1, 1, 1, 1)

    do_jitter = mask(s.jitter_p)
    factors = (draw(1 - s.brightness, 1 + s.brightness), draw(1 - s.contrast, 1 + s.contrast),
               draw(1 - s.saturation, 1 + s.saturation), draw(-s.hue, s.hue))
    order = draw(shape=(n, 4)).argsort(dim=1)  # [B, 4] random permutation per image
    x = torch.where(do_jitter, color_jitter(x, *factors, order), x)
    x = torch.where(mask(s.grayscale_p), to_grayscale(x), x)
    do_blur, sigma = mask(blur_p), draw(*s.blur_sigma)
    if blur_p > 0:
        x = torch.where(do_blur, gaussian_blur(x, sigma), x)
    do_solarize = mask(solarize_p)
    if solarize_p > 0:
        x = torch.where(do_solarize, solarize(x), x)
    return normalize(x) if normalize_output else x


def photometric_views(
    view1: torch.Tensor,
    view2: torch.Tensor,
    generator: torch.Generator | None = None,
    normalize: bool = True,
    settings: Photometric = DINO_PHOTOMETRIC,
) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 [B, 3, S, S] x2 -> float [B, 3, S, S] x2 (DINO: blur p 1.0 / 0.1, solarize p 0 / 0.2)."""
    out1 = augment_view(view1, blur_p=settings.blur_p[0], solarize_p=settings.solarize_p[0], generator=generator,
                        normalize_output=normalize, settings=settings)
    out2 = augment_view(view2, blur_p=settings.blur_p[1], solarize_p=settings.solarize_p[1], generator=generator,
                        normalize_output=normalize, settings=settings)
    return out1, out2


class PhotometricAugment(torch.nn.Module):
    """Parameter-free module wrapper around `photometric_views`."""

    def __init__(self, normalize: bool = True):
        super().__init__()
        self.normalize = normalize

    def forward(self, view1, view2, generator: torch.Generator | None = None):
        return photometric_views(view1, view2, generator, self.normalize)
