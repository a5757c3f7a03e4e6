"""The `evaluation` section: which evaluations run after pre-training (or under `croc evaluate`), on which data,
with which protocol constants and resources. Defaults are the published protocols (docs/evaluation.md)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from pipelines.config.base import Section, absolute_path, rule_error

EVAL_DATASETS = {"linear": ("voc", "coco_things", "coco_stuff", "ade20k"),
                 "unsup": ("voc", "coco_things", "coco_stuff")}
EVAL_TASKS = (*(f"{kind}:{ds}" for kind, names in EVAL_DATASETS.items() for ds in names), "davis")
PROTOCOL_EPOCHS = {"voc": 45, "coco_things": 10, "coco_stuff": 10}


class EvalDatasets(Section):
    """Dataset roots in their official layouts (docs/datasets.md); None = the synthetic benchmark's, if any."""

    voc: str | None = None  # VOCdevkit/VOC2012
    coco: str | None = None  # COCO with panoptic + stuff annotations (COCO-Things, COCO-Stuff)
    ade20k: str | None = None  # ADEChallengeData2016
    davis: str | None = None  # DAVIS (2017, 480p)
    synthetic: bool = False  # unset roots -> the synthetic benchmark of data.synthetic (generated when missing)

    @field_validator("voc", "coco", "ade20k", "davis")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        return None if value is None else absolute_path(value)


class LinearSection(Section):
    image_size: int = Field(448, ge=16)
    last_n: int = Field(2, ge=1)
    epochs: dict[Literal["voc", "coco_things", "coco_stuff"], int] = Field(
        default_factory=lambda: dict(PROTOCOL_EPOCHS))
    lr: float = Field(1e-3, gt=0)
    batch_size: int = Field(16, ge=1)
    scale: tuple[float, float] = (0.75, 1.25)
    rotation_deg: float = Field(5.0, ge=0, le=180)
    flip: bool = True
    max_train_images: int | None = Field(None, ge=1)  # None = the whole split (the protocol)
    max_val_images: int | None = Field(None, ge=1)
    ade20k_iterations: int = Field(40_000, ge=1)
    ade20k_crop_size: int = Field(512, ge=16)
    ade20k_lrs: list[float] = Field(default_factory=lambda: [3e-4, 1e-3, 3e-3])
    ade20k_eval_every: int = Field(4000, ge=1)

    @field_validator("epochs", mode="before")
    @classmethod
    def _defaults_for_unnamed(cls, value: object) -> object:
        """Naming one dataset keeps the protocol's epochs for the others."""
        return {**PROTOCOL_EPOCHS, **value} if isinstance(value, dict) else value

    @field_validator("epochs")
    @classmethod
    def _positive_epochs(cls, value: dict[str, int]) -> dict[str, int]:
        bad = {k: v for k, v in value.items() if v < 1}
        if bad:
            raise ValueError(f"epochs must be >= 1, got {bad}")
        return value

    @field_validator("scale")
    @classmethod
    def _scale_range(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not 0 < value[0] <= value[1]:
            raise ValueError("must satisfy 0 < low <= high")
        return value


class UnsupSection(Section):
    image_size: int = Field(448, ge=16)
    mask_size: int = Field(100, ge=1)
    last_n: int = Field(1, ge=1)
    pca_dim: int = Field(50, ge=1)
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2, 3, 4])
    iterations: int = Field(100, ge=1)
    restarts: int = Field(5, ge=1)
    max_points_per_centroid: int = Field(256, ge=1)
    max_pca_vectors: int = Field(2_000_000, ge=1)
    cluster_tokens: bool = False  # cluster the token grid and upsample the cluster map (cheaper)
    max_images: int | None = Field(None, ge=1)

    @field_validator("seeds")
    @classmethod
    def _some_seeds(cls, value: list[int]) -> list[int]:
        if not value or len(set(value)) != len(value):
            raise ValueError("needs at least one seed, each once")
        return value


class DavisSection(Section):
    split: Literal["train", "val"] = "val"
    short_side: int = Field(480, ge=16)
    size_multiple: int = Field(64, ge=1)
    last_n: int = Field(1, ge=1)
    temperature: float = Field(0.1, gt=0)
    n_last_frames: int = Field(7, ge=0)
    neighborhood: int = Field(12, ge=0)  # patches; 0 = no restriction
    topk: int = Field(5, ge=1)
    max_videos: int | None = Field(None, ge=1)


class EvalResources(Section):
    cpus_per_task: float = Field(1.0, gt=0)
    gpus_per_task: float = Field(0.0, ge=0)


class EvaluationSection(Section):
    tasks: list[str] = Field(default_factory=list)
    after: Literal["final", "all_checkpoints"] = "final"
    network: Literal["teacher", "student"] = "teacher"
    datasets: EvalDatasets = Field(default_factory=EvalDatasets)
    linear: LinearSection = Field(default_factory=LinearSection)
    unsup: UnsupSection = Field(default_factory=UnsupSection)
    davis: DavisSection = Field(default_factory=DavisSection)
    resources: EvalResources = Field(default_factory=EvalResources)
    pictures: int = Field(4, ge=0)  # images (and one video) shown per evaluation
    # mIoU (linear, unsup) over "all" classes of the label set (the published protocols) or the classes "present"
    # in the split, with K = that count for K-Means (the synthetic benchmark's VOC layout holds 7 of 21 classes)
    classes: Literal["all", "present"] = "all"
    output_dir: str | None = None  # DAVIS PNGs, tables; None = <checkpoint.storage_path>/<run>/evaluations

    @field_validator("tasks")
    @classmethod
    def _known_tasks(cls, tasks: list[str]) -> list[str]:
        for task in tasks:
            if task not in EVAL_TASKS:
                raise ValueError(f"unknown task {task!r}; allowed: {', '.join(EVAL_TASKS)}")
        if len(set(tasks)) != len(tasks):
            raise ValueError("a task is listed twice")
        return tasks

    @field_validator("output_dir")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        return None if value is None else absolute_path(value)

    @model_validator(mode="after")
    def _patch_multiples(self) -> EvaluationSection:
        for key, size in (("linear.image_size", self.linear.image_size), ("unsup.image_size", self.unsup.image_size),
                          ("linear.ade20k_crop_size", self.linear.ade20k_crop_size)):
            if size % 8:
                raise rule_error(f"evaluation.{key}={size} must be a multiple of the patch size (8 or 16)")
        return self

