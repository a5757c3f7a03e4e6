"""The driver's view of a running pre-training: rank 0 posts its step, loss and exported checkpoints to a small
actor (`ProgressBoard`); the driver runs `trainer.fit()` in a thread and draws the progress bar from it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import ray
from ray.train.torch import TorchTrainer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from pipelines.train.worker_errors import worker_input_error


@ray.remote(num_cpus=0)
class ProgressBoard:
    """Rank 0 posts (step, loss) at log steps; the driver reads it to draw the progress bar."""

    def __init__(self) -> None:
        self.step, self.loss = 0, float("nan")
        self.exports: list[tuple[int, str]] = []  # (step, backbone file) of checkpoints exported for evaluation

    def update(self, step: int, loss: float) -> None:
        self.step, self.loss = step, loss

    def exported(self, step: int, path: str) -> None:
        self.exports.append((step, path))

    def read(self) -> tuple[int, float, list[tuple[int, str]]]:
        return self.step, self.loss, list(self.exports)


def fit_with_progress(trainer: TorchTrainer, board: Any, total: int, console: Console,
                       on_tick: Callable[[list[tuple[int, str]]], None] | None = None) -> Any:
    """trainer.fit() in a thread; every second: the progress bar, and `on_tick(new exports)` (step, backbone)."""
    outcome: dict[str, Any] = {}

    def fit() -> None:
        try:
            outcome["result"] = trainer.fit()
        except BaseException as error:  # re-raised in the driver thread
            outcome["error"] = error

    thread = threading.Thread(target=fit, daemon=True)
    thread.start()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("ETA"), TimeRemainingColumn(), TextColumn("loss {task.fields[loss]}"))
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("pre-training", total=total, loss="-")
        seen, running = 0, True
        while running:
            thread.join(timeout=1.0)
            running = thread.is_alive()  # one more read after the end: no export announcement is missed
            step, loss, exports = ray.get(board.read.remote())
            progress.update(task, completed=step, loss=f"{loss:.4f}")
            if on_tick is not None:
                on_tick(exports[seen:])  # intermediate evaluations start now, training goes on
            seen = len(exports)
    if "error" in outcome:
        cause = worker_input_error(outcome["error"])  # a worker's own one-line message, not Ray's traceback
        if cause is not None:
            raise cause from outcome["error"]
        raise outcome["error"]
    return outcome["result"]
