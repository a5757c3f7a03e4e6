"""The embedded demo: a short in-process CrOC pre-training on CPU on procedurally generated scenes.

It exercises the whole method core (augmentation, teacher pass, online clustering, both losses, update, EMA)
and prints losses and throughput: `croc demo --in-process`. The full pipeline (Ray Data, Ray Train, evaluations,
MLflow) is `croc demo` without that flag, which runs `pipelines/train/pretrain.py` on the synthetic configs.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from croc.batch import prepare_batch, views_of_images
from croc.collapse import CollapseMonitor
from croc.config import ClusteringConfig, MethodConfig, ModelConfig, OptimConfig, TrainConfig
from croc.model import CrOC
from croc.synthetic.scenes import synthetic_scene
from croc.train_step import TrainStep
from pipelines.terminal import make_console


@dataclass(frozen=True)
class DemoSettings:
    steps: int = 60
    batch: int = 16
    image_size: int = 96
    n_images: int = 256
    method: str = "croc"
    arch: str = "vit_tiny"
    seed: int = 0
    log_every: int = 10

    @classmethod
    def smoke(cls) -> DemoSettings:
        return cls(steps=4, batch=4, image_size=64, n_images=16, log_every=2)


def demo_config(s: DemoSettings) -> TrainConfig:
    steps_per_epoch = max(1, s.n_images // s.batch)
    epochs = max(1, math.ceil(s.steps / steps_per_epoch))
    return TrainConfig(
        model=ModelConfig(arch=s.arch, out_dim=4096, out_dim_c=1024, hidden_dim=512, bottleneck_dim=128),
        method=MethodConfig(method=s.method, clustering=ClusteringConfig(n_init=8),
                            warmup_teacher_temp_epochs=min(2, epochs)),
        optim=OptimConfig(epochs=epochs, batch_size=s.batch, lr=5e-4 * 256 / 64, warmup_epochs=min(1, epochs - 1),
                          freeze_last_layer_epochs=min(1, epochs - 1)),
        image_size=s.image_size,
    )


def run_demo(settings: DemoSettings, console: Console | None = None) -> dict[str, float]:
    """Pre-train briefly; return the first and last logged losses and the throughput."""
    console = console or make_console()
    torch.manual_seed(settings.seed)
    device = torch.device("cpu")
    config = demo_config(settings)
    steps_per_epoch = max(1, settings.n_images // settings.batch)
    console.print(f"[bold]CrOC demo[/]: {settings.method} on {settings.n_images} generated scenes, "
                  f"{config.model.arch}/16 at {settings.image_size}px, batch {settings.batch}, {settings.steps} steps")
    scenes = [synthetic_scene(settings.seed * 100_000 + i)[0] for i in range(settings.n_images)]
    model = CrOC(config).to(device)
    step = TrainStep(model, config, steps_per_epoch, device)
    generator = torch.Generator().manual_seed(settings.seed)
    collapse = CollapseMonitor.for_training(config, steps_per_epoch)
    table = Table("step", "loss", "image", "dense", "clusters/problem", "pairs/image", "images/s")
    history: list[float] = []
    start = time.perf_counter()
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=console, transient=True) as progress:
        task = progress.add_task("pre-training", total=settings.steps)
        for it in range(settings.steps):
            order = torch.randperm(settings.n_images, generator=generator)[: settings.batch]
            batch = views_of_images([scenes[i] for i in order.tolist()], settings.image_size, generator)
            images, xy = prepare_batch(batch, config.model.patch_size, device, generator)
            metrics = step(images, xy, it, check_inputs=it == 0)
            progress.advance(task)
            if (it + 1) % settings.log_every == 0 or it + 1 == settings.steps:
                values = {k: float(v) for k, v in metrics.items()}  # the host sync, at log steps only
                loss = values["loss"]
                if not math.isfinite(loss):
                    raise FloatingPointError(f"non-finite loss {loss} at step {it}: stopping")
                for alert in collapse.observe(it + 1, values):
                    console.print(f"[bold yellow]warning[/]: {alert.message}")
                history.append(loss)
                rate = settings.batch * (it + 1) / (time.perf_counter() - start)
                table.add_row(str(it + 1), f"{loss:.4f}", f"{values['image_loss']:.4f}",
                              f"{values.get('dense_loss', 0.0):.4f}", f"{values.get('clusters_per_problem', 0.0):.2f}",
                              f"{values.get('valid_pairs_per_image', 0.0):.1f}", f"{rate:.1f}")
    elapsed = time.perf_counter() - start
    console.print(table)
    summary = {"first_loss": history[0], "last_loss": history[-1], "steps": settings.steps,
               "images_per_s": settings.batch * settings.steps / elapsed, "seconds": elapsed}
    console.print(f"done: {settings.steps} steps in {elapsed:.1f} s, {summary['images_per_s']:.1f} images/s, "
                  f"loss {summary['first_loss']:.4f} -> {summary['last_loss']:.4f}")
    return summary
