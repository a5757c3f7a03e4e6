"""Hungarian cluster-to-class matching, against hand-computed values."""

import numpy as np
import pytest
import torch

from croc.errors import InputError
from croc.eval.matching import ClusterClassCounts, cluster_miou, hungarian_match

# Hand 3x3 case. Co-occurrence n(cluster, class) = [[3, 2, 0], [2, 0, 0], [0, 0, 3]];
# cluster sizes 5, 2, 3 and class sizes 5, 2, 3.
CLUSTERS = np.array([0, 0, 0, 0, 0, 1, 1, 2, 2, 2])
LABELS = np.array([0, 0, 0, 1, 1, 0, 0, 2, 2, 2])
HAND_IOU = [[3 / 7, 2 / 5, 0.0], [2 / 5, 0.0, 0.0], [0.0, 0.0, 1.0]]


def test_permutation_recovered():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 4, (6, 8, 8))
    labels.reshape(-1)[:4] = [0, 1, 2, 3]
    perm = np.array([2, 0, 3, 1])
    clusters = perm[labels]
    mapping, iou = hungarian_match(clusters, labels, 4, 4)
    np.testing.assert_array_equal(mapping[perm], [0, 1, 2, 3])
    np.testing.assert_array_equal(mapping, [1, 3, 0, 2])
    assert iou.shape == (4, 4)
    assert cluster_miou(clusters, labels, 4) == 1.0


def test_hand_3x3():
    mapping, iou = hungarian_match(CLUSTERS, LABELS, 3, 3)
    np.testing.assert_allclose(iou, HAND_IOU)
    # Optimal total 2/5 + 2/5 + 1 = 1.8 beats the identity 3/7 + 0 + 1 (greedy would take 3/7 first).
    np.testing.assert_array_equal(mapping, [1, 0, 2])
    # After mapping: confusion [[2, 3, 0], [0, 2, 0], [0, 0, 3]] -> IoU 2/5, 2/5, 1.
    assert cluster_miou(CLUSTERS, LABELS, 3) == pytest.approx((2 / 5 + 2 / 5 + 1) / 3)


def test_ignore_removed_before_matching():
    clusters = np.concatenate([CLUSTERS, np.full(50, 1), [-3, 99]])
    labels = np.concatenate([LABELS, np.full(52, 255)])
    mapping, iou = hungarian_match(torch.from_numpy(clusters), torch.from_numpy(labels), 3, 3)
    np.testing.assert_allclose(iou, HAND_IOU)
    np.testing.assert_array_equal(mapping, [1, 0, 2])
    assert cluster_miou(clusters, labels, 3) == pytest.approx(0.6)


def test_more_clusters_than_classes():
    labels = np.array([0, 0, 0, 1, 1, 1])
    clusters = np.array([0, 0, 2, 1, 1, 1])
    mapping, iou = hungarian_match(clusters, labels, 3, 2)
    np.testing.assert_allclose(iou, [[2 / 3, 0.0], [0.0, 1.0], [1 / 3, 0.0]])
    np.testing.assert_array_equal(mapping, [0, 1, 255])
    # The unassigned cluster's pixel is a false negative of class 0: IoU 2/3 and 1.
    assert cluster_miou(clusters, labels, 2, num_clusters=3) == pytest.approx((2 / 3 + 1) / 2)


def test_every_cluster_gets_a_class_when_k_equals_classes():
    labels = np.array([0, 0, 1, 1, 2, 2])
    clusters = np.array([0, 0, 0, 0, 0, 0])  # clusters 1 and 2 are empty
    mapping, _ = hungarian_match(clusters, labels, 3, 3)
    assert sorted(mapping.tolist()) == [0, 1, 2]


def test_streaming_and_merge():
    a = ClusterClassCounts(3, 3)
    a.update(CLUSTERS[:4], LABELS[:4])
    b = ClusterClassCounts(3, 3)
    b.update(CLUSTERS[4:7], LABELS[4:7])
    b.update(CLUSTERS[7:], LABELS[7:])
    a.merge(b)
    np.testing.assert_array_equal(a.counts, [[3, 2, 0], [2, 0, 0], [0, 0, 3]])
    mapping, iou = a.match()
    np.testing.assert_array_equal(mapping, [1, 0, 2])
    np.testing.assert_allclose(iou, HAND_IOU)
    cm = a.confusion()
    np.testing.assert_array_equal(cm.matrix, [[2, 3, 0], [0, 2, 0], [0, 0, 3]])
    assert cm.miou() == pytest.approx(cluster_miou(CLUSTERS, LABELS, 3))


def test_confusion_with_unassigned_cluster():
    c = ClusterClassCounts(3, 2)
    c.update(np.array([0, 0, 2, 1, 1, 1]), np.array([0, 0, 0, 1, 1, 1]))
    cm = c.confusion()
    np.testing.assert_array_equal(cm.matrix, [[2, 0], [0, 3]])
    np.testing.assert_array_equal(cm.unassigned, [1, 0])
    assert cm.miou() == pytest.approx(5 / 6)


def test_bad_inputs():
    c = ClusterClassCounts(2, 2)
    with pytest.raises(InputError, match="cluster_ids holds value 2"):
        c.update(np.array([0, 2]), np.array([0, 1]))
    with pytest.raises(InputError, match="labels holds value 7"):
        c.update(np.array([0, 1]), np.array([0, 7]))
    with pytest.raises(InputError, match="shape"):
        c.update(np.array([0, 1]), np.array([0]))
    with pytest.raises(InputError, match="num_clusters"):
        ClusterClassCounts(0, 2)
