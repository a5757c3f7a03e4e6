"""Typed settings of the method (plain dataclasses: croc/ runs where pydantic is absent).

Defaults are the paper's setting (appendix B; CrOC uses DINO's): ViT-S/16, 300 epochs, batch 256,
lr 5e-4 per 256 images, K=12, lambda_pos=4, values tokens. The platform's typed config (pipelines/) builds these.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from croc.clustering import ClusteringConfig
from croc.errors import InputError
from croc.gradient_clipping import CLIP_GRAD_MODES

METHODS = ("croc", "dino")
TOKENS = ("queries", "keys", "values", "last")


@dataclass(frozen=True)
class ModelConfig:
    arch: str = "vit_small"
    patch_size: int = 16
    drop_path_rate: float = 0.1
    out_dim: int = 65536
    out_dim_c: int = 8192
    hidden_dim: int = 2048
    bottleneck_dim: int = 256
    norm_last_layer: bool = False


@dataclass(frozen=True)
class MethodConfig:
    method: str = "croc"  # "croc" or "dino" (the same step without the dense branch)
    tokens: str = "values"  # clustered tokens: queries / keys / values of each head, or "last" (one problem/image)
    dense_weight: float = 1.0
    clustering: ClusteringConfig = field(default_factory=ClusteringConfig)
    student_temp: float = 0.1
    warmup_teacher_temp: float = 0.04
    teacher_temp: float = 0.07
    warmup_teacher_temp_epochs: int = 30
    center_momentum: float = 0.9

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise InputError(f"method.method={self.method!r}: allowed {list(METHODS)}")
        if self.tokens not in TOKENS:
            raise InputError(f"method.tokens={self.tokens!r}: allowed {list(TOKENS)}")


@dataclass(frozen=True)
class OptimConfig:
    epochs: int = 300
    batch_size: int = 256  # global batch (all workers)
    lr: float = 5e-4  # per 256 images
    min_lr: float = 1e-5
    warmup_epochs: int = 10
    weight_decay: float = 0.04
    weight_decay_end: float = 0.4
    momentum_teacher: float = 0.996
    clip_grad: float = 0.0  # 0 = off
    clip_grad_mode: str = "per_parameter"  # DINO's rule, each gradient on its own | "global_norm" (all together)
    freeze_last_layer_epochs: int = 1
    precision: str = "bf16"  # bf16 | fp16 (with loss scaling) | fp32; autocast applies on GPU only
    fused: bool = True  # fused AdamW where the device supports it

    def __post_init__(self) -> None:
        if self.precision not in ("bf16", "fp16", "fp32"):
            raise InputError(f"optim.precision={self.precision!r}: allowed 'bf16', 'fp16', 'fp32'")
        if self.epochs < 1 or self.batch_size < 1:
            raise InputError(f"optim.epochs={self.epochs}, optim.batch_size={self.batch_size}: must be >= 1")
        if self.warmup_epochs > self.epochs:
            raise InputError(f"optim.warmup_epochs={self.warmup_epochs} exceeds optim.epochs={self.epochs}")
        if self.clip_grad_mode not in CLIP_GRAD_MODES:
            raise InputError(f"optim.clip_grad_mode={self.clip_grad_mode!r}: allowed {list(CLIP_GRAD_MODES)}")


@dataclass(frozen=True)
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    image_size: int = 224
    compile: bool = False
