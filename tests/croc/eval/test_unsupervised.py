"""Unsupervised segmentation (K-Means + Hungarian matching): streaming statistics, PCA, clustering, end to end."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from croc.errors import InputError
from croc.eval.feature_stats import (
    GridTaps,
    channel_statistics,
    fit_standardised_pca,
    interpolation_matrix,
    project_tokens,
    sample_indices,
)
from croc.eval.unsupervised import (
    UnsupervisedConfig,
    _argmin_dim2,
    cluster_and_match,
    evaluate_tokens,
    extract_token_features,
    present_classes_only,
    run_unsupervised,
    train_kmeans,
)

FAST = {"seeds": (0, 1, 2), "iterations": 20, "restarts": 5, "batch_size": 3}


def _upsampled_vectors(tokens: torch.Tensor, out: tuple[int, int]) -> np.ndarray:
    up = F.interpolate(tokens.double(), size=out, mode="bilinear", align_corners=False)
    return up.permute(0, 2, 3, 1).reshape(-1, tokens.shape[1]).numpy()  # [N*H*W, C]


class TinyDataset:
    """The SegmentationDataset surface over in-memory pairs."""

    ignore_index = 255

    def __init__(self, pairs: list[tuple[torch.Tensor, torch.Tensor]], class_names: tuple[str, ...]) -> None:
        self.pairs, self.class_names = pairs, class_names

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.pairs[index]


def _separable(n: int, size: int, n_groups: int, channels: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokens [n, C, size, size] = far-apart prototype of each pixel's group + small noise; groups [n, size, size]."""
    g = torch.Generator().manual_seed(seed)
    groups = torch.randint(0, n_groups, (n, size, size), generator=g)
    groups.view(-1)[:n_groups] = torch.arange(n_groups)  # every group present
    prototypes = 10.0 * torch.eye(n_groups, channels)  # equidistant groups
    tokens = prototypes[groups].permute(0, 3, 1, 2) + 0.01 * torch.randn(n, channels, size, size, generator=g)
    return tokens.half(), groups


# ------------------------------------------------------------------------------------ statistics and PCA


def test_streaming_statistics_equal_numpy_on_upsampled_features():
    tokens = (3.0 + 2.0 * torch.randn(5, 6, 7, 5)).half()  # [N, C, h, w], non-zero mean
    for out in [(20, 17), (7, 5)]:
        stats = channel_statistics(tokens, out, batch_size=2)
        vectors = _upsampled_vectors(tokens, out)
        np.testing.assert_allclose(stats.mean.numpy(), vectors.mean(0), rtol=0, atol=1e-6)
        np.testing.assert_allclose(stats.std.numpy(), vectors.std(0), rtol=1e-5)
        assert stats.count == vectors.shape[0]


def test_taps_gather_equals_interpolate():
    tokens = torch.randn(3, 4, 7, 5)
    taps = GridTaps.create((7, 5), (20, 17))
    index = torch.tensor([0, 1, 19, 20, 339, 340, 700, 1019])
    np.testing.assert_allclose(taps.gather(tokens, index).numpy(), _upsampled_vectors(tokens, (20, 17))[index],
                               atol=1e-5)
    rows = interpolation_matrix(7, 20)
    np.testing.assert_allclose(rows.sum(1).numpy(), 1.0)


def test_pca_recovers_known_axes_and_projection_commutes_with_upsampling():
    # Orthonormal axes Q (a Hadamard matrix / 2): every channel then has the same variance, so standardising
    # does not rotate the axes. Population covariance exactly Q diag(lam) Q^T (whitened sample).
    q = torch.tensor([[1, 1, 1, 1], [1, -1, 1, -1], [1, 1, -1, -1], [1, -1, -1, 1]], dtype=torch.float64) / 2
    lam = torch.tensor([8.0, 4.0, 2.0, 1.0], dtype=torch.float64)
    y = torch.randn(6 * 9 * 9, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    y = y - y.mean(0)
    y = y @ torch.linalg.inv(torch.linalg.cholesky(y.T @ y / y.shape[0])).T  # exactly white
    x = y @ torch.diag(lam.sqrt()) @ q.T + torch.tensor([5.0, -1.0, 0.0, 2.0], dtype=torch.float64)
    tokens = x.view(6, 9, 9, 4).permute(0, 3, 1, 2).float()  # [N, C, h, w]
    stats = channel_statistics(tokens, (9, 9), batch_size=4)  # identity grid: vectors = tokens
    pca = fit_standardised_pca(tokens, stats, pca_dim=2, max_vectors=10**9, seed=0, batch_size=4)
    cosine = (pca.components @ q[:, :2]).abs()  # [2, 2]
    np.testing.assert_allclose(cosine.numpy(), np.eye(2), atol=1e-4)
    np.testing.assert_allclose(pca.explained_variance.numpy(), (lam[:2] / lam.mean()).numpy(), rtol=1e-4)

    # project tokens then upsample == upsample then project, also for a sampled (not exact) PCA fit
    tokens = torch.randn(3, 5, 6, 6).half()
    stats = channel_statistics(tokens, (16, 16), batch_size=2)
    pca = fit_standardised_pca(tokens, stats, pca_dim=3, max_vectors=300, seed=1, batch_size=2)
    assert pca.sample_size == 300
    projected = project_tokens(tokens, pca, batch_size=2)  # [N, 3, 6, 6]
    assert projected.shape == (3, 3, 6, 6) and projected.dtype == torch.float32
    a = F.interpolate(projected, size=(16, 16), mode="bilinear", align_corners=False)
    up = F.interpolate(tokens.float(), size=(16, 16), mode="bilinear", align_corners=False)
    b = torch.einsum("dc,bchw->bdhw", pca.components.float(),
                     (up - pca.mean.float().view(1, -1, 1, 1)) / pca.scale.float().view(1, -1, 1, 1))
    b = b - (pca.components @ pca.centre).float().view(1, -1, 1, 1)
    torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_pca_sample_moments_equal_gathered_sample():
    tokens = torch.randn(4, 5, 6, 7).half()
    stats = channel_statistics(tokens, (13, 11), batch_size=3)
    pca = fit_standardised_pca(tokens, stats, pca_dim=5, max_vectors=200, seed=3, batch_size=3)
    index = sample_indices(4 * 13 * 11, 200, torch.Generator().manual_seed(3))
    z = (_upsampled_vectors(tokens, (13, 11))[index.numpy()] - pca.mean.numpy()) / pca.scale.numpy()
    np.testing.assert_allclose(pca.centre.numpy(), z.mean(0), atol=1e-6)
    eigval = np.linalg.eigvalsh(np.cov(z.T, bias=True))[::-1]
    np.testing.assert_allclose(pca.explained_variance.numpy(), eigval, rtol=1e-5, atol=1e-8)


def test_sample_indices_distinct_sorted_deterministic():
    for total, n in [(1000, 30), (100, 60), (10, 50)]:
        a = sample_indices(total, n, torch.Generator().manual_seed(0))
        b = sample_indices(total, n, torch.Generator().manual_seed(0))
        assert torch.equal(a, b) and a.numel() == min(n, total) == a.unique().numel()
        assert torch.equal(a, a.sort().values) and int(a.max()) < total


def test_argmin_matches_torch_argmin():
    scores = torch.randn(2, 3, 7, 50)
    assert torch.equal(_argmin_dim2(scores), scores.argmin(2))


# ------------------------------------------------------------------------------------ clustering and matching


def test_separable_clusters_give_miou_one_for_every_seed():
    tokens, groups = _separable(n=6, size=8, n_groups=3)
    labels = groups.to(torch.uint8)
    config = UnsupervisedConfig(mask_size=8, pca_dim=3, **FAST)
    result = evaluate_tokens(tokens, labels, ("a", "b", "c"), config)
    assert result.miou_per_seed == [1.0, 1.0, 1.0]
    assert result.miou_mean == 1.0 and result.miou_std == 0.0
    np.testing.assert_array_equal(result.iou_mean, [1.0, 1.0, 1.0])
    assert set(result.timings) == {"statistics", "pca", "kmeans", "assignment"}

    # Relabel the classes by a permutation: still 1.0, so the matching (not the cluster ids) does the work.
    perm = torch.tensor([2, 0, 1], dtype=torch.uint8)
    projected = project_tokens(tokens, fit_standardised_pca(tokens, channel_statistics(tokens, (8, 8), 3), 3,
                                                            10**6, 0, 3), 3)
    outcomes = [cluster_and_match(projected, lab, 3, config) for lab in (labels, perm[labels.long()])]
    assert all(o.miou_per_seed == [1.0, 1.0, 1.0] for o in outcomes)
    for first, permuted in zip(outcomes[0].mappings, outcomes[1].mappings, strict=True):
        np.testing.assert_array_equal(permuted, perm.numpy()[first])


def test_absent_class_counts_zero_and_ignore_pixels_never_count():
    # Four feature groups; every pixel of group 3 is labelled 255, and class 3 never occurs in the split.
    tokens, groups = _separable(n=6, size=8, n_groups=4, seed=1)
    labels = torch.where(groups == 3, 255, groups).to(torch.uint8)
    config = UnsupervisedConfig(mask_size=8, pca_dim=4, **FAST)
    result = evaluate_tokens(tokens, labels, ("a", "b", "c", "absent"), config)
    np.testing.assert_array_equal(result.iou_mean, [1.0, 1.0, 1.0, 0.0])
    assert result.miou_per_seed == [0.75] * 3 and result.miou_std == 0.0


def test_present_classes_rule_clusters_into_the_present_count():
    # Three feature groups labelled 0, 2 and 4 of a five-class label set (1 and 3 never occur); one row ignored.
    tokens, groups = _separable(n=6, size=8, n_groups=3, seed=2)
    labels = torch.tensor([0, 2, 4], dtype=torch.uint8)[groups]
    labels[:, 0] = 255
    names = ("a", "b", "c", "d", "e")
    present = evaluate_tokens(tokens, labels, names, UnsupervisedConfig(mask_size=8, pca_dim=4, classes="present",
                                                                        **FAST))
    assert present.class_names == ("a", "c", "e")  # K = 3 clusters, matched to the three present classes
    np.testing.assert_array_equal(present.iou_mean, [1.0, 1.0, 1.0])
    assert present.miou_per_seed == [1.0] * 3
    everything = evaluate_tokens(tokens, labels, names, UnsupervisedConfig(mask_size=8, pca_dim=4, **FAST))
    assert everything.class_names == names  # the protocol's rule: K = 5, absent classes count 0
    np.testing.assert_array_equal(everything.iou_mean[[1, 3]], [0.0, 0.0])
    assert everything.miou_mean <= 3 / 5


def test_present_classes_only_renumbers_and_keeps_ignore():
    labels = torch.tensor([[7, 3, 255], [3, 7, 7]], dtype=torch.uint8)
    renumbered, names = present_classes_only(labels, tuple("abcdefgh"))
    assert names == ("d", "h")
    assert torch.equal(renumbered, torch.tensor([[1, 0, 255], [0, 1, 1]], dtype=torch.uint8))
    with pytest.raises(InputError, match="no labelled pixel"):
        present_classes_only(torch.full((2, 2), 255, dtype=torch.uint8), ("a",))


def test_bounded_memory_store_holds_tokens_only(monkeypatch):
    dataset = _image_dataset(n=5, classes=3)
    features = _vit_features()
    config = UnsupervisedConfig(image_size=32, mask_size=24, pca_dim=4, n_examples=2, **FAST)
    tokens, labels = extract_token_features(features, dataset, config)
    assert tokens.shape == (5, features.channels, 2, 2) and tokens.dtype == torch.float16
    assert labels.shape == (5, 24, 24) and labels.dtype == torch.uint8

    interpolate = F.interpolate
    largest: list[int] = []

    def recording(x, *args, **kwargs):
        out = interpolate(x, *args, **kwargs)
        if out.dim() == 4:
            largest.append(out.shape[0] * out.shape[1])
        return out

    monkeypatch.setattr(torch.nn.functional, "interpolate", recording)
    evaluate_tokens(tokens, labels, dataset.class_names, config)
    # Only the PCA-projected batches are ever upsampled: never the C feature channels, never all N images.
    assert largest and max(largest) <= config.batch_size * max(config.pca_dim, len(config.seeds))


def test_cluster_tokens_equals_default_on_identity_grid_and_is_exact_on_block_labels():
    tokens, groups = _separable(n=4, size=6, n_groups=3, seed=2)
    labels = groups.to(torch.uint8)
    base = UnsupervisedConfig(mask_size=6, pca_dim=3, **FAST)
    a = evaluate_tokens(tokens, labels, ("a", "b", "c"), base)
    b = evaluate_tokens(tokens, labels, ("a", "b", "c"), UnsupervisedConfig(mask_size=6, pca_dim=3,
                                                                           cluster_tokens=True, **FAST))
    assert a.miou_per_seed == b.miou_per_seed
    # Labels constant on the 2x2 block of each token: the nearest-upsampled token cluster map is exact.
    block_labels = labels.repeat_interleave(2, 1).repeat_interleave(2, 2)  # [N, 12, 12]
    config = UnsupervisedConfig(mask_size=12, pca_dim=3, cluster_tokens=True, **FAST)
    first = evaluate_tokens(tokens, block_labels, ("a", "b", "c"), config)
    second = evaluate_tokens(tokens, block_labels, ("a", "b", "c"), config)
    assert first.miou_per_seed == second.miou_per_seed == [1.0, 1.0, 1.0]


# ------------------------------------------------------------------------------------------- end to end


def _vit_features():
    from croc.backbone import create_backbone
    from croc.eval.features import DenseFeatures

    torch.manual_seed(0)
    return DenseFeatures(create_backbone("vit_tiny", 16, 0.0), last_n=1)


def _image_dataset(n: int, classes: int) -> TinyDataset:
    g = torch.Generator().manual_seed(0)
    pairs = []
    for i in range(n):
        image = torch.randint(0, 256, (3, 40 + i, 50), generator=g, dtype=torch.uint8)
        label = torch.randint(0, classes, (40 + i, 50), generator=g)
        label[:3] = 255
        pairs.append((image, label))
    return TinyDataset(pairs, tuple(f"class{c}" for c in range(classes)))


def test_end_to_end_synthetic_voc_deterministic(tmp_path):
    from croc.data.segmentation import PascalVOC
    from croc.synthetic.benchmark import SynthSpec, generate_benchmark

    spec = SynthSpec(voc_train=4, voc_val=8, coco_train=4, coco_val=2, coco_unlabeled=0, videos_train=0,
                     videos_val=1, frames=4, height=64, width=96)
    generate_benchmark(tmp_path / "s", spec)
    dataset = PascalVOC(tmp_path / "s" / "voc", "val")
    features = _vit_features()
    config = UnsupervisedConfig(image_size=64, mask_size=16, seeds=(0, 1), batch_size=4, n_examples=2)
    calls: list[tuple[str, int, int]] = []
    first = run_unsupervised(features, dataset, config, progress=lambda *a: calls.append(a))
    second = run_unsupervised(features, dataset, config)
    assert 0.0 <= first.miou_mean <= 1.0 and len(first.miou_per_seed) == 2
    assert first.miou_per_seed == second.miou_per_seed
    np.testing.assert_array_equal(first.iou_mean, second.iou_mean)
    assert first.iou_mean.shape == (21,) and first.class_names == dataset.class_names
    assert first.miou_std == pytest.approx(float(np.std(first.miou_per_seed)))
    assert list(first.timings) == ["extraction", "statistics", "pca", "kmeans", "assignment"]
    assert len(first.examples) == 2
    image, prediction, label = first.examples[0]
    assert image.shape == (3, 64, 64) and image.dtype == torch.uint8
    assert prediction.shape == label.shape == (16, 16) and prediction.dtype == label.dtype == torch.int64
    assert {c[0] for c in calls} >= {"extraction", "statistics", "pca", "kmeans", "assignment"}
    assert ("extraction", 8, 8) in calls


# ------------------------------------------------------------------------------------------- validation


@pytest.mark.parametrize(("field", "value"), [
    ("image_size", 0), ("mask_size", -1), ("pca_dim", 1.5), ("seeds", ()), ("seeds", (0, 0)), ("seeds", (-1,)),
    ("iterations", 0), ("restarts", True), ("max_points_per_centroid", 0), ("max_pca_vectors", 0),
    ("cluster_tokens", 1), ("batch_size", 0), ("max_images", 0), ("n_examples", -1), ("last_n", 0),
    ("classes", "some"),
])
def test_config_validation_names_the_field(field, value):
    with pytest.raises(InputError, match=f"unsupervised.{field}"):
        UnsupervisedConfig(**{field: value})


def test_runtime_errors_are_clear(monkeypatch):
    assert UnsupervisedConfig(seeds=[3, 4]).seeds == (3, 4)
    tokens = torch.randn(1, 4, 1, 2)
    with pytest.raises(InputError, match="at least as many vectors as clusters"):
        train_kmeans(tokens, GridTaps.create((1, 2), (1, 2)), 3, 0, UnsupervisedConfig())
    tokens, groups = _separable(n=2, size=4, n_groups=2)
    with pytest.raises(InputError, match="pca_dim=9"):
        evaluate_tokens(tokens, groups.to(torch.uint8), ("a", "b"), UnsupervisedConfig(mask_size=4, pca_dim=9))
    with pytest.raises(InputError, match="image_size=40"):
        extract_token_features(_vit_features(), _image_dataset(1, 2), UnsupervisedConfig(image_size=40))
    monkeypatch.setitem(sys.modules, "faiss", None)
    with pytest.raises(InputError, match="pip install faiss-cpu"):
        evaluate_tokens(tokens, groups.to(torch.uint8), ("a", "b"), UnsupervisedConfig(mask_size=4, pca_dim=2))
