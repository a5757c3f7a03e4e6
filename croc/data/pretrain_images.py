"""Listing of the pre-training images (images only, no labels): COCO, COCO+, ImageNet-1k, or any folder.

Each image becomes an ImageRecord(id, source, path). The list is sorted and deterministic, and the ids are
unique and stable across calls (they depend only on the relative paths), so they can key Parquet rows.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

from croc.data.layout import IMAGE_EXTENSIONS, LayoutError, require_dir
from croc.errors import InputError

KINDS = ("coco", "coco+", "imagenet", "folder")

COCO_LAYOUT = """\
<root>/
  train2017/        000000000009.jpg ...
  unlabeled2017/    000000000008.jpg ...   (COCO+ only)"""

IMAGENET_LAYOUT = """\
<root>/
  train/            (or pass the train folder itself as root)
    n01440764/      n01440764_10026.JPEG ...
    n01443537/      ..."""

FOLDER_LAYOUT = """\
<root>/             any tree of images (.jpg .jpeg .png .bmp .webp .tif .tiff, any case)"""


class ImageRecord(NamedTuple):
    """One pre-training image: a unique stable id, where it comes from (split, class folder, sub-folder), its path."""

    id: str
    source: str
    path: Path


def _is_image(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _walk_images(folder: Path) -> list[Path]:
    """Images under `folder`, recursively (following links once per real folder), in a sorted order."""
    out: list[Path] = []
    seen: set[str] = set()
    for current, dirs, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(current)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        dirs.sort()
        out.extend(Path(current) / name for name in sorted(files) if _is_image(name))
    return sorted(out, key=lambda p: p.relative_to(folder).as_posix())


def _flat_images(folder: Path) -> list[Path]:
    with os.scandir(folder) as entries:
        return sorted((Path(e.path) for e in entries if _is_image(e.name) and e.is_file()), key=lambda p: p.name)


def _coco(root: Path, splits: tuple[str, ...]) -> list[ImageRecord]:
    records = []
    for split in splits:
        folder = require_dir(root / split, f"COCO {split} image folder", COCO_LAYOUT)
        images = _flat_images(folder)
        if not images:
            raise LayoutError(f"no images in the COCO {split} folder {folder}\nexpected layout:\n{COCO_LAYOUT}")
        records += [ImageRecord(f"{split}/{p.stem}", split, p) for p in images]
    return records


def _imagenet(root: Path) -> list[ImageRecord]:
    require_dir(root, "ImageNet root", IMAGENET_LAYOUT)
    train = root / "train" if (root / "train").is_dir() else root
    with os.scandir(train) as entries:
        classes = sorted(e.name for e in entries if e.is_dir())
    records = []
    for wnid in classes:
        folder = train / wnid
        records += [ImageRecord(f"{wnid}/{p.relative_to(folder).with_suffix('').as_posix()}", wnid, p)
                    for p in _walk_images(folder)]
    if not records:
        raise LayoutError(f"no images in class sub-folders of the ImageNet train folder {train} "
                          f"(looked for {root / 'train'}, then class folders in {root})\n"
                          f"expected layout:\n{IMAGENET_LAYOUT}")
    return records


def _folder(root: Path) -> list[ImageRecord]:
    require_dir(root, "image folder", FOLDER_LAYOUT)
    records = []
    for path in _walk_images(root):
        relative = path.relative_to(root)
        records.append(ImageRecord(relative.as_posix(), relative.parent.as_posix(), path))
    if not records:
        raise LayoutError(f"no images in the folder {root} (searched recursively)\nexpected layout:\n{FOLDER_LAYOUT}")
    return records


def list_pretrain_images(kind: str, root: str | os.PathLike) -> list[ImageRecord]:
    """All pre-training images of a dataset, sorted and deterministic.

    kind: "coco" (root/train2017/*.jpg), "coco+" (root/train2017 then root/unlabeled2017), "imagenet"
    (root/train/<wnid>/*.JPEG, or root = the train folder itself) or "folder" (every image under root).
    Ids: "<split>/<stem>" (COCO), "<wnid>/<stem>" (ImageNet), the relative path with its extension (folder).
    Sources: the split, the wnid, or the relative sub-folder ("." for root itself).
    """
    root = Path(root)
    if kind == "coco":
        records = _coco(root, ("train2017",))
    elif kind == "coco+":
        records = _coco(root, ("train2017", "unlabeled2017"))
    elif kind == "imagenet":
        records = _imagenet(root)
    elif kind == "folder":
        records = _folder(root)
    else:
        raise InputError(f"unknown pre-training dataset kind {kind!r}; expected one of {', '.join(KINDS)}")
    ids: dict[str, Path] = {}
    for record in records:
        if record.id in ids:
            raise LayoutError(f"two images share the id {record.id!r}: {ids[record.id]} and {record.path}")
        ids[record.id] = record.path
    return records
