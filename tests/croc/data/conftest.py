"""Fixtures that write tiny fake datasets in the official on-disk layouts (PIL only, a few KB each)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from croc.data.palette import voc_palette

H, W = 20, 24


_THIS_MODULE = sys.modules[__name__]  # taken at import: another folder's conftest.py shares the module name


@pytest.fixture
def fake():
    """This module (writers and the constants the fixtures used), without importing `conftest` by name."""
    return _THIS_MODULE


def write_rgb(path: Path, height: int = H, width: int = W, value: int = 100) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.full((height, width, 3), value, np.uint8)
    array[..., 1] = (value + 50) % 256
    Image.fromarray(array).save(path)
    return path


def write_palette_png(path: Path, indices: np.ndarray, palette: list[int] | None = None) -> Path:
    """An indexed ('P') PNG holding `indices` (uint8) with `palette` (VOC's by default)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    indices = np.ascontiguousarray(indices, dtype=np.uint8)
    image = Image.frombytes("P", (indices.shape[1], indices.shape[0]), indices.tobytes())
    image.putpalette(palette or voc_palette())
    image.save(path)
    return path


def write_grey_png(path: Path, values: np.ndarray, bits: int = 8) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(values, dtype=np.uint16 if bits == 16 else np.uint8)).save(path)
    return path


# ---------------------------------------------------------------- PASCAL VOC
VOC_VAL_LABEL = np.zeros((H, W), np.uint8)
VOC_VAL_LABEL[0, :] = 255
VOC_VAL_LABEL[5:10, 5:10] = 15
VOC_VAL_LABEL[12:, 20:] = 20


@pytest.fixture
def voc_root(tmp_path: Path) -> Path:
    root = tmp_path / "VOCdevkit" / "VOC2012"
    for i, name in enumerate(["2007_000001", "2007_000002", "2007_000003"]):
        write_rgb(root / "JPEGImages" / f"{name}.jpg", value=40 * i)
    aug = np.full((H, W), 7, np.uint8)
    aug[:, :4] = 255
    write_grey_png(root / "SegmentationClassAug" / "2007_000001.png", aug)
    write_grey_png(root / "SegmentationClassAug" / "2007_000002.png", np.zeros((H, W), np.uint8))
    write_palette_png(root / "SegmentationClass" / "2007_000003.png", VOC_VAL_LABEL)
    sets = root / "ImageSets" / "Segmentation"
    sets.mkdir(parents=True)
    (sets / "trainaug.txt").write_text("2007_000001\n2007_000002\n")
    (sets / "val.txt").write_text("2007_000003\n")
    return root


# ---------------------------------------------------------------- COCO (images, panoptic semantic PNGs, stuff maps)
# (id, name, supercategory, isthing): real COCO panoptic categories, one thing per supercategory, and three stuff.
PANOPTIC_CATEGORIES = [
    (1, "person", "person", 1), (3, "car", "vehicle", 1), (10, "traffic light", "outdoor", 1),
    (18, "dog", "animal", 1), (27, "backpack", "accessory", 1), (37, "sports ball", "sports", 1),
    (44, "bottle", "kitchen", 1), (52, "banana", "food", 1), (62, "chair", "furniture", 1),
    (72, "tv", "electronic", 1), (78, "microwave", "appliance", 1), (84, "book", "indoor", 1),
    (149, "road", "ground", 0), (184, "tree-merged", "plant", 0), (187, "sky-other-merged", "sky", 0),
]
# (id, name, supercategory): real COCO-Stuff categories, one per supercategory, and "other".
STUFF_CATEGORIES = [
    (96, "building-other", "building"), (97, "bush", "plant"), (98, "cabinet", "furniture-stuff"),
    (100, "cardboard", "raw-material"), (102, "ceiling-other", "ceiling"), (109, "curtain", "textile"),
    (113, "fence", "structural"), (115, "floor-other", "floor"), (121, "food-other", "food-stuff"),
    (148, "river", "water"), (149, "road", "ground"), (150, "rock", "solid"), (157, "sky-other", "sky"),
    (171, "wall-brick", "wall"), (181, "window-other", "window"), (183, "other", "other"),
]
THINGS_PNGS = {
    "val": {"000000000139": [[1, 3, 149, 0], [18, 44, 184, 27]],
            "000000000285": [[62, 52, 72, 78], [84, 10, 37, 187]]},
    "train": {"000000000009": [[0, 1, 1, 0], [3, 3, 187, 0]]},
}
STUFF_PNGS = {
    "val": {"000000000139": [[96, 102, 115, 121], [98, 149, 97, 100]],
            "000000000285": [[157, 150, 113, 109], [171, 148, 181, 183]]},
    "train": {"000000000009": [[0, 183, 157, 157], [149, 149, 0, 183]]},
}


def panoptic_json(categories=PANOPTIC_CATEGORIES) -> str:
    cats = [{"id": i, "name": n, "supercategory": s, "isthing": t} for i, n, s, t in categories]
    return json.dumps({"info": {}, "images": [], "annotations": [], "categories": cats})


def stuff_json(categories=STUFF_CATEGORIES) -> str:
    cats = [{"id": i, "name": n, "supercategory": s} for i, n, s in categories]
    return json.dumps({"info": {}, "images": [], "annotations": [], "categories": cats})


@pytest.fixture
def coco_root(tmp_path: Path) -> Path:
    """COCO 2017 with panoptic semantic PNGs, stuff pixel maps, and a few unlabeled2017 images."""
    root = tmp_path / "coco"
    ann = root / "annotations"
    panoptic = ann / "panoptic_annotations"
    panoptic.mkdir(parents=True)
    (panoptic / "panoptic_val2017.json").write_text(panoptic_json())
    (ann / "stuff_val2017.json").write_text(stuff_json())
    for split in ("train", "val"):
        for stem, values in THINGS_PNGS[split].items():
            write_rgb(root / f"{split}2017" / f"{stem}.jpg", 2, 4)
            write_grey_png(panoptic / f"semantic_segmentation_{split}2017" / f"{stem}.png", np.array(values))
        for stem, values in STUFF_PNGS[split].items():
            write_grey_png(ann / f"stuff_{split}2017_pixelmaps" / f"{stem}.png", np.array(values))
    for stem in ("000000000008", "000000000001"):
        write_rgb(root / "unlabeled2017" / f"{stem}.jpg", 2, 4)
    return root


# ---------------------------------------------------------------- ADE20K
ADE_RAW = np.zeros((H, W), np.uint8)
ADE_RAW[:, 6:12] = 1
ADE_RAW[:, 12:18] = 150
ADE_RAW[:, 18:] = 37


@pytest.fixture
def ade_root(tmp_path: Path) -> Path:
    root = tmp_path / "ADEChallengeData2016"
    for split, stems in (("training", ["ADE_train_00000002", "ADE_train_00000001"]),
                         ("validation", ["ADE_val_00000001"])):
        for stem in stems:
            write_rgb(root / "images" / split / f"{stem}.jpg")
            write_grey_png(root / "annotations" / split / f"{stem}.png", ADE_RAW)
    return root


# ---------------------------------------------------------------- DAVIS-2017
DAVIS_PALETTE = voc_palette()
DAVIS_PALETTE[3:6] = [200, 0, 10]  # a non-standard colour for id 1, to check the palette is the file's own


def davis_mask(num_objects: int, t: int) -> np.ndarray:
    mask = np.zeros((H, W), np.uint8)
    for k in range(1, num_objects + 1):
        mask[2 * k: 2 * k + 3, t + 3 * k: t + 3 * k + 4] = k
    mask[-1, -1] = 255
    return mask


@pytest.fixture
def davis_root(tmp_path: Path) -> Path:
    root = tmp_path / "DAVIS"
    videos = {"blackswan": 1, "bmx-trees": 2, "bear": 3}
    for video, n in videos.items():
        for t in (2, 0, 1):  # written out of order on purpose
            write_rgb(root / "JPEGImages" / "480p" / video / f"{t:05d}.jpg", value=30 * t)
            write_palette_png(root / "Annotations" / "480p" / video / f"{t:05d}.png", davis_mask(n, t), DAVIS_PALETTE)
    sets = root / "ImageSets" / "2017"
    sets.mkdir(parents=True)
    (sets / "val.txt").write_text("bmx-trees\nblackswan\n")
    (sets / "train.txt").write_text("bear\n")
    return root


# ---------------------------------------------------------------- pre-training images
@pytest.fixture
def imagenet_root(tmp_path: Path) -> Path:
    root = tmp_path / "imagenet"
    for wnid, stems in (("n01443537", ["n01443537_2", "n01443537_10"]), ("n01440764", ["n01440764_18"])):
        for stem in stems:
            write_rgb(root / "train" / wnid / f"{stem}.JPEG", 4, 4)
    (root / "train" / "n01440764" / "notes.txt").write_text("not an image")
    write_rgb(root / "val" / "ILSVRC2012_val_00000001.JPEG", 4, 4)
    return root


@pytest.fixture
def folder_root(tmp_path: Path) -> Path:
    root = tmp_path / "pictures"
    for relative in ("b.PNG", "a.jpg", "sub/c.jpeg", "sub/deeper/d.Jpg", "sub/e.BMP", "a.png"):
        write_rgb(root / relative, 4, 4)
    (root / "sub" / "readme.md").write_text("no")
    return root
