"""Unsupervised semantic segmentation: K-Means on frozen dense features + Hungarian matching (docs/evaluation.md).

Protocol, every constant a field of ``UnsupervisedConfig``:

1. Every val image resized to ``image_size`` x ``image_size`` (bicubic, antialiased like PIL's resize, clamped
   to [0, 1]), ImageNet-normalised; the label resized to ``mask_size`` x ``mask_size`` (nearest neighbour with
   pixel-centre alignment, PyTorch's "nearest-exact" = PIL's NEAREST); 255 = ignore.
2. Features of the last ``last_n`` blocks (``DenseFeatures``), no gradients, brought to the mask resolution by
   bilinear upsampling (align_corners=False). With ``cluster_tokens`` the tokens themselves are clustered and the
   cluster map is upsampled to the mask resolution (nearest-exact) instead.
3. Every channel standardised over all (upsampled) vectors of the split (exact streaming float64 mean/variance,
   ddof=0); PCA to ``pca_dim`` fitted on a seeded uniform subsample of at most ``max_pca_vectors`` vectors
   (``sample_seed``); every vector projected.
4. K-Means with K = number of classes, per seed in ``seeds``: faiss, ``iterations`` Lloyd iterations,
   ``restarts`` runs keeping the lowest inertia, trained on a seeded uniform sample of
   ``max_points_per_centroid * K`` vectors (all when fewer), i.e. what faiss's own subsampling does; then every
   vector of the split is assigned to its nearest centroid.
5. Per seed: cluster/class IoU over the valid pixels of the whole split, Hungarian assignment maximising the
   total IoU (``croc.eval.matching.ClusterClassCounts``), split-level mIoU over all classes (absent class = 0).
   With ``classes="present"`` (not the published protocol: for splits that hold only part of their label set,
   such as the synthetic benchmark's), K and the matched classes are the classes with pixels in the split.
6. Report: mean and standard deviation (numpy ``std``, ddof=0, i.e. population std over the seeds) of the
   per-seed mIoU, the per-seed mIoU, and the per-class IoU averaged over seeds.

Memory stays bounded: the only per-split stores are the tokens [N, C, h, w] float16, the projected tokens
[N, d, h, w] float32 and the labels [N, M, M] uint8. Upsampled features exist one batch at a time (assignment)
or not at all (statistics, PCA and K-Means samples are computed from the tokens, see croc/eval/feature_stats.py).
Only the feature pass runs on ``device``; everything after it runs on the CPU.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from croc.errors import InputError
from croc.eval.feature_stats import (
    GridTaps,
    StandardisedPCA,
    UpsampledChannelStats,
    batched_gather,
    channel_statistics,
    fit_standardised_pca,
    project_tokens,
    sample_indices,
)
from croc.eval.features import normalize_images
from croc.eval.matching import ClusterClassCounts
from croc.eval.settings import UnsupervisedConfig

__all__ = [
    "StandardisedPCA",
    "UnsupervisedConfig",
    "UnsupervisedResult",
    "UpsampledChannelStats",
    "assign_clusters",
    "channel_statistics",
    "cluster_and_match",
    "evaluate_tokens",
    "extract_token_features",
    "fit_standardised_pca",
    "prepare_image",
    "prepare_label",
    "project_tokens",
    "run_unsupervised",
    "train_kmeans",
]

IGNORE_INDEX = 255
Progress = Callable[[str, int, int], None]


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


@dataclass
class UnsupervisedResult:
    miou_mean: float  # mean over seeds of the split-level mIoU
    miou_std: float  # numpy std (ddof=0) over seeds
    miou_per_seed: list[float]  # in config.seeds order
    iou_mean: np.ndarray  # [num_classes] float64 per-class IoU, mean over seeds
    class_names: tuple[str, ...]
    # (image uint8 [3, S, S] at image_size, matched prediction int64 [M, M] (255 = unmatched cluster),
    #  label int64 [M, M]) for the first images, seed config.seeds[0]
    examples: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # seconds: extraction, statistics, pca, kmeans, assignment


# ----------------------------------------------------------------------------------------------- feature pass


def prepare_image(image: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 [3, H, W] -> float32 [3, size, size] in [0, 1] (bicubic, antialiased, clamped)."""
    if image.dim() != 3 or image.shape[0] != 3:
        raise InputError(f"image: expected [3, H, W], got {list(image.shape)}")
    x = image.float().unsqueeze(0) / 255.0
    x = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False, antialias=True)
    return x[0].clamp_(0.0, 1.0)


def prepare_label(label: torch.Tensor, size: int) -> torch.Tensor:
    """int [H, W] (classes, 255 = ignore) -> uint8 [size, size] (nearest-exact)."""
    if label.dim() != 2:
        raise InputError(f"label: expected [H, W], got {list(label.shape)}")
    if label.numel() and (int(label.min()) < 0 or int(label.max()) > IGNORE_INDEX):
        raise InputError(f"label holds values outside [0, {IGNORE_INDEX}]")
    x = label.to(torch.float32)[None, None]
    return F.interpolate(x, size=(size, size), mode="nearest-exact")[0, 0].to(torch.uint8)


def _split_size(dataset: Any, config: UnsupervisedConfig) -> int:
    n = len(dataset) if config.max_images is None else min(len(dataset), config.max_images)
    if n < 1:
        raise InputError("the dataset is empty: the unsupervised evaluation needs at least one image")
    return n


def extract_token_features(features: torch.nn.Module, dataset: Any, config: UnsupervisedConfig,
                           device: str | torch.device = "cpu",
                           progress: Progress | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One frozen feature pass over the split.

    ``features``: e.g. ``DenseFeatures(vit, config.last_n)``, images [B, 3, S, S] normalised -> [B, C, h, w];
    moved to ``device``. Returns (tokens float16 CPU [N, C, h, w], labels uint8 CPU [N, M, M]), N = split size,
    S = image_size, M = mask_size. Nothing at the mask resolution except the labels is kept.
    """
    n = _split_size(dataset, config)
    patch = getattr(features, "patch_size", None)
    if patch is not None and config.image_size % patch:
        raise InputError(f"unsupervised.image_size={config.image_size}: must be a multiple of the patch size {patch}")
    features = features.to(device).eval()
    labels = torch.empty(n, config.mask_size, config.mask_size, dtype=torch.uint8)
    tokens: torch.Tensor | None = None
    for start in range(0, n, config.batch_size):
        stop = min(start + config.batch_size, n)
        images = []
        for i in range(start, stop):
            image, label = dataset[i]
            images.append(prepare_image(image, config.image_size))
            labels[i] = prepare_label(label, config.mask_size)
        batch = normalize_images(torch.stack(images)).to(device)  # [B, 3, S, S]
        with torch.inference_mode():
            out = features(batch)  # [B, C, h, w]
        if tokens is None:
            tokens = torch.empty(n, *out.shape[1:], dtype=torch.float16)
        half = out.to(torch.float16).cpu()
        if not torch.isfinite(half).all():
            raise InputError(f"non-finite features (or beyond float16 range) in images {start}..{stop - 1}")
        tokens[start:stop] = half
        if progress is not None:
            progress("extraction", stop, n)
    assert tokens is not None
    return tokens, labels


# ------------------------------------------------------------------------------------- clustering and matching


def _load_faiss() -> Any:
    try:
        import faiss
    except ImportError as error:
        raise InputError("the unsupervised evaluation needs faiss for K-Means: pip install faiss-cpu "
                         "(or faiss-gpu)") from error
    return faiss


def _gather_all(projected: torch.Tensor, taps: GridTaps, index: torch.Tensor, batch_size: int) -> torch.Tensor:
    chunks: list[torch.Tensor] = []
    batched_gather(projected, taps, index, batch_size, chunks.append)
    return torch.cat(chunks) if chunks else torch.empty(0, projected.shape[1])


def train_kmeans(projected: torch.Tensor, taps: GridTaps, num_clusters: int, seed: int,
                 config: UnsupervisedConfig) -> torch.Tensor:
    """K-Means (faiss) on a seeded sample of the upsampled projected vectors -> centroids float32 [K, d].

    projected [N, d, h, w]; ``taps`` gives the clustering grid (mask size, or the token grid itself).
    """
    faiss = _load_faiss()
    total = projected.shape[0] * taps.out_size[0] * taps.out_size[1]
    if total < num_clusters:
        raise InputError(f"K-Means needs at least as many vectors as clusters: {total} vectors for "
                         f"{num_clusters} clusters (use more images or a larger mask_size)")
    n = config.max_points_per_centroid * num_clusters
    index = sample_indices(total, n, torch.Generator().manual_seed(seed))
    sample = _gather_all(projected, taps, index, config.batch_size).numpy()  # [n, d] float32
    kmeans = faiss.Kmeans(sample.shape[1], num_clusters, niter=config.iterations, nredo=config.restarts,
                          seed=seed, max_points_per_centroid=config.max_points_per_centroid, verbose=False)
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(torch.get_num_threads())
    try:
        kmeans.train(np.ascontiguousarray(sample, dtype=np.float32))
    finally:
        faiss.omp_set_num_threads(threads)
    return torch.from_numpy(np.array(kmeans.centroids, dtype=np.float32).reshape(num_clusters, -1))


def _argmin_dim2(scores: torch.Tensor) -> torch.Tensor:
    """[B, S, K, P] -> int64 [B, S, P] index of the minimum over K (the last one on exact ties).

    Same as ``argmin(2)`` up to ties, several times faster on CPU for small K (amin + compare + amax).
    """
    k = scores.shape[2]
    dtype = torch.uint8 if k <= 256 else torch.int32
    ramp = torch.arange(k, dtype=dtype).view(1, 1, k, 1)
    is_min = scores == scores.amin(2, keepdim=True)
    return (is_min.to(dtype) * ramp).amax(2).long()


def assign_clusters(projected: torch.Tensor, centroids: torch.Tensor, mask_size: int,
                    cluster_tokens: bool) -> torch.Tensor:
    """Nearest centroid of every pixel for several centroid sets at once.

    projected [B, d, h, w] float32, centroids [S, K, d] -> cluster ids int64 [S, B, M, M]. Without
    ``cluster_tokens`` the projected tokens are upsampled (bilinear) to M x M first; with it the token-level
    cluster map is upsampled (nearest-exact).
    """
    x = projected if cluster_tokens else F.interpolate(projected, size=(mask_size, mask_size), mode="bilinear",
                                                       align_corners=False)
    b, d, height, width = x.shape
    seeds, k, _ = centroids.shape
    flat_centroids = centroids.reshape(seeds * k, d)  # [S*K, d]
    scores = torch.matmul(flat_centroids, x.reshape(b, d, height * width)).mul_(-2.0)  # [B, S*K, HW]
    scores += flat_centroids.square().sum(1).view(1, -1, 1)  # ||c||^2 - 2 x.c: same argmin as ||x - c||^2
    ids = _argmin_dim2(scores.view(b, seeds, k, height * width)).view(b, seeds, height, width).transpose(0, 1)
    if cluster_tokens and (height, width) != (mask_size, mask_size):
        ids = F.interpolate(ids.float(), size=(mask_size, mask_size), mode="nearest-exact").long()
    return ids.contiguous()  # [S, B, M, M]


@dataclass
class ClusterMatchOutcome:
    miou_per_seed: list[float]
    iou_per_seed: np.ndarray  # [S, num_classes] float64
    mappings: list[np.ndarray]  # per seed [K] int64 cluster -> class (255 = unmatched)
    example_predictions: list[torch.Tensor]  # first seed, matched, int64 [M, M] for the first n_examples images
    timings: dict[str, float]  # kmeans, assignment


def cluster_and_match(projected: torch.Tensor, labels: torch.Tensor, num_classes: int, config: UnsupervisedConfig,
                      progress: Progress | None = None) -> ClusterMatchOutcome:
    """K-Means per seed on the projected tokens [N, d, h, w] and Hungarian matching against labels [N, M, M].

    Every seed's clustering is trained first; one streaming pass then assigns every pixel for all seeds at once
    and accumulates the cluster/class counts of each seed.
    """
    n, _, h, w = projected.shape
    m = config.mask_size
    if labels.shape != (n, m, m):
        raise InputError(f"labels shape {list(labels.shape)}: expected [{n}, {m}, {m}]")
    grid_out = (h, w) if config.cluster_tokens else (m, m)
    taps = GridTaps.create((h, w), grid_out)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    centroids = []
    for i, seed in enumerate(config.seeds):
        centroids.append(train_kmeans(projected, taps, num_classes, seed, config))
        if progress is not None:
            progress("kmeans", i + 1, len(config.seeds))
    timings["kmeans"] = time.perf_counter() - start

    start = time.perf_counter()
    all_centroids = torch.stack(centroids)  # [S, K, d]
    counts = [ClusterClassCounts(num_classes, num_classes, IGNORE_INDEX) for _ in config.seeds]
    n_examples = min(config.n_examples, n)
    example_ids: list[torch.Tensor] = []
    for lo in range(0, n, config.batch_size):
        hi = min(lo + config.batch_size, n)
        ids = assign_clusters(projected[lo:hi], all_centroids, m, config.cluster_tokens)  # [S, B, M, M]
        batch_labels = labels[lo:hi]
        for s, seed_counts in enumerate(counts):
            seed_counts.update(ids[s], batch_labels)
        example_ids.extend(ids[0, : max(0, n_examples - lo)])
        if progress is not None:
            progress("assignment", hi, n)
    mappings, ious = [], []
    for seed_counts in counts:
        mapping, _ = seed_counts.match()
        mappings.append(mapping)
        ious.append(seed_counts.confusion(mapping).iou())
    iou = np.stack(ious)  # [S, C]
    lookup = torch.from_numpy(mappings[0])
    predictions = [lookup[ids] for ids in example_ids]
    timings["assignment"] = time.perf_counter() - start
    return ClusterMatchOutcome([float(v) for v in iou.mean(1)], iou, mappings, predictions, timings)


# --------------------------------------------------------------------------------------------------- pipeline


def present_classes_only(labels: torch.Tensor, class_names: Sequence[str]) -> tuple[torch.Tensor, tuple[str, ...]]:
    """labels [N, M, M] -> the same pixels renumbered 0..P-1 over the P classes present (255 kept), their names."""
    values = torch.unique(labels)
    present = values[values != IGNORE_INDEX].long()
    if present.numel() == 0:
        raise InputError("the split has no labelled pixel: no class is present")
    if int(present.max()) >= len(class_names):
        raise InputError(f"label {int(present.max())} outside the {len(class_names)} classes")
    lookup = torch.full((256,), IGNORE_INDEX, dtype=torch.long)
    lookup[present] = torch.arange(present.numel())
    renumbered = lookup[labels.long()].to(labels.dtype)
    return renumbered, tuple(class_names[int(c)] for c in present)


def evaluate_tokens(tokens: torch.Tensor, labels: torch.Tensor, class_names: Sequence[str],
                    config: UnsupervisedConfig, progress: Progress | None = None,
                    example_images: Sequence[torch.Tensor] = ()) -> UnsupervisedResult:
    """Everything after the feature pass: tokens [N, C, h, w] (float16/32), labels [N, M, M] -> result.

    ``example_images`` (uint8 [3, S, S]) are paired with the first predictions; examples are only reported
    for the images given.
    """
    if config.classes == "present":
        labels, class_names = present_classes_only(labels, class_names)
    num_classes = len(class_names)
    if not 1 <= num_classes < IGNORE_INDEX:
        raise InputError(f"{num_classes} classes: the unsupervised evaluation supports 1..{IGNORE_INDEX - 1}")
    if tokens.dim() != 4 or labels.dim() != 3 or tokens.shape[0] != labels.shape[0]:
        raise InputError(f"tokens {list(tokens.shape)} / labels {list(labels.shape)}: expected [N, C, h, w] and "
                         "[N, M, M] with the same N")
    m = config.mask_size
    grid_out = tuple(tokens.shape[2:]) if config.cluster_tokens else (m, m)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    stats = channel_statistics(tokens, grid_out, config.batch_size, progress)
    timings["statistics"] = time.perf_counter() - start
    start = time.perf_counter()
    pca = fit_standardised_pca(tokens, stats, config.pca_dim, config.max_pca_vectors, config.sample_seed,
                               config.batch_size, progress)
    projected = project_tokens(tokens, pca, config.batch_size, progress)  # [N, d, h, w] float32
    timings["pca"] = time.perf_counter() - start
    outcome = cluster_and_match(projected, labels, num_classes, config, progress)
    timings.update(outcome.timings)
    per_seed = np.asarray(outcome.miou_per_seed)
    count = min(len(example_images), len(outcome.example_predictions))
    examples = [(example_images[i], outcome.example_predictions[i], labels[i].long()) for i in range(count)]
    return UnsupervisedResult(
        miou_mean=float(per_seed.mean()),
        miou_std=float(per_seed.std()),  # ddof=0
        miou_per_seed=outcome.miou_per_seed,
        iou_mean=outcome.iou_per_seed.mean(0),
        class_names=tuple(class_names),
        examples=examples,
        timings=timings,
    )


def _example_images(dataset: Any, config: UnsupervisedConfig) -> list[torch.Tensor]:
    count = min(config.n_examples, _split_size(dataset, config))
    return [(prepare_image(dataset[i][0], config.image_size) * 255.0).round().to(torch.uint8) for i in range(count)]


def run_unsupervised(features: torch.nn.Module, dataset: Any, config: UnsupervisedConfig,
                     device: str | torch.device = "cpu", progress: Progress | None = None) -> UnsupervisedResult:
    """The full protocol on one split.

    ``features``: frozen dense extractor (``DenseFeatures(vit, config.last_n)``): normalised [B, 3, S, S] ->
    [B, C, S/p, S/p]; ``dataset``: ``len``, ``dataset[i]`` -> (uint8 [3, H, W], int64 [H, W], 255 = ignore) and
    ``class_names`` (K = len(class_names) clusters). ``progress(description, done, total)`` is called after
    every batch / seed.
    """
    class_names = tuple(getattr(dataset, "class_names", ()))
    if not class_names:
        raise InputError("dataset.class_names is empty: the number of clusters is the number of classes")
    start = time.perf_counter()
    tokens, labels = extract_token_features(features, dataset, config, device, progress)
    extraction = time.perf_counter() - start
    result = evaluate_tokens(tokens, labels, class_names, config, progress, _example_images(dataset, config))
    result.timings = {"extraction": extraction, **result.timings}
    return result
