"""The dataset readers on tiny fake datasets in the official layouts (see conftest.py); expectations written out."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from croc.data.davis import Davis2017
from croc.data.layout import LayoutError
from croc.data.pretrain_images import ImageRecord, list_pretrain_images
from croc.data.segmentation import ADE20K, CocoStuff, CocoThings, PascalVOC, stuff_lookup_table, things_lookup_table
from croc.errors import InputError


def _assert_layout_error(excinfo: pytest.ExceptionInfo, missing: Path, *layout_words: str) -> None:
    message = str(excinfo.value)
    assert str(missing) in message
    assert "expected layout" in message
    for word in layout_words:
        assert word in message


# ------------------------------------------------------------------------------------------------ PASCAL VOC
def test_voc_trainaug_and_val(voc_root: Path, fake) -> None:
    train = PascalVOC(voc_root, "trainaug")
    assert len(train) == 2 and train.ids == ["2007_000001", "2007_000002"]
    assert train.num_classes == 21 and train.class_names[0] == "background" and train.class_names[15] == "person"
    assert train.ignore_index == 255
    image, label = train[0]
    assert image.dtype == torch.uint8 and image.shape == (3, 20, 24)
    assert label.dtype == torch.int64 and label.shape == (20, 24)
    assert (label[:, :4] == 255).all() and (label[:, 4:] == 7).all()

    val = PascalVOC(voc_root, "val")
    assert val.ids == ["2007_000003"]
    _, label = val[0]  # a palette PNG: indices, not colours
    assert torch.equal(label, torch.from_numpy(fake.VOC_VAL_LABEL.astype(np.int64)))
    assert label[0, 0] == 255 and label[5, 5] == 15 and label[15, 21] == 20 and label[15, 0] == 0


def test_voc_wrong_layouts(voc_root: Path) -> None:
    (voc_root / "ImageSets" / "Segmentation" / "val.txt").unlink()
    with pytest.raises(LayoutError) as excinfo:
        PascalVOC(voc_root, "val")
    _assert_layout_error(excinfo, voc_root / "ImageSets" / "Segmentation" / "val.txt", "SegmentationClassAug/")
    shutil.rmtree(voc_root / "SegmentationClassAug")
    with pytest.raises(LayoutError) as excinfo:
        PascalVOC(voc_root, "trainaug")
    _assert_layout_error(excinfo, voc_root / "SegmentationClassAug", "JPEGImages/")
    with pytest.raises(LayoutError) as excinfo:
        PascalVOC(voc_root.parent / "nowhere", "trainaug")
    _assert_layout_error(excinfo, voc_root.parent / "nowhere")
    with pytest.raises(InputError, match="trainaug"):
        PascalVOC(voc_root, "test")


def test_voc_split_id_without_label_names_both_files(voc_root: Path) -> None:
    (voc_root / "ImageSets" / "Segmentation" / "val.txt").write_text("2007_000003\n2007_000002\n")
    with pytest.raises(LayoutError) as excinfo:
        PascalVOC(voc_root, "val")
    message = str(excinfo.value)
    assert str(voc_root / "JPEGImages" / "2007_000002.jpg") in message
    assert str(voc_root / "SegmentationClass" / "2007_000002.png") in message


def test_rgb_label_is_refused(voc_root: Path, fake) -> None:
    fake.write_rgb(voc_root / "SegmentationClassAug" / "2007_000002.png")
    with pytest.raises(LayoutError, match="single-channel"):
        PascalVOC(voc_root, "trainaug")[1]


# ------------------------------------------------------------------------------------------------ COCO-Things
def test_things_remap_hand_made(coco_root: Path) -> None:
    val = CocoThings(coco_root, "val")
    assert val.ids == ["000000000139", "000000000285"] and len(val) == 2
    assert val.num_classes == 12 and val.class_names[9] == "person" and val.class_names[11] == "vehicle"
    image, label = val[0]
    assert image.shape == (3, 2, 4) and image.dtype == torch.uint8 and label.dtype == torch.int64
    # [[person, car, road(stuff), unlabeled], [dog, bottle, tree(stuff), backpack]]
    assert label.tolist() == [[9, 11, 255, 255], [1, 7, 255, 0]]
    # [[chair, banana, tv, microwave], [book, traffic light, sports ball, sky(stuff)]]
    assert val[1][1].tolist() == [[5, 4, 3, 2], [6, 8, 10, 255]]
    train = CocoThings(coco_root, "train")
    assert train.ids == ["000000000009"] and train[0][1].tolist() == [[255, 9, 9, 255], [11, 11, 255, 255]]


def test_things_lookup_table_is_fixed_order(fake) -> None:
    cats = [{"id": i, "name": n, "supercategory": s, "isthing": t} for i, n, s, t in fake.PANOPTIC_CATEGORIES]
    table = things_lookup_table(cats)
    assert table.shape[0] >= 256 and table.dtype == np.int64
    assert [table[i] for i in (0, 1, 3, 18, 27, 149, 187)] == [255, 9, 11, 1, 0, 255, 255]
    # a json without "accessory"/"animal" keeps the same indices for the others
    table = things_lookup_table([c for c in cats if c["supercategory"] not in ("accessory", "animal")])
    assert table[3] == 11 and table[1] == 9 and table[62] == 5 and table[18] == -1
    with pytest.raises(LayoutError, match="unicorn"):
        things_lookup_table([{"id": 5, "name": "x", "supercategory": "unicorn", "isthing": 1}])


def test_things_16_bit_png_and_unknown_ids(coco_root: Path, fake) -> None:
    folder = coco_root / "annotations" / "panoptic_annotations" / "semantic_segmentation_val2017"
    fake.write_grey_png(folder / "000000000139.png", np.array([[1, 3, 187, 0], [18, 184, 27, 62]]), bits=16)
    assert CocoThings(coco_root, "val")[0][1].tolist() == [[9, 11, 255, 255], [1, 255, 0, 5]]
    fake.write_grey_png(folder / "000000000139.png", np.array([[1, 300, 0, 0], [0, 0, 0, 0]]), bits=16)
    with pytest.raises(LayoutError) as excinfo:
        CocoThings(coco_root, "val")[0]
    assert "300" in str(excinfo.value) and str(folder / "000000000139.png") in str(excinfo.value)
    fake.write_grey_png(folder / "000000000139.png", np.array([[1, 2, 0, 0], [0, 0, 0, 0]]))  # 2 (bicycle) not in json
    with pytest.raises(LayoutError, match=r"\[2\]"):
        CocoThings(coco_root, "val")[0]


def test_things_json_locations_and_errors(coco_root: Path, fake) -> None:
    panoptic = coco_root / "annotations" / "panoptic_annotations"
    (panoptic / "panoptic_val2017.json").rename(coco_root / "annotations" / "panoptic_val2017.json")
    assert CocoThings(coco_root, "val")[0][1].tolist() == [[9, 11, 255, 255], [1, 7, 255, 0]]
    (coco_root / "annotations" / "panoptic_val2017.json").unlink()
    with pytest.raises(LayoutError) as excinfo:
        CocoThings(coco_root, "val")
    _assert_layout_error(excinfo, panoptic / "panoptic_val2017.json", "semantic_segmentation_val2017/")
    assert str(coco_root / "annotations" / "panoptic_val2017.json") in str(excinfo.value)
    bad = [*fake.PANOPTIC_CATEGORIES, (999, "gizmo", "gadgets", 1)]
    (panoptic / "panoptic_val2017.json").write_text(fake.panoptic_json(bad))
    with pytest.raises(LayoutError, match="gadgets"):
        CocoThings(coco_root, "val")
    (panoptic / "panoptic_val2017.json").write_text(json.dumps({"images": []}))
    with pytest.raises(LayoutError, match="categories"):
        CocoThings(coco_root, "val")
    shutil.rmtree(panoptic / "semantic_segmentation_train2017")
    with pytest.raises(LayoutError) as excinfo:
        CocoThings(coco_root, "train")
    _assert_layout_error(excinfo, panoptic / "semantic_segmentation_train2017", "train2017/")


def test_things_mismatched_pairs_name_both_files(coco_root: Path, fake) -> None:
    labels = coco_root / "annotations" / "panoptic_annotations" / "semantic_segmentation_val2017"
    (coco_root / "val2017" / "000000000285.jpg").unlink()
    with pytest.raises(LayoutError) as excinfo:
        CocoThings(coco_root, "val")
    assert str(labels / "000000000285.png") in str(excinfo.value)
    assert str(coco_root / "val2017" / "000000000285.jpg") in str(excinfo.value)
    fake.write_rgb(coco_root / "val2017" / "000000000285.jpg", 2, 4)
    fake.write_rgb(coco_root / "val2017" / "000000000777.jpg", 2, 4)  # an image without a label
    with pytest.raises(LayoutError) as excinfo:
        CocoThings(coco_root, "val")
    assert str(coco_root / "val2017" / "000000000777.jpg") in str(excinfo.value)
    assert str(labels / "000000000777.png") in str(excinfo.value)
    (coco_root / "val2017" / "000000000777.jpg").unlink()
    fake.write_rgb(coco_root / "val2017" / "000000000285.jpg", 3, 4)  # a different size, seen when loaded
    dataset = CocoThings(coco_root, "val")
    with pytest.raises(LayoutError) as excinfo:
        dataset[1]
    assert str(coco_root / "val2017" / "000000000285.jpg") in str(excinfo.value)
    assert str(labels / "000000000285.png") in str(excinfo.value)


# ------------------------------------------------------------------------------------------------ COCO-Stuff
def test_stuff_remap_hand_made(coco_root: Path) -> None:
    val = CocoStuff(coco_root, "val")
    assert val.ids == ["000000000139", "000000000285"] and val.num_classes == 15
    assert val.class_names[0] == "building" and val.class_names[14] == "window" and val.ignore_index == 255
    # [[building-other, ceiling-other, floor-other, food-other], [cabinet, road, bush, cardboard]]
    assert val[0][1].tolist() == [[0, 1, 2, 3], [4, 5, 6, 7]]
    # [[sky-other, rock, fence, curtain], [wall-brick, river, window-other, other]]
    assert val[1][1].tolist() == [[8, 9, 10, 11], [12, 13, 14, 255]]
    assert CocoStuff(coco_root, "train")[0][1].tolist() == [[255, 255, 8, 8], [5, 5, 255, 255]]


def test_stuff_lookup_and_json_locations(coco_root: Path, fake) -> None:
    cats = [{"id": i, "name": n, "supercategory": s} for i, n, s in fake.STUFF_CATEGORIES]
    table = stuff_lookup_table(cats)
    assert [table[i] for i in (0, 96, 181, 183, 157)] == [255, 0, 14, 255, 8]
    with pytest.raises(LayoutError, match="liquid"):
        stuff_lookup_table([{"id": 120, "name": "fog", "supercategory": "liquid"}])
    moved = coco_root / "annotations" / "stuff_annotations" / "stuff_val2017.json"
    moved.parent.mkdir()
    (coco_root / "annotations" / "stuff_val2017.json").rename(moved)
    assert CocoStuff(coco_root, "val")[0][1].tolist() == [[0, 1, 2, 3], [4, 5, 6, 7]]
    moved.unlink()
    with pytest.raises(LayoutError) as excinfo:
        CocoStuff(coco_root, "val")
    _assert_layout_error(excinfo, coco_root / "annotations" / "stuff_val2017.json", "stuff_val2017_pixelmaps/")
    moved.write_text(fake.stuff_json())
    shutil.rmtree(coco_root / "annotations" / "stuff_val2017_pixelmaps")
    with pytest.raises(LayoutError) as excinfo:
        CocoStuff(coco_root, "val")
    _assert_layout_error(excinfo, coco_root / "annotations" / "stuff_val2017_pixelmaps")
    shutil.rmtree(coco_root / "train2017")
    with pytest.raises(LayoutError) as excinfo:
        CocoStuff(coco_root, "train")
    _assert_layout_error(excinfo, coco_root / "train2017")


# ------------------------------------------------------------------------------------------------ ADE20K
def test_ade20k_shift(ade_root: Path, fake) -> None:
    train = ADE20K(ade_root, "training")
    assert train.ids == ["ADE_train_00000001", "ADE_train_00000002"] and train.num_classes == 150
    assert train.class_names[0] == "wall" and train.class_names[149] == "flag"
    image, label = train[1]
    assert image.shape == (3, 20, 24) and label.shape == (20, 24) and label.dtype == torch.int64
    assert label[0, 0] == 255 and label[0, 6] == 0 and label[0, 12] == 149 and label[0, 18] == 36
    assert torch.equal(label, torch.from_numpy(np.where(fake.ADE_RAW == 0, 255, fake.ADE_RAW.astype(np.int64) - 1)))
    assert len(ADE20K(ade_root, "validation")) == 1
    fake.write_grey_png(ade_root / "annotations" / "validation" / "ADE_val_00000001.png", np.full((20, 24), 151))
    with pytest.raises(LayoutError, match="151"):
        ADE20K(ade_root, "validation")[0]


def test_ade20k_wrong_layout(ade_root: Path) -> None:
    shutil.rmtree(ade_root / "annotations" / "validation")
    with pytest.raises(LayoutError) as excinfo:
        ADE20K(ade_root, "validation")
    _assert_layout_error(excinfo, ade_root / "annotations" / "validation", "images/{training,validation}/")
    (ade_root / "images" / "training" / "ADE_train_00000002.jpg").unlink()
    with pytest.raises(LayoutError) as excinfo:
        ADE20K(ade_root, "training")
    assert str(ade_root / "annotations" / "training" / "ADE_train_00000002.png") in str(excinfo.value)
    assert str(ade_root / "images" / "training" / "ADE_train_00000002.jpg") in str(excinfo.value)


# ------------------------------------------------------------------------------------------------ DAVIS-2017
def test_davis_val(davis_root: Path, fake) -> None:
    davis = Davis2017(davis_root, "val")
    assert davis.videos == ["bmx-trees", "blackswan"] and len(davis) == 2
    frames = davis.frames("blackswan")
    assert [p.name for p in frames] == ["00000.jpg", "00001.jpg", "00002.jpg"]
    assert frames[0] == davis_root / "JPEGImages" / "480p" / "blackswan" / "00000.jpg"
    assert [p.name for p in davis.annotation_paths("bmx-trees")] == ["00000.png", "00001.png", "00002.png"]
    frame = davis.load_frame(frames[1])
    assert frame.dtype == torch.uint8 and frame.shape == (3, 20, 24)
    first = davis.first_annotation("bmx-trees")
    assert first.dtype == torch.int64 and first.shape == (20, 24)
    assert first[2, 3] == 1 and first[4, 6] == 2 and first[-1, -1] == 255 and first[0, 0] == 0
    assert sorted(torch.unique(first).tolist()) == [0, 1, 2, 255]
    later = davis.load_annotation(davis.annotation_paths("bmx-trees")[2])
    assert later[2, 5] == 1 and later[2, 4] == 0
    assert davis.num_objects("blackswan") == 1 and davis.num_objects("bmx-trees") == 2
    palette = davis.palette("blackswan")
    assert list(palette[:9]) == fake.DAVIS_PALETTE[:9] and list(palette[:768]) == fake.DAVIS_PALETTE
    frame, annotation = davis.load_pair("bmx-trees", 1)
    assert frame.shape == (3, 20, 24) and annotation[2, 4] == 1
    assert Davis2017(davis_root, "train").videos == ["bear"] and Davis2017(davis_root, "train").num_objects("bear") == 3
    with pytest.raises(InputError, match="bear"):
        davis.frames("bear")


def test_davis_wrong_layouts(davis_root: Path) -> None:
    frames = davis_root / "JPEGImages" / "480p"
    masks = davis_root / "Annotations" / "480p"
    (frames / "blackswan" / "00001.jpg").unlink()
    with pytest.raises(LayoutError) as excinfo:
        Davis2017(davis_root, "val")
    assert str(masks / "blackswan" / "00001.png") in str(excinfo.value)
    assert str(frames / "blackswan" / "00001.jpg") in str(excinfo.value)
    (masks / "blackswan" / "00001.png").unlink()
    Davis2017(davis_root, "val")
    (masks / "blackswan" / "00002.png").unlink()  # val: every frame is annotated
    with pytest.raises(LayoutError) as excinfo:
        Davis2017(davis_root, "val")
    assert str(frames / "blackswan" / "00002.jpg") in str(excinfo.value)
    assert str(masks / "blackswan" / "00002.png") in str(excinfo.value)
    shutil.rmtree(frames / "bear")
    with pytest.raises(LayoutError) as excinfo:
        Davis2017(davis_root, "train")
    _assert_layout_error(excinfo, frames / "bear", "ImageSets/2017/")
    (davis_root / "ImageSets" / "2017" / "val.txt").unlink()
    with pytest.raises(LayoutError) as excinfo:
        Davis2017(davis_root, "val")
    _assert_layout_error(excinfo, davis_root / "ImageSets" / "2017" / "val.txt", "Annotations/480p/<video>/")
    with pytest.raises(LayoutError) as excinfo:
        Davis2017(davis_root, "val", resolution="Full-Resolution")
    _assert_layout_error(excinfo, davis_root / "JPEGImages" / "Full-Resolution")


def test_davis_test_dev_needs_only_first_annotation(davis_root: Path) -> None:
    masks = davis_root / "Annotations" / "480p" / "bear"
    (masks / "00001.png").unlink()
    (masks / "00002.png").unlink()
    (davis_root / "ImageSets" / "2017" / "test-dev.txt").write_text("bear\n")
    davis = Davis2017(davis_root, "test-dev")
    assert len(davis.frames("bear")) == 3 and len(davis.annotation_paths("bear")) == 1
    (masks / "00000.png").rename(masks / "00001.png")
    with pytest.raises(LayoutError, match="first frame"):
        Davis2017(davis_root, "test-dev")


# ------------------------------------------------------------------------------------------------ pre-training
def test_pretrain_coco_and_coco_plus(coco_root: Path) -> None:
    coco = list_pretrain_images("coco", coco_root)
    assert coco == [ImageRecord("train2017/000000000009", "train2017", coco_root / "train2017" / "000000000009.jpg")]
    plus = list_pretrain_images("coco+", coco_root)
    assert [r.id for r in plus] == ["train2017/000000000009", "unlabeled2017/000000000001",
                                    "unlabeled2017/000000000008"]
    assert [r.source for r in plus] == ["train2017", "unlabeled2017", "unlabeled2017"]
    assert plus == list_pretrain_images("coco+", str(coco_root))
    shutil.rmtree(coco_root / "unlabeled2017")
    with pytest.raises(LayoutError) as excinfo:
        list_pretrain_images("coco+", coco_root)
    _assert_layout_error(excinfo, coco_root / "unlabeled2017", "train2017/")
    for path in (coco_root / "train2017").iterdir():
        path.unlink()
    with pytest.raises(LayoutError, match=str(coco_root / "train2017")):
        list_pretrain_images("coco", coco_root)


def test_pretrain_imagenet(imagenet_root: Path) -> None:
    records = list_pretrain_images("imagenet", imagenet_root)
    assert [r.id for r in records] == ["n01440764/n01440764_18", "n01443537/n01443537_10", "n01443537/n01443537_2"]
    assert [r.source for r in records] == ["n01440764", "n01443537", "n01443537"]
    assert records[0].path == imagenet_root / "train" / "n01440764" / "n01440764_18.JPEG"
    assert list_pretrain_images("imagenet", imagenet_root / "train") == records
    empty = imagenet_root.parent / "empty"
    empty.mkdir()
    with pytest.raises(LayoutError) as excinfo:
        list_pretrain_images("imagenet", empty)
    _assert_layout_error(excinfo, empty / "train", "n01440764/")


def test_pretrain_folder(folder_root: Path, tmp_path: Path) -> None:
    records = list_pretrain_images("folder", folder_root)
    assert [r.id for r in records] == ["a.jpg", "a.png", "b.PNG", "sub/c.jpeg", "sub/deeper/d.Jpg", "sub/e.BMP"]
    assert [r.source for r in records] == [".", ".", ".", "sub", "sub/deeper", "sub"]
    assert len({r.id for r in records}) == len(records)
    assert list_pretrain_images("folder", folder_root) == records
    (tmp_path / "blank").mkdir()
    with pytest.raises(LayoutError, match=str(tmp_path / "blank")):
        list_pretrain_images("folder", tmp_path / "blank")
    with pytest.raises(InputError, match="imagenet"):
        list_pretrain_images("openimages", folder_root)
