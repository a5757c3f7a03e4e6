"""Generated scenes and the batch preparation (geometric on CPU, photometric and positions on the device)."""

from __future__ import annotations

import numpy as np
import torch

from croc.augment import patch_centres
from croc.batch import prepare_batch, views_of_images
from croc.synthetic.scenes import N_STUFF, N_THINGS, synthetic_scene


def test_scenes_are_deterministic_and_labelled() -> None:
    a, labels = synthetic_scene(3, 64, 80)
    b, _ = synthetic_scene(3, 64, 80)
    c, _ = synthetic_scene(4, 64, 80)
    assert a.dtype == torch.uint8 and a.shape == (3, 64, 80)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert labels.shape == (64, 80) and labels.min() >= 0 and labels.max() < N_STUFF + N_THINGS
    assert len(np.unique(labels)) >= 2


def test_prepare_batch_shapes_and_positions() -> None:
    g = torch.Generator().manual_seed(0)
    images = [synthetic_scene(i, 70, 90)[0] for i in range(3)]
    batch = views_of_images(images, size=32, generator=g)
    assert batch.views.shape == (2, 3, 3, 32, 32) and batch.views.dtype == torch.uint8
    x, xy = prepare_batch(batch, patch_size=16, device=torch.device("cpu"), generator=g)
    assert x.shape == (6, 3, 32, 32) and x.dtype == torch.float32 and torch.isfinite(x).all()
    assert xy.shape == (2, 3, 4, 2)
    expected = patch_centres(batch.boxes[1], batch.flips[1], 32, 16)  # view 2 of every image
    torch.testing.assert_close(xy[1], expected)
    assert (xy[..., 0] > -1).all() and (xy[..., 0] < 90).all() and (xy[..., 1] < 70).all()
