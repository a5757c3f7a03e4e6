"""The synthetic benchmark is read by the real readers, exactly as a user's COCO / VOC / DAVIS would be."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from croc.data.davis import Davis2017
from croc.data.decode_views import decode_batch
from croc.data.pretrain_images import list_pretrain_images
from croc.data.segmentation import THING_SUPERCATEGORIES, CocoStuff, CocoThings, PascalVOC
from croc.data.shards import iter_rows, shard_paths, write_shards
from croc.synthetic.benchmark import SynthSpec, generate_benchmark, item_rng, render_scene


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "bench"
    generate_benchmark(out, SynthSpec.tiny(seed=5))
    return out


def test_coco_readers_give_the_rendered_labels(bench: Path) -> None:
    spec = SynthSpec.tiny(seed=5)
    things, stuff = CocoThings(bench / "coco", "val"), CocoStuff(bench / "coco", "val")
    assert len(things) == len(stuff) == spec.coco_val
    image, label = things[0]
    assert image.shape == (3, spec.height, spec.width) and label.shape == (spec.height, spec.width)
    # the first val image is rendered from its own seed: recompute its thing supercategories independently
    scene = render_scene(item_rng(spec.seed, "coco/val", 0), spec.height, spec.width, spec)
    super_of = {c.id: THING_SUPERCATEGORIES.index(c.supercategory) for c in spec.things}
    expected = np.full(scene.thing_ids.shape, 255)
    for cid, index in super_of.items():
        expected[scene.thing_ids == cid] = index
    np.testing.assert_array_equal(label.numpy(), expected)
    _, stuff_label = stuff[0]
    assert ((stuff_label.numpy() == 255) == (scene.thing_ids > 0)).all()  # things are "other" -> ignore
    assert stuff_label[stuff_label != 255].max() < 15


def test_voc_and_davis_and_pretraining_listings(bench: Path) -> None:
    spec = SynthSpec.tiny(seed=5)
    voc = PascalVOC(bench / "voc", "val")
    assert len(voc) == spec.voc_val
    _, label = voc[0]
    assert set(np.unique(label.numpy())) <= set(range(21)) | {255}
    davis = Davis2017(bench / "davis", "val")
    video = davis.videos[0]
    assert len(davis.frames(video)) == spec.frames and davis.num_objects(video) >= 1
    images = list_pretrain_images("coco+", bench / "coco")
    assert len(images) == spec.coco_train + spec.coco_unlabeled


def test_synthetic_images_shard_and_decode(bench: Path, tmp_path: Path) -> None:
    images = list_pretrain_images("coco", bench / "coco")
    manifest = write_shards(images, tmp_path / "shards", images_per_shard=3)
    rows = list(iter_rows(shard_paths(tmp_path / "shards", manifest)))
    out = decode_batch([r["image"] for r in rows], [r["width"] for r in rows], [r["height"] for r in rows],
                       [r["id"] for r in rows], 32, torch.Generator().manual_seed(0))
    assert not out.replaced.any() and out.views.shape == (len(rows), 2, 3, 32, 32)
