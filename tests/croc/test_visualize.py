"""Cluster pictures: each patch tinted with its cluster's colour, pruned clusters grey."""

from __future__ import annotations

import numpy as np
import torch

from croc.visualize import PALETTE, PRUNED, cluster_picture, denormalize


def test_patches_take_their_cluster_colour() -> None:
    views = (np.zeros((4, 4, 3), np.uint8), np.full((4, 4, 3), 200, np.uint8))
    # 2x2 patches of 2 px; view 1: patches -> clusters 0, 1, 1, 2; view 2: 2, 2, 0, 0. Cluster 2 is pruned.
    assignments = torch.zeros(2, 4, 3)
    for v, owners in enumerate(([0, 1, 1, 2], [2, 2, 0, 0])):
        for n, k in enumerate(owners):
            assignments[v, n, k] = 0.3
    valid = torch.tensor([True, True, False])
    picture = cluster_picture(views, assignments, valid, patch_size=2, alpha=1.0, gap=1)
    assert picture.shape == (4, 9, 3)
    np.testing.assert_array_equal(picture[0, 0], PALETTE[0])  # view 1, patch (0, 0)
    np.testing.assert_array_equal(picture[0, 3], PALETTE[1])  # view 1, patch (0, 1)
    np.testing.assert_array_equal(picture[3, 3], PRUNED)  # view 1, patch (1, 1): cluster 2, pruned
    np.testing.assert_array_equal(picture[0, 4], [255, 255, 255])  # the gap
    np.testing.assert_array_equal(picture[3, 5], PALETTE[0])  # view 2, patch (1, 0)


def test_denormalize_inverts_the_normalisation() -> None:
    pixels = torch.randint(0, 256, (3, 8, 8), dtype=torch.uint8)
    mean, std = torch.tensor([0.485, 0.456, 0.406])[:, None, None], torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    np.testing.assert_array_equal(denormalize((pixels / 255 - mean) / std), pixels.permute(1, 2, 0).numpy())


def test_the_cluster_figure_is_labelled_and_shows_each_view_enlarged() -> None:
    from croc.eval.pictures import MIN_PANEL, PAD, TEXT
    from croc.visualize import cluster_figure

    torch.manual_seed(0)
    b, size, patch, k_max = 3, 32, 16, 3  # 2x2 patches per view
    images = torch.randn(2 * b, 3, size, size)
    assignments = torch.zeros(2, b, 4, k_max)
    assignments[..., 0] = 1.0  # every patch in cluster 1
    valid = torch.tensor([[True, False, False]] * b)
    figure = cluster_figure(images, assignments, valid, patch, step=7, count=2)
    panel = MIN_PANEL  # 32 px enlarged 6x
    top = 2 * (TEXT + PAD)  # the title and the headings
    assert figure.shape[0] == top + 2 * panel + 3 * PAD + 1 * (TEXT + PAD)  # two images, one legend line
    left = figure.shape[1] - (2 * panel + 3 * PAD)  # the row labels' margin
    assert left > 0
    pixel = figure[top + PAD + 10, left + PAD + 10].astype(float)  # image 1, view 1, inside patch (0, 0)
    expected = 0.45 * denormalize(images[0])[10 // 6, 10 // 6].astype(float) + 0.55 * PALETTE[0]  # nearest
    assert np.abs(pixel - expected).max() <= 1.5
