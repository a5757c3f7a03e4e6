"""Collapse of DINO-style self-distillation, read from the teacher's entropy.

The entropy ratio of a head is H(teacher softmax) / ln(C) for its C outputs: 1 = uniform outputs, 0 = one output
takes all the mass. Healthy runs settle in between; a ratio stuck near either end means the teacher collapsed.
The train step returns the ratios as device tensors (no sync); `CollapseMonitor` reads the host-side values the
caller already has at its log steps.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import NamedTuple

import torch

from croc.config import ModelConfig, TrainConfig
from croc.errors import InputError

# metric -> what the message calls the head
HEADS = {"teacher_entropy_ratio": "image-level head (entropy / ln out_dim)",
         "teacher_entropy_ratio_c": "dense head (entropy / ln out_dim_c)"}
UNIFORM, SINGLE = "uniform", "single_output"
MEANING = {
    UNIFORM: "the teacher's outputs are drifting towards uniform outputs (collapse); typical causes: teacher "
             "temperature too high for this out_dim, centring momentum, too few steps or too low a learning rate",
    SINGLE: "the teacher is collapsing to a single output; typical causes: teacher temperature too low, centring off",
}


def entropy_ratio(entropy: torch.Tensor, out_dim: int) -> torch.Tensor:
    """entropy [] in nats of a softmax over out_dim outputs -> entropy / ln(out_dim) [] (0 for a one-output head)."""
    return entropy / math.log(out_dim) if out_dim > 1 else torch.zeros_like(entropy)


def entropy_ratio_metrics(metrics: Mapping[str, torch.Tensor], model: ModelConfig) -> dict[str, torch.Tensor]:
    """The ratio of each head whose teacher entropy is in `metrics` (tensors in, tensors out: no sync)."""
    out = {"teacher_entropy_ratio": entropy_ratio(metrics["teacher_entropy"], model.out_dim)}
    if "teacher_entropy_c" in metrics:
        out["teacher_entropy_ratio_c"] = entropy_ratio(metrics["teacher_entropy_c"], model.out_dim_c)
    return out


class CollapseAlert(NamedTuple):
    metric: str  # teacher_entropy_ratio | teacher_entropy_ratio_c
    direction: str  # UNIFORM | SINGLE
    step: int
    ratio: float
    message: str


class CollapseMonitor:
    """Warns once per head and direction when the teacher's entropy ratio stays at an end of [0, 1].

    Fed the host-side metric values at log steps (`observe(step, values)`); returns the new alerts, which the caller
    logs. A head is alerted when its ratio is >= `uniform_at` (near-uniform outputs) or <= `single_at` (one output
    takes everything) at `patience` consecutive log points, all at step >= `after_step`. Every DINO run starts
    near uniform, and the teacher's temperature is still warming up then: `for_training` sets `after_step` to the
    end of the teacher-temperature warm-up (or of the learning-rate warm-up, if later), so only the settled
    regime is judged. A log point of the dense head without any valid centroid pair (its entropy is 0 by
    convention) is not a reading; nor is a non-finite value.
    """

    def __init__(self, after_step: int = 0, uniform_at: float = 0.95, single_at: float = 0.05,
                 patience: int = 2) -> None:
        if not 0 <= single_at < uniform_at <= 1 or patience < 1 or after_step < 0:
            raise InputError(f"collapse monitor: need 0 <= single_at ({single_at}) < uniform_at ({uniform_at}) <= 1, "
                             f"patience ({patience}) >= 1, after_step ({after_step}) >= 0")
        self.after_step, self.uniform_at, self.single_at, self.patience = after_step, uniform_at, single_at, patience
        self.streaks = {(metric, d): 0 for metric in HEADS for d in (UNIFORM, SINGLE)}
        self.alerted: set[tuple[str, str]] = set()

    @classmethod
    def for_training(cls, config: TrainConfig, steps_per_epoch: int, **thresholds: float) -> CollapseMonitor:
        """Judged from the end of the teacher-temperature (or learning-rate, if later) warm-up on."""
        warmup_epochs = max(config.method.warmup_teacher_temp_epochs, config.optim.warmup_epochs)
        return cls(after_step=min(warmup_epochs, config.optim.epochs) * steps_per_epoch, **thresholds)

    def observe(self, step: int, values: Mapping[str, float]) -> list[CollapseAlert]:
        """values: the logged metrics as floats at `step` (steps done) -> alerts raised by this log point."""
        if step < self.after_step:
            return []
        alerts = []
        for metric in HEADS:
            ratio = values.get(metric)
            if ratio is None or not math.isfinite(ratio):
                continue
            if metric.endswith("_c") and values.get("valid_pairs_per_image", 1.0) == 0:
                continue
            for direction, beyond in ((UNIFORM, ratio >= self.uniform_at), (SINGLE, ratio <= self.single_at)):
                key = (metric, direction)
                self.streaks[key] = self.streaks[key] + 1 if beyond else 0
                if self.streaks[key] >= self.patience and key not in self.alerted:
                    self.alerted.add(key)
                    alerts.append(CollapseAlert(metric, direction, step, ratio, self._message(key, step, ratio)))
        return alerts

    def _message(self, key: tuple[str, str], step: int, ratio: float) -> str:
        metric, direction = key
        bound = f">= {self.uniform_at}" if direction == UNIFORM else f"<= {self.single_at}"
        return (f"collapse warning, {HEADS[metric]}: entropy ratio {ratio:.3f} ({bound} at {self.patience} "
                f"consecutive log points) at step {step}: {MEANING[direction]}")
