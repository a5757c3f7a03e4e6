"""Tests for croc.augment: geometric stage against torchvision / analytic coordinates, photometric ops
against torchvision.transforms.v2.functional, and the per-view probabilities of the recipe."""

import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms as T
from torchvision.transforms.v2 import functional as TF

from croc import augment as A

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # Tiny tensors: OpenMP fork/join dominates and thrashes on a busy 2-core box; one thread is much faster.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _gen(seed, device="cpu"):
    return torch.Generator(device=device).manual_seed(seed)


# --------------------------------------------------------------------------- sample_crop_box
@pytest.mark.parametrize("hw", [(97, 131), (300, 200), (64, 64), (10, 200), (200, 12)])
def test_sample_crop_box_same_draws_as_torchvision(hw):
    height, width = hw
    for seed in range(100):
        torch.manual_seed(seed)
        expected = T.RandomResizedCrop.get_params(torch.empty(1, height, width), [0.25, 1.0], [3 / 4, 4 / 3])
        torch.manual_seed(seed)
        assert A.sample_crop_box(height, width) == tuple(expected)


def test_sample_crop_box_bounds_and_distribution():
    height, width = 97, 131
    g = _gen(0)
    boxes = [A.sample_crop_box(height, width, generator=g) for _ in range(2000)]
    b = torch.tensor(boxes, dtype=torch.float64)
    top, left, h, w = b.unbind(1)
    assert (top >= 0).all() and (left >= 0).all() and (h >= 1).all() and (w >= 1).all()
    assert (top + h <= height).all() and (left + w <= width).all()
    frac, ratio = h * w / (height * width), w / h
    assert frac.min() >= 0.25 * 0.93 and frac.max() <= 1.0  # rounding of w, h moves the area a little
    assert ratio.min() >= 0.75 * 0.95 and ratio.max() <= 4 / 3 * 1.05
    assert frac.min() < 0.27 and frac.max() > 0.9 and 0.45 < frac.mean() < 0.7
    assert abs(ratio.log().mean()) < 0.05 and ratio.min() < 0.8 and ratio.max() > 1.25
    assert len(set(boxes)) > 1500
    # reproducible with a seeded generator
    g = _gen(0)
    assert boxes[:50] == [A.sample_crop_box(height, width, generator=g) for _ in range(50)]
    g1, g2 = _gen(7), _gen(7)
    assert [A.sample_crop_box(50, 70, generator=g1) for _ in range(20)] == [
        A.sample_crop_box(50, 70, generator=g2) for _ in range(20)
    ]


def test_sample_crop_box_fallback_is_central():
    # No crop of area >= 0.9 * 10 * 200 has a ratio in [3/4, 4/3]: central crop with the ratio clamped.
    assert A.sample_crop_box(10, 200, scale=(0.9, 1.0), generator=_gen(0)) == (0, 93, 10, 13)
    assert A.sample_crop_box(200, 10, scale=(0.9, 1.0), generator=_gen(0)) == (93, 0, 13, 10)
    assert A.sample_crop_box(10, 10, scale=(1.0, 1.0), generator=_gen(0)) == (0, 0, 10, 10)


# --------------------------------------------------------------------------- crop_and_resize, views
def test_crop_and_resize_matches_torchvision_and_flips():
    img = torch.randint(0, 256, (3, 40, 50), dtype=torch.uint8)
    out = A.crop_and_resize(img, (3, 5, 30, 21), size=16)
    assert out.dtype == torch.uint8 and out.shape == (3, 16, 16)
    ref = TF.resized_crop(
        img, 3, 5, 30, 21, [16, 16], interpolation=TF.InterpolationMode.BICUBIC, antialias=True
    )
    assert torch.equal(out, ref)
    # the float path, rounded and clamped, agrees up to the uint8 rounding of the intermediate pass
    ref_float = (
        TF.resized_crop(
            img.float(), 3, 5, 30, 21, [16, 16], interpolation=TF.InterpolationMode.BICUBIC, antialias=True
        )
        .round()
        .clamp(0, 255)
    )
    assert (out.float() - ref_float).abs().float().mean() < 1.0
    assert torch.equal(
        A.crop_and_resize(img, torch.tensor([3.0, 5.0, 30.0, 21.0]), 16, flip=True), ref.flip(-1)
    )


def _coordinate_image(height=97, width=131):
    y, x = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    return torch.stack((x, y, torch.zeros_like(x))).float()  # [3, H, W]: channel 0 = x, channel 1 = y


def _patch_means(views, patch):  # [B, C, S, S] -> [B, N, C], row-major patches
    b, c, s, _ = views.shape
    g = s // patch
    v = views[..., : g * patch, : g * patch].reshape(b, c, g, patch, g, patch).mean(dim=(3, 5))
    return v.permute(0, 2, 3, 1).reshape(b, g * g, c)


def test_make_global_views_shapes_and_consistency_with_patch_centres():
    img = _coordinate_image().to(torch.uint8)  # x <= 130, y <= 96 fit in uint8
    size, patch = 32, 8
    g = _gen(3)
    for _ in range(10):
        views, boxes, flips = A.make_global_views(img, size=size, generator=g)
        assert views.shape == (2, 3, size, size) and views.dtype == torch.uint8
        assert boxes.shape == (2, 4) and boxes.dtype == torch.float32
        assert flips.shape == (2,) and flips.dtype == torch.bool
        centres = A.patch_centres(boxes, flips, size, patch).view(2, 4, 4, 2)[:, 1:3, 1:3]  # interior
        means = _patch_means(views.float(), patch)[..., :2].view(2, 4, 4, 2)[:, 1:3, 1:3]
        torch.testing.assert_close(means, centres, atol=0.5, rtol=0)
    seeded = [A.make_global_views(img, 24, generator=_gen(5)) for _ in range(2)]
    for a, b in zip(*seeded, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    "box,flip",
    [((10, 20, 60, 80), False), ((10, 20, 60, 80), True), ((0, 0, 97, 131), True), ((30, 7, 50, 35), False)],
)
def test_patch_centres_against_resized_coordinate_map(box, flip, device):
    size, patch = 32, 4
    top, left, h, w = box
    crop = _coordinate_image()[:2, top : top + h, left : left + w]
    # Bilinear without antialias samples at (u + 0.5) * W / S - 0.5: exact on a linear ramp.
    resized = F.interpolate(crop[None], size=(size, size), mode="bilinear", align_corners=False)
    if flip:
        resized = resized.flip(-1)
    expected = _patch_means(resized, patch)[0]  # [N, 2]
    got = A.patch_centres(
        torch.tensor([box], dtype=torch.float32, device=device),
        torch.tensor([flip], device=device),
        size,
        patch,
    )
    assert (
        got.shape == (1, (size // patch) ** 2, 2) and got.dtype == torch.float32 and got.device.type == device
    )
    got = got[0].cpu()
    if min(h, w) < size:  # upsampling clamps at the image border: compare interior patches only
        g = size // patch
        got, expected = got.view(g, g, 2)[1:-1, 1:-1], expected.view(g, g, 2)[1:-1, 1:-1]
    torch.testing.assert_close(got, expected, atol=1e-3, rtol=0)


def test_patch_centres_analytic_batched():
    boxes = torch.tensor([[10.0, 20.0, 60.0, 80.0], [5.0, 3.0, 40.0, 30.0]])
    flips = torch.tensor([False, True])
    # One patch covering the whole view: centre of the box.
    one = A.patch_centres(boxes, flips, 16, 16)
    torch.testing.assert_close(
        one[:, 0], torch.tensor([[20 + 40 - 0.5, 10 + 30 - 0.5], [3 + 15 - 0.5, 5 + 20 - 0.5]])
    )
    c = A.patch_centres(boxes, flips, 16, 8)  # 2x2 grid, row-major
    x0 = 20 + (3.5 + 0.5) * 80 / 16 - 0.5
    assert c[0, 0].tolist() == pytest.approx([x0, 10 + 4 * 60 / 16 - 0.5])
    assert c[0, 1, 0] > c[0, 0, 0] and c[0, 2, 1] > c[0, 0, 1] and c[0, 2, 0] == c[0, 0, 0]
    assert c[1, 1, 0] < c[1, 0, 0]  # flipped: x decreases along the row
    torch.testing.assert_close(c[1, 0, 0] + c[1, 1, 0], 2 * (3 + 15 - 0.5) * torch.tensor(1.0))


# --------------------------------------------------------------------------- photometric ops
def _images(n=4, h=16, w=20, seed=0):
    return torch.rand(n, 3, h, w, generator=_gen(seed))


@pytest.mark.parametrize(
    "ours,theirs,factors",
    [
        (A.adjust_brightness, TF.adjust_brightness, [0.6, 1.0, 1.3, 1.4]),
        (A.adjust_contrast, TF.adjust_contrast, [0.6, 0.9, 1.2, 1.4]),
        (A.adjust_saturation, TF.adjust_saturation, [0.0, 0.8, 1.1, 1.2]),
        (A.adjust_hue, TF.adjust_hue, [-0.5, -0.1, 0.03, 0.4]),
    ],
)
def test_adjust_ops_match_torchvision_per_image(ours, theirs, factors):
    x = _images()
    x[0, :, :4] = x[0, 0, :4]  # some gray pixels (hue undefined)
    out = ours(x, torch.tensor(factors))
    assert out.shape == x.shape
    for i, f in enumerate(factors):
        torch.testing.assert_close(out[i], theirs(x[i], f), atol=1e-3, rtol=0)
    torch.testing.assert_close(
        ours(x, factors[1]), torch.stack([theirs(xi, factors[1]) for xi in x]), atol=1e-3, rtol=0
    )


def test_grayscale_solarize_hsv():
    x = _images()
    x[1, :, 0, :3] = 0.5
    torch.testing.assert_close(
        A.to_grayscale(x), TF.rgb_to_grayscale(x, num_output_channels=3), atol=2e-4, rtol=0
    )
    gray = A.to_grayscale(x)
    assert torch.equal(gray[:, 0], gray[:, 1]) and torch.equal(gray[:, 0], gray[:, 2])
    assert torch.equal(A.solarize(x), TF.solarize(x, 0.5))
    assert (A.solarize(x)[1, :, 0, :3] == 0.5).all()  # threshold pixels are inverted (1 - 0.5)
    torch.testing.assert_close(A.hsv_to_rgb(A.rgb_to_hsv(x)), x, atol=1e-5, rtol=0)
    hsv = A.rgb_to_hsv(x)
    assert hsv.min() >= 0 and hsv.max() <= 1


def test_gaussian_blur_matches_torchvision_per_image():
    x = _images(h=18, w=23)
    sigmas = [0.1, 0.5, 1.3, 2.0]
    out = A.gaussian_blur(x, torch.tensor(sigmas))
    assert A.BLUR_KERNEL == 13
    for i, s in enumerate(sigmas):
        torch.testing.assert_close(out[i], TF.gaussian_blur(x[i], [13, 13], [s, s]), atol=1e-5, rtol=0)


def test_color_jitter_per_image_order_matches_sequential_torchvision():
    x = _images(n=5)
    b, c, s, h = (
        torch.tensor(v)
        for v in (
            [0.6, 1.4, 1.2, 0.8, 1.0],
            [1.4, 0.6, 0.7, 1.3, 1.1],
            [0.8, 1.2, 1.1, 0.9, 1.0],
            [0.1, -0.1, 0.05, -0.07, 0.02],
        )
    )
    order = torch.stack([torch.randperm(4, generator=_gen(i)) for i in range(5)])
    out = A.color_jitter(x, b, c, s, h, order)
    fns = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)
    for i in range(5):
        y = x[i]
        for op in order[i].tolist():
            y = fns[op](y, (b, c, s, h)[op][i].item())
        torch.testing.assert_close(out[i], y, atol=1e-3, rtol=0)


# --------------------------------------------------------------------------- photometric_views
@pytest.mark.parametrize("device", DEVICES)
def test_photometric_views_shapes_and_reproducibility(device):
    v1 = torch.randint(0, 256, (6, 3, 16, 16), dtype=torch.uint8, device=device)
    v2 = torch.randint(0, 256, (6, 3, 16, 16), dtype=torch.uint8, device=device)
    a1, a2 = A.photometric_views(v1, v2, generator=_gen(1, device))
    assert a1.shape == a2.shape == (6, 3, 16, 16) and a1.dtype == a2.dtype == torch.float32
    assert a1.device.type == device and torch.isfinite(a1).all() and torch.isfinite(a2).all()
    b1, b2 = A.PhotometricAugment()(v1, v2, generator=_gen(1, device))
    assert torch.equal(a1, b1) and torch.equal(a2, b2)
    c1, _ = A.photometric_views(v1, v2, generator=_gen(2, device))
    assert not torch.equal(a1, c1)
    # CPU generator with device tensors
    d1, _ = A.photometric_views(v1, v2, generator=_gen(1))
    assert d1.device.type == device
    # normalisation is the last step
    r1, r2 = A.photometric_views(v1, v2, generator=_gen(1, device), normalize=False)
    assert r1.min() >= 0 and r1.max() <= 1
    torch.testing.assert_close(A.normalize(r1), a1)
    mean = torch.tensor(A.IMAGENET_MEAN, device=device).view(3, 1, 1)
    torch.testing.assert_close(a2 * torch.tensor(A.IMAGENET_STD, device=device).view(3, 1, 1) + mean, r2)


def _fraction(mask):
    return mask.float().mean().item()


def test_probabilities_grayscale_and_solarize():
    n = 2000
    g = _gen(0)
    # Colourful images only become gray through the grayscale op (blur and solarize keep gray images gray).
    v = torch.randint(0, 256, (n, 3, 8, 8), dtype=torch.uint8, generator=g)
    v[:, 0, 0, 0], v[:, 1, 0, 0], v[:, 2, 0, 0] = 200, 0, 100
    for out in A.photometric_views(v, v.clone(), generator=g, normalize=False):
        gray = (out - out[:, :1]).abs().amax((1, 2, 3)) < 1e-6  # all channels equal
        assert abs(_fraction(gray) - 0.2) < 0.05
    # White images stay constant and >= 0.6 through jitter/grayscale/blur: solarised iff value < 0.5 after.
    white = torch.full((1000, 3, 8, 8), 255, dtype=torch.uint8)
    out1, out2 = A.photometric_views(white, white, generator=g, normalize=False)
    assert (out1 >= 0.6 - 1e-5).all()  # no solarisation on view 1
    solarized = out2[:, 0, 0, 0] < 0.5
    assert abs(_fraction(solarized) - 0.2) < 0.04
    assert torch.equal(solarized, out2.amax((1, 2, 3)) < 0.5)  # the whole image inverted or none of it


def test_probabilities_jitter_and_blur():
    g = _gen(1)
    # Constant gray images: of all the ops only brightness changes them.
    flat = torch.full((1000, 3, 8, 8), 100, dtype=torch.uint8)
    out = A.augment_view(flat, blur_p=0.0, solarize_p=0.0, generator=g, normalize_output=False)
    assert abs(_fraction((out[:, 0, 0, 0] - 100 / 255).abs() > 1e-3) - 0.8) < 0.04
    # Gray spike on a black 14x14 image: after blurring, (neighbour - bg) / (spike - bg) = exp(-1 / (2 s^2))
    # (the corner pixel, 7 px away from the spike, is out of reach of the 13-tap kernel).
    n = 1500
    spike = torch.zeros(n, 3, 14, 14, dtype=torch.uint8)
    spike[:, :, 7, 7] = 60  # <= 60 * 1.96 / 255 < 0.5: never solarised
    out1, out2 = A.photometric_views(spike, spike.clone(), generator=g, normalize=False)
    expected = 1.5 / 1.9  # P(sigma > 0.5), sigma ~ U(0.1, 2)
    for out, p in ((out1, 1.0), (out2, 0.1)):
        bg = out[:, 0, 0, 0]
        ratio = (out[:, 0, 7, 8] - bg) / (out[:, 0, 7, 7] - bg)
        assert abs(_fraction(ratio > math.exp(-2)) - p * expected) < 0.04
        blurred = ratio > 1e-3
        sigma = (-1 / (2 * ratio[blurred].log())).sqrt()
        assert sigma.max() <= 2.0 + 1e-3 and (sigma.min() < 0.4 or p < 1)


def test_import_is_light():
    code = "import sys, croc.augment; print({'ray', 'mlflow'} & {m.split('.')[0] for m in sys.modules})"
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "set()"


# --------------------------------------------------------------------------- Photometric settings
def test_photometric_defaults_are_dinos_and_give_the_same_draws():
    s = A.Photometric()
    assert (s.jitter_p, s.brightness, s.contrast, s.saturation, s.hue, s.grayscale_p) == (0.8, 0.4, 0.4, 0.2, 0.1, 0.2)
    assert (s.blur_sigma, s.blur_p, s.solarize_p) == ((0.1, 2.0), (1.0, 0.1), (0.0, 0.2))
    v = torch.randint(0, 256, (6, 3, 16, 16), dtype=torch.uint8, generator=_gen(3))
    default = A.photometric_views(v, v.clone(), generator=_gen(4))
    explicit = A.photometric_views(v, v.clone(), generator=_gen(4), settings=A.Photometric(hue=0.1))
    assert all(torch.equal(a, b) for a, b in zip(default, explicit, strict=True))


def test_photometric_settings_reach_the_ops():
    n = 1000
    v = torch.randint(0, 256, (n, 3, 8, 8), dtype=torch.uint8, generator=_gen(5))
    v[:, 0, 0, 0], v[:, 1, 0, 0], v[:, 2, 0, 0] = 200, 0, 100  # colourful: gray only through the grayscale op
    always_gray = A.Photometric(jitter_p=0.0, grayscale_p=1.0, blur_p=(0.0, 0.0), solarize_p=(0.0, 0.0))
    for out in A.photometric_views(v, v.clone(), generator=_gen(6), normalize=False, settings=always_gray):
        assert ((out - out[:, :1]).abs().amax((1, 2, 3)) < 1e-6).all()
    # Hue only, +-0.5: pure red's hue lands anywhere on the circle; with DINO's +-0.1 it stays near red.
    red = torch.zeros(n, 3, 4, 4, dtype=torch.uint8)
    red[:, 0] = 255
    hue_only = dict(jitter_p=1.0, brightness=0.0, contrast=0.0, saturation=0.0, grayscale_p=0.0, blur_p=(0.0, 0.0),
                    solarize_p=(0.0, 0.0))
    wide, _ = A.photometric_views(red, red, generator=_gen(7), normalize=False,
                                  settings=A.Photometric(hue=0.5, **hue_only))
    narrow, _ = A.photometric_views(red, red, generator=_gen(7), normalize=False,
                                    settings=A.Photometric(hue=0.1, **hue_only))
    hue_of = lambda x: A.rgb_to_hsv(x)[:, 0, 0, 0]  # noqa: E731
    turns = torch.minimum(hue_of(wide), 1 - hue_of(wide))  # distance from red, in turns
    assert turns.max() > 0.45 and abs(float(turns.mean()) - 0.25) < 0.03
    assert torch.minimum(hue_of(narrow), 1 - hue_of(narrow)).max() <= 0.1 + 1e-4


def test_photometric_blur_scales_with_the_view_and_checks_ranges():
    assert A.Photometric().scaled_blur(112).blur_sigma == pytest.approx((0.05, 1.0))
    assert A.Photometric().scaled_blur(448).blur_sigma == (0.1, 2.0)  # never sharpened beyond DINO's
    for bad in (dict(hue=0.6), dict(blur_sigma=(0.5, 3.0)), dict(blur_sigma=(1.0, 0.5)), dict(grayscale_p=1.5),
                dict(brightness=1.0), dict(blur_p=(1.0,))):
        with pytest.raises(ValueError, match="photometric augmentation"):
            A.Photometric(**bad)
