"""The results of evaluations: the headline number of each task kind, the results table, the failures."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table

from croc.eval.registry import HEADLINE
from pipelines.evaluate.requests import EvalSummary

HEADLINE_METRIC = HEADLINE  # what Tune and ASHA see, per task kind (croc/eval/registry.py)


def headline(summary: EvalSummary) -> str:
    if summary.error:
        return "[red]failed[/]"
    m = summary.metrics
    if "miou_best" in m:
        return f"{100 * m['miou_best']:.1f} (last {100 * m['miou_last']:.1f})"
    if "miou_mean" in m:
        return f"{100 * m['miou_mean']:.1f} ± {100 * m['miou_std']:.1f}"
    if "jf_mean" in m:
        return f"{100 * m['jf_mean']:.1f} (J {100 * m['j_mean']:.1f}, F {100 * m['f_mean']:.1f})"
    return "-"


def results_table(summaries: Sequence[EvalSummary], title: str = "evaluation results") -> Table:
    """Checkpoints x tasks; linear: best-epoch mIoU (last), unsup: mIoU mean ± std over seeds, DAVIS: J&F."""
    tasks = list(dict.fromkeys(s.task for s in summaries))
    labels = list(dict.fromkeys(s.label for s in summaries))
    table = Table("checkpoint", *tasks, title=title)
    cells = {(s.label, s.task): headline(s) for s in summaries}
    for label in labels:
        table.add_row(label, *(cells.get((label, t), "-") for t in tasks))
    return table


def failures(summaries: Sequence[EvalSummary]) -> list[str]:
    return [f"{s.task} @ {s.label}: {s.error}" for s in summaries if s.error]
