"""Segmentation evaluation datasets with labels: PASCAL VOC 2012, COCO-Things, COCO-Stuff, ADE20K.

Each item is (image uint8 [3, H, W], label int64 [H, W]) with classes 0..num_classes-1 and 255 = ignore. Raw
label values are remapped with one lookup-table index; a raw value the table does not know is an error naming
the file, never a silent class. Layouts are checked at construction (see the *_LAYOUT trees).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from croc.data.layout import (
    IMAGE_EXTENSIONS,
    LayoutError,
    check_same_size,
    files_by_stem,
    read_label,
    read_rgb,
    read_split_file,
    require_dir,
    require_one_of,
)
from croc.errors import InputError

IGNORE_INDEX = 255
VOC_CLASSES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
               "tvmonitor")
THING_SUPERCATEGORIES = ("accessory", "animal", "appliance", "electronic", "food", "furniture", "indoor", "kitchen",
                         "outdoor", "person", "sports", "vehicle")
STUFF_SUPERCATEGORIES = ("building", "ceiling", "floor", "food-stuff", "furniture-stuff", "ground", "plant",
                         "raw-material", "sky", "solid", "structural", "textile", "wall", "water", "window")
_ADE20K_NAMES = (
    "wall|building|sky|floor|tree|ceiling|road|bed|windowpane|grass|cabinet|sidewalk|person|earth|door|table|"
    "mountain|plant|curtain|chair|car|water|painting|sofa|shelf|house|sea|mirror|rug|field|armchair|seat|fence|desk|"
    "rock|wardrobe|lamp|bathtub|railing|cushion|base|box|column|signboard|chest of drawers|counter|sand|sink|"
    "skyscraper|fireplace|refrigerator|grandstand|path|stairs|runway|case|pool table|pillow|screen door|stairway|"
    "river|bridge|bookcase|blind|coffee table|toilet|flower|book|hill|bench|countertop|stove|palm|kitchen island|"
    "computer|swivel chair|boat|bar|arcade machine|hovel|bus|towel|light|truck|tower|chandelier|awning|streetlight|"
    "booth|television receiver|airplane|dirt track|apparel|pole|land|bannister|escalator|ottoman|bottle|buffet|"
    "poster|stage|van|ship|fountain|conveyer belt|canopy|washer|plaything|swimming pool|stool|barrel|basket|"
    "waterfall|tent|bag|minibike|cradle|oven|ball|food|step|tank|trade name|microwave|pot|animal|bicycle|lake|"
    "dishwasher|screen|blanket|sculpture|hood|sconce|vase|traffic light|tray|ashcan|fan|pier|crt screen|plate|"
    "monitor|bulletin board|shower|radiator|glass|clock|flag")
ADE20K_CLASSES = tuple(_ADE20K_NAMES.split("|"))

VOC_LAYOUT = """\
<root>/                           (VOCdevkit/VOC2012)
  JPEGImages/                     2007_000032.jpg ...
  SegmentationClass/              2007_000032.png ...  (val: palette PNGs)
  SegmentationClassAug/           2007_000032.png ...  (trainaug)
  ImageSets/Segmentation/         trainaug.txt  val.txt"""
THINGS_LAYOUT = """\
<root>/
  {split}2017/                    000000000139.jpg ...
  annotations/
    panoptic_annotations/
      panoptic_val2017.json       (or annotations/panoptic_val2017.json)
      semantic_segmentation_{split}2017/   000000000139.png ...  (panoptic category id per pixel, 0 = unlabeled)"""
STUFF_LAYOUT = """\
<root>/
  {split}2017/                    000000000139.jpg ...
  annotations/
    stuff_val2017.json            (or annotations/stuff_annotations/stuff_val2017.json)
    stuff_{split}2017_pixelmaps/  000000000139.png ...  (92-182 stuff, 183 other, 0 unlabeled)"""
ADE20K_LAYOUT = """\
<root>/                           (ADEChallengeData2016)
  images/{training,validation}/       ADE_val_00000001.jpg ...
  annotations/{training,validation}/  ADE_val_00000001.png ...  (0 = ignore, 1..150 classes)"""


class SegmentationDataset:
    """(image, label) pairs with a raw -> class lookup table; subclasses fill the pairs and the table."""

    ignore_index = IGNORE_INDEX
    class_names: tuple[str, ...] = ()

    def __init__(self, ids: Sequence[str], image_paths: Sequence[Path], label_paths: Sequence[Path],
                 lookup: np.ndarray) -> None:
        self.ids, self.image_paths, self.label_paths = list(ids), list(image_paths), list(label_paths)
        self.lookup = lookup

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return len(self.ids)

    def remap(self, raw: np.ndarray, label_path: Path | str = "<array>") -> torch.Tensor:
        """Raw label values -> int64 classes (255 = ignore) with one table index; unknown raw values are an error."""
        if raw.size and (raw.min() < 0 or raw.max() >= len(self.lookup)):
            bad = np.unique(raw[(raw < 0) | (raw >= len(self.lookup))])
            raise LayoutError(f"label map {label_path} holds values {bad[:10].tolist()} that {type(self).__name__} "
                              "does not know")
        label = self.lookup[raw]
        if (label < 0).any():
            raise LayoutError(f"label map {label_path} holds values {np.unique(raw[label < 0])[:10].tolist()} that "
                              f"{type(self).__name__} does not know")
        return torch.from_numpy(label)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image_path, label_path = self.image_paths[index], self.label_paths[index]
        image, raw = read_rgb(image_path), read_label(label_path)
        check_same_size(image, raw, image_path, label_path)
        return image, self.remap(raw, label_path)


def _table(mapping: dict[int, int], size: int = 256) -> np.ndarray:
    """An int64 lookup table, -1 (unknown) except at the keys of `mapping`."""
    table = np.full(max(size, max(mapping, default=0) + 1), -1, dtype=np.int64)
    for raw, cls in mapping.items():
        table[raw] = cls
    return table


def _check_split(split: str, allowed: tuple[str, ...], name: str) -> None:
    if split not in allowed:
        raise InputError(f"{name} split must be one of {', '.join(allowed)}; got {split!r}")


def _pairs_by_stem(image_dir: Path, label_dir: Path, layout: str) -> tuple[list[str], list[Path], list[Path]]:
    """Match every label PNG to the image with the same stem; any unmatched file is an error naming both."""
    images = files_by_stem(image_dir, IMAGE_EXTENSIONS, "image")
    labels = files_by_stem(label_dir, (".png",), "label")
    if not labels:
        raise LayoutError(f"no label PNGs in {label_dir}\nexpected layout:\n{layout}")
    for stem in sorted(labels):
        if stem not in images:
            raise LayoutError(f"label {labels[stem]} has no image: expected {image_dir / (stem + '.jpg')}")
    for stem in sorted(images):
        if stem not in labels:
            raise LayoutError(f"image {images[stem]} has no label: expected {label_dir / (stem + '.png')}")
    ids = sorted(labels)
    return ids, [images[i] for i in ids], [labels[i] for i in ids]


def _load_categories(path: Path) -> list[dict]:
    try:
        categories = json.loads(path.read_text())["categories"]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise LayoutError(f"{path} is not a COCO json with a 'categories' list ({error!r})") from error
    for cat in categories:
        if not isinstance(cat, dict) or "id" not in cat or "supercategory" not in cat:
            raise LayoutError(f"{path}: every category needs 'id' and 'supercategory'; got {cat!r}")
    return categories


def things_lookup_table(categories: Sequence[dict], source: str = "categories") -> np.ndarray:
    """Panoptic category id -> thing supercategory index (THING_SUPERCATEGORIES order); stuff, 0 and 255 -> 255."""
    mapping = {0: IGNORE_INDEX, IGNORE_INDEX: IGNORE_INDEX}
    for cat in categories:
        if "isthing" not in cat:
            raise LayoutError(f"{source}: panoptic category {cat!r} has no 'isthing'")
        if not cat["isthing"]:
            mapping[int(cat["id"])] = IGNORE_INDEX
        elif cat["supercategory"] in THING_SUPERCATEGORIES:
            mapping[int(cat["id"])] = THING_SUPERCATEGORIES.index(cat["supercategory"])
        else:
            raise LayoutError(f"{source}: thing category {cat.get('name')!r} (id {cat['id']}) has supercategory "
                              f"{cat['supercategory']!r}, not one of {', '.join(THING_SUPERCATEGORIES)}")
    return _table(mapping)


def stuff_lookup_table(categories: Sequence[dict], source: str = "categories") -> np.ndarray:
    """COCO-Stuff id -> stuff supercategory index (STUFF_SUPERCATEGORIES order); 183 'other', things, 0 -> 255."""
    mapping = {0: IGNORE_INDEX, 183: IGNORE_INDEX, IGNORE_INDEX: IGNORE_INDEX}
    for cat in categories:
        cid, supercategory = int(cat["id"]), cat["supercategory"]
        if cid <= 91 or cid == 183 or supercategory == "other":
            mapping[cid] = IGNORE_INDEX
        elif supercategory in STUFF_SUPERCATEGORIES:
            mapping[cid] = STUFF_SUPERCATEGORIES.index(supercategory)
        else:
            raise LayoutError(f"{source}: stuff category {cat.get('name')!r} (id {cid}) has supercategory "
                              f"{supercategory!r}, not one of {', '.join(STUFF_SUPERCATEGORIES)}")
    return _table(mapping)


class PascalVOC(SegmentationDataset):
    """PASCAL VOC 2012: 21 classes (background + 20), 255 = ignore; palette PNGs are read as their indices."""

    class_names = VOC_CLASSES

    def __init__(self, root: str | os.PathLike, split: str = "trainaug") -> None:
        _check_split(split, ("trainaug", "train", "val"), "PascalVOC")
        root = require_dir(root, "PASCAL VOC root", VOC_LAYOUT)
        image_dir = require_dir(root / "JPEGImages", "PASCAL VOC image folder", VOC_LAYOUT)
        label_name = "SegmentationClassAug" if split == "trainaug" else "SegmentationClass"
        label_dir = require_dir(root / label_name, f"PASCAL VOC {split} label folder", VOC_LAYOUT)
        ids = read_split_file(root / "ImageSets" / "Segmentation" / f"{split}.txt", f"PASCAL VOC {split} split list",
                              VOC_LAYOUT)
        images = files_by_stem(image_dir, (".jpg", ".jpeg"), "image")
        labels = files_by_stem(label_dir, (".png",), "label")
        for i in ids:
            if i not in images or i not in labels:
                raise LayoutError(f"PASCAL VOC {split} id {i!r} needs both {images.get(i, image_dir / (i + '.jpg'))}"
                                  f" and {labels.get(i, label_dir / (i + '.png'))}; "
                                  f"missing: {'image' if i not in images else 'label'}")
        lookup = _table({**{k: k for k in range(len(VOC_CLASSES))}, IGNORE_INDEX: IGNORE_INDEX})
        super().__init__(ids, [images[i] for i in ids], [labels[i] for i in ids], lookup)


class CocoThings(SegmentationDataset):
    """COCO-Things: panoptic thing categories -> 12 supercategories (alphabetical); stuff and unlabeled -> 255."""

    class_names = THING_SUPERCATEGORIES

    def __init__(self, root: str | os.PathLike, split: str = "train") -> None:
        _check_split(split, ("train", "val"), "CocoThings")
        layout = THINGS_LAYOUT.replace("{split}", split)
        root = require_dir(root, "COCO root", layout)
        panoptic = root / "annotations" / "panoptic_annotations"
        json_path = require_one_of([panoptic / "panoptic_val2017.json", root / "annotations" / "panoptic_val2017.json"],
                                   "COCO panoptic categories json", layout)
        label_dir = require_dir(panoptic / f"semantic_segmentation_{split}2017", "COCO semantic PNG folder", layout)
        image_dir = require_dir(root / f"{split}2017", f"COCO {split} image folder", layout)
        lookup = things_lookup_table(_load_categories(json_path), str(json_path))
        super().__init__(*_pairs_by_stem(image_dir, label_dir, layout), lookup)


class CocoStuff(SegmentationDataset):
    """COCO-Stuff: stuff categories 92-182 -> 15 supercategories (alphabetical); 183 'other' and 0 -> 255."""

    class_names = STUFF_SUPERCATEGORIES

    def __init__(self, root: str | os.PathLike, split: str = "train") -> None:
        _check_split(split, ("train", "val"), "CocoStuff")
        layout = STUFF_LAYOUT.replace("{split}", split)
        root = require_dir(root, "COCO root", layout)
        annotations = root / "annotations"
        json_path = require_one_of([annotations / "stuff_val2017.json",
                                    annotations / "stuff_annotations" / "stuff_val2017.json"],
                                   "COCO-Stuff categories json", layout)
        label_dir = require_dir(annotations / f"stuff_{split}2017_pixelmaps", "COCO-Stuff pixel map folder", layout)
        image_dir = require_dir(root / f"{split}2017", f"COCO {split} image folder", layout)
        lookup = stuff_lookup_table(_load_categories(json_path), str(json_path))
        super().__init__(*_pairs_by_stem(image_dir, label_dir, layout), lookup)


class ADE20K(SegmentationDataset):
    """ADE20K SceneParsing: 150 classes; raw 0 -> 255 (ignore), raw k -> k - 1."""

    class_names = ADE20K_CLASSES

    def __init__(self, root: str | os.PathLike, split: str = "training") -> None:
        _check_split(split, ("training", "validation"), "ADE20K")
        root = require_dir(root, "ADE20K root", ADE20K_LAYOUT)
        image_dir = require_dir(root / "images" / split, f"ADE20K {split} image folder", ADE20K_LAYOUT)
        label_dir = require_dir(root / "annotations" / split, f"ADE20K {split} annotation folder", ADE20K_LAYOUT)
        lookup = _table({0: IGNORE_INDEX, **{k: k - 1 for k in range(1, len(ADE20K_CLASSES) + 1)}})
        super().__init__(*_pairs_by_stem(image_dir, label_dir, ADE20K_LAYOUT), lookup)
