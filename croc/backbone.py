"""ViT backbones (timm) with the outputs CrOC needs from ONE forward pass, fused attention kept on.

The teacher needs the CLS output, the last-block output tokens (after the final norm) and the last block's
per-head queries / keys / values (the attention input after norm1); the student needs the first two only.
"""

from __future__ import annotations

from typing import NamedTuple

import timm
import torch
import torch.nn.functional as F
from torch import nn

from croc.config import ModelConfig
from croc.errors import InputError
from croc.registry import ARCHITECTURES, QKV_INDEX

__all__ = ["ARCHS", "QKV_INDEX", "BackboneOutput", "backbone_forward", "create_backbone"]

ARCHS = ARCHITECTURES  # model.arch -> timm model name (croc/registry.py)


class BackboneOutput(NamedTuple):
    cls: torch.Tensor  # [B, D] CLS output after the final norm
    patches: torch.Tensor  # [B, N, D] last-block output tokens after the final norm
    qkv: torch.Tensor | None  # [3, B, H, 1+N, d] last block's queries, keys, values (CLS first), or None


def create_backbone(arch: str = ModelConfig.arch, patch_size: int = ModelConfig.patch_size,
                    drop_path_rate: float = ModelConfig.drop_path_rate, img_size: int = 224) -> nn.Module:
    """A timm VisionTransformer without classifier, accepting any image size (positional embedding interpolated).

    Its state_dict loads into ``timm.create_model(ARCHS[arch], patch_size=..., num_classes=0,
    dynamic_img_size=True)``.
    """
    ModelConfig(arch=arch, patch_size=patch_size, drop_path_rate=drop_path_rate)  # the settings' own checks
    return timm.create_model(ARCHS[arch], pretrained=False, num_classes=0, patch_size=patch_size, img_size=img_size,
                             dynamic_img_size=True, drop_path_rate=drop_path_rate)


def _last_block_with_qkv(block: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """timm Block.forward, also returning the per-head qkv. x [B, T, C] -> ([B, T, C], [3, B, H, T, d])."""
    attn = block.attn
    b, t, _ = x.shape
    qkv = attn.qkv(block.norm1(x)).reshape(b, t, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)
    out = F.scaled_dot_product_attention(attn.q_norm(q), attn.k_norm(k), v,
                                         dropout_p=attn.attn_drop.p if attn.training else 0.0)
    out = attn.proj_drop(attn.proj(attn.norm(out.transpose(1, 2).reshape(b, t, attn.attn_dim))))
    x = x + block.drop_path1(block.ls1(out))
    x = x + block.drop_path2(block.ls2(block.mlp(block.norm2(x))))
    return x, qkv


def backbone_forward(model: nn.Module, images: torch.Tensor, with_qkv: bool) -> BackboneOutput:
    """images [B, 3, H, W] (normalised) -> BackboneOutput; qkv only when asked (the teacher)."""
    if images.dim() != 4 or images.shape[1] != 3:
        raise InputError(f"images: expected [B, 3, H, W], got {list(images.shape)}")
    x = model.norm_pre(model.patch_drop(model._pos_embed(model.patch_embed(images))))
    qkv = None
    if with_qkv:
        if getattr(model.blocks[-1].attn, "gate", None) is not None:
            raise InputError("gated attention is not supported for the clustered q/k/v tokens")
        for block in model.blocks[:-1]:
            x = block(x)
        x, qkv = _last_block_with_qkv(model.blocks[-1], x)
    else:
        x = model.blocks(x)
    x = model.norm(x)
    prefix = model.num_prefix_tokens
    return BackboneOutput(x[:, 0], x[:, prefix:], qkv)
