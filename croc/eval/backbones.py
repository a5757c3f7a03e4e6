"""A frozen ViT backbone from any checkpoint we meet, loaded safely (weights only).

Accepted sources (`load_backbone(spec)`):
- ``random:<arch>[:<patch>][:<seed>]``  a seeded random initialisation (the baseline every table needs);
- ``stats:colour[:<patch>]``, ``stats:texture[:<patch>]``  hand-made per-patch colour / texture statistics
  (``croc.eval.patch_statistics``): the floor a learned backbone must clear;
- ``<file>.safetensors``                 our export (metadata names the timm model) or timm's weights;
- a run folder / ``checkpoint_*`` folder holding ``state.pt``, or ``state.pt`` itself: our training state
  (the teacher by default, ``which="student"`` for the student);
- ``<file>.pth`` / ``.pt`` / ``.bin``:   the authors' CrOC / DINO checkpoints, a dict with ``student`` (keys
  prefixed ``module.backbone.``) and ``teacher`` (``backbone.``) state dicts and a pickled argparse.Namespace
  ``args`` (read with weights_only=True and only that one class allowed), or a plain timm / DINO state dict.

The architecture (tiny/small/base, patch 8/16) is read from the weights themselves; heads are dropped; a
missing backbone weight is an error naming the file and the keys.
"""

from __future__ import annotations

import argparse
import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from croc.backbone import ARCHS, create_backbone
from croc.checkpoint import load_failure_reason
from croc.checkpoint_layouts import RAY_CHECKPOINT_GLOB, STATE_FILE, STATE_FORMAT, named_kind, parse_named
from croc.errors import InputError
from croc.eval.patch_statistics import PatchStatistics
from croc.eval.registry import NETWORKS

EMBED_DIM_TO_ARCH = {192: "vit_tiny", 384: "vit_small", 768: "vit_base"}
PREFIXES = {"teacher": ("backbone.", "module.backbone.", "teacher.backbone."),
            "student": ("module.backbone.", "backbone.", "student.backbone.")}
assert tuple(PREFIXES) == NETWORKS  # one set of prefixes per network of croc/eval/registry.py
DROPPED_PREFIXES = ("head.", "fc_norm.", "head_drop.")


@dataclass
class FrozenBackbone:
    model: nn.Module  # timm VisionTransformer (or PatchStatistics for stats:...), eval mode, no gradients
    arch: str
    patch_size: int
    source: str  # what was loaded, for the record (path and which network)


def _read_weights_only(path: Path) -> object:
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # foreign pickled objects, truncated or tampered files
        raise InputError(f"checkpoint {path} cannot be loaded safely (weights only, argparse.Namespace allowed): "
                         f"{load_failure_reason(error)}") from error


def _strip(state: dict, prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix) and isinstance(v, torch.Tensor)}


def _backbone_weights(obj: object, path: Path, which: str) -> dict[str, torch.Tensor]:
    """The backbone's state dict (timm names) inside whatever structure the file holds."""
    if not isinstance(obj, dict):
        raise InputError(f"{path} holds a {type(obj).__name__}, not a state dict: no backbone weights in it")
    if obj.get("format") == STATE_FORMAT:  # our training state
        obj = obj["model"]
    elif which in obj and isinstance(obj[which], dict):  # the authors' {'student', 'teacher', 'args', ...}
        obj = obj[which]
    elif "teacher" in obj or "student" in obj:
        raise InputError(f"{path} has no {which!r} entry (found: {sorted(k for k in obj if isinstance(k, str))})")
    elif "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    elif "model" in obj and isinstance(obj["model"], dict):
        obj = obj["model"]
    for prefix in PREFIXES[which]:
        found = _strip(obj, prefix)
        if "cls_token" in found:
            return found
    if "cls_token" in obj:  # already timm names
        return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    sample = sorted(str(k) for k in obj)[:8]
    raise InputError(f"{path} holds no ViT backbone for {which!r} (no 'cls_token' under the prefixes "
                     f"{', '.join(PREFIXES[which])} or at the top level; first keys: {sample})")


def _architecture(weights: dict[str, torch.Tensor], path: Path) -> tuple[str, int, int]:
    """(arch, patch size, training image size) read from the tensors."""
    required = ("cls_token", "pos_embed", "patch_embed.proj.weight")
    missing = [k for k in required if k not in weights]
    if missing:
        raise InputError(f"{path}: backbone weights lack {missing}")
    dim = int(weights["cls_token"].shape[-1])
    if dim not in EMBED_DIM_TO_ARCH:
        raise InputError(f"{path}: embedding width {dim} matches none of {EMBED_DIM_TO_ARCH} ")
    patch = int(weights["patch_embed.proj.weight"].shape[-1])
    side = math.isqrt(int(weights["pos_embed"].shape[1]) - 1)
    return EMBED_DIM_TO_ARCH[dim], patch, side * patch


def _build(weights: dict[str, torch.Tensor], path: Path, source: str) -> FrozenBackbone:
    arch, patch, img_size = _architecture(weights, path)
    model = create_backbone(arch, patch, drop_path_rate=0.0, img_size=img_size)
    weights = {k: v for k, v in weights.items() if not k.startswith(DROPPED_PREFIXES)}
    result = model.load_state_dict(weights, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise InputError(f"{path}: weights do not fit timm's {ARCHS[arch]} (patch {patch}): missing "
                         f"{result.missing_keys[:6]}, unexpected {result.unexpected_keys[:6]}")
    return FrozenBackbone(model.eval().requires_grad_(False), arch, patch, source)


def _parse_named(spec: str) -> tuple[str, str, list[int]]:
    try:
        return parse_named(spec)
    except ValueError as error:
        raise InputError(f"checkpoint {spec!r}: {error}") from None


def _random(spec: str) -> FrozenBackbone:
    _, arch, (patch, seed) = _parse_named(spec)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = create_backbone(arch, patch, drop_path_rate=0.0)
    return FrozenBackbone(model.eval().requires_grad_(False), arch, patch, f"random init ({arch}/{patch}, seed {seed})")


def _statistics(spec: str) -> FrozenBackbone:
    _, kind, (patch,) = _parse_named(spec)
    return FrozenBackbone(PatchStatistics(kind, patch), f"stats:{kind}", patch,
                          f"per-patch {kind} statistics ({patch} px patches)")


def load_backbone(spec: str | os.PathLike, which: str = "teacher") -> FrozenBackbone:
    """See the module docstring for the accepted `spec`s; `which` picks teacher (default) or student."""
    if which not in PREFIXES:
        raise InputError(f"which={which!r}: allowed {', '.join(NETWORKS)}")
    text = str(spec)
    kind = named_kind(text)
    if kind == "random":
        return _random(text)
    if kind == "stats":
        return _statistics(text)
    path = Path(text).expanduser()
    if path.is_dir():
        inside = f"{RAY_CHECKPOINT_GLOB}/{STATE_FILE}"
        candidates = [path / STATE_FILE, *sorted(path.glob(inside))[-1:]]
        found = [c for c in candidates if c.is_file()]
        if not found:
            raise InputError(f"{path} is a folder without a training state ({STATE_FILE} or {inside})")
        path = found[0]
    if not path.is_file():
        raise InputError(f"checkpoint {path} not found")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            weights = load_file(str(path))
        except Exception as error:
            raise InputError(f"{path} is not a readable safetensors file: {error}") from error
        return _build(_backbone_weights(weights, path, which), path, f"{path}")
    weights = _backbone_weights(_read_weights_only(path), path, which)
    return _build(weights, path, f"{path} ({which})")
