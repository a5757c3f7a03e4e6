"""One CrOC (or DINO) optimisation step: teacher pass, clustering, student pass, losses, update, EMA.

No host-device synchronisation inside a step: metrics come back as device tensors; the caller reads them
when it logs. Phases can be timed by passing a `phase` context-manager factory (the benchmark does).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager as ContextManager

import torch
from torch import nn

from croc.collapse import entropy_ratio_metrics
from croc.config import TrainConfig
from croc.gradient_clipping import clip_gradients_
from croc.model import CrOC, Network, NetworkOutput
from croc.optim import build_optimizer, last_layer_parameters
from croc.schedules import cosine_schedule, teacher_temperature_schedule

PHASES = ("teacher_forward", "clustering", "student_forward", "heads_loss", "backward_update")


def _no_timer(name: str) -> ContextManager:
    return contextlib.nullcontext()


class Schedules:
    """Per-iteration lr, weight decay and EMA momentum; per-epoch teacher temperature."""

    def __init__(self, config: TrainConfig, steps_per_epoch: int) -> None:
        o, m = config.optim, config.method
        self.steps_per_epoch = steps_per_epoch
        self.lr = cosine_schedule(o.lr * o.batch_size / 256.0, o.min_lr, o.epochs, steps_per_epoch, o.warmup_epochs)
        self.weight_decay = cosine_schedule(o.weight_decay, o.weight_decay_end, o.epochs, steps_per_epoch)
        self.momentum = cosine_schedule(o.momentum_teacher, 1.0, o.epochs, steps_per_epoch)
        self.teacher_temp = teacher_temperature_schedule(m.warmup_teacher_temp, m.teacher_temp,
                                                         m.warmup_teacher_temp_epochs, o.epochs)

    @property
    def total_steps(self) -> int:
        return len(self.lr)


class TrainStep:
    """Owns the optimiser, the loss scaler and the schedules of one CrOC model.

    `student` is what the student pass calls: the model's student Network, or a DDP wrapper of it.
    """

    def __init__(self, model: CrOC, config: TrainConfig, steps_per_epoch: int, device: torch.device,
                 student: nn.Module | None = None) -> None:
        self.model, self.config, self.device = model, config, device
        self.student = student if student is not None else model.student
        self.optimizer = build_optimizer(model.student, device, config.optim.fused)
        self.schedules = Schedules(config, steps_per_epoch)
        precision = config.optim.precision if device.type == "cuda" else "fp32"
        self.autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
        self.scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
        self.last_layers = last_layer_parameters(model.student)
        self.student_params = list(model.student.parameters())
        self.teacher_params = list(model.teacher.parameters())
        self.last_clusters = None

    def _autocast(self) -> ContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def __call__(self, images: torch.Tensor, patch_xy: torch.Tensor, step: int,
                 init_idx: torch.Tensor | None = None, phase: Callable[[str], ContextManager] = _no_timer,
                 check_inputs: bool = False) -> dict[str, torch.Tensor]:
        """images [2B, 3, S, S] normalised (view 1s then view 2s); patch_xy [2, B, N, 2]; step = global iteration.

        -> metrics (device tensors): loss, image_loss, dense_loss, teacher entropies and their ratios to the
        uniform entropy (croc.collapse), clusters, lr, wd, momentum.
        """
        if step >= self.schedules.total_steps:
            raise ValueError(f"step {step} is past the schedule's {self.schedules.total_steps} iterations")
        epoch = step // self.schedules.steps_per_epoch
        self._set_hyperparameters(step)
        model, dense = self.model, self.model.dense
        teacher_temp = float(self.schedules.teacher_temp[epoch])

        with self._autocast():
            with phase("teacher_forward"):
                t_features = model.teacher_features(images)
            clusters, heads, valid = None, 1, None
            if dense:
                with phase("clustering"):
                    located, heads = model.teacher_clusters(t_features, patch_xy, init_idx, check=check_inputs)
                    clusters, valid = located.clusters, located.valid
            with phase("heads_loss"):
                teacher_out = model.teacher_logits(t_features, located.centroids if dense else None)
            assignments = clusters.assignments if dense else None
            if isinstance(self.student, Network):
                with phase("student_forward"):
                    s_features = self.student.features(images)
                with phase("heads_loss"):
                    student_out = self.student.logits(s_features, assignments, heads)
            else:  # a DDP wrapper: one call
                with phase("student_forward"):
                    student_out = self.student(images, assignments, heads)
            with phase("heads_loss"):
                metrics = model.losses(NetworkOutput(*student_out), teacher_out, valid, teacher_temp)
                metrics.update(entropy_ratio_metrics(metrics, self.config.model))

        with phase("backward_update"):
            self._update(metrics["loss"], epoch, step)

        self.last_clusters = clusters  # for pictures; a reference, no copy and no sync
        metrics.update(self._hyperparameter_metrics(step))
        if dense:
            metrics["clusters_per_problem"] = clusters.chosen_k.float().mean()
            metrics["valid_pairs_per_image"] = valid.float().sum() / (images.shape[0] // 2)
        return {k: v.detach() for k, v in metrics.items()}

    def _set_hyperparameters(self, step: int) -> None:
        for i, group in enumerate(self.optimizer.param_groups):
            group["lr"] = float(self.schedules.lr[step])
            if i == 0:
                group["weight_decay"] = float(self.schedules.weight_decay[step])

    def _hyperparameter_metrics(self, step: int) -> dict[str, torch.Tensor]:
        s = self.schedules
        return {"lr": torch.tensor(s.lr[step]), "weight_decay": torch.tensor(s.weight_decay[step]),
                "momentum": torch.tensor(s.momentum[step])}

    def _update(self, loss: torch.Tensor, epoch: int, step: int) -> None:
        self.scaler.scale(loss).backward()
        if epoch < self.config.optim.freeze_last_layer_epochs:
            for param in self.last_layers:
                param.grad = None
        optim = self.config.optim
        if optim.clip_grad > 0:
            self.scaler.unscale_(self.optimizer)
            clip_gradients_(self.student_params, optim.clip_grad, optim.clip_grad_mode)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.update_teacher(float(self.schedules.momentum[step]))

    @torch.no_grad()
    def update_teacher(self, momentum: float) -> None:
        """teacher <- momentum * teacher + (1 - momentum) * student, in one fused call."""
        torch._foreach_lerp_(self.teacher_params, self.student_params, 1.0 - momentum)

