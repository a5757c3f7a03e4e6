"""`croc sweep`: an ablation grid on Ray Tune; each trial pre-trains (Ray Train) and then evaluates (Ray tasks).

Ray Train V2: a Tuner does not take a TorchTrainer; each trial is a small driver function (holding 0.1 CPU) that
runs `run_pretrain`, which builds its own TorchTrainer and evaluation tasks. MLflow: one sweep run; each trial's
pre-training run is its child, and that trial's evaluation runs are the pre-training run's children.

The trials are planned from the sweep file alone (`plan_trials`: t000, t001, ...); trial `<key>`'s pre-training
run is `<sweep>-<key>`, and when it has evaluated its final checkpoint it records `croc.trial_status=done` and its
final metrics (JSON) as tags of that MLflow run. `--resume` rebuilds the sweep from the sweep file and these
MLflow records: recorded trials are kept, the others run again, each resuming its own pre-training from its
checkpoints (read weights-only). Tune's folder (`<storage>/<sweep>`: tuner.pkl, experiment_state-*.json, which
Tune unpickles) is never read: whoever can write to checkpoint storage cannot run code as the user who resumes.
A resumed ASHA scheduler ranks only the trials that run again.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from mlflow.tracking import MlflowClient
from rich.console import Console

from croc.errors import InputError
from pipelines import cluster
from pipelines.config import PretrainConfig, config_hash, flat_params
from pipelines.sweep.baselines import evaluate_baselines
from pipelines.sweep.records import (
    RECORDED,
    STATUS_TAG,
    check_plan,
    record_trial,
    recorded_metrics,
    recorded_trials,
)
from pipelines.sweep.sweep_file import PlannedTrial, SweepConfig, load_sweep, plan_trials
from pipelines.sweep.table import results_table
from pipelines.sweep.trial import TRIAL_CPU, TrialOutcome, sweep_trial
from pipelines.terminal import make_console
from pipelines.tracking import check_tracking_uri, find_run, run_tags, start_run


def _tune_folder(sweep: SweepConfig, base: PretrainConfig) -> str:
    storage = sweep.storage_path or base.checkpoint.storage_path
    return f"{storage.rstrip('/')}/{sweep.name}"


def _check_start_or_resume(client: MlflowClient, path: str | Path, sweep: SweepConfig, base: PretrainConfig,
                           resume: bool) -> None:
    """A new sweep must not exist yet (no MLflow sweep run, no Tune folder); a resumed one must be recorded in
    MLflow. Of Tune's folder, only whether its tuner.pkl exists is looked at; nothing in it is read."""
    from ray import tune

    folder = _tune_folder(sweep, base)
    sweep_run = find_run(client, sweep.name, sweep.name)
    if resume and sweep_run is None:
        raise InputError(f"no sweep named {sweep.name} to resume: tracking.tracking_uri="
                         f"{base.tracking.tracking_uri} records none (a sweep is resumed from its sweep file and its "
                         f"MLflow records, never from {folder}); start it with `croc sweep {path}` without --resume")
    if not resume and (sweep_run is not None or tune.Tuner.can_restore(folder)):
        where = f"MLflow run {sweep_run}" if sweep_run else folder
        raise InputError(f"a sweep named {sweep.name} already exists ({where}): resume it with --resume, or rename "
                         "the sweep")


def _scheduler(sweep: SweepConfig) -> Any:
    if sweep.scheduler is None:
        return None
    from ray.tune.schedulers import ASHAScheduler

    s = sweep.scheduler
    return ASHAScheduler(metric=s.metric_name, mode=s.mode, time_attr="evaluations", grace_period=s.grace_period,
                         reduction_factor=s.reduction_factor, max_t=s.max_t)


def _run_trials(sweep: SweepConfig, base: PretrainConfig, sweep_run_id: str,
                todo: list[PlannedTrial]) -> dict[str, TrialOutcome]:
    """A fresh Tuner over the trials still to run (one grid entry per trial key); never `Tuner.restore`."""
    from ray import tune

    cluster.connect_ray()
    trainable = tune.with_resources(
        tune.with_parameters(sweep_trial, base=base.model_dump(mode="json"),
                             trials={t.key: t.overrides for t in todo}, sweep_name=sweep.name,
                             sweep_run_id=sweep_run_id,
                             scheduler_task=sweep.scheduler.metric if sweep.scheduler else None),
        {"CPU": TRIAL_CPU})
    storage = sweep.storage_path or base.checkpoint.storage_path
    tuner = tune.Tuner(trainable, param_space={"trial": tune.grid_search([t.key for t in todo])},
                       tune_config=tune.TuneConfig(num_samples=1, scheduler=_scheduler(sweep),
                                                   max_concurrent_trials=sweep.max_concurrent_trials),
                       run_config=tune.RunConfig(name=sweep.name, storage_path=storage, verbose=1))
    overrides = {t.key: t.overrides for t in todo}
    outcomes: dict[str, TrialOutcome] = {}
    # Ctrl-C raises here (KeyboardInterrupt) instead of Tune's graceful stop, which returned the interrupted trials
    # as if the scheduler had stopped them: the sweep then ended FINISHED with exit status 0.
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
    for result in tuner.fit():
        key = (result.config or {}).get("trial", "?")
        metrics = dict(result.metrics or {})
        status = "error" if result.error else ("done" if metrics.get("done") else "stopped early")
        outcomes[key] = TrialOutcome(key, overrides.get(key, {}), status, metrics,
                                     str(result.error) if result.error else None)
    return outcomes


def _end_unfinished_runs(client: MlflowClient, experiment: str, status: str) -> None:
    """The sweep run and every run of the sweep still RUNNING (trials, their evaluations) end with `status`."""
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return
    for run in client.search_runs([found.experiment_id], "attributes.status = 'RUNNING'", max_results=10_000):
        client.set_terminated(run.info.run_id, status=status)


def _record_stopped_early(client: MlflowClient, sweep: SweepConfig, outcomes: dict[str, TrialOutcome]) -> None:
    """Trials the scheduler stopped are recorded too: a resumed sweep does not run them again."""
    for outcome in outcomes.values():
        if outcome.status == "stopped early":
            run_id = find_run(client, sweep.name, f"{sweep.name}-{outcome.key}")
            if run_id:
                record_trial(client, run_id, "stopped_early", outcome.metrics)


def run_sweep(path: str | Path, resume: bool = False, overrides: list[str] | tuple[str, ...] = (),
              console: Console | None = None) -> list[TrialOutcome]:
    """Run (or resume) the sweep in `path`; -> every planned trial's outcome, in plan order.

    Resuming keeps the trials MLflow records as done (or stopped early) and runs the others again; nothing is
    loaded from Tune's folder in checkpoint storage.
    """
    console = console or make_console()
    sweep, base = load_sweep(path, overrides)
    check_tracking_uri(base.tracking.tracking_uri)
    client = MlflowClient(base.tracking.tracking_uri)
    _check_start_or_resume(client, path, sweep, base, resume)
    plan = plan_trials(sweep)
    recorded = recorded_trials(client, sweep.name)
    check_plan(path, plan, recorded)
    kept = {t.key: TrialOutcome(t.key, t.overrides, RECORDED[run.data.tags[STATUS_TAG]], recorded_metrics(run),
                                recorded=True)
            for t in plan if (run := recorded.get(t.key)) is not None and run.data.tags.get(STATUS_TAG) in RECORDED}
    todo = [t for t in plan if t.key not in kept]
    sweep_run_id = start_run(client, sweep.name, sweep.name,
                             run_tags("sweep", base.method.method, base.data.source, config_hash(base),
                                      {"croc.sweep": sweep.name}),
                             {**flat_params(base), "sweep.search_space": str({k: v.model_dump(exclude_none=True)
                                                                              for k, v in sweep.search_space.items()})})
    console.print(f"sweep {sweep.name}: {', '.join(sweep.search_space)} over {sweep.num_samples} sample(s), "
                  f"{len(plan)} trial(s), {sweep.max_concurrent_trials} at a time; MLflow experiment {sweep.name}, "
                  f"run {sweep_run_id}" + (f" (resuming: {len(kept)} recorded trial(s) kept, {len(todo)} to run)"
                                           if resume else ""))
    started = time.perf_counter()
    try:
        ran = _run_trials(sweep, base, sweep_run_id, todo) if todo else {}
        _record_stopped_early(client, sweep, ran)
        baselines = evaluate_baselines(sweep, base, sweep_run_id, console)
    except BaseException as error:
        _end_unfinished_runs(client, sweep.name, "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED")
        raise
    outcomes = [kept.get(t.key) or ran.get(t.key) or TrialOutcome(t.key, t.overrides, "error", error="not run")
                for t in plan]
    errors = [o for o in outcomes if o.error]
    client.set_terminated(sweep_run_id, status="FAILED" if errors else "FINISHED")
    console.print(results_table(sweep, outcomes, baselines, list(base.evaluation.tasks)))
    console.print(f"{len(outcomes)} trial(s) ({len(todo)} run now) in {time.perf_counter() - started:.0f} s, "
                  f"{len(errors)} failed; compare: `croc compare --experiment {sweep.name} --tracking-uri "
                  f"{base.tracking.tracking_uri}`")
    return outcomes
