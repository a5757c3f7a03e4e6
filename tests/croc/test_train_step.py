"""The training step: learning, gradients, EMA, frozen last layer, DINO mode, parameter groups."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from croc.clustering import ClusteringConfig
from croc.config import MethodConfig, ModelConfig, OptimConfig, TrainConfig
from croc.model import CrOC, NetworkOutput
from croc.optim import parameter_groups
from croc.train_step import TrainStep

SIZE, BATCH = 48, 4
N = (SIZE // 16) ** 2


def tiny_config(method: str = "croc", **optim) -> TrainConfig:
    model = ModelConfig(arch="vit_tiny", drop_path_rate=0.0, out_dim=256, out_dim_c=128, hidden_dim=64,
                        bottleneck_dim=32)
    meth = MethodConfig(method=method, clustering=ClusteringConfig(n_init=6, n_centroids_max=4),
                        warmup_teacher_temp_epochs=1)
    base = dict(epochs=4, batch_size=BATCH, warmup_epochs=0, lr=0.02, min_lr=0.02)
    base.update(optim)
    return TrainConfig(model=model, method=meth, optim=OptimConfig(**base), image_size=SIZE)


def fixed_batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(2 * BATCH, 3, SIZE, SIZE, generator=g)
    centres = torch.arange(SIZE // 16).float() * 16 + 7.5
    yy, xx = torch.meshgrid(centres, centres, indexing="ij")
    xy = torch.stack([xx.flatten(), yy.flatten()], -1)
    return images, torch.stack([xy.expand(BATCH, N, 2), (xy + 8).expand(BATCH, N, 2)])


def build(config: TrainConfig, steps_per_epoch: int = 10) -> tuple[CrOC, TrainStep]:
    torch.manual_seed(0)
    model = CrOC(config)
    return model, TrainStep(model, config, steps_per_epoch, torch.device("cpu"))


@pytest.mark.parametrize("method", ["croc", "dino"])
def test_a_few_steps_on_a_fixed_batch_lower_the_loss(method: str) -> None:
    _model, step = build(tiny_config(method, freeze_last_layer_epochs=0, momentum_teacher=0.9))
    images, xy = fixed_batch()
    init = torch.arange(6).expand(BATCH * 3, 6)
    losses = [float(step(images, xy, i, init_idx=init)["loss"]) for i in range(12)]
    assert all(math.isfinite(v) for v in losses)
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.05, losses


def test_gradients_reach_the_student_only() -> None:
    model, _ = build(tiny_config())
    images, xy = fixed_batch()
    features = model.teacher_features(images)
    located, heads = model.teacher_clusters(features, xy, check=True)
    assert located.centroids.grad_fn is None and located.clusters.assignments.grad_fn is None
    teacher = model.teacher_logits(features, located.centroids)
    student = model.student(images, located.clusters.assignments, heads)
    loss = model.losses(NetworkOutput(*student), teacher, located.valid, 0.04)["loss"]
    loss.backward()
    assert all(p.grad is None for p in model.teacher.parameters())
    grads = [p.grad for p in model.student.parameters() if p.requires_grad]
    assert all(g is not None for g in grads)
    assert model.student.backbone.patch_embed.proj.weight.grad.abs().sum() > 0
    assert model.student.head.last_layer_c.weight_v.grad.abs().sum() > 0  # the dense loss reaches its layer


def test_ema_update() -> None:
    model, step = build(tiny_config())
    with torch.no_grad():
        for p in model.student.parameters():
            p.add_(1.0)
    teacher_before = [p.clone() for p in model.teacher.parameters()]
    student_now = [p.clone() for p in model.student.parameters()]
    step.update_teacher(0.9)
    for t0, s, t1 in zip(teacher_before, student_now, model.teacher.parameters(), strict=True):
        torch.testing.assert_close(t1, 0.9 * t0 + 0.1 * s)


def test_last_layer_frozen_during_first_epoch_only() -> None:
    model, step = build(tiny_config(freeze_last_layer_epochs=1), steps_per_epoch=2)
    images, xy = fixed_batch()
    last = model.student.head.last_layer.weight_v
    before = last.detach().clone()
    step(images, xy, 0)
    step(images, xy, 1)
    torch.testing.assert_close(last.detach(), before)
    body = model.student.head.mlp[0].weight
    body_before = body.detach().clone()
    step(images, xy, 2)  # epoch 1
    assert not torch.equal(last.detach(), before)
    assert not torch.equal(body.detach(), body_before)


def test_schedules_drive_the_optimiser() -> None:
    config = tiny_config(lr=0.001, min_lr=1e-5, warmup_epochs=1, weight_decay=0.04, weight_decay_end=0.4)
    _model, step = build(config, steps_per_epoch=3)
    images, xy = fixed_batch()
    metrics = step(images, xy, 1)
    expected_lr = 0.001 * BATCH / 256 * 0.5  # linear warm-up over 3 steps: 0, 0.5, 1 of the base lr
    assert math.isclose(step.optimizer.param_groups[0]["lr"], expected_lr, rel_tol=1e-9)
    assert math.isclose(float(metrics["lr"]), expected_lr, rel_tol=1e-6)
    assert step.optimizer.param_groups[1]["weight_decay"] == 0.0
    assert 0.04 < step.optimizer.param_groups[0]["weight_decay"] < 0.4
    with pytest.raises(ValueError, match="past the schedule"):
        step(images, xy, 12)


def test_no_weight_decay_on_biases_and_norms() -> None:
    model, _ = build(tiny_config())
    decay, no_decay = parameter_groups(model.student)
    names = {id(p): n for n, p in model.student.named_parameters()}
    assert all(names[id(p)].endswith(".bias") or p.ndim == 1 for p in no_decay["params"])
    assert any("norm" in names[id(p)] for p in no_decay["params"])
    assert all(p.ndim > 1 for p in decay["params"])


def test_dino_has_no_dense_branch() -> None:
    model, step = build(tiny_config("dino"))
    assert model.student.head.last_layer_c is None and model.centroid_loss is None
    images, xy = fixed_batch()
    metrics = step(images, xy, 0)
    assert "dense_loss" not in metrics and math.isfinite(float(metrics["loss"]))


def test_every_token_choice_runs() -> None:
    images, xy = fixed_batch()
    for tokens in ("queries", "keys", "last"):
        config = tiny_config()
        config = replace(config, method=replace(config.method, tokens=tokens))
        _, step = build(config)
        metrics = step(images, xy, 0)
        assert math.isfinite(float(metrics["loss"])) and float(metrics["valid_pairs_per_image"]) > 0


def test_a_batch_without_valid_centroid_pairs_still_trains_every_parameter(monkeypatch: pytest.MonkeyPatch) -> None:
    """DDP (find_unused_parameters=False) needs every student parameter in the graph, even with no valid pair."""
    model, _ = build(tiny_config())
    images, xy = fixed_batch()
    features = model.teacher_features(images)
    located, heads = model.teacher_clusters(features, xy)
    located = located._replace(valid=torch.zeros_like(located.valid))
    teacher = model.teacher_logits(features, located.centroids)
    student = model.student(images, located.clusters.assignments, heads)
    metrics = model.losses(NetworkOutput(*student), teacher, located.valid, 0.04)
    assert float(metrics["dense_loss"]) == 0.0 and math.isfinite(float(metrics["loss"]))
    metrics["loss"].backward()
    missing = [n for n, p in model.student.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, missing


@pytest.mark.parametrize("mode", ["per_parameter", "global_norm"])
def test_the_step_clips_gradients_before_the_update(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    clip = 1e-3  # far below the gradients of a fresh model: every gradient is clipped
    _model, step = build(tiny_config("dino", freeze_last_layer_epochs=0, clip_grad=clip, clip_grad_mode=mode))
    seen: list[torch.Tensor] = []
    update = step.scaler.step

    def record_then_update(optimizer: torch.optim.Optimizer) -> None:
        seen.extend(p.grad.norm() for p in step.student_params if p.grad is not None)
        update(optimizer)

    monkeypatch.setattr(step.scaler, "step", record_then_update)
    step(*fixed_batch(), 0)
    norms = torch.stack(seen)
    if mode == "per_parameter":  # each gradient on its own: all the non-zero ones end at the threshold
        nonzero = norms[norms > 0]
        torch.testing.assert_close(nonzero, torch.full_like(nonzero, clip), rtol=1e-4, atol=0)
    else:  # all together: the joint norm ends at the threshold
        torch.testing.assert_close(norms.norm(), torch.tensor(clip), rtol=1e-4, atol=0)


@pytest.mark.parametrize("method", ["croc", "dino"])
def test_the_step_returns_the_entropy_ratios(method: str) -> None:
    config = tiny_config(method)
    _model, step = build(config)
    metrics = step(*fixed_batch(), 0)
    torch.testing.assert_close(metrics["teacher_entropy_ratio"], metrics["teacher_entropy"] / math.log(256))
    assert 0 < float(metrics["teacher_entropy_ratio"]) <= 1 + 1e-6
    if method == "croc":
        torch.testing.assert_close(metrics["teacher_entropy_ratio_c"], metrics["teacher_entropy_c"] / math.log(128))
    else:
        assert "teacher_entropy_ratio_c" not in metrics
