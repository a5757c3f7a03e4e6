"""The `croc` command line."""

from __future__ import annotations

import typer

from pipelines.data_commands import data_app
from pipelines.demo import DemoSettings, run_demo

app = typer.Typer(help="CrOC: pre-train, evaluate and compare dense self-supervised ViTs.", no_args_is_help=True,
                  add_completion=False)
bench_app = typer.Typer(help="Benchmarks (also runnable as `python -m croc.bench ...` on a bare GPU box).",
                        no_args_is_help=True)
app.add_typer(bench_app, name="bench")
app.add_typer(data_app, name="data")


@app.command()
def demo(
    smoke: bool = typer.Option(False, "--smoke", help="a few tiny steps (CI's check that the demo works)"),
    steps: int | None = typer.Option(None, min=1, help="optimisation steps"),
    batch: int | None = typer.Option(None, min=2, help="images per step"),
    method: str = typer.Option("croc", help="croc or dino"),
    seed: int = typer.Option(0),
) -> None:
    """Pre-train CrOC briefly on generated scenes, in process, on the CPU; print losses and throughput."""
    if method not in ("croc", "dino"):
        raise typer.BadParameter(f"--method {method!r}: allowed croc, dino")
    settings = DemoSettings.smoke() if smoke else DemoSettings()
    overrides = {k: v for k, v in {"steps": steps, "batch": batch}.items() if v is not None}
    settings = DemoSettings(**{**settings.__dict__, **overrides, "method": method, "seed": seed})
    run_demo(settings)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def pretrain(
    ctx: typer.Context,
    config: str = typer.Option(..., "--config", "-c", help="YAML config (experiments/...); key=value overrides follow"),
    run_name: str | None = typer.Option(None, "--run-name", help="an existing run's name resumes it"),
) -> None:
    """Pre-train on Ray Train (local Ray started for you, or the cluster in RAY_ADDRESS), tracked in MLflow."""
    from croc.errors import InputError
    from pipelines.config import load_config

    try:
        cfg = load_config(config, list(ctx.args))
    except InputError as error:  # the config is checked before any Ray resource is requested
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    from pipelines.pretrain import run_pretrain

    try:
        run_pretrain(cfg, run_name=run_name)
    except InputError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error


@bench_app.command("step", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def bench_step(ctx: typer.Context) -> None:
    """Time the training step; options as `python -m croc.bench step --help`."""
    from croc.bench import main as bench_main

    bench_main(["step", *ctx.args])


@bench_app.command("data")
def bench_data(
    shards: str | None = typer.Option(None, help="shard folder (default: synthetic 480x640 JPEGs)"),
    cpus: int = typer.Option(2, min=1, help="CPUs for both pipelines"),
    images: int = typer.Option(192, min=8, help="images per pass"),
    size: int = typer.Option(224, min=16),
) -> None:
    """images/s per core of the two-view augmentation with positions: ours (Ray Data) vs the authors' way."""
    from pipelines.bench_data import DataBenchSettings
    from pipelines.bench_data import main as data_main

    data_main(DataBenchSettings(shard_dir=shards, cpus=cpus, images=images, size=size))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
