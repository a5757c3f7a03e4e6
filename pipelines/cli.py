"""The `croc` command line."""

from __future__ import annotations

from pathlib import Path

import typer

from pipelines.compare_command import compare
from pipelines.data_commands import data_app
from pipelines.davis_score_command import davis_score

_CLICK_NAMES = {"str": "TEXT", "int": "INTEGER", "float": "FLOAT", "Path": "PATH"}
_typer_type_column = typer.core.TyperOption.display_type_rich


def _type_column(param, ctx) -> str | None:
    """The help's type column as click prints it (TEXT, INTEGER, a|b; nothing for a flag). Typer 0.29 writes
    `<str>` / `<bool>` there, even for --help."""
    if param.metavar is not None:
        return param.metavar
    shown = _typer_type_column(param, ctx)
    if shown is None:
        return None
    bare = shown.strip("<>")
    if bare == "bool":
        return None
    return _CLICK_NAMES.get(bare, bare.upper() if shown.startswith("<") else shown)


typer.core.TyperOption.display_type_rich = _type_column
typer.core.TyperArgument.display_type_rich = _type_column

WORKFLOW = ("data", "demo", "pretrain", "evaluate", "sweep", "compare", "davis-score", "bench")


class WorkflowGroup(typer.core.TyperGroup):
    """Commands listed in the order of the work: data, the demo, pre-training, evaluation, sweeps, comparison."""

    def list_commands(self, ctx) -> list[str]:
        names = super().list_commands(ctx)
        return sorted(names, key=lambda n: WORKFLOW.index(n) if n in WORKFLOW else len(WORKFLOW))


app = typer.Typer(help="CrOC: pre-train, evaluate and compare dense self-supervised ViTs.", no_args_is_help=True,
                  cls=WorkflowGroup, rich_markup_mode="markdown")
bench_app = typer.Typer(help="Benchmarks (also runnable as `python -m croc.bench ...` on a bare GPU box).",
                        no_args_is_help=True)
app.add_typer(bench_app, name="bench")
app.add_typer(data_app, name="data")
app.command("davis-score")(davis_score)
app.command("compare")(compare)


EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


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
    method: str = typer.Option("croc", help="croc or dino"),
) -> None:
    """The embedded default: generate the synthetic benchmark, pre-train on a local Ray, evaluate (linear, K-Means,
    DAVIS propagation) beside a randomly initialised backbone, track everything in a local MLflow store."""
    if method not in ("croc", "dino"):
        raise typer.BadParameter(f"--method {method!r}: allowed croc, dino")
    if in_process:
        from pipelines.demo import DemoSettings, run_demo

        settings = DemoSettings.smoke() if smoke else DemoSettings()
        run_demo(DemoSettings(**{**settings.__dict__, "method": method}))
        return
    from croc.errors import InputError
    from pipelines.config import load_config
    from pipelines.pretrain import run_pretrain

    config = EXPERIMENTS / "synthetic" / ("smoke.yaml" if smoke else "pretrain.yaml")
    try:
        cfg = load_config(config, [f"method.method={method}"])
        model = cfg.model
        run_pretrain(cfg, baselines=[f"random:{model.arch}:{model.patch_size}:{cfg.seed}"])
    except InputError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error


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
    from croc.errors import InputError
    from pipelines.config import check_run_name, load_config

    try:  # the run name and the config are checked before Ray or MLflow start
        if run_name is not None:
            check_run_name(run_name, "--run-name")
        cfg = load_config(config, list(ctx.args))
    except InputError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    if dry_run:
        from pipelines.plan import print_plan

        print_plan(cfg, run_name)
        return
    from pipelines.pretrain import run_pretrain

    try:
        run_pretrain(cfg, run_name=run_name, accept_config_change=accept_config_change)
    except InputError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error


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
        from pipelines.evaluate_run import run_evaluate

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
        from pipelines.sweep import run_sweep

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


@bench_app.command("step", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def bench_step(ctx: typer.Context) -> None:
    """Time the training step; options as `python -m croc.bench step --help`."""
    from croc.bench import main as bench_main

    bench_main(["step", *ctx.args])


@bench_app.command("eval", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def bench_eval(ctx: typer.Context) -> None:
    """Time feature extraction, K-Means + matching of a PVOC12-val-sized split, and DAVIS propagation per frame;
    options as `python -m croc.eval.bench --help`."""
    from croc.eval.bench import main as eval_bench_main

    eval_bench_main(list(ctx.args))


@bench_app.command("data")
def bench_data(
    shards: str | None = typer.Option(None, help="shard folder (default: synthetic 480x640 JPEGs)"),
    cpus: int = typer.Option(2, min=1, help="CPUs for both pipelines"),
    images: int = typer.Option(128, min=8, help="distinct synthetic images (without --shards)"),
    stream: int = typer.Option(2048, min=64, help="images per Ray Data epoch (3 epochs)"),
    baseline_images: int = typer.Option(384, min=16, help="images through the authors'-way baseline"),
    size: int = typer.Option(224, min=16),
) -> None:
    """images/s per core of the two-view augmentation with positions: ours (one core; Ray Data) vs the authors'
    way, steady state."""
    from pipelines.bench_data import DataBenchSettings
    from pipelines.bench_data import main as data_main

    data_main(DataBenchSettings(shard_dir=shards, cpus=cpus, images=images, stream=stream,
                                baseline_images=baseline_images, size=size))


@bench_app.command("train", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def bench_train(
    ctx: typer.Context,
    config: str = typer.Option(str(EXPERIMENTS / "synthetic" / "pretrain.yaml"), "--config", "-c"),
    steps: int = typer.Option(6, min=1),
    warmup: int = typer.Option(2, min=1),
) -> None:
    """Ray Train's overhead on one worker vs the same step in a plain loop (same data, same machine)."""
    from pipelines.bench_train import run_train_bench
    from pipelines.config import load_config

    run_train_bench(load_config(config, ["resources.num_workers=1", *ctx.args]), warmup, steps)


def main() -> None:
    import os
    import shlex
    import sys

    # what the runs record as their MLflow source (inherited by a local Ray's workers)
    os.environ.setdefault("CROC_COMMAND", shlex.join(["croc", *sys.argv[1:]]))
    app()


if __name__ == "__main__":
    main()
