"""Export a trained backbone as timm-compatible safetensors (load with timm.create_model(...).load_state_dict)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from croc.backbone import ARCHS
from croc.files import write_atomically


def export_backbone(backbone: nn.Module, path: str | Path, arch: str, patch_size: int) -> Path:
    """Write a backbone module's weights; see export_backbone_weights."""
    return export_backbone_weights(backbone.state_dict(), path, arch, patch_size)


def export_backbone_weights(weights: Mapping[str, torch.Tensor], path: str | Path, arch: str,
                            patch_size: int) -> Path:
    """Write backbone weights (timm names) as safetensors, with metadata naming the timm model to create."""
    tensors = {name: t.detach().cpu().contiguous() for name, t in weights.items()}
    metadata = {"timm_model": ARCHS[arch], "patch_size": str(patch_size), "num_classes": "0",
                "dynamic_img_size": "true"}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    save_file(tensors, str(tmp), metadata=metadata)
    write_atomically(path, tmp.read_bytes())
    tmp.unlink()
    return path


def load_backbone_weights(path: str | Path) -> dict:
    return load_file(str(path))
