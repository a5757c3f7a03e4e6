"""The collapse monitor: the entropy ratio of known teacher outputs, and when the monitor warns (once) or not."""

from __future__ import annotations

import math

import pytest
import torch

from croc.clustering import ClusteringConfig
from croc.collapse import SINGLE, UNIFORM, CollapseMonitor, entropy_ratio
from croc.config import MethodConfig, OptimConfig, TrainConfig
from croc.errors import InputError
from croc.losses import CentroidLoss, ImageLoss

C = 256


def image_ratio(teacher_logits: torch.Tensor, temp: float = 0.04) -> float:
    _loss, entropy = ImageLoss(C)(torch.zeros_like(teacher_logits), teacher_logits, temp)
    return float(entropy_ratio(entropy, C))


def test_equal_logits_give_ratio_one_and_a_peak_gives_zero() -> None:
    assert abs(image_ratio(torch.full((2, 3, C), 0.7)) - 1.0) < 1e-6
    peaked = torch.zeros(2, 3, C)
    peaked[..., 5] = 10.0  # softmax at temperature 0.04: exp(-250) for every other output
    assert image_ratio(peaked) < 1e-6


def test_ratio_of_a_two_level_softmax_by_hand() -> None:
    # half the outputs at logit 0, half at logit T ln 3 (temperature T): probabilities 1/(2C) and 3/(2C)
    temp = 0.5
    logits = torch.zeros(2, 1, C)
    logits[..., : C // 2] = temp * math.log(3.0)
    p_low, p_high = 1 / (2 * C), 3 / (2 * C)
    entropy = -(C // 2) * (p_low * math.log(p_low) + p_high * math.log(p_high))
    assert image_ratio(logits, temp) == pytest.approx(entropy / math.log(C), abs=1e-6)


def test_dense_head_ratio_uses_its_own_width() -> None:
    c = 64
    loss = CentroidLoss(c)
    teacher = torch.zeros(2, 4, c)
    _loss, entropy = loss(torch.zeros_like(teacher), teacher, torch.tensor([True, True, False, True]), 0.04)
    assert abs(float(entropy_ratio(entropy, c)) - 1.0) < 1e-6
    assert float(entropy_ratio(entropy, C)) == pytest.approx(math.log(c) / math.log(C), abs=1e-6)


def feed(monitor: CollapseMonitor, ratios: list[float], every: int = 10, metric: str = "teacher_entropy_ratio"):
    """The ratios at log steps every, 2 * every, ... -> every alert raised."""
    alerts = []
    for i, ratio in enumerate(ratios, start=1):
        alerts += monitor.observe(i * every, {metric: ratio, "loss": 1.0})
    return alerts


def test_uniform_outputs_after_the_grace_period_warn_once() -> None:
    alerts = feed(CollapseMonitor(after_step=30), [0.99] * 10)
    assert len(alerts) == 1
    alert = alerts[0]
    assert (alert.metric, alert.direction, alert.step, alert.ratio) == ("teacher_entropy_ratio", UNIFORM, 40, 0.99)
    for text in ("image-level head", "step 40", "0.990", "uniform outputs (collapse)", "teacher temperature too high"):
        assert text in alert.message


def test_a_single_output_warns_once_naming_the_dense_head() -> None:
    alerts = feed(CollapseMonitor(after_step=0), [0.01, 0.02, 0.0, 0.01], metric="teacher_entropy_ratio_c")
    assert [(a.metric, a.direction, a.step) for a in alerts] == [("teacher_entropy_ratio_c", SINGLE, 20)]
    assert "dense head" in alerts[0].message and "single output" in alerts[0].message
    assert "teacher temperature too low" in alerts[0].message


def test_each_direction_warns_once() -> None:
    alerts = feed(CollapseMonitor(), [0.97, 0.98, 0.5, 0.97, 0.98, 0.03, 0.02, 0.5, 0.01, 0.01])
    assert [(a.direction, a.step) for a in alerts] == [(UNIFORM, 20), (SINGLE, 70)]


def test_healthy_ratios_never_warn() -> None:
    assert feed(CollapseMonitor(), [0.5] * 20) == []
    assert feed(CollapseMonitor(), [0.94, 0.06, 0.94, 0.06] * 5) == []


def test_no_warning_during_the_grace_period() -> None:
    monitor = CollapseMonitor(after_step=100)
    assert feed(monitor, [1.0] * 10) == []  # steps 10 .. 100: only step 100 counts, one point < patience 2
    assert [a.step for a in monitor.observe(110, {"teacher_entropy_ratio": 1.0})] == [110]


def test_a_single_point_beyond_the_threshold_is_not_enough() -> None:
    assert feed(CollapseMonitor(), [0.99, 0.5, 0.99, 0.5, 0.01, 0.5]) == []


def test_dense_points_without_valid_pairs_are_not_readings() -> None:
    monitor = CollapseMonitor()
    empty = {"teacher_entropy_ratio": 0.5, "teacher_entropy_ratio_c": 0.0, "valid_pairs_per_image": 0.0}
    assert monitor.observe(10, empty) == [] and monitor.observe(20, empty) == []
    assert monitor.observe(30, {"teacher_entropy_ratio": float("nan")}) == []


def test_grace_period_is_the_teacher_temperature_warmup() -> None:
    config = TrainConfig(method=MethodConfig(warmup_teacher_temp_epochs=30, clustering=ClusteringConfig()),
                         optim=OptimConfig(epochs=100, warmup_epochs=10))
    assert CollapseMonitor.for_training(config, steps_per_epoch=50).after_step == 1500
    short = TrainConfig(method=MethodConfig(warmup_teacher_temp_epochs=30), optim=OptimConfig(epochs=4,
                                                                                                warmup_epochs=1))
    assert CollapseMonitor.for_training(short, steps_per_epoch=5).after_step == 20  # capped at the run's length


def test_bad_thresholds_are_refused() -> None:
    with pytest.raises(InputError, match="single_at"):
        CollapseMonitor(uniform_at=0.3, single_at=0.5)
    with pytest.raises(InputError, match="patience"):
        CollapseMonitor(patience=0)
