"""Evaluation pictures: headings, row labels and legend around panels whose pixels are the masks over the image."""

from __future__ import annotations

import numpy as np
import torch

from croc.eval.pictures import (
    ALPHA,
    MIN_PANEL,
    PAD,
    TEXT,
    class_legend,
    labelled_grid,
    segmentation_rows,
    video_strip,
)


def _example() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    image = torch.full((3, 32, 32), 100, dtype=torch.uint8)
    pred = torch.zeros(32, 32, dtype=torch.long)
    pred[:, 16:] = 1  # right half: class 1 (VOC colour 128, 0, 0)
    label = torch.full((32, 32), 2, dtype=torch.long)  # class 2 (0, 128, 0)
    label[:4] = 255  # an ignore band at the top
    return image, pred, label


def test_segmentation_picture_layout_and_mask_colours() -> None:
    picture = segmentation_rows([_example(), _example()], ("background", "aeroplane", "bicycle"), "title")
    panel = MIN_PANEL  # 32 px enlarged 6x -> 192
    top = 2 * (TEXT + PAD)  # the title and the headings
    assert picture.shape[1] == 3 * panel + 4 * PAD  # make_grid's padding around and between three columns
    assert picture.shape[0] >= top + 2 * panel + 3 * PAD + TEXT  # two rows and at least one legend line
    first_row = top + PAD

    def pixel(column: int, y: int, x: int) -> np.ndarray:
        return picture[first_row + y, PAD + column * (panel + PAD) + x].astype(int)

    assert (pixel(0, 50, 150) == 100).all()  # the image itself
    blended = np.round((1 - ALPHA) * 100 + ALPHA * np.array([128, 0, 0]))
    assert np.abs(pixel(1, 50, 150) - blended).max() <= 1  # prediction: class 1 over the image
    assert np.abs(pixel(1, 50, 20) - np.round((1 - ALPHA) * 100)).max() <= 1  # class 0 is drawn too (black)
    assert np.abs(pixel(2, 100, 100) - np.round((1 - ALPHA) * 100 + ALPHA * np.array([0, 128, 0]))).max() <= 1
    assert np.abs(pixel(2, 5, 100) - np.round((1 - ALPHA) * 100 + ALPHA * 255)).max() <= 1  # ignore: white


def test_the_legend_names_the_classes_drawn_and_the_ignore_band() -> None:
    _, pred, label = _example()
    legend = class_legend([pred, label], ("background", "aeroplane", "bicycle"))
    assert legend == [("background", (0, 0, 0)), ("aeroplane", (128, 0, 0)), ("bicycle", (0, 128, 0)),
                      ("ignored", (255, 255, 255))]
    assert class_legend([torch.tensor([[5]])])[0][0] == "class 5"  # a class without a name


def test_video_strip_has_a_ground_truth_row_when_given() -> None:
    frames = [torch.full((3, 24, 40), 50, dtype=torch.uint8) for _ in range(3)]
    masks = [np.zeros((24, 40), np.uint8) for _ in range(3)]
    for m in masks:
        m[:, :10] = 1
    alone = video_strip(frames, masks, frame_numbers=[0, 5, 10])
    with_truth = video_strip(frames, masks, [m.copy() for m in masks], [0, 5, 10], "title")
    panel = 24 * 8  # enlarged to at least MIN_PANEL
    assert with_truth.shape[0] - alone.shape[0] >= panel + PAD  # one more row (and a title line)
    frames_width = 3 * 40 * 8 + 4 * PAD
    assert with_truth.shape[1] > frames_width and alone.shape[1] > frames_width  # row labels left of the frames


def test_a_grid_of_equal_panels_has_a_column_per_heading() -> None:
    panels = [[torch.zeros(3, 10, 20, dtype=torch.uint8)] * 2]
    picture = labelled_grid(panels, ("a", "b"))
    assert picture.shape == (TEXT + PAD + 10 + 2 * PAD, 2 * 20 + 3 * PAD, 3)
