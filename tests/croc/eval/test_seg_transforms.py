"""Resizing, cropping and the flip / zoom / rotation augmentation of (image, label) pairs."""

from __future__ import annotations

import pytest
import torch

from croc.errors import InputError
from croc.eval.seg_transforms import (
    AffineParams,
    affine_pair,
    random_crop_pair,
    resize_pair,
    sample_affine_params,
)


def _batch(b: int = 2, size: int = 32, classes: int = 5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(b, 3, size, size, generator=g) * 0.9 + 0.1  # > 0 so padding (0) is recognisable
    labels = torch.randint(classes, (b, size, size), generator=g)
    return images, labels


def _params(flip: bool = False, scale: float = 1.0, angle: float = 0.0, b: int = 2) -> AffineParams:
    return AffineParams(torch.full((b,), flip), torch.full((b,), scale), torch.full((b,), angle))


def test_identity_params_change_nothing():
    images, labels = _batch()
    out_images, out_labels = affine_pair(images, labels, AffineParams.identity(2))
    torch.testing.assert_close(out_images, images, atol=1e-5, rtol=0)
    assert torch.equal(out_labels, labels)
    assert out_labels.dtype == torch.int64


def test_flip_is_a_horizontal_mirror():
    images, labels = _batch()
    out_images, out_labels = affine_pair(images, labels, _params(flip=True))
    torch.testing.assert_close(out_images, images.flip(-1), atol=1e-5, rtol=0)
    assert torch.equal(out_labels, labels.flip(-1))


def test_zoom_out_pads_borders_with_255_and_black():
    images, labels = _batch(size=32)
    out_images, out_labels = affine_pair(images, labels, _params(scale=0.5))
    # Output pixel centres (i + 0.5) / 16 - 1 map to twice that: outside the source for i <= 7 and i >= 24.
    border = torch.ones(32, 32, dtype=torch.bool)
    border[8:24, 8:24] = False
    assert (out_labels[:, border] == 255).all()
    assert (out_images[:, :, border] == 0).all()
    assert (out_labels[:, 8:24, 8:24] != 255).all()
    assert (out_images[:, :, 9:23, 9:23] > 0).all()
    # The centre is the whole source shrunk by 2: output pixel 8 + k samples source coordinate 2k + 0.5, a tie
    # between pixels 2k and 2k + 1, so use labels constant on 2x2 blocks to get one answer.
    small = labels[:, ::2, ::2]  # [B, 16, 16]
    blocky = small.repeat_interleave(2, 1).repeat_interleave(2, 2)
    _, blocky_out = affine_pair(images, blocky, _params(scale=0.5))
    assert torch.equal(blocky_out[:, 8:24, 8:24], small)


def test_zoom_in_keeps_labels_and_fills_everything():
    images, labels = _batch(size=32)
    _, out_labels = affine_pair(images, labels, _params(scale=1.25))
    assert (out_labels != 255).all()
    assert set(out_labels.unique().tolist()) <= set(labels.unique().tolist())


def test_rotation_keeps_label_values_and_pads_corners():
    images = torch.rand(1, 3, 48, 48) + 0.1
    labels = torch.zeros(1, 48, 48, dtype=torch.long)
    labels[:, 10:30, 5:40] = 3
    labels[:, 35:, :] = 7
    out_images, out_labels = affine_pair(images, labels, _params(angle=20.0, b=1))
    assert set(out_labels.unique().tolist()) <= {0, 3, 7, 255}
    assert out_labels[0, 0, 0] == 255 and out_images[0, :, 0, 0].eq(0).all()  # a corner has no source
    assert out_labels[0, 24, 24] == labels[0, 24, 24]  # the centre stays


def test_rotation_is_counter_clockwise():
    images = torch.zeros(1, 3, 33, 33)
    images[0, :, 16, 30] = 1.0  # a dot right of the centre
    out_images, _ = affine_pair(images, torch.zeros(1, 33, 33, dtype=torch.long), _params(angle=90.0, b=1))
    assert (out_images[0, 0] > 0.5).nonzero().tolist() == [[2, 16]]  # now above the centre


def test_sampled_params_are_reproducible_and_in_range():
    a = sample_affine_params(64, (0.75, 1.25), 5.0, True, torch.Generator().manual_seed(3))
    b = sample_affine_params(64, (0.75, 1.25), 5.0, True, torch.Generator().manual_seed(3))
    c = sample_affine_params(64, (0.75, 1.25), 5.0, True, torch.Generator().manual_seed(4))
    assert torch.equal(a.flip, b.flip) and torch.equal(a.scale, b.scale) and torch.equal(a.angle_deg, b.angle_deg)
    assert not torch.equal(a.scale, c.scale)
    assert ((a.scale >= 0.75) & (a.scale <= 1.25)).all() and (a.angle_deg.abs() <= 5.0).all()
    assert 0 < a.flip.sum() < 64
    no_flip = sample_affine_params(64, (1.0, 1.0), 0.0, False, torch.Generator().manual_seed(3))
    assert not no_flip.flip.any() and (no_flip.scale == 1).all() and (no_flip.angle_deg == 0).all()
    images, labels = _batch(b=64, size=16)
    first = affine_pair(images, labels, a)
    second = affine_pair(images, labels, b)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])


def test_resize_sizes_and_nearest_labels():
    image = torch.randint(0, 256, (3, 30, 50), dtype=torch.uint8)
    label = torch.randint(0, 4, (30, 50))
    label[:5] = 255
    out_image, out_label = resize_pair(image, label, (64, 48))
    assert out_image.shape == (3, 64, 48) and out_image.dtype == torch.uint8
    assert out_label.shape == (64, 48) and out_label.dtype == torch.int64
    assert set(out_label.unique().tolist()) <= set(label.unique().tolist())
    # Integer upscaling with nearest repeats every source pixel.
    _, doubled = resize_pair(image, label, (60, 100))
    assert torch.equal(doubled, label.repeat_interleave(2, 0).repeat_interleave(2, 1))
    same_image, same_label = resize_pair(image, label, (30, 50))
    assert torch.equal(same_image, image) and torch.equal(same_label, label)


def test_random_crop_pads_small_images_and_is_reproducible():
    image = torch.randint(1, 256, (3, 10, 40), dtype=torch.uint8)
    label = torch.randint(0, 3, (10, 40))
    crop_image, crop_label = random_crop_pair(image, label, 16, torch.Generator().manual_seed(0))
    assert crop_image.shape == (3, 16, 16) and crop_label.shape == (16, 16)
    assert (crop_label[10:] == 255).all() and (crop_image[:, 10:] == 0).all()  # rows below the image: padding
    left = next(x for x in range(25) if torch.equal(crop_label[:10], label[:, x:x + 16]))
    assert torch.equal(crop_image[:, :10], image[:, :, left:left + 16])
    again = random_crop_pair(image, label, 16, torch.Generator().manual_seed(0))
    assert torch.equal(again[0], crop_image) and torch.equal(again[1], crop_label)


def test_bad_inputs_raise():
    with pytest.raises(InputError, match="label"):
        resize_pair(torch.zeros(3, 4, 4, dtype=torch.uint8), torch.zeros(5, 4, dtype=torch.long), (2, 2))
    with pytest.raises(InputError, match="scale"):
        sample_affine_params(2, (1.2, 0.8))
    with pytest.raises(InputError, match="labels"):
        affine_pair(torch.zeros(2, 3, 4, 4), torch.zeros(2, 4, 5, dtype=torch.long), AffineParams.identity(2))
