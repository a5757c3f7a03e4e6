"""The embedded synthetic benchmark: determinism, official layouts, exact and consistent labels, colour vs texture,
resumability, and videos with smooth motion and occlusion."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from croc.errors import InputError
from croc.synthetic.benchmark import (
    OTHER_ID,
    STUFF_CATALOGUE,
    THING_CATALOGUE,
    VOC_IGNORE,
    SynthSpec,
    generate_benchmark,
    item_rng,
    palette,
    panoptic_ids,
    render_scene,
    render_video,
    semantic_map,
    stuff_pixelmap,
    voc_label,
)

SPEC = SynthSpec.tiny(seed=0)

# The real COCO supercategory of every catalogue category (independent of the catalogue, to catch typos).
COCO_THING_SUPER = {1: "person", 3: "vehicle", 6: "vehicle", 10: "outdoor", 13: "outdoor", 18: "animal",
                    19: "animal", 27: "accessory", 28: "accessory", 37: "sports", 38: "sports", 44: "kitchen",
                    47: "kitchen", 52: "food", 53: "food", 62: "furniture", 63: "furniture", 72: "electronic",
                    73: "electronic", 78: "appliance", 79: "appliance", 84: "indoor", 85: "indoor"}
COCO_STUFF_SUPER = {96: "building", 98: "furniture-stuff", 101: "floor", 102: "ceiling", 103: "ceiling",
                    104: "textile", 106: "sky", 109: "textile", 113: "structural", 118: "floor", 122: "food-stuff",
                    124: "plant", 128: "building", 132: "raw-material", 135: "solid", 139: "raw-material",
                    146: "structural", 148: "water", 149: "ground", 150: "solid", 154: "ground", 155: "water",
                    157: "sky", 165: "furniture-stuff", 169: "plant", 170: "food-stuff", 171: "wall", 172: "wall",
                    180: "window", 181: "window"}
VOC_OF = {1: 15, 3: 7, 6: 6, 18: 12, 19: 13, 44: 5, 62: 9, 63: 18, 72: 20}


def files_of(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def png(path: Path) -> tuple[str, np.ndarray]:
    with Image.open(path) as image:
        return image.mode, np.asarray(image)


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "bench"
    calls: list[tuple[int, int, str]] = []
    manifest = generate_benchmark(out, SPEC, progress=lambda d, t, s: calls.append((d, t, s)))
    assert calls and calls[-1][0] == calls[-1][1]
    assert manifest == json.loads((out / "manifest.json").read_text())
    return out


def test_catalogue_uses_real_coco_categories() -> None:
    assert {c.supercategory for c in THING_CATALOGUE[:12]} == {
        "accessory", "animal", "appliance", "electronic", "food", "furniture", "indoor", "kitchen", "outdoor",
        "person", "sports", "vehicle"}
    assert len({c.supercategory for c in STUFF_CATALOGUE[:15]}) == 15
    for c in THING_CATALOGUE:
        assert COCO_THING_SUPER[c.id] == c.supercategory and c.voc == VOC_OF.get(c.id, 0)
    for c in STUFF_CATALOGUE:
        assert 92 <= c.id <= 182 and COCO_STUFF_SUPER[c.id] == c.supercategory
    assert len({c.id for c in THING_CATALOGUE}) == len(THING_CATALOGUE)
    assert len({c.id for c in STUFF_CATALOGUE}) == len(STUFF_CATALOGUE)
    with pytest.raises(InputError, match="n_thing_classes"):
        SynthSpec(n_thing_classes=0)
    with pytest.raises(InputError, match="objects_min"):
        SynthSpec(objects_min=5, objects_max=2)


def test_layout(bench: Path) -> None:
    coco, ann = bench / "coco", bench / "coco" / "annotations"
    pan_root = ann / "panoptic_annotations"
    thing_ids, stuff_ids = {c.id for c in SPEC.things}, {c.id for c in SPEC.stuff}
    for split, count in (("train", SPEC.coco_train), ("val", SPEC.coco_val), ("unlabeled", SPEC.coco_unlabeled)):
        jpgs = sorted((coco / f"{split}2017").glob("*.jpg"))
        assert len(jpgs) == count
        assert all(len(p.stem) == 12 and p.stem.isdigit() for p in jpgs)
        with Image.open(jpgs[0]) as image:
            assert image.mode == "RGB" and image.size == (SPEC.width, SPEC.height)
        listing = json.loads((ann / (f"instances_{split}2017.json" if split != "unlabeled"
                                     else "image_info_unlabeled2017.json")).read_text())
        assert sorted(i["file_name"] for i in listing["images"]) == [p.name for p in jpgs]
        assert all(f"{i['id']:012d}.jpg" == i["file_name"] and i["width"] == SPEC.width for i in listing["images"])
        if split == "unlabeled":
            continue
        stems = [p.stem for p in jpgs]
        for folder, mode in ((pan_root / f"semantic_segmentation_{split}2017", "L"),
                             (ann / f"stuff_{split}2017_pixelmaps", "L"), (pan_root / f"panoptic_{split}2017", "RGB")):
            assert sorted(p.stem for p in folder.glob("*.png")) == stems
            found, values = png(folder / f"{stems[0]}.png")
            assert found == mode and values.dtype == np.uint8 and values.shape[:2] == (SPEC.height, SPEC.width)
        panoptic = json.loads((pan_root / f"panoptic_{split}2017.json").read_text())
        cats = {c["id"]: c for c in panoptic["categories"]}
        assert {i for i, c in cats.items() if c["isthing"] == 1} == thing_ids
        assert {i for i, c in cats.items() if c["isthing"] == 0} == stuff_ids
        assert all(set(c) >= {"id", "name", "supercategory", "isthing"} for c in cats.values())
        assert sorted(a["file_name"][:-4] for a in panoptic["annotations"]) == stems
        stuff_json = json.loads((ann / f"stuff_{split}2017.json").read_text())
        assert {c["id"] for c in stuff_json["categories"]} == stuff_ids | {OTHER_ID}
        assert {"id": OTHER_ID, "name": "other", "supercategory": "other"} in stuff_json["categories"]

    voc = bench / "voc"
    for split, aug_only in (("trainaug", True), ("val", False)):
        names = (voc / "ImageSets" / "Segmentation" / f"{split}.txt").read_text().split()
        assert len(names) == (SPEC.voc_train if aug_only else SPEC.voc_val)
        for name in names:
            assert (voc / "JPEGImages" / f"{name}.jpg").is_file()
            mode, label = png(voc / "SegmentationClassAug" / f"{name}.png")
            assert mode == "P" and label.shape == (SPEC.height, SPEC.width)
            assert (voc / "SegmentationClass" / f"{name}.png").is_file() != aug_only
            assert set(np.unique(label)) <= {0, VOC_IGNORE, *VOC_OF.values()}
        with Image.open(voc / "SegmentationClassAug" / f"{names[0]}.png") as image:
            assert image.getpalette()[: 3 * 256] == palette()

    davis = bench / "davis"
    assert palette()[:12] == [0, 0, 0, 128, 0, 0, 0, 128, 0, 128, 128, 0]
    for split, count in (("train", SPEC.videos_train), ("val", SPEC.videos_val)):
        videos = (davis / "ImageSets" / "2017" / f"{split}.txt").read_text().split()
        assert len(videos) == count
        for video in videos:
            frames = sorted((davis / "JPEGImages" / "480p" / video).glob("*.jpg"))
            masks = sorted((davis / "Annotations" / "480p" / video).glob("*.png"))
            assert [p.name for p in frames] == [f"{t:05d}.jpg" for t in range(SPEC.frames)]
            assert [p.stem for p in masks] == [p.stem for p in frames]
            with Image.open(masks[0]) as image:
                assert image.mode == "P" and image.getpalette()[: 3 * 256] == palette()
                ids = np.unique(np.asarray(image))
            assert ids[0] == 0 and set(ids[1:]) <= set(range(1, SPEC.video_objects + 1))

    manifest = json.loads((bench / "manifest.json").read_text())
    assert manifest["seed"] == 0 and manifest["spec"]["coco_train"] == SPEC.coco_train
    assert [c["id"] for c in manifest["things"]] == [c.id for c in SPEC.things]
    assert not (bench / ".generating.json").exists() and not list(bench.rglob(".*tmp*"))


def test_deterministic(bench: Path, tmp_path: Path) -> None:
    again = generate_benchmark(tmp_path / "again", SPEC)
    assert again == json.loads((bench / "manifest.json").read_text())
    assert files_of(tmp_path / "again") == files_of(bench)
    generate_benchmark(tmp_path / "other", SynthSpec.tiny(seed=1))
    a, b = files_of(bench), files_of(tmp_path / "other")
    jpgs = [k for k in a if k.endswith(".jpg")]
    assert sorted(a) == sorted(b) and all(a[k] != b[k] for k in jpgs)
    # An item depends only on (seed, stream, index): not on the generator's other draws nor on the counts.
    scene = render_scene(item_rng(0, "coco/val", 1), SPEC.height, SPEC.width, SPEC)
    stem = f"{600_000 + 2:012d}"
    _, semantic = png(bench / "coco/annotations/panoptic_annotations/semantic_segmentation_val2017" / f"{stem}.png")
    assert np.array_equal(semantic, semantic_map(scene))
    first = render_scene(5, 40, 48, SPEC)
    assert all(np.array_equal(x, y) for x, y in zip(first, render_scene(np.random.default_rng(5), 40, 48, SPEC),
                                                    strict=True))


def test_labels_are_exact_and_consistent(bench: Path) -> None:
    ann = bench / "coco" / "annotations"
    things, stuff = {c.id for c in SPEC.things}, {c.id for c in SPEC.stuff}
    for split in ("train", "val"):
        for path in sorted((ann / "panoptic_annotations" / f"semantic_segmentation_{split}2017").glob("*.png")):
            _, semantic = png(path)
            _, stuffmap = png(ann / f"stuff_{split}2017_pixelmaps" / path.name)
            _, pan_rgb = png(ann / "panoptic_annotations" / f"panoptic_{split}2017" / path.name)
            is_thing = np.isin(semantic, list(things))
            assert set(np.unique(semantic)) <= things | stuff
            assert np.array_equal(stuffmap == OTHER_ID, is_thing)
            assert np.array_equal(stuffmap[~is_thing], semantic[~is_thing])
            rgb = pan_rgb.astype(np.int64)
            pan = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
            assert np.array_equal(pan // 1000, semantic)
            # the files are exactly the renderer's labels
            index = int(path.stem) - (1 if split == "train" else 600_001)
            scene = render_scene(item_rng(0, f"coco/{split}", index), SPEC.height, SPEC.width, SPEC)
            assert np.array_equal(stuffmap, stuff_pixelmap(scene)) and np.array_equal(pan, panoptic_ids(scene))
            with Image.open(bench / "coco" / f"{split}2017" / f"{path.stem}.jpg") as image:
                decoded = np.asarray(image).astype(np.float32)
            assert np.abs(decoded - scene.image).mean() < 8  # only JPEG loss (another image: about 40)
        panoptic = json.loads((ann / "panoptic_annotations" / f"panoptic_{split}2017.json").read_text())
        for annotation in panoptic["annotations"]:
            assert sum(s["area"] for s in annotation["segments_info"]) == SPEC.height * SPEC.width
            assert all(s["isthing"] == (s["category_id"] in things) for s in annotation["segments_info"])

    voc = bench / "voc"
    for index, name in enumerate((voc / "ImageSets/Segmentation/val.txt").read_text().split()):
        scene = render_scene(item_rng(0, "voc/val", index), SPEC.height, SPEC.width, SPEC.voc_scenes(),
                             require_voc=True)
        _, label = png(voc / "SegmentationClass" / f"{name}.png")
        _, aug = png(voc / "SegmentationClassAug" / f"{name}.png")
        assert np.array_equal(label, aug) and np.array_equal(label, voc_label(scene, SPEC))
        expected = np.vectorize(lambda i: VOC_OF.get(int(i), 0))(scene.thing_ids)
        kept = label != VOC_IGNORE
        assert np.array_equal(label[kept], expected[kept])  # stuff and non-VOC things are background
        assert (expected > 0).sum() >= 16 and 0 < (~kept).mean() < 0.5
        band = ~kept
        near = np.zeros_like(band)  # every ignored pixel is within 1 pixel of a VOC object
        padded = np.pad(expected > 0, 1)
        for oy in (0, 1, 2):
            for ox in (0, 1, 2):
                near |= padded[oy:oy + SPEC.height, ox:ox + SPEC.width]
        assert near[band].all()


def patch_features(image: np.ndarray, labels: np.ndarray, size: int = 16) -> tuple[np.ndarray, ...]:
    """Per size x size patch: mean RGB, log texture energies (gradients at 3 lags and 4 directions, FFT bands),
    majority label."""
    ph, pw = image.shape[0] // size, image.shape[1] // size
    patches = image[: ph * size, : pw * size].astype(np.float32).reshape(ph, size, pw, size, 3)
    patches = patches.transpose(0, 2, 1, 3, 4).reshape(-1, size, size, 3) / 255
    labs = labels[: ph * size, : pw * size].reshape(ph, size, pw, size).transpose(0, 2, 1, 3).reshape(-1, size**2)
    majority = np.array([np.bincount(row).argmax() for row in labs])
    grey = patches.mean(-1)
    feats = [grey.std((1, 2))]
    for lag in (1, 2, 4):
        feats += [np.abs(grey[:, lag:] - grey[:, :-lag]).mean((1, 2)),
                  np.abs(grey[:, :, lag:] - grey[:, :, :-lag]).mean((1, 2)),
                  np.abs(grey[:, lag:, lag:] - grey[:, :-lag, :-lag]).mean((1, 2)),
                  np.abs(grey[:, lag:, :-lag] - grey[:, :-lag, lag:]).mean((1, 2))]
    power = np.abs(np.fft.rfft2(grey - grey.mean((1, 2), keepdims=True))) ** 2
    radius = np.hypot(np.fft.fftfreq(size)[:, None], np.fft.rfftfreq(size)[None])
    feats += [power[:, (radius >= lo) & (radius < hi)].sum(-1) for lo, hi in ((0, 0.15), (0.15, 0.3), (0.3, 0.45),
                                                                               (0.45, 0.8))]
    return patches.mean((1, 2)), np.log(np.stack(feats, 1) + 1e-6), majority


def test_colour_predicts_class_poorly_but_texture_well() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    spec = SynthSpec()  # the default classes
    colour, texture, labels = [], [], []
    for i in range(48):
        scene = render_scene(item_rng(7, "classifier", i), 96, 128, spec)
        c, t, y = patch_features(scene.image, semantic_map(scene))
        colour.append(c)
        texture.append(t)
        labels.append(y)
    y = np.concatenate(labels)
    train = np.arange(len(y)) < len(y) // 2
    baseline = float((y[~train] == np.bincount(y[train]).argmax()).mean())
    scores = {}
    for name, x in (("colour", np.concatenate(colour)), ("texture", np.concatenate(texture))):
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000)).fit(x[train], y[train])
        scores[name] = model.score(x[~train], y[~train])
    assert len(np.unique(y)) == spec.n_thing_classes + spec.n_stuff_classes
    assert scores["colour"] < baseline + 0.15, (scores, baseline)
    assert scores["texture"] > max(scores["colour"], baseline) + 0.3, (scores, baseline)


def test_resumable_and_skips_complete_output(bench: Path, tmp_path: Path) -> None:
    out = tmp_path / "resume"
    shutil.copytree(bench, out)
    removed = [
        "coco/train2017/000000000002.jpg",
        "coco/annotations/panoptic_annotations/semantic_segmentation_val2017/000000600001.png",
        "coco/annotations/stuff_train2017_pixelmaps/000000000003.png",
        "coco/annotations/panoptic_annotations/panoptic_val2017.json",
        "voc/SegmentationClassAug/2011_000002.png",
        "davis/JPEGImages/480p/synth-val-00/00003.jpg",
        "davis/Annotations/480p/synth-train-00/00000.png",
        "manifest.json",
    ]
    for name in removed:
        (out / name).unlink()
    (out / "coco/train2017/.000000000002.jpg.tmp123").write_bytes(b"half a file")  # a crash's leftover
    generate_benchmark(out, SPEC)
    assert files_of(out) == files_of(bench)

    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    start = time.perf_counter()
    generate_benchmark(out, SPEC)
    assert time.perf_counter() - start < 0.5
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == stamps
    with pytest.raises(InputError, match="another spec"):
        generate_benchmark(out, SynthSpec.tiny(seed=3))
    os.remove(out / "manifest.json")  # an interrupted run of another spec is refused too
    (out / ".generating.json").write_text(json.dumps({"version": "x", "spec": {}}))
    with pytest.raises(InputError, match="another spec"):
        generate_benchmark(out, SPEC)


def test_videos_move_smoothly_with_occlusion(bench: Path) -> None:
    davis = bench / "davis"
    occluded = 0
    for split, count in (("train", SPEC.videos_train), ("val", SPEC.videos_val)):
        for index in range(count):
            clip = render_video(item_rng(0, f"davis/{split}", index), SPEC)
            video = davis / "JPEGImages" / "480p" / f"synth-{split}-{index:02d}"
            masks = np.stack([png(davis / "Annotations" / "480p" / video.name / f"{t:05d}.png")[1]
                              for t in range(SPEC.frames)])
            assert np.array_equal(masks, clip.instances)
            w = SPEC.video_width
            step = np.linalg.norm(np.diff(clip.centres, axis=0), axis=-1)
            assert step.max() < 0.15 * w  # small moves between frames
            assert np.abs(np.diff(clip.centres, 2, axis=0)).max() < 0.05 * w  # along smooth paths
            for k in range(SPEC.video_objects):
                visible = (masks == k + 1).sum(axis=(1, 2))
                assert visible[0] > 0  # every object shows in the first frame (DAVIS propagates from it)
                occluded += int((visible < 0.9 * clip.amodal_area[:, k]).any())
                whole = visible > 0.8 * clip.amodal_area[:, k]  # visible centroids follow the path when unoccluded
                for t in np.nonzero(whole)[0]:
                    ys, xs = np.nonzero(masks[t] == k + 1)
                    assert np.hypot(ys.mean() - clip.centres[t, k, 0], xs.mean() - clip.centres[t, k, 1]) < 0.1 * w
                # consecutive masks overlap
                for t in range(SPEC.frames - 1):
                    a, b = masks[t] == k + 1, masks[t + 1] == k + 1
                    if whole[t] and whole[t + 1]:
                        assert (a & b).sum() / (a | b).sum() > 0.1
    assert occluded >= 1


def test_voc_scenes_are_object_centric() -> None:
    """VOC scenes draw voc_objects things at voc_object_scale: fewer, larger objects than the COCO scenes, so the
    background share of a VOC label map is well below that of a COCO semantic map of the same seed stream."""
    spec = SynthSpec()
    voc = spec.voc_scenes()
    assert (voc.objects_min, voc.objects_max, voc.object_scale) == (1, 3, (0.2, 0.45))
    assert (voc.seed, voc.height, voc.things) == (spec.seed, spec.height, spec.things)

    def background_share(scene_spec: SynthSpec) -> float:
        shares = []
        for i in range(24):
            scene = render_scene(item_rng(3, "voc-share", i), 96, 128, scene_spec, require_voc=True)
            shares.append(float((scene.thing_ids == 0).mean()))
        return float(np.mean(shares))

    coco_share, voc_share = background_share(spec), background_share(voc)
    assert 0.55 < voc_share < 0.85 and coco_share > voc_share + 0.08, (coco_share, voc_share)
    with pytest.raises(InputError, match="voc_objects"):
        SynthSpec(voc_objects=(0, 2))
    with pytest.raises(InputError, match="voc_object_scale"):
        SynthSpec(voc_object_scale=(0.5, 0.3))
