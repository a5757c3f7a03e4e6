"""A short pre-training in one process on in-memory images: no Ray, no MLflow, the same step as the platform's.

For checks that need a trained backbone quickly (the learning test, experiments on a bare machine): each step
samples a batch without replacement within an epoch, draws the two views (croc.batch), runs the TrainStep and
hands the metrics to `on_log` every `log_every` steps (the one host sync).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from croc.augment import DINO_PHOTOMETRIC, Photometric
from croc.batch import prepare_batch, views_of_images
from croc.config import TrainConfig
from croc.model import CrOC
from croc.train_step import TrainStep


def short_pretrain(images: Sequence[torch.Tensor], config: TrainConfig, seed: int = 0,
                   photometric: Photometric = DINO_PHOTOMETRIC, scale: tuple[float, float] = (0.25, 1.0),
                   on_log: Callable[[int, dict[str, float]], None] | None = None, log_every: int = 10) -> CrOC:
    """Pre-train on uint8 images [3, H, W] for config.optim.epochs epochs of len(images) // batch_size steps."""
    batch = config.optim.batch_size
    steps_per_epoch = len(images) // batch
    if steps_per_epoch < 1:
        raise ValueError(f"{len(images)} images cannot fill one batch of {batch}")
    device = torch.device("cpu")
    torch.manual_seed(seed)
    model = CrOC(config)
    step_fn = TrainStep(model, config, steps_per_epoch, device)
    generator = torch.Generator().manual_seed(seed)
    total = steps_per_epoch * config.optim.epochs
    order = torch.empty(0, dtype=torch.long)
    for step in range(total):
        position = step % steps_per_epoch
        if position == 0:
            order = torch.randperm(len(images), generator=generator)
        chosen = order[position * batch:(position + 1) * batch].tolist()
        views = views_of_images([images[i] for i in chosen], config.image_size, generator, scale)
        x, xy = prepare_batch(views, config.model.patch_size, device, generator, photometric)
        metrics = step_fn(x, xy, step, check_inputs=step == 0)
        if on_log is not None and ((step + 1) % log_every == 0 or step + 1 == total):
            on_log(step + 1, {k: float(v) for k, v in metrics.items()})
    return model
