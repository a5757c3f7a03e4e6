"""The `croc` command line: the typer app and its main commands (demo, pretrain, evaluate, sweep); the smaller
commands live beside it (data, compare, davis-score, bench). Heavy libraries (torch, Ray, MLflow) load when a command
runs, not before: `croc --help` stays fast."""

from __future__ import annotations

import typer

from croc.registry import METHODS
from pipelines.cli.bench import bench_app
from pipelines.cli.compare import compare
from pipelines.cli.data import data_app
from pipelines.cli.davis_score import davis_score
from pipelines.cli.defaults import EXPERIMENTS
from pipelines.cli.errors import exit_2_on_input_error
from pipelines.cli.help_format import WorkflowGroup

app = typer.Typer(help="CrOC: pre-train, evaluate and compare dense self-supervised ViTs.", no_args_is_help=True,
                  cls=WorkflowGroup, rich_markup_mode="markdown")
app.add_typer(bench_app, name="bench")
app.add_typer(data_app, name="data")
app.command("davis-score")(davis_score)
app.command("compare")(compare)


def _print_version(value: bool) -> None:
    if value:
        from croc import __version__

        typer.echo(f"croc {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    verbose: bool = typer.Option(False, "--verbose", help="also show Ray's internal log lines (workers, Train, Data); "
                                 "they are always in /tmp/ray/session_latest/logs"),
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="print the version and exit"),
) -> None:
    """CrOC: pre-train, evaluate and compare dense self-supervised ViTs."""
    from pipelines.terminal import set_verbose

    set_verbose(verbose)


@app.command()
def demo(
    smoke: bool = typer.Option(False, "--smoke", help="the short variant (CI runs it)"),
    in_process: bool = typer.Option(False, "--in-process", help="no Ray, no MLflow: the method alone, on the CPU"),
    method: str = typer.Option(METHODS[0], help=" or ".join(METHODS)),
) -> None:
    """The embedded default: generate the synthetic benchmark, pre-train on a local Ray, evaluate (linear, K-Means,
    DAVIS propagation) beside a randomly initialised backbone, track everything in a local MLflow store."""
    if method not in METHODS:
        raise typer.BadParameter(f"--method {method!r}: allowed {', '.join(METHODS)}")
    if in_process:
        from pipelines.cli.demo import DemoSettings, run_demo

        settings = DemoSettings.smoke() if smoke else DemoSettings()
        run_demo(DemoSettings(**{**settings.__dict__, "method": method}))
        return
    from croc.checkpoint_layouts import random_spec
    from pipelines.config import load_config
    from pipelines.train.pretrain import run_pretrain

    config = EXPERIMENTS / "synthetic" / ("smoke.yaml" if smoke else "pretrain.yaml")
    with exit_2_on_input_error():
        cfg = load_config(config, [f"method.method={method}"])
        model = cfg.model
        run_pretrain(cfg, baselines=[random_spec(model.arch, model.patch_size, cfg.seed)])


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def pretrain(
    ctx: typer.Context,
    config: str = typer.Option(..., "--config", "-c", help="YAML config (experiments/...); key=value overrides follow"),
    run_name: str | None = typer.Option(None, "--run-name", help="an existing run's name resumes it"),
    accept_config_change: bool = typer.Option(False, "--accept-config-change", help="resume a run with a config "
                                              "that differs from the one it was started with (recorded on the run)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the resolved config and the plan (steps, workers, "
                                 "CPUs, data), start nothing, exit"),
) -> None:
    """Pre-train on Ray Train (local Ray started for you, or the cluster in RAY_ADDRESS), tracked in MLflow."""
    from pipelines.config import check_run_name, load_config

    with exit_2_on_input_error():  # the run name and the config are checked before Ray or MLflow start
        if run_name is not None:
            check_run_name(run_name, "--run-name")
        cfg = load_config(config, list(ctx.args))
    if dry_run:
        from pipelines.cli.plan import print_plan

        print_plan(cfg, run_name)
        return
    from pipelines.train.pretrain import run_pretrain

    with exit_2_on_input_error():
        run_pretrain(cfg, run_name=run_name, accept_config_change=accept_config_change)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def evaluate(
    ctx: typer.Context,
    checkpoint: str = typer.Option(..., "--checkpoint", help="a file (.safetensors/.pth/state.pt), a run or "
                                   "checkpoint folder, an MLflow run (runs:/ID or ID), random:ARCH, or "
                                   "stats:colour / stats:texture (per-patch statistics)"),
    tasks: str | None = typer.Option(None, "--tasks", help="comma-separated, e.g. linear:voc,unsup:coco_stuff,davis "
                                     "(default: the config's evaluation.tasks)"),
    config: str = typer.Option(str(EXPERIMENTS / "eval" / "paper.yaml"), "--config", "-c",
                               help="YAML with the evaluation (and tracking) sections; key=value overrides follow"),
    label: str | None = typer.Option(None, "--label", help="the checkpoint's name in the results table"),
) -> None:
    """Evaluate a frozen backbone: each task a Ray task, each result an MLflow run."""
    from croc.errors import InputError
    from pipelines.config import load_config

    try:
        cfg = load_config(config, list(ctx.args))
        from pipelines.evaluate.run import run_evaluate

        chosen = [t.strip() for t in tasks.split(",") if t.strip()] if tasks else None
        if chosen:
            cfg = cfg.model_copy(update={"evaluation": cfg.evaluation.model_validate(
                {**cfg.evaluation.model_dump(), "tasks": chosen})})
        summaries = run_evaluate(cfg, checkpoint, chosen, label)
    except (InputError, ValueError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    if any(s.error for s in summaries):
        raise typer.Exit(1)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def sweep(
    ctx: typer.Context,
    sweep_file: str = typer.Argument(..., help="experiments/ablations/NAME.yaml; key=value overrides of the "
                                     "base config follow"),
    resume: bool = typer.Option(False, "--resume", help="continue an interrupted sweep from the sweep file and its "
                                "MLflow records: finished trials are kept, the others resume from their checkpoints"),
) -> None:
    """An ablation grid on Ray Tune: each trial pre-trains, then evaluates; all of it tracked in MLflow."""
    from croc.errors import InputError

    try:
        from pipelines.sweep.run import run_sweep

        outcomes = run_sweep(sweep_file, resume=resume, overrides=list(ctx.args))
    except InputError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    except KeyboardInterrupt as interrupt:
        typer.echo(f"interrupted: the sweep and its unfinished runs are marked KILLED in MLflow; continue it with "
                   f"`croc sweep {sweep_file} --resume`", err=True)
        raise typer.Exit(130) from interrupt
    if any(outcome.error for outcome in outcomes):
        raise typer.Exit(1)
@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def submit(
    ctx: typer.Context,
    address: str | None = typer.Option(None, "--address", help="the cluster's job API (the dashboard), e.g. "
                                       "http://HEAD:8265; default: RAY_ADDRESS, else http://127.0.0.1:8265"),
    no_wait: bool = typer.Option(False, "--no-wait", help="return once the job is accepted instead of following "
                                 "its log"),
) -> None:
    """Run a croc command on a Ray cluster as a job, with its provenance: the commit and whether the tree is dirty
    (which `ray job submit` cannot know: .git/ is not uploaded), a submission id and metadata (run name, config
    hash). The working directory travels with the project's excludes (platform/runtime_env.yaml); the command's
    config is checked here first. Example: `croc submit --address http://HEAD:8265 -- pretrain --config
    experiments/paper/coco.yaml`."""

    with exit_2_on_input_error():
        from pipelines.cli.submit import submit as submit_job

        _, status = submit_job(list(ctx.args), address, wait=not no_wait, echo=typer.echo)
    if not no_wait and status != "SUCCEEDED":
        raise typer.Exit(1)


def main() -> None:
    import os
    import shlex
    import sys

    # what the runs record as their MLflow source (inherited by a local Ray's workers)
    os.environ.setdefault("CROC_COMMAND", shlex.join(["croc", *sys.argv[1:]]))
    app()


