"""DAVIS label propagation: the affinity against a plain-loop reference, output resizing, frame sizing, videos."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from croc.backbone import create_backbone
from croc.errors import InputError
from croc.eval.davis_metrics import evaluate_video, summarize
from croc.eval.davis_propagation import dense_features, encode_indexed_png, run_davis
from croc.eval.propagation import (
    PropagationConfig,
    affinity_weights,
    first_frame_labels,
    nearest_indices,
    neighborhood_mask,
    normalize_channels,
    propagate_frame,
    propagate_video,
    resized_frame_size,
    soft_labels_to_mask,
)


def unit_vectors(degrees: list[float]) -> torch.Tensor:
    """[N, 2] unit vectors at the given angles."""
    radians = torch.tensor(degrees, dtype=torch.float64) * math.pi / 180
    return torch.stack([radians.cos(), radians.sin()], dim=1).float()


def reference_propagation(target, context, labels, mask, temperature, topk):
    """A plain loop over target tokens, written from the protocol text: [K, N] soft labels."""
    target = target.double().numpy()
    context = context.double().numpy()
    labels = labels.double().numpy()
    m, n_source, _ = context.shape
    out = np.zeros((labels.shape[1], target.shape[0]))
    for t in range(target.shape[0]):
        candidates = []  # (affinity, frame, source)
        for f in range(m):
            for s in range(n_source):
                if mask is not None and not mask[t, s]:
                    continue
                cosine = target[t] @ context[f, s] / np.linalg.norm(target[t]) / np.linalg.norm(context[f, s])
                candidates.append((math.exp(cosine / temperature), f, s))
        kept = sorted(candidates, reverse=True)[:topk]
        total = sum(value for value, _, _ in kept)
        for value, f, s in kept:
            out[:, t] += value / total * labels[f, :, s]
    return out


# ---------------------------------------------------------------------------------------------- affinity


def test_propagate_frame_hand_computed_case():
    target = unit_vectors([0, 30, 60, 90])  # [4 tokens, 2]
    context = torch.stack([unit_vectors([0, 30, 60, 90]), unit_vectors([10, 100, 170, 200])])  # [2, 4, 2]
    labels = torch.tensor([[[1.0, 0, 0, 0], [0, 1, 1, 1]],  # frame 0: token 0 is object 0, the rest object 1
                           [[0.0, 0, 0, 0], [1, 1, 1, 1]]])  # frame 1: all object 1
    soft = propagate_frame(target, context, labels, None, temperature=0.1, topk=2)  # [2, 4]
    # token 0 keeps frame 0 token 0 (cos 1) and frame 1 token 0 (cos 10 deg): weights by hand
    w_same = 1 / (1 + math.exp((math.cos(math.radians(10)) - 1) / 0.1))
    assert w_same == pytest.approx(0.5379, abs=1e-4)
    assert soft[:, 0].tolist() == pytest.approx([w_same, 1 - w_same], abs=1e-5)
    expected = reference_propagation(target, context, labels, None, 0.1, 2)
    np.testing.assert_allclose(soft.double().numpy(), expected, atol=1e-5)


def test_topk_is_joint_across_context_frames():
    target = unit_vectors([0, 45])
    context = torch.stack([unit_vectors([1, 44]), unit_vectors([2, 46]), unit_vectors([90, 135])])  # [3, 2, 2]
    weights = affinity_weights(target, context, None, temperature=0.1, topk=2)  # [2, 3*2]
    assert weights.shape == (2, 6)
    assert ((weights > 0).sum(dim=1) == 2).all()  # 2 in all, not 2 per frame
    assert weights.view(2, 3, 2)[:, 2].abs().max() == 0  # the far frame gets nothing
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(2))


def test_random_case_matches_the_loop_reference_and_weights_sum_to_one():
    generator = torch.Generator().manual_seed(0)
    h, w, m, k, channels = 3, 4, 3, 3, 5
    target = torch.randn(h * w, channels, generator=generator)
    context = torch.randn(m, h * w, channels, generator=generator)
    labels = torch.rand(m, k, h * w, generator=generator)
    mask = neighborhood_mask(h, w, 1)
    soft = propagate_frame(target, context, labels, mask, temperature=0.1, topk=5)
    np.testing.assert_allclose(soft.double().numpy(), reference_propagation(target, context, labels, mask, 0.1, 5),
                               atol=1e-5)
    weights = affinity_weights(target, context, mask, 0.1, 5)
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(h * w))
    assert ((weights > 0).sum(dim=1) == 5).all()


def test_neighborhood_mask_excludes_far_sources():
    mask = neighborhood_mask(1, 4, radius=1)
    assert mask.tolist() == [[True, True, False, False], [True, True, True, False],
                             [False, True, True, True], [False, False, True, True]]
    grid = neighborhood_mask(5, 7, radius=2)  # against a loop
    for t in range(35):
        for s in range(35):
            assert bool(grid[t, s]) == (abs(t // 7 - s // 7) <= 2 and abs(t % 7 - s % 7) <= 2)
    # the most similar source lies outside the neighbourhood: it gets no weight
    target = unit_vectors([0, 90, 90, 90])
    context = unit_vectors([90, 90, 45, 0])[None]  # [1, 4, 2]: token 3 matches target 0 perfectly, but is far
    weights = affinity_weights(target, context, mask, temperature=0.1, topk=2)
    assert weights[0].tolist()[2:] == [0.0, 0.0]
    assert weights[0].sum().item() == pytest.approx(1.0)


# ---------------------------------------------------------------------------------------------- labels in and out


def test_output_upsample_normalise_argmax_and_nearest_resize():
    soft = torch.tensor([[[1.0, 0.6]],  # [K=3, h=1, w=2]
                         [[0.0, 0.2]],
                         [[0.3, 0.3]]])  # constant channel: shifted to 0, not divided
    # x2 bilinear (align_corners=False) of a row (a, b): (a, .75a+.25b, .25a+.75b, b)
    # ch0 (1, .9, .7, .6) -> (1, .75, .25, 0); ch1 (0, .05, .15, .2) -> (0, .25, .75, 1); ch2 -> 0
    upsampled = F.interpolate(soft[None], scale_factor=2, mode="bilinear", align_corners=False)[0]
    normalised = normalize_channels(upsampled)
    torch.testing.assert_close(normalised[:, 0], torch.tensor([[1, 0.75, 0.25, 0], [0, 0.25, 0.75, 1], [0, 0, 0, 0]]))
    mask = soft_labels_to_mask(soft, upsample=2, size=(3, 6))  # argmax (0, 0, 1, 1), nearest 4 -> 6 columns
    assert mask.dtype == torch.int64
    assert mask.tolist() == [[0, 0, 0, 1, 1, 1]] * 3
    small = np.array([[0, 0, 1, 1]] * 2, dtype=np.uint8)
    assert np.array_equal(np.asarray(Image.fromarray(small).resize((6, 3), Image.NEAREST)), mask.numpy())


def test_nearest_resize_is_pils():
    for size_in, size_out in [(832, 854), (4, 6), (854, 52), (480, 30), (30, 480), (117, 53)]:
        row = np.arange(size_in, dtype=np.int32)[None].repeat(2, 0)
        pil = np.asarray(Image.fromarray(row).resize((size_out, 2), Image.NEAREST))[0]
        assert np.array_equal(nearest_indices(size_in, size_out).numpy(), pil), (size_in, size_out)


def test_first_frame_labels_one_hot_on_the_patch_grid():
    mask = torch.zeros(32, 48, dtype=torch.int64)
    mask[:16, :16] = 2
    mask[20, 40] = 3  # a single pixel: lost on the 2x3 grid, but it keeps its channel
    mask[31, 47] = 255  # void -> background
    labels = first_frame_labels(mask, (2, 3))
    assert labels.shape == (4, 6)
    assert labels.argmax(dim=0).tolist() == [2, 0, 0, 0, 0, 0]
    torch.testing.assert_close(labels.sum(dim=0), torch.ones(6))


def test_frame_sizing():
    assert resized_frame_size(480, 854, 480, 64) == (480, 832)  # grid 30x52 for patch 16
    assert tuple(s // 16 for s in resized_frame_size(480, 854, 480, 64)) == (30, 52)
    assert resized_frame_size(854, 480, 480, 64) == (832, 480)  # portrait
    assert resized_frame_size(1080, 1920, 480, 64) == (480, 832)
    assert resized_frame_size(480, 480, 480, 64) == (480, 448)  # square: width rounded, as DINO
    with pytest.raises(InputError, match="too elongated"):
        resized_frame_size(100, 90, 16, 64)  # long side 17 -> 0
    with pytest.raises(InputError, match="topk"):
        PropagationConfig(topk=0)


# ---------------------------------------------------------------------------------------------- whole videos


class ColourFeatures(nn.Module):
    """A 'feature extractor' whose features are the mean normalised colour of each 16x16 patch."""

    patch_size = 16
    channels = 3

    def forward(self, images: torch.Tensor) -> torch.Tensor:  # [B, 3, H, W] -> [B, 3, H/16, W/16]
        return F.avg_pool2d(images, 16)


def coloured_video(frames: int = 6, height: int = 128, width: int = 192) -> tuple[list[torch.Tensor], list]:
    """A blue background, a red box moving right and a green box moving down: patch-aligned, colours kept."""
    images, masks = [], []
    for t in range(frames):
        mask = np.zeros((height, width), dtype=np.int64)
        mask[32:80, 16 * t:64 + 16 * t] = 1
        mask[16 * t:48 + 16 * t, 128:176] = 2
        colours = np.array([[0, 0, 255], [255, 0, 0], [0, 255, 0]], dtype=np.uint8)
        images.append(torch.from_numpy(colours[mask]).permute(2, 0, 1).contiguous())
        masks.append(mask)
    return images, masks


def test_identity_like_features_track_coloured_objects():
    images, masks = coloured_video()
    config = PropagationConfig(short_side=128, size_multiple=16)
    loaders = [lambda image=image: image for image in images]  # loader callables work as well as frames
    predicted = list(propagate_video(ColourFeatures(), loaders, torch.from_numpy(masks[0]), config))
    assert len(predicted) == len(images)
    assert torch.equal(predicted[0], torch.from_numpy(masks[0]))
    assert all(p.shape == (128, 192) and p.dtype == torch.int64 for p in predicted)
    summary = summarize({"colours": evaluate_video([p.numpy() for p in predicted], masks, "colours")})
    assert summary["J&F"] > 0.8


def test_propagate_video_checks_sizes():
    images, masks = coloured_video(frames=3)
    config = PropagationConfig(short_side=128, size_multiple=16)
    with pytest.raises(InputError, match="first mask"):
        list(propagate_video(ColourFeatures(), images, torch.zeros(64, 64, dtype=torch.int64), config))
    with pytest.raises(InputError, match="patch size"):
        list(propagate_video(ColourFeatures(), images, torch.from_numpy(masks[0]),
                             PropagationConfig(short_side=120, size_multiple=8)))
    with pytest.raises(InputError, match="frame 1"):
        list(propagate_video(ColourFeatures(), [images[0], images[1][:, :64]], torch.from_numpy(masks[0]), config))
    no_recent = PropagationConfig(short_side=128, size_multiple=16, n_last_frames=0, neighborhood=0)
    assert len(list(propagate_video(ColourFeatures(), images, torch.from_numpy(masks[0]), no_recent))) == 3


def test_encode_indexed_png_keeps_ids_and_palette(tmp_path):
    palette = [0, 0, 0, 10, 20, 30, 40, 50, 60] + [0] * 759
    mask = torch.tensor([[0, 1], [2, 1]])
    path = tmp_path / "m.png"
    path.write_bytes(encode_indexed_png(mask, palette))
    with Image.open(path) as image:
        assert image.mode == "P"
        assert image.getpalette()[:9] == palette[:9]
        assert np.asarray(image).tolist() == [[0, 1], [2, 1]]
    with pytest.raises(InputError, match=r"0\.\.255"):
        encode_indexed_png(torch.tensor([[256]]), palette)


def test_run_davis_on_the_synthetic_benchmark(synthetic_davis, tmp_path):
    torch.manual_seed(0)
    config = PropagationConfig(short_side=64, size_multiple=16)
    features = dense_features(create_backbone("vit_tiny", 16, 0.0), config)
    calls = []
    result = run_davis(features, synthetic_davis.root, tmp_path / "pred", config,
                       progress=lambda done, total, video: calls.append((done, total, video)))
    assert result.videos == synthetic_davis.videos
    assert calls == [(i + 1, 2, video) for i, video in enumerate(synthetic_davis.videos)]
    assert 0.0 <= result.summary["J&F"] <= 1.0
    assert result.seconds_per_frame > 0
    for video in result.videos:
        annotations = synthetic_davis.annotation_paths(video)
        written = sorted((tmp_path / "pred" / video).iterdir())
        assert [p.name for p in written] == [a.name for a in annotations]
        for path in written:
            with Image.open(path) as image:
                assert image.mode == "P"
                assert image.getpalette() == synthetic_davis.palette(video)
                assert image.size == (96, 64)
        first = np.asarray(Image.open(written[0]))
        assert np.array_equal(first, synthetic_davis.first_annotation(video).numpy())
    with pytest.raises(InputError, match="last_n"):
        run_davis(features, synthetic_davis.root, tmp_path / "other", PropagationConfig(last_n=2))
    one = run_davis(features, synthetic_davis.root, tmp_path / "one", PropagationConfig(short_side=64,
                                                                                       size_multiple=16, max_videos=1))
    assert one.videos == synthetic_davis.videos[:1]
    assert [row["video"] for row in one.summary["per_object"]] == [one.videos[0]] * len(one.summary["per_object"])


class ColourFeatures8(ColourFeatures):
    patch_size = 8

    def forward(self, images: torch.Tensor) -> torch.Tensor:  # [B, 3, H, W] -> [B, 3, H/8, W/8]
        return F.avg_pool2d(images, 8)


@pytest.mark.parametrize(("features", "upsample", "factor"), [
    (ColourFeatures(), None, 16), (ColourFeatures8(), None, 8), (ColourFeatures8(), 4, 4)])
def test_soft_labels_are_upsampled_by_the_patch_size_unless_set(monkeypatch, features, upsample, factor):
    """DINO upsamples the soft labels by the backbone's patch size: 8 for a /8 backbone, not a fixed 16."""
    import croc.eval.propagation as propagation

    seen, original = [], propagation.soft_labels_to_mask
    monkeypatch.setattr(propagation, "soft_labels_to_mask",
                        lambda soft, up, size: seen.append((tuple(soft.shape[1:]), up)) or original(soft, up, size))
    images, masks = coloured_video(frames=3)
    config = PropagationConfig(short_side=128, size_multiple=16, upsample=upsample)
    predicted = list(propagate_video(features, images, torch.from_numpy(masks[0]), config))
    grid = (128 // features.patch_size, 192 // features.patch_size)
    assert seen == [(grid, factor)] * 2 and all(p.shape == (128, 192) for p in predicted)


def test_frames_are_normalised_as_dinos_davis_script():
    """DINO's color_normalize: mean (0.485, 0.456, 0.406), std (0.228, 0.224, 0.225) (red 0.228, not 0.229)."""

    class Recorder(ColourFeatures):
        def forward(self, images: torch.Tensor) -> torch.Tensor:
            self.seen = images
            return super().forward(images)

    features = Recorder()
    frame = torch.full((3, 128, 192), 200, dtype=torch.uint8)
    mask = torch.zeros(128, 192, dtype=torch.int64)
    mask[:64] = 1
    list(propagate_video(features, [frame, frame], mask, PropagationConfig(short_side=128, size_multiple=16)))
    expected = [(200 / 255 - 0.485) / 0.228, (200 / 255 - 0.456) / 0.224, (200 / 255 - 0.406) / 0.225]
    torch.testing.assert_close(features.seen[0, :, 5, 7], torch.tensor(expected), rtol=1e-6, atol=1e-6)
