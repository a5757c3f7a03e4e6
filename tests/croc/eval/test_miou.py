"""Split-level confusion matrix and mIoU, against hand-computed values."""

import numpy as np
import pytest
import torch

from croc.errors import InputError
from croc.eval.miou import ConfusionMatrix

# 2x3 example. Pairs (gt, pred): (0,0) (0,1) (1,1) (1,1) (2,2) (2,0).
TARGET = np.array([[0, 0, 1], [1, 2, 2]])
PRED = np.array([[0, 1, 1], [1, 2, 0]])


def test_hand_example():
    cm = ConfusionMatrix(3)
    cm.update(PRED, TARGET)
    np.testing.assert_array_equal(cm.matrix, [[1, 1, 0], [0, 2, 0], [1, 0, 1]])
    assert cm.matrix.dtype == np.int64
    # class 0: TP 1, FN 1, FP 1; class 1: TP 2, FP 1; class 2: TP 1, FN 1.
    np.testing.assert_allclose(cm.iou(), [1 / 3, 2 / 3, 1 / 2])
    assert cm.miou() == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    assert cm.miou() == pytest.approx(1 / 2)


def test_present_rule_averages_over_classes_with_ground_truth():
    # Five classes; the truth holds 0, 1, 2 only. Class 4 is predicted once (a false positive of an absent class).
    target = np.array([[0, 0, 1], [1, 2, 2]])
    pred = np.array([[0, 4, 1], [1, 2, 0]])
    cm = ConfusionMatrix(5)
    cm.update(pred, target)
    np.testing.assert_array_equal(cm.present(), [True, True, True, False, False])
    # class 0: TP 1, FN 1, FP 1 -> 1/3; class 1: TP 2 -> 1; class 2: TP 1, FN 1 -> 1/2; classes 3, 4: 0.
    np.testing.assert_allclose(cm.iou(), [1 / 3, 1.0, 1 / 2, 0.0, 0.0])
    assert cm.miou("present") == pytest.approx((1 / 3 + 1 + 1 / 2) / 3)
    assert cm.miou() == cm.miou("all") == pytest.approx((1 / 3 + 1 + 1 / 2) / 5)
    assert ConfusionMatrix(3).miou("present") == 0.0  # nothing counted yet
    with pytest.raises(InputError, match="classes='some'"):
        cm.miou("some")


def test_torch_input_equals_numpy():
    cm = ConfusionMatrix(3)
    cm.update(torch.from_numpy(PRED), torch.from_numpy(TARGET).to(torch.uint8))
    np.testing.assert_array_equal(cm.matrix, [[1, 1, 0], [0, 2, 0], [1, 0, 1]])


def test_ignore_pixels_removed():
    target = np.array([[0, 0, 1, 255], [1, 2, 2, 255]])
    pred = np.array([[0, 1, 1, 2], [1, 2, 0, 77]])  # any prediction on an ignored pixel is dropped
    cm = ConfusionMatrix(3)
    cm.update(pred, target)
    np.testing.assert_array_equal(cm.matrix, [[1, 1, 0], [0, 2, 0], [1, 0, 1]])
    np.testing.assert_allclose(cm.iou(), [1 / 3, 2 / 3, 1 / 2])


def test_absent_class_counts_zero():
    cm = ConfusionMatrix(4)
    cm.update(PRED, TARGET)
    iou = cm.iou()
    np.testing.assert_allclose(iou, [1 / 3, 2 / 3, 1 / 2, 0.0])
    assert not np.isnan(iou).any()
    assert cm.miou() == pytest.approx(1.5 / 4)


def test_empty_matrix_is_zero_not_nan():
    cm = ConfusionMatrix(2)
    np.testing.assert_array_equal(cm.iou(), [0.0, 0.0])
    assert cm.miou() == 0.0


def test_ignore_prediction_is_false_negative():
    cm = ConfusionMatrix(2)
    cm.update(np.array([0, 255, 1]), np.array([0, 0, 1]))
    np.testing.assert_array_equal(cm.matrix, [[1, 0], [0, 1]])
    np.testing.assert_array_equal(cm.unassigned, [1, 0])
    np.testing.assert_allclose(cm.iou(), [1 / 2, 1.0])


def test_two_updates_equal_concatenation():
    rng = np.random.default_rng(0)
    t1, t2 = rng.integers(0, 5, (2, 7, 9)), rng.integers(0, 5, (3, 7, 9))
    p1, p2 = rng.integers(0, 5, (2, 7, 9)), rng.integers(0, 5, (3, 7, 9))
    t1[0, 0, :3] = 255
    a = ConfusionMatrix(5)
    a.update(p1, t1)
    a.update(p2, t2)
    b = ConfusionMatrix(5)
    b.update(np.concatenate([p1, p2]), np.concatenate([t1, t2]))
    np.testing.assert_array_equal(a.matrix, b.matrix)
    assert a.miou() == b.miou()


def test_merge():
    a = ConfusionMatrix(3)
    a.update(PRED[:1], TARGET[:1])
    b = ConfusionMatrix(3)
    b.update(PRED[1:], TARGET[1:])
    assert a.merge(b) is a
    np.testing.assert_array_equal(a.matrix, [[1, 1, 0], [0, 2, 0], [1, 0, 1]])
    assert a.miou() == pytest.approx(1 / 2)
    with pytest.raises(InputError, match="num_classes"):
        a.merge(ConfusionMatrix(4))


def test_bad_inputs():
    cm = ConfusionMatrix(3)
    with pytest.raises(InputError, match="target holds value 5"):
        cm.update(np.array([0, 1]), np.array([0, 5]))
    with pytest.raises(InputError, match="pred holds value -1"):
        cm.update(np.array([0, -1]), np.array([0, 1]))
    with pytest.raises(InputError, match="pred holds value 3"):
        cm.update(np.array([3, 0]), np.array([0, 1]))
    with pytest.raises(InputError, match="shape"):
        cm.update(np.zeros((2, 2), dtype=int), np.zeros((2, 3), dtype=int))
    with pytest.raises(InputError, match="pred"):
        cm.update(np.zeros(2), np.zeros(2, dtype=int))
    with pytest.raises(InputError, match="ignore_index"):
        ConfusionMatrix(3, ignore_index=1)
    with pytest.raises(InputError, match="num_classes"):
        ConfusionMatrix(0)
    np.testing.assert_array_equal(cm.matrix, np.zeros((3, 3)))  # failed updates add nothing
