"""`croc sweep`: an ablation grid on Ray Tune; each trial pre-trains (Ray Train) and then evaluates (Ray tasks).

Ray Train V2: a Tuner does not take a TorchTrainer; each trial is a small driver function (holding 0.1 CPU) that
runs `run_pretrain`, which builds its own TorchTrainer and evaluation tasks. MLflow: one sweep run; each trial's
pre-training run is its child, and that trial's evaluation runs are the pre-training run's children.
A trial's run name is `<sweep>-<trial id>`: a resumed sweep (`--resume`) re-runs only unfinished trials, and a
re-run trial resumes its own pre-training from its last checkpoint.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from mlflow.tracking import MlflowClient
from rich.console import Console
from rich.table import Table

from croc.errors import InputError
from pipelines.config import PretrainConfig, apply_overrides, config_hash, flat_params
from pipelines.evaluate import EvalSummary, baseline_label
from pipelines.sweep_config import HEADLINE_METRIC, SweepConfig, load_sweep, tune_metric
from pipelines.tracking import check_tracking_uri, run_tags, start_run

TRIAL_CPU = 0.1  # the trial's own driver; its Train workers and evaluation tasks ask for their own resources


def _trial_metrics(summaries: list[EvalSummary]) -> dict[str, float]:
    """Evaluation summaries -> flat Tune metrics: '<task>/<metric>' (e.g. 'unsup_voc/miou_mean')."""
    metrics: dict[str, float] = {}
    for summary in summaries:
        if summary.error is None:
            prefix = summary.task.replace(":", "_")
            metrics.update({f"{prefix}/{k}": float(v) for k, v in summary.metrics.items()})
    return metrics


def sweep_trial(trial_config: dict[str, Any], base: dict[str, Any], keys: dict[str, str], sweep_name: str,
                sweep_run_id: str, scheduler_task: str | None) -> None:
    """One Tune trial: pre-train with this trial's overrides, report intermediate and final evaluations."""
    from ray import tune

    cfg = apply_overrides(PretrainConfig.model_validate(base), {keys[k]: v for k, v in trial_config.items()})
    trial_id = tune.get_context().get_trial_id()
    reports = {"n": 0}

    def report_intermediate(summary: EvalSummary) -> None:
        if summary.error is None and summary.task == scheduler_task and summary.label != "final":
            reports["n"] += 1
            tune.report({tune_metric(summary.task): summary.metrics[HEADLINE_METRIC[summary.task.split(":")[0]]],
                         "evaluations": reports["n"], "done": 0})

    result = run_pretrain_for_trial(cfg, f"{sweep_name}-{trial_id}", sweep_run_id,
                                    {"croc.sweep": sweep_name, "croc.trial": trial_id}, report_intermediate)
    final = _trial_metrics([s for s in result.evaluations if s.label == "final"])
    tune.report({**final, "evaluations": reports["n"] + 1, "done": 1, "pretrain_run_id": result.run_id})


def run_pretrain_for_trial(cfg: PretrainConfig, run_name: str, parent_run_id: str, tags: dict[str, str],
                           on_evaluation: Any) -> Any:
    from pipelines.pretrain import run_pretrain

    return run_pretrain(cfg, run_name=run_name, parent_run_id=parent_run_id, extra_tags=tags,
                        on_evaluation=on_evaluation, reserved_cpus=TRIAL_CPU)


def _storage(sweep: SweepConfig, base: PretrainConfig) -> str:
    return sweep.storage_path or base.checkpoint.storage_path


def _scheduler(sweep: SweepConfig) -> Any:
    if sweep.scheduler is None:
        return None
    from ray.tune.schedulers import ASHAScheduler

    s = sweep.scheduler
    return ASHAScheduler(metric=s.metric_name, mode=s.mode, time_attr="evaluations", grace_period=s.grace_period,
                         reduction_factor=s.reduction_factor, max_t=s.max_t)


def _tuner(sweep: SweepConfig, base: PretrainConfig, sweep_run_id: str, resume: bool) -> Any:
    from ray import tune

    keys = {f"p{i}": key for i, key in enumerate(sweep.search_space)}  # dotted keys stay out of Tune's paths
    trainable = tune.with_resources(
        tune.with_parameters(sweep_trial, base=base.model_dump(mode="json"), keys=keys, sweep_name=sweep.name,
                             sweep_run_id=sweep_run_id,
                             scheduler_task=sweep.scheduler.metric if sweep.scheduler else None),
        {"CPU": TRIAL_CPU})
    path = str(Path(_storage(sweep, base)) / sweep.name)
    if resume:
        if not tune.Tuner.can_restore(path):
            raise InputError(f"no sweep to resume at {path}: run `croc sweep` without --resume first")
        return tune.Tuner.restore(path, trainable=trainable, resume_unfinished=True, resume_errored=True)
    if tune.Tuner.can_restore(path):
        raise InputError(f"a sweep named {sweep.name} already exists at {path}: resume it with --resume, or "
                         "rename the sweep")
    space = {p: sweep.search_space[key].to_tune() for p, key in keys.items()}
    return tune.Tuner(trainable, param_space=space,
                      tune_config=tune.TuneConfig(num_samples=sweep.num_samples, scheduler=_scheduler(sweep),
                                                  max_concurrent_trials=sweep.max_concurrent_trials),
                      run_config=tune.RunConfig(name=sweep.name, storage_path=_storage(sweep, base), verbose=1))


def _evaluate_baselines(sweep: SweepConfig, base: PretrainConfig, sweep_run_id: str, console: Console) -> list:
    """The sweep's baselines (e.g. random init) on the base tasks, once: done ones are not rerun on resume."""
    from pipelines.evaluate import EvalBoard, collect, eval_requests, submit
    from pipelines.evaluate_run import evaluation_dir

    if not sweep.baselines or not base.evaluation.tasks:
        return []
    client = MlflowClient(base.tracking.tracking_uri)
    experiment = client.get_experiment_by_name(sweep.name)
    done = {(r.data.tags.get("croc.checkpoint_source"), r.data.tags.get("croc.task"),
             r.data.tags.get("croc.eval_dataset"))
            for r in client.search_runs([experiment.experiment_id],
                                        f"tags.mlflow.parentRunId = '{sweep_run_id}' and attributes.status = "
                                        "'FINISHED'")}
    board, pending = EvalBoard.remote(), []
    out_dir = evaluation_dir(base, sweep.name)
    for spec in sweep.baselines:
        todo = [t for t in base.evaluation.tasks
                if (spec, t.partition(":")[0], t.partition(":")[2] or "davis") not in done]
        if todo:
            requests = eval_requests(base, todo, baseline_label(spec), out_dir, method="external",
                                     parent_run_id=sweep_run_id,
                                     source_tags={"croc.checkpoint_source": spec, "croc.sweep": sweep.name})
            pending.extend(submit(requests, spec, base.evaluation, board))
    return collect(pending, board, console) if pending else []


def _results_table(sweep: SweepConfig, grid: Any, baselines: list[EvalSummary], tasks: list[str]) -> Table:
    keys = list(sweep.search_space)
    table = Table("trial", *keys, *tasks, "status", title=f"sweep {sweep.name}")
    for result in grid:
        config = result.config or {}
        values = [str(config.get(f"p{i}", "-")) for i in range(len(keys))]
        metrics = result.metrics or {}
        cells = [f"{100 * metrics[tune_metric(t)]:.1f}" if tune_metric(t) in metrics else "-" for t in tasks]
        status = "error" if result.error else ("stopped early" if not metrics.get("done") else "done")
        table.add_row(str(metrics.get("trial_id", Path(result.path).name if result.path else "?")), *values, *cells,
                      status)
    for label in dict.fromkeys(s.label for s in baselines):
        cells = {s.task: s for s in baselines if s.label == label}
        row = [f"{100 * cells[t].metrics[HEADLINE_METRIC[t.split(':')[0]]]:.1f}"
               if t in cells and not cells[t].error else "-" for t in tasks]
        table.add_row(label, *["-"] * len(keys), *row, "baseline")
    return table


def run_sweep(path: str | Path, resume: bool = False, overrides: list[str] | tuple[str, ...] = (),
              console: Console | None = None) -> Any:
    """Run (or resume) the sweep in `path`; -> Tune's ResultGrid."""
    from pipelines.pretrain import connect_ray

    console = console or Console()
    sweep, base = load_sweep(path, overrides)
    check_tracking_uri(base.tracking.tracking_uri)
    client = MlflowClient(base.tracking.tracking_uri)
    sweep_run_id = start_run(client, sweep.name, sweep.name,
                             run_tags("sweep", base.method.method, base.data.source, config_hash(base),
                                      {"croc.sweep": sweep.name}),
                             {**flat_params(base), "sweep.search_space": str({k: v.model_dump(exclude_none=True)
                                                                              for k, v in sweep.search_space.items()})})
    connect_ray()
    console.print(f"sweep {sweep.name}: {', '.join(sweep.search_space)} over {sweep.num_samples} sample(s), "
                  f"{sweep.max_concurrent_trials} trial(s) at a time; MLflow experiment {sweep.name}, run "
                  f"{sweep_run_id}" + (" (resuming)" if resume else ""))
    started = time.perf_counter()
    try:
        grid = _tuner(sweep, base, sweep_run_id, resume).fit()
        baselines = _evaluate_baselines(sweep, base, sweep_run_id, console)
    except BaseException:
        client.set_terminated(sweep_run_id, status="FAILED")
        raise
    errors = [r for r in grid if r.error]
    client.set_terminated(sweep_run_id, status="FAILED" if errors else "FINISHED")
    console.print(_results_table(sweep, grid, baselines, list(base.evaluation.tasks)))
    console.print(f"{len(grid)} trial(s) in {time.perf_counter() - started:.0f} s, {len(errors)} failed; compare: "
                  f"`croc compare --experiment {sweep.name} --tracking-uri {base.tracking.tracking_uri}`")
    return grid
