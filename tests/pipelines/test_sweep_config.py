"""Sweep files: the shipped grids are the paper's, and every trial config is checked before Ray starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from croc.errors import InputError
from pipelines.sweep.sweep_file import load_sweep, tune_metric

ROOT = Path(__file__).resolve().parents[2]
ABLATIONS = ROOT / "experiments" / "ablations"


def test_paper_grids_vary_one_factor_around_the_ablation_base():
    expected = {"lambda_pos.yaml": ("clustering.lambda_pos", [0.0, 1.0, 2.0, 3.0, 4.0]),
                "k.yaml": ("clustering.n_init", [4, 8, 12, 16]),
                "tokens.yaml": ("method.tokens", ["last", "queries", "keys", "values"]),
                "croc_vs_dino.yaml": ("method.method", ["croc", "dino"])}
    for name, (key, values) in expected.items():
        sweep, base = load_sweep(ABLATIONS / name)
        assert list(sweep.search_space) == [key] and sweep.search_space[key].grid == values, name
        assert (base.method.tokens, base.clustering.n_init, base.clustering.lambda_pos) == ("keys", 12, 3.0)
        assert base.tracking.experiment == sweep.name  # every trial lands in the sweep's experiment
        assert {"linear:voc", "unsup:coco_stuff"} <= set(base.evaluation.tasks)


def test_synthetic_grids_load_and_compare_methods_with_random_init():
    for path in sorted(ABLATIONS.glob("synthetic_*.yaml")):
        sweep, base = load_sweep(path)
        assert base.data.source == "synthetic" and base.evaluation.datasets.synthetic, path
    sweep, _ = load_sweep(ABLATIONS / "synthetic_methods.yaml")
    assert sweep.search_space["method.method"].grid == ["croc", "dino"] and sweep.baselines == ["random:vit_tiny:16:0"]


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(f"base: {ROOT / 'experiments' / 'synthetic' / 'smoke.yaml'}\n{body}")
    return path


@pytest.mark.parametrize(("body", "named"), [
    ("name: s\nsearch_space:\n  clustering.n_init: {grid: [4, 99]}\n", "clustering.n_init"),  # 99 > tokens
    ("name: s\nsearch_space:\n  method.tokenz: {grid: [keys]}\n", "tokenz"),
    ("name: s\nsearch_space:\n  optim.lr: {grid: [0.1], uniform: [0.1, 0.2]}\n", "exactly one"),
    ("name: s\nsearch_space: {}\n", "at least one"),
    ("name: s\nsearch_space:\n  optim.lr: {grid: [0.1]}\nscheduler: {metric: unsup:coco_things}\n", "scheduler.metric"),
    ("name: s\nsearch_space:\n  optim.lr: {grid: [0.1]}\nscheduler: {metric: unsup:voc}\n", "all_checkpoints"),
    ("name: 'a b'\nsearch_space:\n  optim.lr: {grid: [0.1]}\n", "name"),
    ("name: '..'\nsearch_space:\n  optim.lr: {grid: [0.1]}\n", "not only dots"),  # would be <storage>/..
    ("name: s\nsearch_space:\n  optim.lr: {uniform: [0.2, 0.1]}\n", "low < high"),
    ("name: s\nsearch_space:\n  optim.lr: {loguniform: [0.0, 0.1]}\n", "low > 0"),
])
def test_a_bad_sweep_is_an_error_naming_the_problem(tmp_path, body, named):
    with pytest.raises(InputError, match=named):
        load_sweep(_write(tmp_path, body))


def test_cli_overrides_reach_the_base_and_metric_names():
    _, base = load_sweep(ABLATIONS / "k.yaml", ["evaluation.datasets.voc=/data/voc"])
    assert base.evaluation.datasets.voc == "/data/voc"
    assert tune_metric("unsup:voc") == "unsup_voc/miou_mean" and tune_metric("davis") == "davis/jf_mean"


def test_asha_acts_on_the_intermediate_evaluations_of_the_named_task(tmp_path):
    from pipelines.evaluate.requests import EvalSummary
    from pipelines.sweep.run import _scheduler
    from pipelines.sweep.trial import _trial_metrics

    body = ("name: s\noverrides: {evaluation.after: all_checkpoints, evaluation.tasks: [unsup:voc]}\n"
            "search_space:\n  optim.lr: {grid: [0.1]}\nscheduler: {metric: unsup:voc, grace_period: 2}\n")
    sweep, _ = load_sweep(_write(tmp_path, body))
    asha = _scheduler(sweep)
    assert (asha._metric, asha._mode, asha._time_attr) == ("unsup_voc/miou_mean", "max", "evaluations")
    summaries = [EvalSummary("unsup:voc", "final", "a", {"miou_mean": 0.25, "miou_std": 0.0}),
                 EvalSummary("davis", "final", "b", error="boom")]
    assert _trial_metrics(summaries) == {"unsup_voc/miou_mean": 0.25, "unsup_voc/miou_std": 0.0}
