"""DAVIS-2017 J and F, against hand-computed values."""

import numpy as np
import pytest

from croc.errors import InputError
from croc.eval.davis_metrics import (
    boundary_f_measure,
    boundary_map,
    boundary_tolerance,
    disk,
    evaluate_video,
    region_similarity,
    summarize,
)

T, F_ = True, False


def square(y0, y1, x0, x1, size=20):
    m = np.zeros((size, size), dtype=np.uint8)
    m[y0:y1, x0:x1] = 1
    return m


def test_region_similarity():
    empty = np.zeros((4, 4), dtype=bool)
    assert region_similarity(empty, empty) == 1.0
    assert region_similarity(empty, square(0, 2, 0, 2, 4)) == 0.0
    assert region_similarity(square(0, 2, 0, 2, 4), square(0, 2, 0, 2, 4)) == 1.0
    pred = np.array([[1, 1, 0]])
    true = np.array([[1, 1, 1]])
    assert region_similarity(pred, true) == pytest.approx(2 / 3)
    with pytest.raises(InputError, match="shape"):
        region_similarity(np.zeros((2, 2)), np.zeros((2, 3)))


def test_boundary_map_hand_drawn():
    mask = np.array(
        [
            [0, 0, 0, 0],
            [0, 1, 1, 0],
            [0, 1, 1, 0],
            [0, 0, 0, 0],
        ]
    )
    expected = np.array(
        [
            [T, T, T, F_],
            [T, F_, T, F_],
            [T, T, T, F_],
            [F_, F_, F_, F_],
        ]
    )
    out = boundary_map(mask)
    assert out.dtype == bool
    np.testing.assert_array_equal(out, expected)


def test_boundary_map_last_row_and_column():
    # The last column only compares with its south neighbour, the last row only with its east one.
    np.testing.assert_array_equal(boundary_map(np.array([[0, 1], [0, 1]])), [[T, F_], [T, F_]])
    np.testing.assert_array_equal(boundary_map(np.array([[0, 0], [1, 1]])), [[T, T], [F_, F_]])
    np.testing.assert_array_equal(boundary_map(np.ones((3, 3))), np.zeros((3, 3), dtype=bool))


def test_tolerance_and_disk():
    assert boundary_tolerance(480, 854) == 8
    assert boundary_tolerance(20, 20) == 1
    np.testing.assert_array_equal(disk(1), [[F_, T, F_], [T, T, T], [F_, T, F_]])
    assert disk(8).shape == (17, 17)


def test_f_edge_cases():
    empty = np.zeros((20, 20), dtype=np.uint8)
    sq = square(5, 10, 5, 10)
    assert boundary_f_measure(empty, empty) == (1.0, 1.0, 1.0)
    assert boundary_f_measure(empty, sq) == (0.0, 1.0, 0.0)  # only a true boundary
    assert boundary_f_measure(sq, empty) == (0.0, 0.0, 1.0)  # only a predicted boundary
    assert boundary_f_measure(sq, sq) == (1.0, 1.0, 1.0)


def test_f_one_pixel_shift_within_tolerance():
    # 20x20 -> d = 1; every boundary pixel moves by one pixel.
    assert boundary_f_measure(square(5, 10, 6, 11), square(5, 10, 5, 10)) == (1.0, 1.0, 1.0)
    assert boundary_f_measure(square(6, 11, 5, 10), square(5, 10, 5, 10)) == (1.0, 1.0, 1.0)


def test_f_far_apart_is_zero():
    assert boundary_f_measure(square(2, 6, 2, 6), square(12, 16, 12, 16)) == (0.0, 0.0, 0.0)


def test_f_partial_recall():
    # True = the predicted square plus a far copy: P = 1, R = 1/2, F = 2/3.
    pred = square(2, 6, 2, 6)
    true = pred | square(12, 16, 12, 16)
    f, p, r = boundary_f_measure(pred, true)
    assert (p, r) == (1.0, 0.5)
    assert f == pytest.approx(2 / 3)


def _frames():
    true = np.zeros((4, 10, 10), dtype=np.uint8)
    true[:, 1:4, 1:4] = 1
    true[:, 6:9, 6:9] = 2
    true[0, 0, :] = 255  # void in the first annotation: not an object
    return true


def test_evaluate_video_excludes_first_and_last():
    true = _frames()
    pred = true.copy()
    pred[0] = 0  # first and last predictions are wrong but excluded
    pred[3] = 0
    res = evaluate_video(list(pred), list(true))
    assert res["objects"] == [1, 2]
    assert res["J"].shape == (2, 2)
    np.testing.assert_array_equal(res["J-mean"], [1.0, 1.0])
    np.testing.assert_array_equal(res["F-mean"], [1.0, 1.0])
    np.testing.assert_array_equal(res["J-recall"], [1.0, 1.0])
    np.testing.assert_array_equal(res["F-recall"], [1.0, 1.0])


def test_evaluate_video_middle_frames():
    true = _frames()
    pred = true.copy()
    pred[2][pred[2] == 2] = 0  # object 2 missed in frame 2: J = 0, F = 0 (only a true boundary)
    res = evaluate_video(list(pred), list(true))
    np.testing.assert_array_equal(res["J"], [[1.0, 1.0], [1.0, 0.0]])
    np.testing.assert_array_equal(res["F"], [[1.0, 1.0], [1.0, 0.0]])
    np.testing.assert_array_equal(res["J-mean"], [1.0, 0.5])
    np.testing.assert_array_equal(res["F-mean"], [1.0, 0.5])
    np.testing.assert_array_equal(res["J-recall"], [1.0, 0.5])
    np.testing.assert_array_equal(res["F-recall"], [1.0, 0.5])


def test_evaluate_video_object_absent_from_both():
    true = _frames()
    true[1:][true[1:] == 2] = 0  # object 2 leaves after the first frame and is never predicted
    res = evaluate_video(list(true.copy()), list(true))
    np.testing.assert_array_equal(res["J-mean"], [1.0, 1.0])
    np.testing.assert_array_equal(res["F-mean"], [1.0, 1.0])


def test_evaluate_video_mismatches():
    true = _frames()
    with pytest.raises(InputError, match="bear"):
        evaluate_video(list(true[:3]), list(true), name="bear")
    pred = list(true)
    pred[2] = np.zeros((10, 11), dtype=np.uint8)
    with pytest.raises(InputError, match="frame 2"):
        evaluate_video(pred, list(true), name="bear")


def test_summarize_hand_case():
    videos = {
        "a": {
            "objects": [1, 2],
            "J-mean": np.array([1.0, 0.5]),
            "F-mean": np.array([0.8, 0.4]),
            "J-recall": np.array([1.0, 0.5]),
            "F-recall": np.array([1.0, 0.0]),
        },
        "b": {
            "objects": [1],
            "J-mean": np.array([0.0]),
            "F-mean": np.array([0.6]),
            "J-recall": np.array([0.0]),
            "F-recall": np.array([0.0]),
        },
    }
    s = summarize(videos)
    # Means over the 3 objects (not over the 2 videos).
    assert s["J-mean"] == pytest.approx(1.5 / 3)
    assert s["F-mean"] == pytest.approx(1.8 / 3)
    assert s["J&F"] == pytest.approx((0.5 + 0.6) / 2)
    assert s["J-recall"] == pytest.approx(1.5 / 3)
    assert s["F-recall"] == pytest.approx(1 / 3)
    assert [(r["video"], r["object"]) for r in s["per_object"]] == [("a", 1), ("a", 2), ("b", 1)]
    assert s["per_object"][1]["F-mean"] == pytest.approx(0.4)


def test_summarize_from_evaluate_video():
    true = _frames()
    s = summarize({"v": evaluate_video(list(true), list(true))})
    assert s["J&F"] == 1.0
    with pytest.raises(InputError):
        summarize({})
