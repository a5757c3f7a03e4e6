"""Loading frozen backbones from every checkpoint format we accept, and the dense features they give."""

from __future__ import annotations

import argparse
import collections

import pytest
import torch
import torch.nn.functional as F

from croc.backbone import create_backbone
from croc.errors import InputError
from croc.eval.backbones import load_backbone
from croc.eval.features import DenseFeatures, interpolate_pos_embed, normalize_images
from croc.export import export_backbone


def _vit(seed: int):
    torch.manual_seed(seed)
    return create_backbone("vit_tiny", 16, 0.0).eval()


def _same(model_a, model_b) -> bool:
    a, b = model_a.state_dict(), model_b.state_dict()
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _authors_checkpoint(student, teacher) -> dict:
    """The structure of the published CrOC / DINO checkpoints: DDP-prefixed student, plain teacher, args."""
    args = argparse.Namespace(arch="vit_small", patch_size=16, out_dim=65536, lr=5e-4)
    state = {"student": {f"module.backbone.{k}": v for k, v in student.state_dict().items()},
             "teacher": {f"backbone.{k}": v for k, v in teacher.state_dict().items()},
             "optimizer": {"state": {}, "param_groups": []}, "epoch": 300, "args": args}
    state["student"]["module.head.mlp.0.weight"] = torch.zeros(4, 192)
    state["teacher"]["head.last_layer.weight"] = torch.zeros(4, 192)
    return state


def test_authors_checkpoint_teacher_by_default_student_on_request(tmp_path):
    student, teacher = _vit(1), _vit(2)
    path = tmp_path / "croc_coco.pth"
    torch.save(_authors_checkpoint(student, teacher), path)
    loaded = load_backbone(path)
    assert (loaded.arch, loaded.patch_size) == ("vit_tiny", 16)
    assert _same(loaded.model, teacher) and not _same(loaded.model, student)
    assert _same(load_backbone(path, which="student").model, student)
    assert not any(p.requires_grad for p in loaded.model.parameters()) and not loaded.model.training


class _Payload:  # any other pickled class must be refused
    pass


def test_checkpoint_with_a_foreign_pickled_object_is_refused(tmp_path):
    state = _authors_checkpoint(_vit(1), _vit(2))
    state["args"] = _Payload()
    path = tmp_path / "evil.pth"
    torch.save(state, path)
    with pytest.raises(InputError, match=r"evil.pth.*weights only"):
        load_backbone(path)


def test_plain_timm_state_dict_and_our_safetensors_export(tmp_path):
    model = _vit(3)
    torch.save(collections.OrderedDict(model.state_dict()), tmp_path / "dino_deitsmall16.pth")
    assert _same(load_backbone(tmp_path / "dino_deitsmall16.pth").model, model)
    export_backbone(model, tmp_path / "backbone.safetensors", "vit_tiny", 16)
    assert _same(load_backbone(tmp_path / "backbone.safetensors").model, model)


def test_our_training_state_folder(tmp_path):
    student, teacher = _vit(4), _vit(5)
    state = {"format": "croc-training-state-1", "step": 3,
             "model": {**{f"student.backbone.{k}": v for k, v in student.state_dict().items()},
                       **{f"teacher.backbone.{k}": v for k, v in teacher.state_dict().items()},
                       "teacher.head.w": torch.zeros(2)}}
    folder = tmp_path / "run" / "checkpoint_000002"
    folder.mkdir(parents=True)
    torch.save(state, folder / "state.pt")
    assert _same(load_backbone(folder).model, teacher)
    assert _same(load_backbone(tmp_path / "run").model, teacher)  # latest checkpoint_* of a run folder
    assert _same(load_backbone(folder / "state.pt", which="student").model, student)


def test_errors_name_the_file(tmp_path):
    torch.save({"optimizer": {}, "epoch": 1}, tmp_path / "no_backbone.pth")
    with pytest.raises(InputError, match=r"no_backbone.pth holds no ViT backbone"):
        load_backbone(tmp_path / "no_backbone.pth")
    with pytest.raises(InputError, match=r"missing.pth not found"):
        load_backbone(tmp_path / "missing.pth")
    (tmp_path / "broken.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match=r"broken.pth cannot be loaded safely"):
        load_backbone(tmp_path / "broken.pth")
    torch.save({"teacher": {"backbone.cls_token": torch.zeros(1, 1, 192)}}, tmp_path / "partial.pth")
    with pytest.raises(InputError, match=r"partial.pth: backbone weights lack"):
        load_backbone(tmp_path / "partial.pth")
    with pytest.raises(InputError, match="random:<arch>"):
        load_backbone("random:vit_huge")


def test_random_init_is_seeded():
    a, b = load_backbone("random:vit_tiny"), load_backbone("random:vit_tiny:16:0")
    c = load_backbone("random:vit_tiny:16:1")
    assert _same(a.model, b.model) and not _same(a.model, c.model)


def test_pos_embed_interpolation_follows_dino_scale_factor_rule():
    pos = torch.randn(1, 1 + 14 * 14, 8)
    out = interpolate_pos_embed(pos, (30, 52))
    assert out.shape == (1, 1 + 30 * 52, 8) and torch.equal(out[:, :1], pos[:, :1])
    grid = pos[:, 1:].reshape(1, 14, 14, 8).permute(0, 3, 1, 2)
    expected = F.interpolate(grid, scale_factor=(30.1 / 14, 52.1 / 14), mode="bicubic", align_corners=False)
    assert torch.allclose(out[:, 1:], expected.permute(0, 2, 3, 1).reshape(1, -1, 8))
    assert interpolate_pos_embed(pos, (14, 14)) is pos


def test_last_n_blocks_are_normed_block_outputs_concatenated():
    model = _vit(6)
    images = normalize_images(torch.randint(0, 256, (2, 3, 64, 96), dtype=torch.uint8))
    feats = DenseFeatures(model, last_n=2)(images)
    assert feats.shape == (2, 2 * 192, 4, 6)
    # independent path: run the blocks by hand with timm's own (size-based) interpolation replaced by ours
    x = model.patch_embed.proj(images).flatten(2).transpose(1, 2)
    x = torch.cat([model.cls_token.expand(2, -1, -1), x], 1) + interpolate_pos_embed(model.pos_embed, (4, 6))
    outs = []
    for block in model.blocks:
        x = block(x)
        outs.append(model.norm(x)[:, 1:])
    expected = torch.cat([outs[-2], outs[-1]], -1).transpose(1, 2).reshape(2, 384, 4, 6)
    assert torch.allclose(feats, expected, atol=1e-5)
    with pytest.raises(InputError, match="multiple of the patch size"):
        DenseFeatures(model)(images[..., :60])
