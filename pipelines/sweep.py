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

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlflow.entities import RunTag
from mlflow.tracking import MlflowClient
from rich.console import Console
from rich.table import Table

from croc.errors import InputError
from pipelines import cluster
from pipelines.config import PretrainConfig, apply_overrides, config_hash, flat_params
from pipelines.evaluate import EvalSummary, baseline_label
from pipelines.sweep_config import HEADLINE_METRIC, PlannedTrial, SweepConfig, load_sweep, plan_trials, tune_metric
from pipelines.terminal import make_console
from pipelines.tracking import check_tracking_uri, find_run, run_tags, start_run

TRIAL_CPU = 0.1  # the trial's own driver; its Train workers and evaluation tasks ask for their own resources
STATUS_TAG, METRICS_TAG, OVERRIDES_TAG = "croc.trial_status", "croc.trial_metrics", "croc.trial_overrides"
RECORDED = {"done": "done", "stopped_early": "stopped early"}  # a trial with one of these is not run again
MAX_TAG = 7000  # characters; MLflow keeps 8000


@dataclass(frozen=True)
class TrialOutcome:
    """A trial as the sweep ends: run now (`recorded=False`) or kept from an earlier attempt's MLflow record."""

    key: str
    overrides: dict[str, Any]
    status: str  # done | stopped early | error
    metrics: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    recorded: bool = False


def _trial_metrics(summaries: list[EvalSummary]) -> dict[str, float]:
    """Evaluation summaries -> flat Tune metrics: '<task>/<metric>' (e.g. 'unsup_voc/miou_mean')."""
    metrics: dict[str, float] = {}
    for summary in summaries:
        if summary.error is None:
            prefix = summary.task.replace(":", "_")
            metrics.update({f"{prefix}/{k}": float(v) for k, v in summary.metrics.items()})
    return metrics


def sweep_trial(trial_config: dict[str, Any], base: dict[str, Any], trials: dict[str, dict[str, Any]],
                sweep_name: str, sweep_run_id: str, scheduler_task: str | None) -> None:
    """One Tune trial (`trial_config` = {"trial": key}): pre-train with that trial's overrides, report the
    intermediate and final evaluations, and record the trial as done in MLflow before the final report."""
    from ray import tune

    key = trial_config["trial"]
    overrides = trials[key]
    cfg = apply_overrides(PretrainConfig.model_validate(base), overrides)
    reports = {"n": 0}

    def report_intermediate(summary: EvalSummary) -> None:
        if summary.error is None and summary.task == scheduler_task and summary.label != "final":
            reports["n"] += 1
            tune.report({tune_metric(summary.task): summary.metrics[HEADLINE_METRIC[summary.task.split(":")[0]]],
                         "evaluations": reports["n"], "done": 0})

    tags = {"croc.sweep": sweep_name, "croc.trial": key, OVERRIDES_TAG: _json(overrides)}
    result = run_pretrain_for_trial(cfg, f"{sweep_name}-{key}", sweep_run_id, tags, report_intermediate)
    final = _trial_metrics([s for s in result.evaluations if s.label == "final"])
    report = {**final, "evaluations": reports["n"] + 1, "done": 1, "pretrain_run_id": result.run_id}
    record_trial(MlflowClient(cfg.tracking.tracking_uri), result.run_id, "done", report)
    tune.report(report)


def run_pretrain_for_trial(cfg: PretrainConfig, run_name: str, parent_run_id: str, tags: dict[str, str],
                           on_evaluation: Any) -> Any:
    from pipelines.pretrain import run_pretrain

    return run_pretrain(cfg, run_name=run_name, parent_run_id=parent_run_id, extra_tags=tags,
                        on_evaluation=on_evaluation, reserved_cpus=TRIAL_CPU)


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def record_trial(client: MlflowClient, run_id: str, status: str, metrics: dict[str, Any]) -> None:
    """Tag the trial's pre-training run: `croc.trial_status` (done / stopped_early) and its final metrics (JSON)."""
    kept = {k: v for k, v in metrics.items() if isinstance(v, (int, float, str, bool))}
    text = _json(kept)
    if len(text) > MAX_TAG:  # only the headline numbers and the bookkeeping
        headlines = set(HEADLINE_METRIC.values())
        text = _json({k: v for k, v in kept.items() if "/" not in k or k.rsplit("/", 1)[1] in headlines})[:MAX_TAG]
    client.log_batch(run_id, tags=[RunTag(STATUS_TAG, status), RunTag(METRICS_TAG, text)])


def recorded_trials(client: MlflowClient, sweep_name: str) -> dict[str, Any]:
    """The sweep's trial pre-training runs in MLflow, by trial key (a later run of a key wins)."""
    experiment = client.get_experiment_by_name(sweep_name)
    if experiment is None:
        return {}
    runs, token = [], None
    while True:
        page = client.search_runs([experiment.experiment_id], f"tags.`croc.sweep` = '{sweep_name}' and "
                                  "tags.`croc.kind` = 'pretrain'", order_by=["attributes.start_time ASC"],
                                  page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            break
    return {run.data.tags["croc.trial"]: run for run in runs if "croc.trial" in run.data.tags}


def _recorded_metrics(run: Any) -> dict[str, Any]:
    try:
        metrics = json.loads(run.data.tags.get(METRICS_TAG, "{}"))
    except ValueError:
        return {}
    return metrics if isinstance(metrics, dict) else {}


def _check_plan(path: str | Path, plan: list[PlannedTrial], recorded: dict[str, Any]) -> None:
    """A resumed sweep's file must still plan each recorded trial with the values it ran with."""
    for trial in plan:
        run = recorded.get(trial.key)
        if run is None or OVERRIDES_TAG not in run.data.tags:
            continue
        try:
            ran_with = json.loads(run.data.tags[OVERRIDES_TAG])
        except ValueError:
            ran_with = run.data.tags[OVERRIDES_TAG]
        if ran_with != json.loads(_json(trial.overrides)):
            raise InputError(f"{path}: trial {trial.key} ran with {ran_with}, the sweep file now plans "
                             f"{trial.overrides}: the file changed since the sweep started; restore it, or rename "
                             "the sweep to start a new one")


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
    todo = {spec: [t for t in base.evaluation.tasks if (spec, t.partition(":")[0], t.partition(":")[2] or "davis")
                   not in done] for spec in sweep.baselines}
    todo = {spec: tasks for spec, tasks in todo.items() if tasks}
    if not todo:
        return []
    cluster.connect_ray()
    board, pending = EvalBoard.remote(), []
    out_dir = evaluation_dir(base, sweep.name)
    for spec, tasks in todo.items():
        requests = eval_requests(base, tasks, baseline_label(spec), out_dir, method="external",
                                 parent_run_id=sweep_run_id,
                                 source_tags={"croc.checkpoint_source": spec, "croc.sweep": sweep.name})
        pending.extend(submit(requests, spec, base.evaluation, board))
    return collect(pending, board, console)


def _results_table(sweep: SweepConfig, outcomes: list[TrialOutcome], baselines: list[EvalSummary],
                   tasks: list[str]) -> Table:
    keys = list(sweep.search_space)
    table = Table("trial", *keys, *tasks, "status", title=f"sweep {sweep.name}")
    for outcome in outcomes:
        values = [str(outcome.overrides.get(k, "-")) for k in keys]
        cells = [f"{100 * outcome.metrics[tune_metric(t)]:.1f}"
                 if isinstance(outcome.metrics.get(tune_metric(t)), (int, float)) else "-" for t in tasks]
        table.add_row(outcome.key, *values, *cells, outcome.status + (" (recorded)" if outcome.recorded else ""))
    for label in dict.fromkeys(s.label for s in baselines):
        cells = {s.task: s for s in baselines if s.label == label}
        row = [f"{100 * cells[t].metrics[HEADLINE_METRIC[t.split(':')[0]]]:.1f}"
               if t in cells and not cells[t].error else "-" for t in tasks]
        table.add_row(label, *["-"] * len(keys), *row, "baseline")
    return table


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
    _check_plan(path, plan, recorded)
    kept = {t.key: TrialOutcome(t.key, t.overrides, RECORDED[run.data.tags[STATUS_TAG]], _recorded_metrics(run),
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
        baselines = _evaluate_baselines(sweep, base, sweep_run_id, console)
    except BaseException as error:
        _end_unfinished_runs(client, sweep.name, "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED")
        raise
    outcomes = [kept.get(t.key) or ran.get(t.key) or TrialOutcome(t.key, t.overrides, "error", error="not run")
                for t in plan]
    errors = [o for o in outcomes if o.error]
    client.set_terminated(sweep_run_id, status="FAILED" if errors else "FINISHED")
    console.print(_results_table(sweep, outcomes, baselines, list(base.evaluation.tasks)))
    console.print(f"{len(outcomes)} trial(s) ({len(todo)} run now) in {time.perf_counter() - started:.0f} s, "
                  f"{len(errors)} failed; compare: `croc compare --experiment {sweep.name} --tracking-uri "
                  f"{base.tracking.tracking_uri}`")
    return outcomes
