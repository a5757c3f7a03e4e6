"""The platform's config tree (pydantic): one frozen model per section, every unknown key an error.

The method's sections (model, method, clustering, optim, data.photometric) are generated from croc's settings
dataclasses (croc/config.py, croc/augment_settings.py), which hold their defaults (the paper's setting, appendix B,
DINO's recipe), bounds and choices; `PretrainConfig.to_train_config()` builds those dataclasses back. The platform's
own sections (data source, resources, checkpoint, tracking) are declared here.
Loading, overrides, error messages and hashing live in pipelines/config/loading.py.

Paths are made absolute at validation time (against the current working directory): a Ray job's driver and workers
run elsewhere, so a relative checkpoint folder or sqlite file would be written where nobody looks.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from croc.augment_settings import Photometric
from croc.config import ClusteringConfig, MethodConfig, ModelConfig, OptimConfig, TrainConfig
from croc.errors import InputError
from croc.synthetic.render import SynthSpec
from pipelines.config.base import (
    SQLITE,
    Section,
    absolute_path,
    absolute_tracking_uri,
    check_name,
    check_tracking_scheme,
    rule_error,
)
from pipelines.config.data_settings import DataSettings
from pipelines.config.evaluation import EVAL_DATASETS, EVAL_TASKS, EvaluationSection
from pipelines.config.from_dataclass import section_from

__all__ = ["EVAL_DATASETS", "EVAL_TASKS", "EvaluationSection", "PretrainConfig"]


class SyntheticSettings(Section):
    """The embedded synthetic benchmark's spec (croc.synthetic's `SynthSpec` holds the defaults and checks)."""

    seed: int = SynthSpec.seed
    train_images: int = Field(SynthSpec.coco_train, ge=1)  # COCO-layout training images
    height: int = SynthSpec.height
    width: int = SynthSpec.width
    out_dir: str | None = None  # where the generated benchmark goes; None = a folder under the run directory

    @field_validator("out_dir")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        return None if value is None else absolute_path(value)

    @model_validator(mode="after")
    def _a_valid_spec(self) -> SyntheticSettings:
        try:
            self.spec()
        except InputError as exc:
            raise rule_error(f"data.synthetic: {exc}") from None
        return self

    def spec(self) -> SynthSpec:
        """What `croc.synthetic` generates for these settings."""
        return SynthSpec(seed=self.seed, coco_train=self.train_images, height=self.height, width=self.width)


PhotometricSection = section_from(Photometric, name="PhotometricSection")


class DataSection(Section):
    source: Literal["synthetic", "shards"] = "synthetic"
    shard_dir: str | None = None  # made by `croc data prepare`; required when source == "shards"
    synthetic: SyntheticSettings = Field(default_factory=SyntheticSettings)
    image_size: int = Field(DataSettings.image_size, ge=16)
    global_scale: tuple[float, float] = DataSettings.scale
    decode_rows: int = Field(DataSettings.decode_rows, ge=1)  # images per decode call (16, 32, 64 within noise)
    shuffle_buffer: int = Field(DataSettings.shuffle_buffer, ge=0)  # 0 = off
    prefetch_batches: int = Field(DataSettings.prefetch_batches, ge=0)
    photometric: PhotometricSection = Field(default_factory=PhotometricSection)

    @field_validator("shard_dir")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        return None if value is None else absolute_path(value)

    @field_validator("global_scale")
    @classmethod
    def _scale_range(cls, value: tuple[float, float]) -> tuple[float, float]:
        low, high = value
        if not 0 < low <= high <= 1:
            raise ValueError("must satisfy 0 < low <= high <= 1")
        return value

    @model_validator(mode="after")
    def _shards_need_a_folder(self) -> DataSection:
        if self.source == "shards" and not self.shard_dir:
            raise rule_error("data.shard_dir is required when data.source='shards' (got None): "
                             "give the folder written by `croc data prepare`")
        return self


ModelSection = section_from(ModelConfig, name="ModelSection")
MethodSection = section_from(MethodConfig, exclude=("clustering",), name="MethodSection")  # clustering: its own
ClusteringSection = section_from(ClusteringConfig, name="ClusteringSection")
OptimSection = section_from(OptimConfig, name="OptimSection")


class ResourcesSection(Section):
    num_workers: int = Field(1, ge=1)
    use_gpu: bool = False
    cpus_per_worker: float | None = Field(None, gt=0)  # None = planned from the cluster's CPUs
    threads_per_worker: int | None = Field(None, ge=1)  # the step's torch threads; None = the whole CPUs it holds
    max_failures: int = Field(0, ge=0)


class CheckpointSection(Section):
    every_steps: int = Field(500, ge=1)
    keep_last: int = Field(3, ge=1)
    storage_path: str | None = Field(None, validate_default=True)  # None = ./runs; always absolute or a URI once loaded

    @field_validator("storage_path", mode="before")
    @classmethod
    def _absolute(cls, value: Any) -> Any:
        if value is None:
            return absolute_path("runs")
        return absolute_path(value) if isinstance(value, str) else value


class TrackingSection(Section):
    tracking_uri: str | None = Field(None, validate_default=True)  # None = sqlite:///<abs cwd>/mlflow.db
    experiment: str | None = None  # None = the config's name
    log_every_steps: int = Field(10, ge=1)
    cluster_pictures_every_steps: int = Field(0, ge=0)  # 0 = off
    system_metrics_every_s: float = Field(10.0, ge=0)  # MLflow's system metrics of the first worker's machine; 0 = off

    @field_validator("tracking_uri", mode="before")
    @classmethod
    def _absolute(cls, value: Any) -> Any:
        if value is None:
            return SQLITE + absolute_path("mlflow.db")
        return check_tracking_scheme(absolute_tracking_uri(value)) if isinstance(value, str) else value


class PretrainConfig(Section):
    """The whole run: what `croc pretrain` validates before any cluster resource is taken."""

    name: str
    seed: int = 0
    data: DataSection = Field(default_factory=DataSection)
    model: ModelSection = Field(default_factory=ModelSection)
    method: MethodSection = Field(default_factory=MethodSection)
    clustering: ClusteringSection = Field(default_factory=ClusteringSection)
    optim: OptimSection = Field(default_factory=OptimSection)
    resources: ResourcesSection = Field(default_factory=ResourcesSection)
    checkpoint: CheckpointSection = Field(default_factory=CheckpointSection)
    tracking: TrackingSection = Field(default_factory=TrackingSection)
    evaluation: EvaluationSection = Field(default_factory=EvaluationSection)

    @field_validator("name")
    @classmethod
    def _name_chars(cls, value: str) -> str:
        return check_name(value)

    @model_validator(mode="before")
    @classmethod
    def _experiment_defaults_to_name(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get("name"), (str, int, float)):
            return data
        name, tracking = str(data["name"]), data.get("tracking")
        if tracking is None:
            return {**data, "tracking": {"experiment": name}}
        if isinstance(tracking, dict) and tracking.get("experiment") is None:
            return {**data, "tracking": {**tracking, "experiment": name}}
        if isinstance(tracking, TrackingSection) and tracking.experiment is None:
            return {**data, "tracking": tracking.model_copy(update={"experiment": name})}
        return data

    @model_validator(mode="after")
    def _cross_section_rules(self) -> PretrainConfig:
        workers, batch = self.resources.num_workers, self.optim.batch_size
        if batch % workers:
            raise rule_error(f"optim.batch_size={batch} must be divisible by resources.num_workers={workers}")
        o = self.optim
        peak = o.lr * o.batch_size / 256  # the schedule's peak (lr is per 256 images)
        if o.min_lr > peak:  # a run's rule, not the method's: tests run the method at a constant min_lr
            raise rule_error(f"optim.min_lr={o.min_lr:g} must be <= the peak learning rate optim.lr x "
                             f"optim.batch_size / 256 = {o.lr:g} x {o.batch_size} / 256 = {peak:g}")
        try:
            self.to_train_config()  # the method's rules across its sections (image size, patch size, K)
        except InputError as exc:
            raise rule_error(str(exc)) from None
        return self

    def to_train_config(self) -> TrainConfig:
        """The method's plain dataclasses, with the same values."""
        return TrainConfig(model=self.model.build(), method=self.method.build(clustering=self.clustering.build()),
                           optim=self.optim.build(), image_size=self.data.image_size)

    def photometric(self) -> Photometric:
        """The photometric augmentation's settings, the blur scaled to the view size when asked for."""
        return self.data.photometric.build().for_view(self.data.image_size)

    def data_settings(self, shard_dir: str) -> DataSettings:
        """The Ray Data pipeline's settings for these shards."""
        d = self.data
        return DataSettings(shard_dir=shard_dir, image_size=d.image_size, scale=tuple(d.global_scale), seed=self.seed,
                            decode_rows=d.decode_rows, shuffle_buffer=d.shuffle_buffer,
                            prefetch_batches=d.prefetch_batches)

