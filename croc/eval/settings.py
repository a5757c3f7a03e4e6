"""The evaluations' settings, each default, bound and choice declared once (croc/settings.py); no torch here.

- `LinearProtocol`: the linear protocol as the config writes it (evaluation.linear: one epoch count per dataset,
  ADE20K's iteration-mode constants); `probe(dataset)` gives the `LinearProbeConfig` one dataset runs with.
- `LinearProbeConfig`: one linear probe run (epoch mode, or iteration mode for ADE20K); its protocol defaults are
  `LinearProtocol`'s.
- `UnsupervisedConfig`: the unsupervised segmentation protocol (evaluation.unsup).
- `PropagationConfig`: DAVIS label propagation (evaluation.davis).
- `EvalProtocol`: the three together, what an evaluation task runs (croc/eval/tasks.py); frozen and plain, so it
  crosses process boundaries as it is.

The platform's YAML sections (pipelines/config/evaluation.py) are generated from these dataclasses.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from croc.eval.registry import CLASS_RULES, DAVIS_SPLITS, PROTOCOL_EPOCHS
from croc.settings import SettingError, check_pair, check_settings, same_setting, setting

EpochDataset = Literal[tuple(PROTOCOL_EPOCHS)]  # type: ignore[valid-type]  # the datasets run in epoch mode


def is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_integers(obj: Any, section: str, names: tuple[str, ...]) -> None:
    """Each named field (None allowed) holds an integer (not a bool, not a float)."""
    for name in names:
        value = getattr(obj, name)
        if value is not None and not is_int(value):
            raise SettingError(section, name, value, "must be an integer")


def check_bool(obj: Any, section: str, name: str) -> None:
    value = getattr(obj, name)
    if not isinstance(value, bool):
        raise SettingError(section, name, value, "must be True or False")


# ------------------------------------------------------------------------------------------ linear protocol


@dataclass(frozen=True)
class LinearProtocol:
    """The linear protocol as the config holds it (evaluation.linear); defaults: the published protocol."""

    image_size: int = setting(448, ge=16)  # epoch mode: train and val resized to image_size x image_size
    last_n: int = setting(2, ge=1)  # feature blocks
    epochs: dict[EpochDataset, int] = setting(factory=lambda: dict(PROTOCOL_EPOCHS), ge=1)  # noqa: RUF009
    lr: float = setting(1e-3, gt=0)  # epoch mode
    batch_size: int = setting(16, ge=1)
    scale: tuple[float, float] = setting((0.75, 1.25), gt=0)  # zoom factor range about the centre
    rotation_deg: float = setting(5.0, ge=0, le=180)  # rotation angle range +-rotation_deg
    flip: bool = True  # horizontal flip with probability 1/2
    max_train_images: int | None = setting(None, ge=1)  # None = the whole split (the protocol)
    max_val_images: int | None = setting(None, ge=1)
    ade20k_iterations: int = setting(40_000, ge=1)  # ADE20K: iteration mode
    ade20k_crop_size: int = setting(512, ge=16)
    ade20k_lrs: tuple[float, ...] = setting((3e-4, 1e-3, 3e-3), gt=0)  # one run per lr, the best reported
    ade20k_eval_every: int = setting(4000, ge=1)

    def __post_init__(self) -> None:
        if isinstance(self.epochs, Mapping):  # naming one dataset keeps the protocol's epochs for the others
            object.__setattr__(self, "epochs", {**PROTOCOL_EPOCHS, **self.epochs})
        for name in ("scale", "ade20k_lrs"):
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))
        check_integers(self, "linear", ("image_size", "last_n", "batch_size", "max_train_images", "max_val_images",
                                        "ade20k_iterations", "ade20k_crop_size", "ade20k_eval_every"))
        if not all(is_int(v) for v in self.epochs.values()):
            raise SettingError("linear", "epochs", self.epochs, "must be integers")
        check_settings(self, "linear")
        check_pair("linear", "scale", self.scale, "0 < low <= high", lambda low, high: 0 < low <= high)
        check_bool(self, "linear", "flip")
        if not self.ade20k_lrs:
            raise SettingError("linear", "ade20k_lrs", self.ade20k_lrs, "must hold at least one learning rate")

    def probe(self, dataset: str, classes: str = "all") -> LinearProbeConfig:
        """The probe one dataset runs with: ADE20K in iteration mode, the others for their epochs."""
        common = dict(last_n=self.last_n, batch_size=self.batch_size, scale=self.scale,
                      rotation_deg=self.rotation_deg, flip=self.flip, max_train_images=self.max_train_images,
                      max_val_images=self.max_val_images, classes=classes)
        if dataset == "ade20k":
            return LinearProbeConfig(image_size=self.ade20k_crop_size, iterations=self.ade20k_iterations,
                                     crop_size=self.ade20k_crop_size, lrs=self.ade20k_lrs,
                                     eval_every=self.ade20k_eval_every, **common)
        epochs = self.epochs.get(dataset, LinearProbeConfig.epochs)
        return LinearProbeConfig(image_size=self.image_size, lr=self.lr, epochs=epochs, **common)


@dataclass(frozen=True)
class LinearProbeConfig:
    """Every constant of one linear probe run; defaults = the protocol on PASCAL VOC 2012 (`LinearProtocol`'s).

    ADE20K: ``iterations=40000, crop_size=512, lrs=(...), eval_every=4000`` (`LinearProtocol().probe("ade20k")`).
    """

    # the protocol's constants: declared (default, bounds) by LinearProtocol
    image_size: int = same_setting(LinearProtocol, "image_size")  # epoch mode: train and val resized
    last_n: int = same_setting(LinearProtocol, "last_n")  # feature blocks (the extractor's last_n when it has one)
    epochs: int = setting(PROTOCOL_EPOCHS["voc"], ge=1)  # epoch mode only
    lr: float = same_setting(LinearProtocol, "lr")  # epoch mode only (iteration mode uses lrs)
    batch_size: int = same_setting(LinearProtocol, "batch_size")
    scale: tuple[float, float] = same_setting(LinearProtocol, "scale")  # zoom range about the centre (size kept)
    rotation_deg: float = same_setting(LinearProtocol, "rotation_deg")  # rotation angle range +-rotation_deg
    flip: bool = LinearProtocol.flip  # horizontal flip with probability 1/2
    seed: int = 0
    max_train_images: int | None = same_setting(LinearProtocol, "max_train_images")  # the first N train images
    max_val_images: int | None = same_setting(LinearProtocol, "max_val_images")  # the first N val images
    iterations: int | None = same_setting(LinearProtocol, "ade20k_iterations", None)  # set: iteration mode
    crop_size: int = same_setting(LinearProtocol, "ade20k_crop_size")  # iteration mode: train crops, val resize
    lrs: tuple[float, ...] = same_setting(LinearProtocol, "ade20k_lrs", (LinearProtocol.lr,))  # one run per lr
    eval_every: int = same_setting(LinearProtocol, "ade20k_eval_every")  # iteration mode: evaluate every N steps
    cache_val_features_gb: float = setting(2.0, ge=0)  # cache val features (fp16, CPU) when they fit (0: never)
    n_examples: int = setting(4, ge=0)  # first val images returned with their best-epoch predictions
    num_workers: int = setting(0, ge=0)  # DataLoader workers for reading and resizing
    classes: str = setting("all", choices=CLASS_RULES)  # mIoU over "all" classes or the "present" ones

    def __post_init__(self) -> None:
        try:
            check_integers(self, "LinearProbeConfig", (
                "image_size", "last_n", "epochs", "batch_size", "seed", "max_train_images", "max_val_images",
                "iterations", "crop_size", "eval_every", "n_examples", "num_workers"))
            for name in ("scale", "lrs"):
                if not isinstance(getattr(self, name), tuple):
                    raise SettingError("LinearProbeConfig", name, getattr(self, name), "must be a tuple")
            check_settings(self, "LinearProbeConfig")
            check_pair("LinearProbeConfig", "scale", self.scale, "(min, max) with 0 < min <= max",
                       lambda low, high: 0 < low <= high)
            if not self.lrs:
                raise SettingError("LinearProbeConfig", "lrs", self.lrs, "must be a non-empty tuple")
            check_bool(self, "LinearProbeConfig", "flip")
        except SettingError as error:  # 'LinearProbeConfig.<field>=<value>: allowed ...'
            raise SettingError("LinearProbeConfig", error.key, error.value,
                               "allowed " + error.rule.removeprefix("must be ").removeprefix("must ")) from None

    @property
    def iteration_mode(self) -> bool:
        return self.iterations is not None

    @property
    def val_size(self) -> int:
        """Side of the square val images and masks (image_size, or crop_size in iteration mode)."""
        return self.crop_size if self.iteration_mode else self.image_size


# -------------------------------------------------------------------------------------- unsupervised protocol


@dataclass(frozen=True)
class UnsupervisedConfig:
    """Every constant of the unsupervised segmentation protocol (croc/eval/unsupervised.py)."""

    image_size: int = setting(448, ge=16)  # images resized to image_size x image_size (bicubic)
    mask_size: int = setting(100, ge=1)  # labels and predictions at mask_size x mask_size
    last_n: int = setting(1, ge=1)  # features of the last n blocks
    pca_dim: int = setting(50, ge=1)
    seeds: tuple[int, ...] = setting((0, 1, 2, 3, 4), ge=0, lt=2**31)  # one full K-Means clustering per seed
    iterations: int = setting(100, ge=1)  # Lloyd iterations per K-Means run
    restarts: int = setting(5, ge=1)  # K-Means runs per seed, the lowest inertia kept
    max_points_per_centroid: int = setting(256, ge=1)  # K-Means sample = this * K vectors (faiss's subsampling)
    max_pca_vectors: int = setting(2_000_000, ge=1)  # PCA fitted on at most this many vectors
    cluster_tokens: bool = False  # cluster the h x w tokens and upsample the cluster map (cheaper)
    batch_size: int = setting(16, ge=1)  # images per batch, feature pass and streaming passes
    max_images: int | None = setting(None, ge=1)  # None: every image of the split
    n_examples: int = setting(4, ge=0)  # example predictions kept (seed 0)
    sample_seed: int = setting(0, ge=0)  # seed of the PCA subsample
    classes: str = setting("all", choices=CLASS_RULES)  # "all": K = every class, absent ones count 0; "present":
    # K = the classes present in the split

    def __post_init__(self) -> None:
        if isinstance(self.seeds, list):
            object.__setattr__(self, "seeds", tuple(self.seeds))
        check_integers(self, "unsupervised", (
            "image_size", "mask_size", "last_n", "pca_dim", "iterations", "restarts", "max_points_per_centroid",
            "max_pca_vectors", "batch_size", "max_images", "n_examples", "sample_seed"))
        if not isinstance(self.seeds, tuple) or not self.seeds or not all(is_int(s) for s in self.seeds):
            raise SettingError("unsupervised", "seeds", self.seeds,
                               "must be a non-empty tuple of integers in [0, 2^31)")
        check_settings(self, "unsupervised")
        if len(set(self.seeds)) != len(self.seeds):
            raise SettingError("unsupervised", "seeds", self.seeds, "seeds must be distinct")
        check_bool(self, "unsupervised", "cluster_tokens")


# ------------------------------------------------------------------------------------------- DAVIS protocol


@dataclass(frozen=True)
class PropagationConfig:
    """Every constant of the DAVIS label propagation protocol (defaults: DINO's)."""

    short_side: int = setting(480, ge=16)  # frames resized to this short side ...
    size_multiple: int = setting(64, ge=1)  # ... and the long side rounded down to a multiple of this
    last_n: int = setting(1, ge=1)  # feature blocks (DenseFeatures(vit, last_n))
    temperature: float = setting(0.1, gt=0)  # affinity = exp(cosine / temperature)
    n_last_frames: int = setting(7, ge=0)  # most recent frames used as context, besides the first
    neighborhood: int = setting(12, ge=0)  # sources at most this many patches away in both axes; 0 = no restriction
    topk: int = setting(5, ge=1)  # sources kept per target token, jointly over all context frames
    upsample: int | None = setting(None, ge=1)  # bilinear upsampling of the soft labels; None = the patch size
    max_videos: int | None = setting(None, ge=1)  # the first videos of the split only (smoke runs)

    def __post_init__(self) -> None:
        check_integers(self, "davis", ("short_side", "size_multiple", "last_n", "n_last_frames", "neighborhood",
                                       "topk", "upsample", "max_videos"))
        check_settings(self, "davis")


# ---------------------------------------------------------------------------------------------- all three


@dataclass(frozen=True)
class EvalProtocol:
    """The constants of the three protocols (docs/evaluation.md); linear epochs differ per dataset."""

    linear: LinearProbeConfig = field(default_factory=LinearProbeConfig)
    linear_epochs: Mapping[str, int] = field(default_factory=lambda: dict(PROTOCOL_EPOCHS))
    ade20k: LinearProbeConfig = field(default_factory=lambda: LinearProtocol().probe("ade20k"))
    unsup: UnsupervisedConfig = field(default_factory=UnsupervisedConfig)
    davis: PropagationConfig = field(default_factory=PropagationConfig)
    davis_split: str = setting("val", choices=DAVIS_SPLITS)

    def __post_init__(self) -> None:
        check_settings(self, "EvalProtocol")

    @classmethod
    def of(cls, linear: LinearProtocol, unsup: UnsupervisedConfig, davis: PropagationConfig,
           davis_split: str = "val", classes: str = "all") -> EvalProtocol:
        """The protocol from the config's settings; `classes` (evaluation.classes) reaches every mIoU."""
        return cls(linear=linear.probe("voc", classes), linear_epochs=dict(linear.epochs),
                   ade20k=linear.probe("ade20k", classes), unsup=unsup, davis=davis, davis_split=davis_split)

    def linear_probe(self, dataset: str) -> LinearProbeConfig:
        """The probe of one dataset: ADE20K's iteration mode, or `linear` with the dataset's epochs."""
        if dataset == "ade20k":
            return self.ade20k
        return replace(self.linear, epochs=int(self.linear_epochs.get(dataset, self.linear.epochs)))
