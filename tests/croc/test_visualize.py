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
