"""Export a trained backbone as timm-compatible safetensors, and load it back as the right timm model.

The file holds the backbone's weights under timm's names, and metadata naming what a user needs to run it: the
timm model, patch size, the image size it was trained at and the normalisation its inputs had (the ImageNet
statistics: timm's own default config for these models says 0.5 / 0.5). `load_timm_backbone(path)` builds that
model with a pretrained_cfg carrying the same values, so `timm.data.resolve_data_config(model=...)` is right.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path

import timm
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from croc.augment import IMAGENET_MEAN, IMAGENET_STD
from croc.backbone import ARCHS
from croc.errors import InputError
from croc.files import write_atomically


def export_backbone(backbone: nn.Module, path: str | Path, arch: str, patch_size: int,
                    image_size: int | None = None) -> Path:
    """Write a backbone module's weights; see export_backbone_weights."""
    return export_backbone_weights(backbone.state_dict(), path, arch, patch_size, image_size)


def export_backbone_weights(weights: Mapping[str, torch.Tensor], path: str | Path, arch: str, patch_size: int,
                            image_size: int | None = None) -> Path:
    """Write backbone weights (timm names) as safetensors, with metadata naming the timm model to create, the
    image size it was trained at (None: not known, e.g. a baseline) and its input normalisation."""
    tensors = {name: t.detach().cpu().contiguous() for name, t in weights.items()}
    metadata = {"timm_model": ARCHS[arch], "arch": arch, "patch_size": str(patch_size), "num_classes": "0",
                "dynamic_img_size": "true", "mean": json.dumps(list(IMAGENET_MEAN)),
                "std": json.dumps(list(IMAGENET_STD))}
    if image_size is not None:
        metadata["image_size"] = str(image_size)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    save_file(tensors, str(tmp), metadata=metadata)
    write_atomically(path, tmp.read_bytes())
    tmp.unlink()
    return path


def export_network_backbone(model_weights: Mapping[str, torch.Tensor], network: str, path: str | Path, arch: str,
                            patch_size: int, image_size: int | None = None) -> Path:
    """Write the backbone of `network` ('teacher' or 'student') out of a CrOC model's weights (`CrOC.state_dict()`,
    or the "model" of a training state): the one way a checkpoint of ours becomes a backbone file."""
    prefix = f"{network}.backbone."
    weights = {name.removeprefix(prefix): t for name, t in model_weights.items() if name.startswith(prefix)}
    if not weights:
        raise InputError(f"no weights under {prefix!r}: network must be 'teacher' or 'student' of a CrOC model")
    return export_backbone_weights(weights, path, arch, patch_size, image_size)


def load_backbone_weights(path: str | Path) -> dict:
    return load_file(str(path))


def backbone_metadata(path: str | Path) -> dict[str, str]:
    """The metadata of an exported backbone (raises InputError for a file that is not one)."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except Exception as error:  # missing, not safetensors, truncated
        raise InputError(f"{path} is not a safetensors file ({error})") from error
    if metadata.get("timm_model") not in ARCHS.values():
        raise InputError(f"{path} names no timm model this platform exports (metadata {metadata})")
    return metadata


def load_timm_backbone(path: str | Path) -> nn.Module:
    """The exported backbone as its timm model (no classifier, any input size), weights loaded strictly, with a
    pretrained_cfg holding the normalisation and image size it was trained with."""
    meta = backbone_metadata(path)
    overlay = {"mean": tuple(json.loads(meta.get("mean", json.dumps(list(IMAGENET_MEAN))))),
               "std": tuple(json.loads(meta.get("std", json.dumps(list(IMAGENET_STD)))))}
    if "image_size" in meta:
        overlay["input_size"] = (3, int(meta["image_size"]), int(meta["image_size"]))
    weights = load_file(str(path))
    patch = int(meta["patch_size"])
    grid = math.isqrt(weights["pos_embed"].shape[1] - 1)  # the stored grid (CLS first), interpolated to any input
    model = timm.create_model(meta["timm_model"], pretrained=False, num_classes=0, patch_size=patch,
                              img_size=grid * patch, dynamic_img_size=True, pretrained_cfg_overlay=overlay)
    model.load_state_dict(weights)
    return model.eval()
