"""One evaluation task ('linear:voc', 'unsup:coco_stuff', 'davis', ...) on a frozen backbone, end to end.

This is what an orchestrator (a Ray task, a script on a bare GPU box) calls: it opens the dataset in its official
layout, runs the protocol and returns plain results (metrics, per-class / per-object rows, pictures); recording
them (MLflow) is the caller's business. No Ray, no MLflow here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from croc.data.davis import Davis2017
from croc.data.segmentation import ADE20K, CocoStuff, CocoThings, PascalVOC, SegmentationDataset
from croc.errors import InputError
from croc.eval import registry
from croc.eval.backbones import FrozenBackbone
from croc.eval.davis_propagation import run_davis
from croc.eval.features import DenseFeatures
from croc.eval.linear_probe import LinearProbeConfig, run_linear_probe
from croc.eval.patch_statistics import PatchStatistics
from croc.eval.pictures import segmentation_rows, video_strip
from croc.eval.propagation import PropagationConfig
from croc.eval.registry import HEADLINE, KINDS, parse_task
from croc.eval.settings import EvalProtocol
from croc.eval.unsupervised import UnsupervisedConfig, run_unsupervised

__all__ = ["HEADLINE", "KINDS", "READERS", "SEGMENTATION_SETS", "EvalOutcome", "EvalProtocol", "LinearProbeConfig",
           "PropagationConfig", "UnsupervisedConfig", "parse_task", "root_of", "run_task"]

Progress = Callable[[str, int, int], None]
READERS: dict[str, type[SegmentationDataset]] = {"voc": PascalVOC, "coco_things": CocoThings,
                                                 "coco_stuff": CocoStuff, "ade20k": ADE20K}
# dataset name -> (reader, train split, val split, key of its root); names, splits and keys: croc/eval/registry.py
SEGMENTATION_SETS: dict[str, tuple[type[SegmentationDataset], str, str, str]] = {
    name: (READERS[name], *entry) for name, entry in registry.SEGMENTATION_SETS.items()}


@dataclass
class EvalOutcome:
    task: str
    metrics: dict[str, float]  # headline and secondary numbers
    series: dict[str, list[tuple[int, float]]] = field(default_factory=dict)  # per-epoch values: name -> (step, v)
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # CSV name -> rows
    pictures: dict[str, np.ndarray] = field(default_factory=dict)  # PNG name -> uint8 [H, W, 3]
    files: dict[str, Path] = field(default_factory=dict)  # folders written (DAVIS predictions)

    @property
    def headline(self) -> float:
        return self.metrics[HEADLINE[parse_task(self.task)[0]]]


def root_of(roots: Mapping[str, str | None], key: str, task: str) -> str:
    root = roots.get(key)
    if not root:
        raise InputError(f"task {task!r} needs the {key} dataset: set evaluation.datasets.{key} to its root")
    return str(root)


def _class_rows(names: tuple[str, ...], **columns: np.ndarray) -> list[dict[str, Any]]:
    return [{"class": name, **{k: float(v[i]) for k, v in columns.items()}} for i, name in enumerate(names)]


def run_linear(task: str, dataset: str, features_of: Callable[[int], DenseFeatures], protocol: EvalProtocol,
               roots: Mapping[str, str | None], device: str | torch.device, progress: Progress | None) -> EvalOutcome:
    reader, train_split, val_split, key = SEGMENTATION_SETS[dataset]
    root = root_of(roots, key, task)
    train_set, val_set = reader(root, train_split), reader(root, val_split)
    config = protocol.linear_probe(dataset)
    result = run_linear_probe(features_of(config.last_n), train_set, val_set, config, device, progress)
    metrics = {"miou_best": result.miou_best, "miou_last": result.miou_last, "best_epoch": float(result.best_epoch),
               "lr": float(result.lr)}
    steps = [h for h in result.history if h.get("lr", result.lr) == result.lr]  # iteration mode: the chosen lr
    step_key = "iteration" if config.iterations else "epoch"
    series = {"val_miou": [(int(h[step_key]), float(h["val_miou"])) for h in steps],
              "train_loss": [(int(h[step_key]), float(h["train_loss"])) for h in steps]}
    outcome = EvalOutcome(task, metrics, series,
                          {"per_class_iou.csv": _class_rows(result.class_names, iou_best=result.iou_best,
                                                            iou_last=result.iou_last)})
    if result.examples:
        outcome.pictures["predictions.png"] = segmentation_rows(
            result.examples, result.class_names,
            f"{task}: linear probe, best epoch {result.best_epoch}, mIoU {100 * result.miou_best:.1f}")
    return outcome


def run_unsup(task: str, dataset: str, features_of: Callable[[int], DenseFeatures], protocol: EvalProtocol,
              roots: Mapping[str, str | None], device: str | torch.device, progress: Progress | None) -> EvalOutcome:
    reader, _, val_split, key = SEGMENTATION_SETS[dataset]
    val_set = reader(root_of(roots, key, task), val_split)
    config = protocol.unsup
    result = run_unsupervised(features_of(config.last_n), val_set, config, device, progress)
    metrics = {"miou_mean": result.miou_mean, "miou_std": result.miou_std,
               **{f"miou_seed_{s}": v for s, v in zip(config.seeds, result.miou_per_seed, strict=True)},
               **{f"seconds_{k}": float(v) for k, v in result.timings.items()}}
    outcome = EvalOutcome(task, metrics, {}, {"per_class_iou.csv": _class_rows(result.class_names,
                                                                                iou_mean=result.iou_mean)})
    if result.examples:
        outcome.pictures["predictions.png"] = segmentation_rows(
            result.examples, result.class_names,
            f"{task}: K-Means clusters matched to classes (seed {config.seeds[0]}), "
            f"mIoU {100 * result.miou_mean:.1f} mean over seeds")
    return outcome


def run_davis_task(task: str, features_of: Callable[[int], DenseFeatures], protocol: EvalProtocol,
                   roots: Mapping[str, str | None], out_dir: Path, device: str | torch.device,
                   progress: Progress | None, pictures: int) -> EvalOutcome:
    root = root_of(roots, registry.DAVIS, task)
    config = protocol.davis
    predictions = out_dir / "davis_predictions"
    def video_progress(done: int, total: int, video: str) -> None:
        if progress is not None:
            progress(f"propagating {video}", done, total)

    result = run_davis(features_of(config.last_n), root, predictions, config, protocol.davis_split, device,
                       video_progress)
    s = result.summary
    metrics = {"jf_mean": s["J&F"], "j_mean": s["J-mean"], "f_mean": s["F-mean"], "j_recall": s["J-recall"],
               "f_recall": s["F-recall"], "seconds_per_frame": float(result.seconds_per_frame)}
    outcome = EvalOutcome(task, metrics, {}, {"per_object.csv": list(s["per_object"])},
                          files={"davis_predictions": result.predictions_dir})
    if pictures and result.videos:
        outcome.pictures["propagation.png"] = _propagation_picture(
            root, protocol.davis_split, result.videos[0], result.predictions_dir, pictures,
            f"{task}: masks propagated from frame 0 of {result.videos[0]}, J&F {100 * s['J&F']:.1f} over all videos")
    return outcome


def _propagation_picture(root: str, split: str, video: str, predictions: Path, count: int,
                         title: str) -> np.ndarray:
    davis = Davis2017(root, split)
    frames = davis.frames(video)
    truths = {path.stem: path for path in davis.annotation_paths(video)}
    picks = np.unique(np.linspace(0, len(frames) - 1, num=min(count + 1, len(frames))).round().astype(int))
    images = [davis.load_frame(frames[i]) for i in picks]
    masks = [davis.load_annotation(predictions / video / f"{frames[i].stem}.png").numpy() for i in picks]
    truth = [davis.load_annotation(truths[frames[i].stem]).numpy() if frames[i].stem in truths else None
             for i in picks]
    return video_strip(images, masks, truth, [int(i) for i in picks], title)


def run_task(task: str, backbone: FrozenBackbone, protocol: EvalProtocol, roots: Mapping[str, str | None],
             out_dir: str | Path, device: str | torch.device = "cpu", progress: Progress | None = None,
             pictures: int = 4) -> EvalOutcome:
    """Run one evaluation task on a frozen backbone. `roots`: dataset key (voc/coco/ade20k/davis) -> folder."""
    kind, dataset = parse_task(task)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = backbone.model.to(device)

    def features_of(last_n: int) -> DenseFeatures | PatchStatistics:
        if isinstance(model, PatchStatistics):  # already dense features; last_n does not apply
            return model
        return DenseFeatures(model, last_n).to(device)

    if kind == "linear":
        protocol = replace(protocol, linear=replace(protocol.linear, n_examples=pictures))
        return run_linear(task, dataset, features_of, protocol, roots, device, progress)
    if kind == "unsup":
        unsup = replace(protocol.unsup, n_examples=pictures)
        if isinstance(model, PatchStatistics):  # a handful of channels: PCA keeps them all when fewer than pca_dim
            unsup = replace(unsup, pca_dim=min(unsup.pca_dim, model.channels))
        protocol = replace(protocol, unsup=unsup)
        return run_unsup(task, dataset, features_of, protocol, roots, device, progress)
    return run_davis_task(task, features_of, protocol, roots, out_dir, device, progress, pictures)
