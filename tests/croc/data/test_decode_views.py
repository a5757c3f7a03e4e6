"""The CPU stage: two views from encoded bytes, checked against the pixels their boxes name."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

import croc.data.decode_views as decode_views
from croc.augment import crop_and_resize
from croc.data.decode_views import decode_batch, decode_frame, draft_factor, two_views
from croc.errors import InputError


def coordinate_image(width: int, height: int, fmt: str = "PNG") -> bytes:
    """R encodes x, G encodes y (smooth ramps), B constant: a view's pixels tell where they came from."""
    xx, yy = np.meshgrid(np.arange(width), np.arange(height))
    rgb = np.stack([xx * 255.0 / (width - 1), yy * 255.0 / (height - 1), np.full_like(xx, 128.0)], -1)
    buffer = io.BytesIO()
    Image.fromarray(np.round(rgb).astype(np.uint8)).save(buffer, format=fmt, quality=95)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_views_show_the_pixels_of_their_boxes(fmt: str) -> None:
    width, height, size = 400, 300, 32
    data = coordinate_image(width, height, fmt)
    generator = torch.Generator().manual_seed(0)
    for _ in range(6):
        views, boxes, flips = two_views(data, width, height, size, generator)
        assert views.shape == (2, 3, size, size) and views.dtype == np.uint8
        for v in range(2):
            top, left, h, w = boxes[v]
            u = np.arange(size)
            x = left + (u + 0.5) * w / size - 0.5
            y = top + (u + 0.5) * h / size - 0.5
            expected_r = x * 255 / (width - 1)
            expected_g = y * 255 / (height - 1)
            red_row = views[v, 0, size // 2].astype(float)
            green_col = views[v, 1, :, size // 2].astype(float)
            if flips[v]:
                red_row = red_row[::-1]
            inner = slice(2, -2)  # away from the border where the resampling kernel is cut
            np.testing.assert_allclose(red_row[inner], expected_r[inner], atol=4)
            np.testing.assert_allclose(green_col[inner], expected_g[inner], atol=4)


def test_draft_factor_keeps_the_output_resolution() -> None:
    assert draft_factor([(0, 0, 1000, 900), (0, 0, 2000, 2000)], 224) == 4  # 900 / 4 = 225 >= 224
    assert draft_factor([(0, 0, 300, 300), (0, 0, 2000, 2000)], 224) == 1
    assert draft_factor([(0, 0, 5000, 5000)] * 2, 224) == 8


def test_corrupt_records_are_replaced_by_the_next_good_one() -> None:
    good = coordinate_image(64, 48)
    images = [b"garbage", good, b"\x89PNG broken", good]
    out = decode_batch(images, [64] * 4, [48] * 4, ["a", "b", "c", "d"], 16, torch.Generator().manual_seed(1))
    assert out.replaced.tolist() == [True, False, True, False]
    assert out.valid.all()
    assert out.views.shape == (4, 2, 3, 16, 16)
    assert (out.boxes[:, :, 2] > 0).all()


def test_a_batch_with_no_decodable_record_is_returned_invalid_not_raised() -> None:
    out = decode_batch([b"x", b"y"], [4, 4], [4, 4], ["x", "y"], 16, torch.Generator())
    assert out.replaced.tolist() == [True, True] and out.valid.tolist() == [False, False]
    assert out.views.shape == (2, 2, 3, 16, 16) and not out.views.any()


def test_a_donor_that_fails_on_its_second_decode_is_passed_over(monkeypatch) -> None:
    """A decoder can refuse at one scale what it took at another (the replacement draws new crops): that donor is
    skipped for the next, and with none left the row is invalid; nothing raises."""
    good, flaky = coordinate_image(64, 48), coordinate_image(64, 48, "JPEG")
    calls = {"flaky": 0}
    real = decode_views.two_views

    def two_views_with_a_flaky_record(data, *args, **kwargs):
        if data is flaky:
            calls["flaky"] += 1
            if calls["flaky"] > 1:
                raise ValueError("rejected by the fast decoder")
        return real(data, *args, **kwargs)

    monkeypatch.setattr(decode_views, "two_views", two_views_with_a_flaky_record)
    out = decode_batch([b"bad", flaky, good], [64] * 3, [48] * 3, ["a", "b", "c"], 16, torch.Generator())
    assert out.replaced.tolist() == [True, False, False] and out.valid.all()  # the flaky donor failed, c served
    calls["flaky"] = 0
    out = decode_batch([b"bad", flaky], [64] * 2, [48] * 2, ["a", "b"], 16, torch.Generator())
    assert out.replaced.tolist() == [True, False] and out.valid.tolist() == [False, True]


def test_wrong_stored_size_counts_as_corrupt() -> None:
    good = coordinate_image(64, 48)
    out = decode_batch([good, good], [64, 65], [48, 48], ["a", "b"], 16, torch.Generator().manual_seed(2))
    assert out.replaced.tolist() == [False, True]


@pytest.fixture(params=["simplejpeg", "torchvision"])
def jpeg_decoder(request, monkeypatch) -> str:
    """Both full-scale JPEG paths: TurboJPEG (simplejpeg), and torchvision where simplejpeg is not installed."""
    if request.param == "torchvision":
        monkeypatch.setattr(decode_views, "simplejpeg", None)
    else:
        assert decode_views.simplejpeg is not None, "simplejpeg is a pinned dependency"
    return request.param


@pytest.mark.parametrize("mode", ["RGB", "L", "CMYK"])
def test_full_scale_jpeg_decodes_to_the_same_pixels_as_pil(mode: str, jpeg_decoder: str) -> None:
    rgb = np.random.default_rng(3).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(rgb).convert(mode).save(buffer, format="JPEG", quality=90)
    data = buffer.getvalue()
    with Image.open(io.BytesIO(data)) as image:
        expected = np.asarray(image.convert("RGB"))  # [48, 64, 3]
    frame = decode_frame(data, 64, 48, factor=1)  # libjpeg-turbo (CMYK with simplejpeg: PIL)
    assert frame.shape == (1, 3, 48, 64) and frame.dtype == torch.uint8
    np.testing.assert_array_equal(frame[0].permute(1, 2, 0).numpy(), expected)
    assert decode_frame(data, 64, 48, factor=2).shape == (1, 3, 24, 32)  # PIL's draft mode: DCT scaling
    with pytest.raises(InputError, match="stored size 65x48"):
        decode_frame(data, 65, 48, factor=1)


def test_truncated_jpeg_counts_as_corrupt(jpeg_decoder: str) -> None:
    good = coordinate_image(64, 48, "JPEG")
    out = decode_batch([good[: len(good) // 2], good], [64, 64], [48, 48], ["a", "b"], 16,
                       torch.Generator().manual_seed(4))
    assert out.replaced.tolist() == [True, False]


def test_full_scale_views_equal_torchvision_resized_crops_of_the_decoded_image(jpeg_decoder: str) -> None:
    """The fast path (window copied channels-last, numpy flip) gives exactly `croc.augment.crop_and_resize`'s pixels
    (torchvision's resized_crop on a channels-first tensor of PIL's decoding), box for box, flip for flip."""
    width, height, size = 320, 240, 160  # 240 / 2 < 160: never a reduced DCT scale
    texture = np.random.default_rng(3).integers(0, 256, (height // 8, width // 8, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(texture).resize((width, height), Image.BILINEAR).save(buffer, format="JPEG", quality=90)
    data = buffer.getvalue()
    with Image.open(io.BytesIO(data)) as image:
        reference = torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1).contiguous()  # [3, H, W]
    generator = torch.Generator().manual_seed(5)
    seen_flips = set()
    for _ in range(8):
        views, boxes, flips = two_views(data, width, height, size, generator)
        for v in range(2):
            expected = crop_and_resize(reference, boxes[v].round().astype(int).tolist(), size, bool(flips[v]))
            np.testing.assert_array_equal(views[v], expected.numpy())
            seen_flips.add(bool(flips[v]))
    assert seen_flips == {True, False}
