"""Pictures of evaluation results that read on their own: a title, column headings, row labels and a class legend.

- segmentation: one row per example, columns image | prediction | ground truth, the masks drawn over the image
  with torchvision's `draw_segmentation_masks` (VOC colours; the ground truth's ignore band in white);
- video propagation: the chosen frames as columns, the propagated masks over the frames in the first row and the
  ground truth in the second.
Panels smaller than `MIN_PANEL` pixels are enlarged (masks by nearest neighbour) so that a picture opened in
MLflow's artifact view is legible. Layout with torchvision's `make_grid`; the text with PIL's default font.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont
from torchvision.utils import draw_segmentation_masks, make_grid

from croc.data.palette import voc_palette

_COLOURS = np.array(voc_palette(), np.uint8).reshape(256, 3)
IGNORE_COLOUR = np.array([255, 255, 255], np.uint8)
MIN_PANEL = 192  # pixels: smaller panels are enlarged to at least this height
PAD = 4
TEXT = 14  # pixels of a text line
ALPHA = 0.6  # opacity of the masks over the image


def colour_labels(labels: torch.Tensor | np.ndarray, ignore_index: int = 255) -> np.ndarray:
    """int labels [H, W] -> uint8 [H, W, 3] with the VOC colour map (class 0 black, ignore white)."""
    values = np.asarray(labels, dtype=np.int64)
    out = _COLOURS[np.clip(values, 0, 255)]
    out[values == ignore_index] = IGNORE_COLOUR
    return out


def _font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=TEXT - 2)
    except TypeError:  # an older Pillow: the fixed-size bitmap font
        return ImageFont.load_default()


def _scale_for(height: int) -> int:
    return max(1, math.ceil(MIN_PANEL / height))


def _enlarged_image(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """uint8 [3, h, w] -> uint8 [3, H, W] (bilinear)."""
    if tuple(image.shape[-2:]) == size:
        return image.to(torch.uint8)
    grown = F.interpolate(image.float()[None], size=size, mode="bilinear", align_corners=False)
    return grown[0].round().clamp(0, 255).to(torch.uint8)


def _enlarged_labels(labels: torch.Tensor | np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """int labels [h, w] -> int64 [H, W] (nearest)."""
    labels = torch.as_tensor(np.asarray(labels)).long()
    if tuple(labels.shape) == size:
        return labels
    return F.interpolate(labels[None, None].float(), size=size, mode="nearest")[0, 0].long()


def overlay(image: torch.Tensor, labels: torch.Tensor, ignore_index: int = 255,
            skip: Sequence[int] = ()) -> torch.Tensor:
    """The label map drawn over the image (uint8 [3, H, W]): each class in its VOC colour, ignore in white."""
    classes = [int(c) for c in labels.unique().tolist() if int(c) not in skip]
    if not classes:
        return image
    masks = torch.stack([labels == c for c in classes])  # [K, H, W] bool
    colours = [tuple(int(v) for v in (IGNORE_COLOUR if c == ignore_index else _COLOURS[c])) for c in classes]
    return draw_segmentation_masks(image, masks, alpha=ALPHA, colors=colours)


Legend = Sequence[tuple[str, tuple[int, int, int]]]


def labelled_grid(rows: Sequence[Sequence[torch.Tensor]], headings: Sequence[str], title: str = "",
                  row_labels: Sequence[str] = (), legend: Legend = ()) -> np.ndarray:
    """Equal-sized panels (uint8 [3, H, W]) in rows under a title and column headings, with row labels on the left
    and a colour legend below -> uint8 [height, width, 3]."""
    panels = [panel for row in rows for panel in row]
    height, width = panels[0].shape[-2:]
    grid = make_grid(torch.stack(panels), nrow=len(headings), padding=PAD, pad_value=255)  # [3, GH, GW]
    font = _font()
    left = (max(int(ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength(t, font=font)) for t in row_labels) + 2 * PAD
            if row_labels else 0)
    top = (TEXT + PAD if title else 0) + TEXT + PAD
    grid_h, grid_w = grid.shape[-2:]
    legend_lines = _legend_lines(legend, left + grid_w, font)
    canvas = Image.new("RGB", (left + grid_w, top + grid_h + len(legend_lines) * (TEXT + PAD)), "white")
    canvas.paste(Image.fromarray(grid.permute(1, 2, 0).numpy()), (left, top))
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((PAD, 1), title, fill="black", font=font)
    for c, heading in enumerate(headings):
        x = left + PAD + c * (width + PAD) + width / 2 - draw.textlength(heading, font=font) / 2
        draw.text((max(left, x), top - TEXT - 1), heading, fill="black", font=font)
    for r, label in enumerate(row_labels):
        draw.text((PAD, top + PAD + r * (height + PAD) + height / 2 - TEXT / 2), label, fill="black", font=font)
    y = top + grid_h
    for line in legend_lines:
        x = PAD
        for name, colour in line:
            draw.rectangle((x, y + 2, x + TEXT - 4, y + TEXT - 2), fill=colour, outline="black")
            draw.text((x + TEXT, y), name, fill="black", font=font)
            x += TEXT + int(draw.textlength(name, font=font)) + 3 * PAD
        y += TEXT + PAD
    return np.asarray(canvas)


def _legend_lines(legend: Sequence[tuple[str, tuple[int, int, int]]], width: int,
                  font: ImageFont.ImageFont) -> list[list[tuple[str, tuple[int, int, int]]]]:
    """The legend's entries wrapped into lines that fit `width` pixels."""
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    lines: list[list[tuple[str, tuple[int, int, int]]]] = []
    used = 0
    for name, colour in legend:
        need = TEXT + int(measure.textlength(name, font=font)) + 3 * PAD
        if not lines or used + need > width:
            lines.append([])
            used = PAD
        lines[-1].append((name, colour))
        used += need
    return lines


def class_legend(labels: Sequence[torch.Tensor], class_names: Sequence[str] = (),
                 ignore_index: int = 255) -> list[tuple[str, tuple[int, int, int]]]:
    """(name, colour) for every class that appears in `labels`, in class order; 'ignored' last when present."""
    present = sorted({int(c) for lab in labels for c in torch.as_tensor(np.asarray(lab)).unique().tolist()})
    out = [(class_names[c] if c < len(class_names) else f"class {c}", tuple(int(v) for v in _COLOURS[c]))
           for c in present if c != ignore_index]
    if ignore_index in present:
        out.append(("ignored", tuple(int(v) for v in IGNORE_COLOUR)))
    return out


def segmentation_rows(examples: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
                      class_names: Sequence[str] = (), title: str = "") -> np.ndarray:
    """(image uint8 [3,h,w], prediction [H,W], label [H,W]) per example -> one labelled picture: a row per example,
    columns image | prediction | ground truth (the masks over the image), and the legend of the classes drawn."""
    if not examples:
        raise ValueError("no examples to draw")
    height = max(int(image.shape[-2]) for image, _, _ in examples)
    width = max(int(image.shape[-1]) for image, _, _ in examples)
    scale = _scale_for(height)
    size = (height * scale, width * scale)
    rows, drawn = [], []
    for image, pred, label in examples:
        picture = _enlarged_image(image, size)
        pred, label = _enlarged_labels(pred, size), _enlarged_labels(label, size)
        rows.append([picture, overlay(picture, pred), overlay(picture, label)])
        drawn += [pred, label]
    return labelled_grid(rows, ("image", "prediction", "ground truth"), title,
                         legend=class_legend(drawn, class_names))


def video_strip(frames: list[torch.Tensor], masks: list[np.ndarray], truths: list[np.ndarray | None] | None = None,
                frame_numbers: Sequence[int] = (), title: str = "") -> np.ndarray:
    """Frames uint8 [3,H,W] as columns: the propagated masks (0 = background, left undrawn) over the frames, and
    under them the ground truth where it is given -> one labelled picture with the objects' legend."""
    height, width = frames[0].shape[-2:]
    scale = _scale_for(int(height))
    size = (int(height) * scale, int(width) * scale)
    pictures = [_enlarged_image(frame, size) for frame in frames]
    predicted = [_enlarged_labels(mask, size) for mask in masks]
    rows = [[overlay(p, m, skip=(0,)) for p, m in zip(pictures, predicted, strict=True)]]
    labels = ["propagated"]
    drawn = list(predicted)
    if truths is not None and any(t is not None for t in truths):
        truth = [_enlarged_labels(t, size) if t is not None else torch.zeros(size, dtype=torch.long) for t in truths]
        rows.append([overlay(p, t, skip=(0,)) for p, t in zip(pictures, truth, strict=True)])
        labels.append("ground truth")
        drawn += truth
    headings = [f"frame {n}" for n in frame_numbers] if frame_numbers else [f"frame {i}" for i in range(len(frames))]
    legend = [(f"object {name.removeprefix('class ')}", colour) for name, colour in class_legend(drawn)
              if name != "class 0" and name != "ignored"]
    return labelled_grid(rows, headings, title, row_labels=labels, legend=legend)
