"""Layout checks shared by the dataset readers, and the two file readers they use (RGB image, label map).

Every reader checks its layout when it is built, so that a wrong root or a missing split fails at once with a
message that names the missing path and shows the expected tree, instead of failing at the first item.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from croc.errors import InputError

if TYPE_CHECKING:  # torch is imported where a tensor is made: listing images (the CLI) does not load it
    import torch

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


class LayoutError(InputError):
    """A dataset on disk is missing a file or folder, or holds inconsistent files; the message says which."""


def _message(what: str, path: Path | str, expected_layout: str | None, detail: str = "") -> str:
    text = f"{what} not found: {path}" + (f" ({detail})" if detail else "")
    if expected_layout:
        text += "\nexpected layout:\n" + expected_layout.rstrip()
    return text


def require(path: str | os.PathLike, what: str, expected_layout: str | None = None, kind: str = "any") -> Path:
    """Return `path` as a Path if it exists (kind: "dir", "file" or "any"), else raise LayoutError.

    The message names the missing path and `what` it is, then shows `expected_layout` (a short tree).
    """
    path = Path(path)
    if kind not in ("dir", "file", "any"):
        raise InputError(f"kind must be 'dir', 'file' or 'any', got {kind!r}")
    found = path.is_dir() if kind == "dir" else path.is_file() if kind == "file" else path.exists()
    if not found:
        detail = f"exists but is not a {'folder' if kind == 'dir' else 'file'}" if path.exists() else ""
        raise LayoutError(_message(what, path, expected_layout, detail))
    return path


def require_dir(path: str | os.PathLike, what: str, expected_layout: str | None = None) -> Path:
    return require(path, what, expected_layout, kind="dir")


def require_file(path: str | os.PathLike, what: str, expected_layout: str | None = None) -> Path:
    return require(path, what, expected_layout, kind="file")


def require_one_of(paths: Iterable[str | os.PathLike], what: str, expected_layout: str | None = None) -> Path:
    """The first of `paths` that is a file; else a LayoutError naming every place looked at."""
    paths = [Path(p) for p in paths]
    for path in paths:
        if path.is_file():
            return path
    tried = " or ".join(str(p) for p in paths)
    raise LayoutError(_message(what, tried, expected_layout))


def read_split_file(path: Path, what: str, expected_layout: str | None = None) -> list[str]:
    """Non-empty stripped lines of a split list (one id per line, blank lines skipped)."""
    require_file(path, what, expected_layout)
    names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not names:
        raise LayoutError(f"{what} is empty: {path}")
    return names


def files_by_stem(folder: Path, extensions: Iterable[str], what: str) -> dict[str, Path]:
    """{stem: path} of the files in `folder` whose extension (case-insensitive) is one of `extensions`."""
    extensions = tuple(e.lower() for e in extensions)
    out: dict[str, Path] = {}
    with os.scandir(folder) as entries:
        for entry in entries:
            stem, ext = os.path.splitext(entry.name)
            if ext.lower() in extensions and entry.is_file():
                if stem in out:
                    raise LayoutError(f"two {what} files share the id {stem!r}: {out[stem]} and {entry.path}")
                out[stem] = Path(entry.path)
    return out


def read_rgb(path: Path) -> torch.Tensor:
    """An image file as uint8 [3, H, W] (RGB, whatever the mode on disk)."""
    with Image.open(path) as image:
        array = np.asarray(image.convert("RGB"), dtype=np.uint8)
    import torch

    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()


def read_label(path: Path) -> np.ndarray:
    """A single-channel label PNG as its raw integer values [H, W] (int64).

    Palette ('P') PNGs give their indices, not the colours; 8-bit, 16-bit and 32-bit grey PNGs give their values.
    """
    with Image.open(path) as image:
        if image.mode not in ("P", "L", "I", "I;16", "I;16B", "I;16L", "1"):
            raise LayoutError(f"label map {path} has mode {image.mode!r}: expected a single-channel (indexed or "
                              "grey) PNG holding one class id per pixel")
        array = np.asarray(image)
    return array.astype(np.int64)


def check_same_size(image: torch.Tensor, label: np.ndarray | torch.Tensor, image_path: Path, label_path: Path) -> None:
    if tuple(image.shape[-2:]) != tuple(label.shape[-2:]):
        raise LayoutError(f"image and label sizes differ: {image_path} is {tuple(image.shape[-2:])} (H, W) but "
                          f"{label_path} is {tuple(label.shape[-2:])}")
