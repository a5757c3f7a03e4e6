"""The platform's config tree (pydantic): one frozen model per section, every unknown key an error.

Defaults are the paper's setting (appendix B, DINO's recipe) where one exists; the method's own plain dataclasses
(croc/config.py, croc/clustering.py) are built from it by `PretrainConfig.to_train_config()`.
Loading, overrides, error messages and hashing live in pipelines/config/loading.py.

Paths are made absolute at validation time (against the current working directory): a Ray job's driver and workers
run elsewhere, so a relative checkpoint folder or sqlite file would be written where nobody looks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator, model_validator

if TYPE_CHECKING:  # the method (torch) is imported only when built from the config
    from croc.augment import Photometric
    from croc.config import TrainConfig
    from pipelines.config.data_settings import DataSettings

from pipelines.config.base import (
    SQLITE,
    Section,
    absolute_path,
    absolute_tracking_uri,
    check_name,
    check_tracking_scheme,
    rule_error,
)
from pipelines.config.evaluation import EVAL_DATASETS, EVAL_TASKS, EvaluationSection

__all__ = ["EVAL_DATASETS", "EVAL_TASKS", "EvaluationSection", "PretrainConfig"]


class SyntheticSettings(Section):
    seed: int = 0
    train_images: int = Field(256, ge=1)
    height: int = Field(192, ge=16)
    width: int = Field(256, ge=16)
    out_dir: str | None = None  # where the generated benchmark goes; None = a folder under the run directory

    @field_validator("out_dir")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        return None if value is None else absolute_path(value)


class PhotometricSection(Section):
    """The photometric augmentation (croc.augment.Photometric); the defaults are DINO's."""

    jitter_p: float = Field(0.8, ge=0, le=1)
    brightness: float = Field(0.4, ge=0, lt=1)
    contrast: float = Field(0.4, ge=0, lt=1)
    saturation: float = Field(0.2, ge=0, lt=1)
    hue: float = Field(0.1, ge=0, le=0.5)
    grayscale_p: float = Field(0.2, ge=0, le=1)
    blur_sigma: tuple[float, float] = (0.1, 2.0)  # pixels of a 224 px view
    blur_p: tuple[float, float] = (1.0, 0.1)  # view 1, view 2
    solarize_p: tuple[float, float] = (0.0, 0.2)  # view 1, view 2
    blur_scales_with_view: bool = False  # true: blur_sigma * image_size / 224 (views smaller than 224 px)

    @field_validator("blur_sigma")
    @classmethod
    def _sigma_range(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not 0 < value[0] <= value[1] <= 2.0:
            raise ValueError("must satisfy 0 < low <= high <= 2.0 (the blur kernel's reach)")
        return value

    @field_validator("blur_p", "solarize_p")
    @classmethod
    def _probabilities(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not all(0 <= p <= 1 for p in value):
            raise ValueError("probabilities must lie in [0, 1]")
        return value


class DataSection(Section):
    source: Literal["synthetic", "shards"] = "synthetic"
    shard_dir: str | None = None  # made by `croc data prepare`; required when source == "shards"
    synthetic: SyntheticSettings = Field(default_factory=SyntheticSettings)
    image_size: int = Field(224, ge=16)
    global_scale: tuple[float, float] = (0.25, 1.0)
    decode_rows: int = Field(32, ge=1)  # images per decode call (16, 32, 64 within noise on 2 CPUs)
    shuffle_buffer: int = Field(256, ge=0)  # 0 = off
    prefetch_batches: int = Field(2, ge=0)
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


class ModelSection(Section):
    arch: Literal["vit_tiny", "vit_small", "vit_base"] = "vit_small"
    patch_size: Literal[8, 16] = 16
    drop_path_rate: float = Field(0.1, ge=0, lt=1)
    out_dim: int = Field(65536, ge=1)
    out_dim_c: int = Field(8192, ge=1)
    hidden_dim: int = Field(2048, ge=1)
    bottleneck_dim: int = Field(256, ge=1)
    norm_last_layer: bool = False


class MethodSection(Section):
    method: Literal["croc", "dino"] = "croc"
    tokens: Literal["queries", "keys", "values", "last"] = "values"
    dense_weight: float = Field(1.0, ge=0)
    student_temp: float = Field(0.1, gt=0)
    warmup_teacher_temp: float = Field(0.04, gt=0)
    teacher_temp: float = Field(0.07, gt=0)
    warmup_teacher_temp_epochs: int = Field(30, ge=0)
    center_momentum: float = Field(0.9, ge=0, le=1)


class ClusteringSection(Section):
    n_init: int = Field(12, ge=2)  # K
    n_centroids_max: int = Field(4, ge=2)
    lambda_pos: float = Field(4.0, ge=0)
    sinkhorn_weight: float = Field(20.0, gt=0)
    sinkhorn_iterations: int = Field(5, ge=1)
    temp_r: float = Field(2.0, gt=0)
    temp_c: float = Field(2.0, gt=0)
    cost_normalization: Literal["problem", "batch"] = "problem"

    @model_validator(mode="after")
    def _max_within_init(self) -> ClusteringSection:
        if self.n_centroids_max > self.n_init:
            raise rule_error(f"clustering.n_centroids_max={self.n_centroids_max} must lie in "
                             f"[2, clustering.n_init={self.n_init}]")
        return self


class OptimSection(Section):
    epochs: int = Field(300, ge=1)
    batch_size: int = Field(256, ge=1)  # GLOBAL batch, split evenly over resources.num_workers
    lr: float = Field(5e-4, gt=0)  # per 256 images
    min_lr: float = Field(1e-5, ge=0)
    warmup_epochs: int = Field(10, ge=0)
    weight_decay: float = Field(0.04, ge=0)
    weight_decay_end: float = Field(0.4, ge=0)
    momentum_teacher: float = Field(0.996, ge=0, le=1)
    clip_grad: float = Field(0.0, ge=0)  # 0 = off
    clip_grad_mode: Literal["per_parameter", "global_norm"] = "per_parameter"  # DINO's rule | one global norm
    freeze_last_layer_epochs: int = Field(1, ge=0)
    precision: Literal["bf16", "fp16", "fp32"] = "bf16"
    fused: bool = True
    compile: bool = False

    @model_validator(mode="after")
    def _warmup_within_training(self) -> OptimSection:
        if self.warmup_epochs > self.epochs:
            raise rule_error(f"optim.warmup_epochs={self.warmup_epochs} must be <= optim.epochs={self.epochs}")
        peak = self.lr * self.batch_size / 256  # the schedule's peak (lr is per 256 images)
        if self.min_lr > peak:
            raise rule_error(f"optim.min_lr={self.min_lr:g} must be <= the peak learning rate optim.lr x "
                             f"optim.batch_size / 256 = {self.lr:g} x {self.batch_size} / 256 = {peak:g}")
        return self


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
        size, patch = self.data.image_size, self.model.patch_size
        if size % patch:
            raise rule_error(f"data.image_size={size} must be a multiple of model.patch_size={patch}")
        joined_tokens = 2 * (size // patch) ** 2
        if self.method.method == "croc" and self.clustering.n_init > joined_tokens:
            raise rule_error(f"clustering.n_init={self.clustering.n_init} exceeds the {joined_tokens} tokens of "
                             f"both views (data.image_size={size}, model.patch_size={patch})")
        return self

    def to_train_config(self) -> TrainConfig:
        """The method's plain dataclasses, with the same values."""
        from croc.clustering import ClusteringConfig
        from croc.config import MethodConfig, ModelConfig, OptimConfig, TrainConfig

        m, c, o = self.method, self.clustering, self.optim
        return TrainConfig(
            model=ModelConfig(**self.model.model_dump()),
            method=MethodConfig(method=m.method, tokens=m.tokens, dense_weight=m.dense_weight,
                                clustering=ClusteringConfig(**c.model_dump()), student_temp=m.student_temp,
                                warmup_teacher_temp=m.warmup_teacher_temp, teacher_temp=m.teacher_temp,
                                warmup_teacher_temp_epochs=m.warmup_teacher_temp_epochs,
                                center_momentum=m.center_momentum),
            optim=OptimConfig(**o.model_dump(exclude={"compile"})),
            image_size=self.data.image_size,
            compile=o.compile,
        )

    def photometric(self) -> Photometric:
        """The photometric augmentation's settings, the blur scaled to the view size when asked for."""
        from croc.augment import Photometric

        section = self.data.photometric
        settings = Photometric(**section.model_dump(exclude={"blur_scales_with_view"}))
        return settings.scaled_blur(self.data.image_size) if section.blur_scales_with_view else settings

    def data_settings(self, shard_dir: str) -> DataSettings:
        """The Ray Data pipeline's settings for these shards (imported lazily: croc.augment loads torch)."""
        from pipelines.config.data_settings import DataSettings

        d = self.data
        return DataSettings(shard_dir=shard_dir, image_size=d.image_size, scale=tuple(d.global_scale), seed=self.seed,
                            decode_rows=d.decode_rows, shuffle_buffer=d.shuffle_buffer,
                            prefetch_batches=d.prefetch_batches)

