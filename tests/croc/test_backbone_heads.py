"""Backbone outputs (one pass, fused attention) and the DINO projection head."""

from __future__ import annotations

import pytest
import timm
import torch
import torch.nn.functional as F

from croc.backbone import ARCHS, backbone_forward, create_backbone
from croc.errors import InputError
from croc.heads import ProjectionHead, WeightNormLinear


@pytest.fixture(scope="module")
def tiny_vit():
    torch.manual_seed(0)
    return create_backbone("vit_tiny", patch_size=16, drop_path_rate=0.0).eval()


def test_outputs_match_timm_forward_features(tiny_vit) -> None:
    images = torch.randn(2, 3, 64, 96)  # dynamic size: 4 x 6 patches
    out = backbone_forward(tiny_vit, images, with_qkv=True)
    reference = tiny_vit.forward_features(images)
    torch.testing.assert_close(out.cls, reference[:, 0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.patches, reference[:, 1:], atol=1e-5, rtol=1e-5)
    assert out.qkv.shape == (3, 2, 3, 1 + 24, 64)  # [3, B, H, 1+N, d]


def test_qkv_are_the_last_block_projections_of_norm1(tiny_vit) -> None:
    images = torch.randn(1, 3, 32, 32)
    captured = {}
    block = tiny_vit.blocks[-1]
    hook = block.norm1.register_forward_hook(lambda m, i, o: captured.setdefault("x", o))
    tiny_vit.forward_features(images)
    hook.remove()
    out = backbone_forward(tiny_vit, images, with_qkv=True)
    qkv = captured["x"] @ block.attn.qkv.weight.T + block.attn.qkv.bias  # [1, T, 3*C]
    values = qkv[..., 2 * 192:].reshape(1, 5, 3, 64).permute(0, 2, 1, 3)
    torch.testing.assert_close(out.qkv[2], values, atol=1e-5, rtol=1e-5)


def test_fused_attention_stays_on(tiny_vit) -> None:
    assert all(block.attn.fused_attn for block in tiny_vit.blocks)


def test_state_dict_loads_into_timm() -> None:
    ours = create_backbone("vit_tiny", patch_size=8, drop_path_rate=0.1)
    theirs = timm.create_model(ARCHS["vit_tiny"], pretrained=False, num_classes=0, patch_size=8,
                               dynamic_img_size=True)
    theirs.load_state_dict(ours.state_dict())
    images = torch.randn(1, 3, 448, 448)[:, :, :64, :80]
    torch.testing.assert_close(theirs.eval().forward_features(images), ours.eval().forward_features(images))


def test_bad_arch_is_named() -> None:
    with pytest.raises(InputError, match="vit_huge"):
        create_backbone("vit_huge")
    with pytest.raises(InputError, match="patch_size"):
        create_backbone("vit_tiny", patch_size=14)


def test_head_shapes_and_shared_mlp() -> None:
    head = ProjectionHead(32, out_dim=50, out_dim_c=20, hidden_dim=64, bottleneck_dim=16)
    images, centroids = torch.randn(4, 32), torch.randn(6, 32)
    a, b = head.forward_both(images, centroids)
    assert a.shape == (4, 50) and b.shape == (6, 20)
    torch.testing.assert_close(a, head(images))
    z = F.normalize(head.mlp(centroids), dim=-1)
    torch.testing.assert_close(b, head.last_layer_c(z))


def test_weight_norm_last_layer() -> None:
    layer = WeightNormLinear(8, 5, norm_last_layer=True)
    assert not layer.weight_g.requires_grad
    x = torch.randn(3, 8)
    w = layer.weight_v / layer.weight_v.norm(dim=1, keepdim=True)
    torch.testing.assert_close(layer(x), x @ w.T)
    assert WeightNormLinear(8, 5, norm_last_layer=False).weight_g.requires_grad


def test_dino_head_has_no_centroid_layer() -> None:
    head = ProjectionHead(32, out_dim=50, out_dim_c=None, hidden_dim=64, bottleneck_dim=16)
    assert head.last_layer_c is None
    with pytest.raises(ValueError, match="no centroid layer"):
        head.forward_both(torch.randn(1, 32), torch.randn(1, 32))
