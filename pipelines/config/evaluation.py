"""The `evaluation` section: which evaluations run after pre-training (or under `croc evaluate`), on which data,
with which protocol constants and resources. Defaults are the published protocols (docs/evaluation.md)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, create_model, field_validator, model_validator

from croc.eval.registry import (
    AFTER,
    CLASS_RULES,
    DAVIS_SPLITS,
    EVAL_DATASETS,
    EVAL_TASKS,
    NETWORKS,
    PROTOCOL_EPOCHS,
    ROOT_KEYS,
)
from croc.eval.settings import LinearProtocol, PropagationConfig, UnsupervisedConfig
from croc.registry import PATCH_SIZES
from pipelines.config.base import Section, absolute_path, rule_error
from pipelines.config.from_dataclass import section_from

__all__ = ["EVAL_DATASETS", "EVAL_TASKS", "PROTOCOL_EPOCHS", "DavisSection", "EvalDatasets", "EvalResources",
           "EvaluationSection", "LinearSection", "UnsupSection"]


class _DatasetRoots(Section):
    @field_validator(*ROOT_KEYS, check_fields=False)
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        return None if value is None else absolute_path(value)


# Dataset roots in their official layouts (docs/datasets.md), one key per root of croc/eval/registry.py (voc:
# VOCdevkit/VOC2012, coco: COCO with panoptic + stuff annotations, ade20k: ADEChallengeData2016, davis: DAVIS 2017
# 480p); None = the synthetic benchmark's, if any. synthetic: unset roots -> the synthetic benchmark of
# data.synthetic (generated when missing).
EvalDatasets = create_model("EvalDatasets", __base__=_DatasetRoots, __module__=__name__,
                            __doc__="Dataset roots in their official layouts (docs/datasets.md); None = the synthetic "
                                    "benchmark's, if any.",
                            **{key: (str | None, None) for key in ROOT_KEYS}, synthetic=(bool, False))

_LinearSettings = section_from(LinearProtocol, name="_LinearSettings")


class LinearSection(_LinearSettings):
    """evaluation.linear: croc.eval.settings.LinearProtocol (defaults, bounds and checks there)."""

    @field_validator("epochs", mode="before")
    @classmethod
    def _defaults_for_unnamed(cls, value: object) -> object:
        """Naming one dataset keeps the protocol's epochs for the others."""
        return {**PROTOCOL_EPOCHS, **value} if isinstance(value, dict) else value


# evaluation.unsup: croc.eval.settings.UnsupervisedConfig; n_examples comes from evaluation.pictures and classes from
# evaluation.classes
UnsupSection = section_from(UnsupervisedConfig, exclude=("n_examples", "classes"), name="UnsupSection")
# evaluation.davis: croc.eval.settings.PropagationConfig, and the DAVIS split evaluated
DavisSection = section_from(PropagationConfig, name="DavisSection",
                            extra={"split": (Literal[DAVIS_SPLITS], "val")})  # type: ignore[valid-type]


class EvalResources(Section):
    cpus_per_task: float = Field(1.0, gt=0)
    gpus_per_task: float = Field(0.0, ge=0)


class EvaluationSection(Section):
    tasks: list[str] = Field(default_factory=list)
    after: Literal[AFTER] = "final"  # type: ignore[valid-type]
    network: Literal[NETWORKS] = "teacher"  # type: ignore[valid-type]
    datasets: EvalDatasets = Field(default_factory=EvalDatasets)
    linear: LinearSection = Field(default_factory=LinearSection)
    unsup: UnsupSection = Field(default_factory=UnsupSection)
    davis: DavisSection = Field(default_factory=DavisSection)
    resources: EvalResources = Field(default_factory=EvalResources)
    pictures: int = Field(4, ge=0)  # images (and one video) shown per evaluation
    # mIoU (linear, unsup) over "all" classes of the label set (the published protocols) or the classes "present"
    # in the split, with K = that count for K-Means (the synthetic benchmark's VOC layout holds 7 of 21 classes)
    classes: Literal[CLASS_RULES] = "all"  # type: ignore[valid-type]
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

    def protocol(self):
        """The protocols the evaluation tasks run (croc.eval.settings.EvalProtocol), built from the sections."""
        from croc.eval.settings import EvalProtocol

        return EvalProtocol.of(self.linear.build(), self.unsup.build(classes=self.classes), self.davis.build(),
                               self.davis.split, self.classes)

    @field_validator("output_dir")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        return None if value is None else absolute_path(value)

    @model_validator(mode="after")
    def _patch_multiples(self) -> EvaluationSection:
        for key, size in (("linear.image_size", self.linear.image_size), ("unsup.image_size", self.unsup.image_size),
                          ("linear.ade20k_crop_size", self.linear.ade20k_crop_size)):
            if size % min(PATCH_SIZES):
                raise rule_error(f"evaluation.{key}={size} must be a multiple of the patch size "
                                 f"({' or '.join(map(str, PATCH_SIZES))})")
        return self

