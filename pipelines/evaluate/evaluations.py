"""`Evaluations`: the one way a command evaluates checkpoints. `croc pretrain` (each exported checkpoint while
training goes on, then the final one and the baselines), `croc evaluate` (one checkpoint) and `croc sweep` (its
baselines) all submit here and collect here.

`submit` starts one Ray task per evaluation with its own resources and returns at once: the tasks run beside whatever
the driver does next. `collect` waits for all of them, drawing one progress bar per task, and prints the results
table and the failures.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import ray
from rich.console import Console

from pipelines.config import PretrainConfig
from pipelines.evaluate.progress import EvalBoard, collect, finished
from pipelines.evaluate.requests import EvalRequest, EvalSummary, eval_requests
from pipelines.evaluate.results import failures, results_table
from pipelines.evaluate.task import submit


class Evaluations:
    """The evaluation tasks of one command: submitted checkpoint by checkpoint, collected together."""

    def __init__(self, cfg: PretrainConfig, out_dir: Path) -> None:
        self.cfg, self.out_dir = cfg, out_dir
        self.board = EvalBoard.remote()
        self.pending: list[tuple[EvalRequest, ray.ObjectRef]] = []
        self.reported: set = set()

    def __len__(self) -> int:
        return len(self.pending)

    def submit(self, checkpoint: Any, label: str, tasks: Sequence[str], *, method: str, parent_run_id: str | None,
               source_tags: Mapping[str, str] | None = None) -> None:
        """Start the tasks that evaluate `checkpoint` (a backbone file, a run or checkpoint folder, random:/stats:)
        on `tasks`; its results are labelled `label`. Returns at once."""
        requests = eval_requests(self.cfg, tasks, label, self.out_dir, method=method, parent_run_id=parent_run_id,
                                 source_tags=source_tags)
        self.pending.extend(submit(requests, checkpoint, self.cfg.evaluation, self.board))

    def newly_finished(self) -> list[EvalSummary]:
        """The summaries of the tasks that ended since the last call, without waiting."""
        return finished(self.pending, self.reported)

    def collect(self, console: Console, title: str | None = "evaluation results") -> list[EvalSummary]:
        """Wait for every task (one progress bar each); with a `title`, print the results table under it and each
        failure. A failed task is a summary with its error, never an exception."""
        summaries = collect(self.pending, self.board, console)
        if title is not None:
            console.print(results_table(summaries, title=title))
            for line in failures(summaries):
                console.print(f"[red]failed[/] {line}")
        return summaries
