"""Typed settings of the method (plain dataclasses: croc/ runs where pydantic is absent), each declared once.

Defaults are the paper's setting (appendix B; CrOC uses DINO's): ViT-S/16, 300 epochs, batch 256,
lr 5e-4 per 256 images, K=12, lambda_pos=4, values tokens. Every field is a `setting` with its bounds and
choices (croc/settings.py); the platform's YAML sections `model`, `method`, `clustering` and `optim` are generated
from these classes (pipelines/config/schema.py). No torch here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from croc.errors import InputError
from croc.registry import ARCHITECTURES, CLIP_GRAD_MODES, COST_NORMALIZATIONS, METHODS, PATCH_SIZES, PRECISIONS, TOKENS
from croc.settings import check_settings, setting

__all__ = ["METHODS", "TOKENS", "ClusteringConfig", "MethodConfig", "ModelConfig", "OptimConfig", "TrainConfig"]


@dataclass(frozen=True)
class ModelConfig:
    arch: str = setting("vit_small", choices=tuple(ARCHITECTURES))
    patch_size: int = setting(16, choices=PATCH_SIZES)
    drop_path_rate: float = setting(0.1, ge=0, lt=1)
    out_dim: int = setting(65536, ge=1)  # image-level (DINO) head prototypes
    out_dim_c: int = setting(8192, ge=1)  # dense (cluster) head prototypes
    hidden_dim: int = setting(2048, ge=1)
    bottleneck_dim: int = setting(256, ge=1)
    norm_last_layer: bool = False

    def __post_init__(self) -> None:
        check_settings(self, "model")


@dataclass(frozen=True)
class ClusteringConfig:
    n_init: int = setting(12, ge=2)  # K, centroids sampled at the start
    n_centroids_max: int = setting(4, ge=2)  # candidates for the final count are k = 2 .. n_centroids_max
    lambda_pos: float = setting(4.0, ge=0)  # weight of the positional cost
    sinkhorn_weight: float = setting(20.0, gt=0)  # entropic regularisation: P = exp(-weight * M)
    sinkhorn_iterations: int = setting(5, ge=1)
    temp_r: float = setting(2.0, gt=0)  # temperature of the token marginal softmax
    temp_c: float = setting(2.0, gt=0)  # temperature of the initial centroid marginal softmax
    # "problem" (default) or "batch" (the authors' batch-wide min-max)
    cost_normalization: str = setting("problem", choices=COST_NORMALIZATIONS)

    def __post_init__(self) -> None:
        check_settings(self, "clustering")
        if self.n_centroids_max > self.n_init:
            raise InputError(f"clustering.n_centroids_max={self.n_centroids_max} must lie in "
                             f"[2, clustering.n_init={self.n_init}]")


@dataclass(frozen=True)
class MethodConfig:
    method: str = setting("croc", choices=METHODS)  # "dino": the same step without the dense branch
    tokens: str = setting("values", choices=TOKENS)  # clustered: q / k / v of each head, or "last" (one problem/image)
    dense_weight: float = setting(1.0, ge=0)
    clustering: ClusteringConfig = field(default_factory=ClusteringConfig)  # its own YAML section, `clustering`
    student_temp: float = setting(0.1, gt=0)
    warmup_teacher_temp: float = setting(0.04, gt=0)
    teacher_temp: float = setting(0.07, gt=0)
    warmup_teacher_temp_epochs: int = setting(30, ge=0)
    center_momentum: float = setting(0.9, ge=0, le=1)

    def __post_init__(self) -> None:
        check_settings(self, "method")


@dataclass(frozen=True)
class OptimConfig:
    epochs: int = setting(300, ge=1)
    batch_size: int = setting(256, ge=1)  # GLOBAL batch, split evenly over the workers
    lr: float = setting(5e-4, gt=0)  # per 256 images
    min_lr: float = setting(1e-5, ge=0)
    warmup_epochs: int = setting(10, ge=0)
    weight_decay: float = setting(0.04, ge=0)
    weight_decay_end: float = setting(0.4, ge=0)
    momentum_teacher: float = setting(0.996, ge=0, le=1)
    clip_grad: float = setting(0.0, ge=0)  # 0 = off
    clip_grad_mode: str = setting("per_parameter", choices=CLIP_GRAD_MODES)  # DINO's rule | one global norm
    freeze_last_layer_epochs: int = setting(1, ge=0)
    precision: str = setting("bf16", choices=PRECISIONS)  # fp16 with loss scaling; autocast applies on GPU only
    fused: bool = True  # fused AdamW where the device supports it
    compile: bool = False  # torch.compile the networks' passes and the clustering

    def __post_init__(self) -> None:
        check_settings(self, "optim")
        if self.warmup_epochs > self.epochs:
            raise InputError(f"optim.warmup_epochs={self.warmup_epochs} must be <= optim.epochs={self.epochs}")


@dataclass(frozen=True)
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    image_size: int = 224  # the global views' side (the YAML's data.image_size)

    def __post_init__(self) -> None:
        if self.image_size % self.model.patch_size:
            raise InputError(f"data.image_size={self.image_size} must be a multiple of "
                             f"model.patch_size={self.model.patch_size}")
        joined_tokens = 2 * (self.image_size // self.model.patch_size) ** 2
        n_init = self.method.clustering.n_init
        if self.method.method == "croc" and n_init > joined_tokens:
            raise InputError(f"clustering.n_init={n_init} exceeds the {joined_tokens} tokens of both views "
                             f"(data.image_size={self.image_size}, model.patch_size={self.model.patch_size})")
