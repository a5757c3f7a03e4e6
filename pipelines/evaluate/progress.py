"""Waiting for evaluation tasks: one progress bar per task, fed by the tasks through a small actor (`EvalBoard`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import ray
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from pipelines.evaluate.requests import EvalRequest, EvalSummary


@ray.remote(num_cpus=0)
class EvalBoard:
    """Tasks post (description, done, total); the driver reads it to draw one bar per task."""

    def __init__(self) -> None:
        self.state: dict[str, tuple[str, int, int]] = {}

    def post(self, key: str, description: str, done: int, total: int) -> None:
        self.state[key] = (description, done, total)

    def read(self) -> dict[str, tuple[str, int, int]]:
        return dict(self.state)


def collect(pending: Sequence[tuple[EvalRequest, ray.ObjectRef]], board: Any, console: Console,
            on_done: Callable[[EvalSummary], None] | None = None) -> list[EvalSummary]:
    """Wait for every task, one progress bar each; a failed task becomes a summary with its error."""
    by_ref = {ref: request for request, ref in pending}
    summaries: dict[ray.ObjectRef, EvalSummary] = {}
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        bars = {f"{r.task} @ {r.label}": progress.add_task(f"{r.task} @ {r.label}: waiting", total=1)
                for r in by_ref.values()}
        remaining = list(by_ref)
        while remaining:
            done, remaining = ray.wait(remaining, num_returns=len(remaining), timeout=1.0)
            for ref in done:
                summary = _summary_of(by_ref[ref], ref)
                summaries[ref] = summary
                if on_done:
                    on_done(summary)
            if board is not None:
                for key, (description, n, total) in ray.get(board.read.remote()).items():
                    if key in bars:
                        progress.update(bars[key], description=f"{key}: {description}", completed=n,
                                        total=max(total, 1))
            for summary in summaries.values():
                key = f"{summary.task} @ {summary.label}"
                state = "failed" if summary.error else "done"
                progress.update(bars[key], description=f"{key}: {state}", completed=1, total=1)
    return [summaries[ref] for _, ref in pending]


def _summary_of(request: EvalRequest, ref: ray.ObjectRef) -> EvalSummary:
    try:
        return ray.get(ref)
    except Exception as error:  # the task's process died, or it never started
        return EvalSummary(request.task, request.label, None, error=f"{type(error).__name__}: {error}")


def finished(pending: Sequence[tuple[EvalRequest, ray.ObjectRef]], reported: set) -> list[EvalSummary]:
    """The summaries of tasks that ended since the last call (without waiting); `reported` remembers them."""
    waiting = [ref for _, ref in pending if ref not in reported]
    if not waiting:
        return []
    ready, _ = ray.wait(waiting, num_returns=len(waiting), timeout=0)
    requests = {ref: request for request, ref in pending}
    reported.update(ready)
    return [_summary_of(requests[ref], ref) for ref in ready]
