"""Losses (by hand), centres, and the schedules."""

from __future__ import annotations

import math

import numpy as np
import torch

from croc.losses import CentroidLoss, ImageLoss
from croc.schedules import cosine_schedule, teacher_temperature_schedule


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_image_loss_by_hand() -> None:
    g = torch.Generator().manual_seed(0)
    student, teacher = torch.randn(2, 3, 7, generator=g), torch.randn(2, 3, 7, generator=g)
    loss_fn = ImageLoss(7, student_temp=0.1, center_momentum=0.9)
    loss_fn.center.fill_(0.25)
    loss, _ = loss_fn(student, teacher, teacher_temp=0.04)
    s, t = student.numpy().astype(np.float64), teacher.numpy().astype(np.float64)
    pt = softmax((t - 0.25) / 0.04)
    log_ps = np.log(softmax(s / 0.1))
    expected = 0.5 * (-(pt[0] * log_ps[1]).sum(-1).mean() - (pt[1] * log_ps[0]).sum(-1).mean())
    assert math.isclose(float(loss), expected, rel_tol=1e-5)
    # centre: EMA 0.9 of the batch mean of the teacher logits
    np.testing.assert_allclose(loss_fn.center.numpy()[0], 0.9 * 0.25 + 0.1 * t.reshape(-1, 7).mean(0), rtol=1e-5)


def test_centroid_loss_masks_invalid_pairs() -> None:
    g = torch.Generator().manual_seed(1)
    student, teacher = torch.randn(2, 5, 6, generator=g), torch.randn(2, 5, 6, generator=g)
    valid = torch.tensor([True, False, True, False, False])
    loss_fn = CentroidLoss(6)
    loss, _ = loss_fn(student, teacher, valid, teacher_temp=0.07)
    s, t = student.numpy().astype(np.float64)[:, [0, 2]], teacher.numpy().astype(np.float64)[:, [0, 2]]
    pt, log_ps = softmax(t / 0.07), np.log(softmax(s / 0.1))
    expected = 0.5 * (-(pt[0] * log_ps[1]).sum(-1) - (pt[1] * log_ps[0]).sum(-1)).mean()
    assert math.isclose(float(loss), expected, rel_tol=1e-5)
    np.testing.assert_allclose(loss_fn.center.numpy()[0], 0.1 * t.reshape(-1, 6).mean(0), rtol=1e-5, atol=1e-7)


def test_no_valid_pair_gives_zero_loss_and_keeps_centre() -> None:
    loss_fn = CentroidLoss(6)
    loss_fn.center.fill_(0.5)
    student = torch.randn(2, 4, 6, requires_grad=True)
    loss, entropy = loss_fn(student, torch.randn(2, 4, 6), torch.zeros(4, dtype=torch.bool), 0.07)
    assert float(loss.detach()) == 0.0 and math.isfinite(float(entropy))
    loss.backward()
    assert torch.isfinite(student.grad).all()
    assert torch.all(loss_fn.center == 0.5)


def test_cosine_schedule_with_warmup() -> None:
    sched = cosine_schedule(1.0, 0.1, epochs=4, steps_per_epoch=5, warmup_epochs=1)
    assert len(sched) == 20
    np.testing.assert_allclose(sched[:5], np.linspace(0, 1, 5))
    assert sched[5] == 1.0
    rest = np.arange(15)
    np.testing.assert_allclose(sched[5:], 0.1 + 0.45 * (1 + np.cos(np.pi * rest / 15)))
    assert np.all(np.diff(sched[5:]) < 0)


def test_momentum_schedule_goes_to_one() -> None:
    sched = cosine_schedule(0.996, 1.0, epochs=10, steps_per_epoch=100)
    assert sched[0] == 0.996 and 0.99999 < sched[-1] <= 1.0


def test_teacher_temperature_warmup() -> None:
    sched = teacher_temperature_schedule(0.04, 0.07, warmup_epochs=30, epochs=300)
    assert len(sched) == 300
    assert sched[0] == 0.04 and sched[29] == 0.07 and sched[299] == 0.07
    np.testing.assert_allclose(sched[:30], np.linspace(0.04, 0.07, 30))
