"""Training state: an exact resume, safe loading, and the timm-compatible export."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import timm
import torch

from croc.checkpoint import STATE_FILE, load_training_state, restore_training_state, save_training_state
from croc.errors import InputError
from croc.export import export_backbone, load_backbone_weights
from croc.model import CrOC
from croc.train_step import TrainStep
from tests.croc.test_train_step import build, fixed_batch, tiny_config


def test_resume_continues_exactly(tmp_path: Path) -> None:
    config = tiny_config()
    images, xy = fixed_batch()
    model, step = build(config)
    for i in range(2):
        step(images, xy, i)
    save_training_state(tmp_path, model=model, optimizer=step.optimizer, scaler=step.scaler, step=2, epoch=0,
                        data_seed=0, config={"name": "t"})
    expected = [float(step(images, xy, i)["loss"]) for i in (2, 3)]  # sampling draws come from the saved RNG

    torch.manual_seed(123)  # a fresh process would start elsewhere
    resumed = CrOC(config)
    resumed_step = TrainStep(resumed, config, 10, torch.device("cpu"))
    at, _ = restore_training_state(load_training_state(tmp_path), model=resumed, optimizer=resumed_step.optimizer,
                                   scaler=resumed_step.scaler)
    assert at == 2
    got = [float(resumed_step(images, xy, i)["loss"]) for i in (2, 3)]
    assert got == pytest.approx(expected, rel=1e-6)
    torch.testing.assert_close(resumed.image_loss.center, model.image_loss.center)


class Foreign:
    def __reduce__(self):
        return (print, ("this would run on load",))


def test_foreign_or_tampered_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / STATE_FILE).write_bytes(pickle.dumps({"format": "croc-training-state-1", "x": Foreign()}))
    with pytest.raises(InputError, match="cannot be loaded safely") as refused:
        load_training_state(tmp_path)
    message = str(refused.value)
    assert "Unsupported" in message and "\n" not in message  # torch's reason, on one line
    assert "weights_only=False" not in message  # never torch's advice to run the file
    torch.save({"something": torch.zeros(2)}, tmp_path / STATE_FILE)
    with pytest.raises(InputError, match="not a CrOC training state"):
        load_training_state(tmp_path)
    (tmp_path / STATE_FILE).write_bytes(b"\x80\x04truncated")
    with pytest.raises(InputError, match="cannot be loaded safely"):
        load_training_state(tmp_path)
    with pytest.raises(InputError, match="not found"):
        load_training_state(tmp_path / "missing")


def test_exported_backbone_loads_into_timm(tmp_path: Path) -> None:
    model, _ = build(tiny_config())
    path = export_backbone(model.teacher.backbone, tmp_path / "backbone.safetensors", "vit_tiny", 16)
    theirs = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, dynamic_img_size=True)
    theirs.load_state_dict(load_backbone_weights(path))
    x = torch.randn(1, 3, 48, 48)
    torch.testing.assert_close(theirs.eval().forward_features(x), model.teacher.backbone.eval().forward_features(x))


def test_the_loader_builds_the_timm_model_with_the_training_normalisation(tmp_path: Path) -> None:
    import timm

    from croc.backbone import create_backbone
    from croc.export import backbone_metadata, export_backbone, load_timm_backbone

    torch.manual_seed(0)
    source = create_backbone("vit_tiny", 8, 0.0).eval()
    path = export_backbone(source, tmp_path / "backbone.safetensors", "vit_tiny", 8, image_size=96)
    meta = backbone_metadata(path)
    assert (meta["arch"], meta["patch_size"], meta["image_size"]) == ("vit_tiny", "8", "96")
    model = load_timm_backbone(path)
    assert model.patch_embed.patch_size == (8, 8) and not model.training
    data = timm.data.resolve_data_config({}, model=model)
    assert data["mean"] == (0.485, 0.456, 0.406) and data["std"] == (0.229, 0.224, 0.225)  # not timm's 0.5s
    assert data["input_size"] == (3, 96, 96)
    x = torch.randn(2, 3, 96, 128)
    torch.testing.assert_close(model(x), source(x))
    (tmp_path / "other.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(InputError, match="not a safetensors file"):
        load_timm_backbone(tmp_path / "other.safetensors")
