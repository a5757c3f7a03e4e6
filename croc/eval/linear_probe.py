"""Linear segmentation probe on frozen dense ViT features (docs/evaluation.md, "Linear segmentation").

Epoch mode (PASCAL VOC 2012, COCO-Things / COCO-Stuff; ``iterations=None``):
- every image resized to ``image_size`` x ``image_size`` (bicubic; mask nearest), 255 = ignore;
- train-time augmentation, per image, batched on the device (see croc.eval.seg_transforms): horizontal flip,
  zoom about the centre in ``scale`` and rotation in +-``rotation_deg``; padding: image 0 (black, before the
  ImageNet normalisation), mask 255;
- features: the last ``last_n`` blocks of the frozen ViT (croc.eval.features.DenseFeatures), [B, C, S/p, S/p];
- head: one 1x1 conv C -> K, logits bilinearly upsampled (align_corners=False) to the mask size, cross-entropy
  with ignore_index 255; Adam (lr ``lr``, no weight decay, no schedule), batch ``batch_size``, ``epochs`` epochs;
- after every epoch: split-level mIoU on the val split (one confusion matrix over all valid pixels at
  ``image_size``, never a per-image average). Reported: the best and the last epoch.

Iteration mode (ADE20K; ``iterations`` set): the same head, trained for ``iterations`` steps of ``batch_size``
random ``crop_size`` crops of the original-size images (padded with 0 / 255 where an image is smaller, then the
same flip / zoom / rotation augmentation), for each learning rate of ``lrs``; evaluated every ``eval_every``
steps and at the end on val images and masks resized to ``crop_size`` x ``crop_size`` (image bicubic, mask
nearest). The result is the learning rate with the best mIoU. This pipeline is deliberately simple and differs
from MMSegmentation's ADE20K recipe (no multi-scale resize to 2048x512 before cropping, no photometric
distortion, no sliding-window or aspect-preserving evaluation); its numbers are not comparable to papers that
use MMSegmentation.

Reproducibility: the head initialisation, the data order, the crops and the augmentation draws come from CPU
generators seeded with ``seed`` (reset for every learning rate). ``max_train_images`` / ``max_val_images`` keep
the first images of a split. On CUDA the frozen feature pass runs under bf16 autocast; the head stays fp32.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, RandomSampler

from croc.errors import InputError
from croc.eval.features import normalize_images
from croc.eval.linear_config import LinearProbeConfig, LinearProbeResult
from croc.eval.linear_data import RandomCrops, ResizedPairs, SegmentationSplit, ShuffledStream, make_loader
from croc.eval.miou import ConfusionMatrix
from croc.eval.seg_transforms import (
    IGNORE_INDEX,
    AffineParams,
    affine_pair,
    sample_affine_params,
)

Progress = Callable[[str, int, int], None]


class FeatureExtractor(Protocol):
    """The surface of croc.eval.features.DenseFeatures the probe uses."""

    channels: int
    patch_size: int

    def __call__(self, images: torch.Tensor) -> torch.Tensor:  # normalised [B,3,H,W] -> [B,C,H/p,W/p]
        ...


# --------------------------------------------------------------------------- model pieces
def make_head(channels: int, num_classes: int, generator: torch.Generator) -> nn.Conv2d:
    """1x1 conv C -> K, initialised like nn.Conv2d (uniform +-1/sqrt(C)) from ``generator`` (no global RNG)."""
    head = nn.Conv2d(channels, num_classes, kernel_size=1)
    bound = 1.0 / math.sqrt(channels)
    with torch.no_grad():
        head.weight.copy_(torch.empty_like(head.weight).uniform_(-bound, bound, generator=generator))
        head.bias.copy_(torch.empty_like(head.bias).uniform_(-bound, bound, generator=generator))
    return head


def extract_features(extractor: FeatureExtractor, images: torch.Tensor,
                     params: AffineParams | None = None, labels: torch.Tensor | None = None,
                     ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """images uint8 [B,3,S,S] (+ labels int64 [B,S,S]) on the device -> features float32 [B,C,S/p,S/p], labels.

    With ``params`` the pair is augmented first (on 0..1 floats, padding 0 / 255), then ImageNet-normalised.
    The frozen pass runs without gradients, under bf16 autocast on CUDA.
    """
    x = images.float() / 255.0  # [B,3,S,S]
    if params is not None:
        x, labels = affine_pair(x, labels, params)
    x = normalize_images(x)
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=x.device.type == "cuda"):
        features = extractor(x)
    return features.float(), labels


def segmentation_logits(head: nn.Module, features: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """features [B,C,h,w] -> logits [B,K,H,W] upsampled bilinearly (align_corners=False) to ``size`` = (H, W)."""
    return F.interpolate(head(features), size=size, mode="bilinear", align_corners=False)


def masked_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over pixels whose label is not 255 (0 when a batch holds none), without a host sync."""
    total = F.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX, reduction="sum")
    valid = (labels != IGNORE_INDEX).sum().clamp_min(1)
    return total / valid


def confusion_counts(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """pred, target int64 [...] (same shape, same device) -> int64 [K, K] counts (rows = target), 255 skipped.

    Fixed-size scatter on the device (no host sync); equals ConfusionMatrix.update for in-range predictions.
    """
    valid = target != IGNORE_INDEX
    sink = num_classes * num_classes  # ignored pixels land in one extra bin, dropped below
    flat = torch.where(valid, target * num_classes + pred, torch.full_like(target, sink)).reshape(-1)
    counts = torch.zeros(sink + 1, dtype=torch.int64, device=pred.device)
    counts.index_add_(0, flat, torch.ones_like(flat))
    return counts[:sink].reshape(num_classes, num_classes)


# --------------------------------------------------------------------------- validation
class _ValFeatures:
    """Val batches as (features float32 [B,C,h,w], labels int64 [B,S,S]) on the device.

    The first pass extracts the features; when they fit in ``cache_gb`` they are kept (fp16, CPU, labels uint8)
    and replayed later. The first ``n_examples`` resized images are kept for the result's pictures.
    """

    def __init__(self, loader: DataLoader, extractor: FeatureExtractor, device: torch.device, cache_gb: float,
                 n_examples: int) -> None:
        self.loader, self.extractor, self.device, self.n_examples = loader, extractor, device, n_examples
        size = loader.dataset.size
        grid = size // extractor.patch_size
        feature_bytes = len(loader.dataset) * extractor.channels * grid * grid * 2
        self.use_cache = feature_bytes <= cache_gb * 1e9
        self.cache: list[tuple[torch.Tensor, torch.Tensor]] | None = None
        self.example_images: list[torch.Tensor] = []

    def __len__(self) -> int:
        return len(self.loader)

    def batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if self.cache is not None:
            for features, labels in self.cache:
                yield features.to(self.device).float(), labels.to(self.device).long()
            return
        cache: list[tuple[torch.Tensor, torch.Tensor]] = []
        for images, labels in self.loader:
            if len(self.example_images) < self.n_examples:
                self.example_images.extend(images[: self.n_examples - len(self.example_images)])
            images = images.to(self.device, non_blocking=True)
            labels = labels.to(self.device, non_blocking=True)
            features, _ = extract_features(self.extractor, images)
            if self.use_cache:  # every evaluation, this first one included, sees the same fp16-rounded features
                half = features.half()
                cache.append((half.cpu(), labels.to(torch.uint8).cpu()))
                features = half.float()
            yield features, labels
        if self.use_cache:
            self.cache = cache


def evaluate(head: nn.Module, val: _ValFeatures, num_classes: int, n_examples: int,
             progress: Progress | None = None, description: str = "val") -> tuple[ConfusionMatrix, list[torch.Tensor]]:
    """Split-level confusion matrix of the head on every val pixel, and the predictions [S,S] of the first
    ``n_examples`` images (CPU int64)."""
    head.eval()
    counts = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=val.device)
    predictions: list[torch.Tensor] = []
    with torch.no_grad():
        for step, (features, labels) in enumerate(val.batches(), start=1):
            pred = segmentation_logits(head, features, tuple(labels.shape[-2:])).argmax(dim=1)  # [B,S,S]
            counts += confusion_counts(pred, labels, num_classes)
            if len(predictions) < n_examples:
                predictions.extend(pred[: n_examples - len(predictions)].cpu())
            if progress is not None:
                progress(description, step, len(val))
    matrix = ConfusionMatrix(num_classes, ignore_index=IGNORE_INDEX)
    matrix.add_counts(counts.cpu().numpy())
    head.train()
    return matrix, predictions


# --------------------------------------------------------------------------- training
@dataclass
class _Tracker:
    """History of one learning rate's evaluations; keeps the best (first maximum) and the last."""

    lr: float
    classes: str = "all"  # mIoU over all classes or the present ones
    history: list[dict] = field(default_factory=list)
    best: tuple[float, int, np.ndarray, list[torch.Tensor]] | None = None  # miou, point, iou [K], predictions
    last: tuple[float, np.ndarray] | None = None  # miou, iou [K]

    def record(self, entry: dict, point: int, matrix: ConfusionMatrix, predictions: list[torch.Tensor]) -> None:
        miou, iou = matrix.miou(self.classes), matrix.iou()
        self.history.append({**entry, "val_miou": miou})
        self.last = (miou, iou)
        if self.best is None or miou > self.best[0]:
            self.best = (miou, point, iou, predictions)


def _train_step(head: nn.Module, optimizer: torch.optim.Optimizer, features: torch.Tensor,
                labels: torch.Tensor) -> torch.Tensor:
    """One Adam step on a batch: features [B,C,h,w], labels [B,S,S]; returns the detached loss (on device)."""
    loss = masked_cross_entropy(segmentation_logits(head, features, tuple(labels.shape[-2:])), labels)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


class _Trainer:
    """Shared state of one probe run: extractor, val features, class count, augmentation settings."""

    def __init__(self, extractor: FeatureExtractor, val: _ValFeatures, num_classes: int, config: LinearProbeConfig,
                 device: torch.device, progress: Progress | None) -> None:
        self.extractor, self.val, self.num_classes = extractor, val, num_classes
        self.config, self.device, self.progress = config, device, progress

    def new_head(self, lr: float) -> tuple[nn.Module, torch.optim.Optimizer]:
        generator = torch.Generator().manual_seed(self.config.seed)
        head = make_head(self.extractor.channels, self.num_classes, generator).to(self.device)
        return head, torch.optim.Adam(head.parameters(), lr=lr, weight_decay=0.0)

    def batch_step(self, head: nn.Module, optimizer: torch.optim.Optimizer, images: torch.Tensor,
                   labels: torch.Tensor, augment: torch.Generator) -> torch.Tensor:
        """images uint8 [B,3,S,S], labels int64 [B,S,S] (CPU) -> augmented, featurised, one step; loss on device."""
        c = self.config
        params = sample_affine_params(len(images), c.scale, c.rotation_deg, c.flip, augment)
        images = images.to(self.device, non_blocking=True)
        labels = labels.to(self.device, non_blocking=True)
        features, labels = extract_features(self.extractor, images, params, labels)
        return _train_step(head, optimizer, features, labels)

    def evaluate_into(self, tracker: _Tracker, head: nn.Module, entry: dict, point: int, description: str) -> None:
        matrix, predictions = evaluate(head, self.val, self.num_classes, self.config.n_examples, self.progress,
                                       description)
        tracker.record(entry, point, matrix, predictions)

    def report(self, description: str, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(description, done, total)


def _run_epochs(trainer: _Trainer, train: ResizedPairs) -> _Tracker:
    """Epoch mode: ``epochs`` shuffled passes at config.lr, evaluated after each."""
    c = trainer.config
    sampler = RandomSampler(train, generator=torch.Generator().manual_seed(c.seed + 1))
    loader = make_loader(train, c.batch_size, c.num_workers, trainer.device, sampler)
    augment = torch.Generator().manual_seed(c.seed + 2)
    head, optimizer = trainer.new_head(c.lr)
    tracker = _Tracker(lr=c.lr, classes=c.classes)
    for epoch in range(1, c.epochs + 1):
        loss_sum = torch.zeros((), device=trainer.device)
        for step, (images, labels) in enumerate(loader, start=1):
            loss_sum += trainer.batch_step(head, optimizer, images, labels, augment)
            trainer.report(f"epoch {epoch}/{c.epochs} train", step, len(loader))
        train_loss = float(loss_sum) / len(loader)  # one host sync per epoch
        trainer.evaluate_into(tracker, head, {"epoch": epoch, "train_loss": train_loss}, epoch,
                              f"epoch {epoch}/{c.epochs} val")
    return tracker


def _run_iterations(trainer: _Trainer, train: RandomCrops, lr: float) -> _Tracker:
    """Iteration mode: ``iterations`` steps of random crops at ``lr``, evaluated every eval_every and at the end."""
    c = trainer.config
    total = c.iterations
    sampler = ShuffledStream(len(train), total * c.batch_size, c.seed + 1)
    loader = make_loader(train, c.batch_size, c.num_workers, trainer.device, sampler)
    augment = torch.Generator().manual_seed(c.seed + 2)
    head, optimizer = trainer.new_head(lr)
    tracker = _Tracker(lr=lr, classes=c.classes)
    loss_sum, since_eval = torch.zeros((), device=trainer.device), 0
    for step, (images, labels) in enumerate(loader, start=1):
        loss_sum += trainer.batch_step(head, optimizer, images, labels, augment)
        since_eval += 1
        trainer.report(f"lr {lr:g} train", step, total)
        if step % c.eval_every == 0 or step == total:
            entry = {"lr": lr, "iteration": step, "train_loss": float(loss_sum) / since_eval}
            trainer.evaluate_into(tracker, head, entry, step, f"lr {lr:g} iteration {step} val")
            loss_sum, since_eval = torch.zeros((), device=trainer.device), 0
    return tracker


# --------------------------------------------------------------------------- entry point
def _check_inputs(features: FeatureExtractor, train_set: SegmentationSplit, val_set: SegmentationSplit,
                  config: LinearProbeConfig) -> int:
    """Validate the pieces against the config; returns the class count."""
    patch = int(features.patch_size)
    size_name = "crop_size" if config.iteration_mode else "image_size"
    if config.val_size % patch:
        raise InputError(f"LinearProbeConfig.{size_name}={config.val_size}: allowed multiples of the patch size "
                         f"{patch}")
    extractor_last_n = getattr(features, "last_n", None)
    if extractor_last_n is not None and extractor_last_n != config.last_n:
        raise InputError(f"LinearProbeConfig.last_n={config.last_n}: the feature extractor uses last_n="
                         f"{extractor_last_n}; build DenseFeatures(vit, {config.last_n})")
    num_classes = int(train_set.num_classes)
    if int(val_set.num_classes) != num_classes:
        raise InputError(f"train split has {num_classes} classes, val split {val_set.num_classes}")
    if not 1 <= num_classes < IGNORE_INDEX:
        raise InputError(f"num_classes={num_classes}: allowed 1..{IGNORE_INDEX - 1}")
    if len(train_set) == 0 or len(val_set) == 0:
        raise InputError(f"empty split: train has {len(train_set)} images, val {len(val_set)}")
    return num_classes


def _result(chosen: _Tracker, trackers: Sequence[_Tracker], val: _ValFeatures, class_names: tuple[str, ...],
            ) -> LinearProbeResult:
    miou_best, best_point, iou_best, predictions = chosen.best
    miou_last, iou_last = chosen.last
    examples = []
    for image, pred in zip(val.example_images, predictions, strict=False):
        label = val.loader.dataset[len(examples)][1]
        examples.append((image, pred, label))
    history = [entry for tracker in trackers for entry in tracker.history]
    return LinearProbeResult(miou_best=miou_best, miou_last=miou_last, best_epoch=best_point, iou_best=iou_best,
                             iou_last=iou_last, class_names=class_names, history=history, lr=chosen.lr,
                             examples=examples, miou_by_lr={t.lr: t.best[0] for t in trackers})


def run_linear_probe(features: FeatureExtractor, train_set: SegmentationSplit, val_set: SegmentationSplit,
                     config: LinearProbeConfig, device: str | torch.device = "cpu",
                     progress: Progress | None = None) -> LinearProbeResult:
    """Train and evaluate the linear probe (see the module docstring for the protocol).

    features: frozen extractor, normalised images [B,3,H,W] -> [B,C,H/p,W/p] (``.channels``, ``.patch_size``;
    moved to ``device`` when it has ``.to``). train_set / val_set: items (uint8 [3,H,W], int64 [H,W], 255 =
    ignore), ``num_classes``, ``class_names``. progress(description, done, total) is called after every batch.
    """
    if not isinstance(config, LinearProbeConfig):
        raise InputError(f"config must be a LinearProbeConfig, got {type(config).__name__}")
    num_classes = _check_inputs(features, train_set, val_set, config)
    device = torch.device(device)
    if hasattr(features, "to"):
        features = features.to(device)
    val_data = ResizedPairs(val_set, config.val_size, config.max_val_images)
    val_loader = make_loader(val_data, config.batch_size, config.num_workers, device)
    val = _ValFeatures(val_loader, features, device, config.cache_val_features_gb, config.n_examples)
    trainer = _Trainer(features, val, num_classes, config, device, progress)
    if config.iteration_mode:
        crops = RandomCrops(train_set, config.crop_size, config.max_train_images)
        trackers = [_run_iterations(trainer, crops, lr) for lr in config.lrs]
    else:
        trackers = [_run_epochs(trainer, ResizedPairs(train_set, config.image_size, config.max_train_images))]
    chosen = max(trackers, key=lambda t: t.best[0])  # first maximum: ties keep the earlier lr
    return _result(chosen, trackers, val, tuple(train_set.class_names))
