"""The linear segmentation probe: transforms wiring, split-level mIoU, best/last bookkeeping, lr selection."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from croc.backbone import create_backbone
from croc.errors import InputError
from croc.eval.features import DenseFeatures
from croc.eval.linear_probe import (
    LinearProbeConfig,
    LinearProbeResult,
    confusion_counts,
    masked_cross_entropy,
    run_linear_probe,
)
from croc.eval.miou import ConfusionMatrix

# Colours of 4 classes: each a vertex of their convex hull, so a linear head can separate them exactly.
COLOURS = torch.tensor([[230, 20, 20], [20, 230, 20], [20, 20, 230], [10, 10, 10]], dtype=torch.uint8)
PATCH = 8


class ColourPatches(nn.Module):
    """A fake DenseFeatures: the mean normalised colour of every patch, [B, 3, H, W] -> [B, 3, H/p, W/p]."""

    channels = 3

    def __init__(self, patch_size: int = PATCH) -> None:
        super().__init__()
        self.patch_size = patch_size

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(images, self.patch_size)


class Blocks:
    """In-memory split: 32x32 images made of 8x8 blocks, each block one class coloured COLOURS[class].

    ``ignore_blocks`` blocks per image keep their colour but are labelled 255.
    """

    class_names = ("red", "green", "blue", "black")
    num_classes = 4

    def __init__(self, n: int, seed: int, ignore_blocks: int = 0, size: int = 32) -> None:
        g = torch.Generator().manual_seed(seed)
        grid = size // PATCH
        self.items = []
        for _ in range(n):
            blocks = torch.randint(4, (grid, grid), generator=g)  # [g, g]
            label = blocks.repeat_interleave(PATCH, 0).repeat_interleave(PATCH, 1)  # [S, S]
            image = COLOURS[label].permute(2, 0, 1).contiguous()  # [3, S, S]
            ignored = torch.randperm(grid * grid, generator=g)[:ignore_blocks]
            for flat in ignored.tolist():
                r, c = divmod(flat, grid)
                label[r * PATCH:(r + 1) * PATCH, c * PATCH:(c + 1) * PATCH] = 255
            self.items.append((image, label))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.items[index]


FAST = LinearProbeConfig(image_size=32, epochs=3, lr=0.1, batch_size=4, scale=(1.0, 1.0), rotation_deg=0.0,
                         n_examples=2)


@pytest.fixture(scope="module")
def separable_result() -> LinearProbeResult:
    return run_linear_probe(ColourPatches(), Blocks(12, seed=0), Blocks(6, seed=1), FAST)


def test_separable_classes_reach_miou_near_one():
    # Patch size 1: the logits need no upsampling, so the colour-coded classes are exactly separable.
    config = dataclasses.replace(FAST, epochs=4, lr=0.2)
    r = run_linear_probe(ColourPatches(patch_size=1), Blocks(12, seed=0), Blocks(6, seed=1), config)
    assert r.miou_best > 0.99


def test_patch_features_are_upsampled_bilinearly(separable_result):
    # Patch size 8: bilinear upsampling blurs class boundaries, but most pixels are right.
    r = separable_result
    assert r.miou_best > 0.75
    assert r.iou_best.shape == (4,) and r.iou_last.shape == (4,)
    assert r.class_names == Blocks.class_names
    assert r.lr == 0.1 and r.miou_by_lr == {0.1: r.miou_best}


def test_best_last_and_history(separable_result):
    r = separable_result
    assert [h["epoch"] for h in r.history] == [1, 2, 3]
    assert all(set(h) == {"epoch", "train_loss", "val_miou"} for h in r.history)
    mious = [h["val_miou"] for h in r.history]
    assert r.best_epoch == int(np.argmax(mious)) + 1
    assert r.miou_best == max(mious) >= r.miou_last == mious[-1]
    assert r.miou_best == pytest.approx(r.iou_best.mean()) and r.miou_last == pytest.approx(r.iou_last.mean())
    losses = [h["train_loss"] for h in r.history]
    assert losses[-1] < losses[0]


def test_examples_are_val_images_with_predictions(separable_result):
    val = Blocks(6, seed=1)
    assert len(separable_result.examples) == 2
    for i, (image, pred, label) in enumerate(separable_result.examples):
        assert image.dtype == torch.uint8 and image.shape == (3, 32, 32) and torch.equal(image, val[i][0])
        assert pred.dtype == torch.int64 and pred.shape == (32, 32)
        assert torch.equal(label, val[i][1])


def test_ignore_pixels_never_count():
    # Val: 5 of 16 blocks per image labelled 255; every val image is an example, so the split-level
    # confusion matrix can be rebuilt independently from the returned predictions.
    val = Blocks(4, seed=2, ignore_blocks=5)
    config = dataclasses.replace(FAST, epochs=1, lr=0.02, n_examples=4)
    r = run_linear_probe(ColourPatches(), Blocks(8, seed=3, ignore_blocks=3), val, config)
    matrix = ConfusionMatrix(4)
    for _, pred, label in r.examples:
        matrix.update(pred, label)
    np.testing.assert_allclose(r.iou_best, matrix.iou())
    assert r.miou_best == pytest.approx(matrix.miou())


def test_present_rule_averages_over_the_classes_in_the_val_split():
    # The val labels keep classes 0 and 1 only (the other blocks are ignored): the rule averages over those two.
    val = Blocks(4, seed=2)
    for _, label in val.items:
        label[label >= 2] = 255
    config = dataclasses.replace(FAST, epochs=1, lr=0.02, n_examples=4, classes="present")
    r = run_linear_probe(ColourPatches(), Blocks(8, seed=3), val, config)
    matrix = ConfusionMatrix(4)
    for _, pred, label in r.examples:
        matrix.update(pred, label)
    np.testing.assert_array_equal(matrix.present(), [True, True, False, False])
    np.testing.assert_allclose(r.iou_best, matrix.iou())
    assert r.miou_best == pytest.approx(r.iou_best[:2].mean())
    assert r.history[0]["val_miou"] == pytest.approx(r.iou_best[:2].mean())


def test_confusion_counts_equal_confusion_matrix():
    g = torch.Generator().manual_seed(0)
    target = torch.randint(5, (3, 20, 20), generator=g)
    target[torch.rand(3, 20, 20, generator=g) < 0.3] = 255
    pred = torch.randint(5, (3, 20, 20), generator=g)
    matrix = ConfusionMatrix(5)
    matrix.update(pred, target)
    np.testing.assert_array_equal(confusion_counts(pred, target, 5).numpy(), matrix.matrix)


def test_masked_cross_entropy_ignores_255_and_survives_all_ignored():
    logits = torch.randn(2, 3, 4, 4)
    labels = torch.randint(3, (2, 4, 4))
    labels[0] = 255
    expected = F.cross_entropy(logits[1:], labels[1:])
    torch.testing.assert_close(masked_cross_entropy(logits, labels), expected)
    assert masked_cross_entropy(logits, torch.full_like(labels, 255)).item() == 0.0


def test_same_seed_same_run_with_augmentation():
    config = dataclasses.replace(FAST, epochs=2, scale=(0.75, 1.25), rotation_deg=5.0, max_train_images=8,
                                 max_val_images=3, n_examples=1)
    train, val = Blocks(12, seed=0), Blocks(6, seed=1)
    first = run_linear_probe(ColourPatches(), train, val, config)
    second = run_linear_probe(ColourPatches(), train, val, config)
    assert first.history == second.history
    assert torch.equal(first.examples[0][1], second.examples[0][1])
    other = run_linear_probe(ColourPatches(), train, val, dataclasses.replace(config, seed=1))
    assert other.history != first.history


def test_val_feature_cache_changes_nothing(separable_result):
    uncached = run_linear_probe(ColourPatches(), Blocks(12, seed=0), Blocks(6, seed=1),
                                dataclasses.replace(FAST, cache_val_features_gb=0.0))
    for cached, plain in zip(separable_result.history, uncached.history, strict=True):
        assert cached["train_loss"] == plain["train_loss"]
        assert cached["val_miou"] == pytest.approx(plain["val_miou"], abs=0.01)  # fp16 flips a few near-ties


def test_iteration_mode_picks_the_better_lr():
    config = LinearProbeConfig(iterations=12, crop_size=16, lrs=(1e-6, 0.1), eval_every=5, batch_size=4,
                               scale=(1.0, 1.0), rotation_deg=0.0, n_examples=1)
    calls = []
    r = run_linear_probe(ColourPatches(), Blocks(6, seed=4), Blocks(4, seed=5), config,
                         progress=lambda d, done, total: calls.append((d, done, total)))
    assert [(h["lr"], h["iteration"]) for h in r.history] == [(1e-6, 5), (1e-6, 10), (1e-6, 12),
                                                              (0.1, 5), (0.1, 10), (0.1, 12)]
    assert set(r.miou_by_lr) == {1e-6, 0.1}
    assert r.lr == 0.1 and r.miou_by_lr[0.1] > r.miou_by_lr[1e-6]
    assert r.miou_best == max(h["val_miou"] for h in r.history if h["lr"] == 0.1)
    assert r.best_epoch in (5, 10, 12)
    assert r.examples[0][0].shape == (3, 16, 16)  # val resized to crop_size
    assert ("lr 0.1 train", 12, 12) in calls


@pytest.mark.parametrize(("field", "value"), [
    ("image_size", 0), ("epochs", 0), ("batch_size", 2.5), ("lr", 0.0), ("lr", float("nan")),
    ("scale", (1.25, 0.75)), ("scale", (0.0, 1.0)), ("rotation_deg", -1.0), ("flip", 1),
    ("max_train_images", 0), ("iterations", -5), ("lrs", ()), ("lrs", (1e-3, -1.0)), ("eval_every", 0),
    ("cache_val_features_gb", -1.0), ("n_examples", -1), ("last_n", 0), ("classes", "some"),
])
def test_config_validation_names_the_field(field, value):
    with pytest.raises(InputError, match=rf"LinearProbeConfig\.{field}=.*allowed"):
        LinearProbeConfig(**{field: value})


def test_image_size_must_be_a_patch_multiple():
    with pytest.raises(InputError, match="image_size=36"):
        run_linear_probe(ColourPatches(), Blocks(2, 0), Blocks(2, 1), dataclasses.replace(FAST, image_size=36))


@pytest.fixture(scope="module")
def synthetic_voc(tmp_path_factory) -> Path:
    from croc.synthetic.benchmark import SynthSpec, generate_benchmark

    root = tmp_path_factory.mktemp("synth") / "s"
    generate_benchmark(root, SynthSpec(voc_train=8, voc_val=4, coco_train=4, coco_val=2, coco_unlabeled=0,
                                       videos_train=0, videos_val=1, frames=4, height=64, width=96))
    return root / "voc"


def test_vit_tiny_on_synthetic_voc(synthetic_voc):
    from croc.data.segmentation import PascalVOC

    torch.manual_seed(0)
    features = DenseFeatures(create_backbone("vit_tiny", 16, 0.0), last_n=2)
    train, val = PascalVOC(synthetic_voc, "trainaug"), PascalVOC(synthetic_voc, "val")
    calls = []
    config = LinearProbeConfig(image_size=48, epochs=2, batch_size=4, n_examples=2)
    r = run_linear_probe(features, train, val, config, progress=lambda d, done, total: calls.append((d, done, total)))
    assert 0.0 <= r.miou_last <= r.miou_best <= 1.0
    assert r.iou_best.shape == (21,) and len(r.class_names) == 21
    assert [h["epoch"] for h in r.history] == [1, 2]
    assert ("epoch 2/2 train", 2, 2) in calls and ("epoch 2/2 val", 1, 1) in calls
    image, pred, label = r.examples[0]
    assert image.shape == (3, 48, 48) and pred.shape == (48, 48) and label.shape == (48, 48)
    with pytest.raises(InputError, match="last_n=3"):
        run_linear_probe(features, train, val, dataclasses.replace(config, last_n=3))
