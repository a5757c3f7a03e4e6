"""`croc bench ...`: the benchmarks of the training step, the evaluations, the data pipeline and Ray Train
(docs/benchmarks.md)."""

from __future__ import annotations

import typer

from pipelines.cli.defaults import EXPERIMENTS

# The benchmark's own argparse options (and its --help, which lists them) pass through unchanged
PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}

bench_app = typer.Typer(help="Benchmarks (also runnable as `python -m croc.bench ...` on a bare GPU box).",
                        no_args_is_help=True)


@bench_app.command("step", context_settings=PASS_THROUGH)
def bench_step(ctx: typer.Context) -> None:
    """Time the training step (its --help lists the options)."""
    from croc.bench.train_step import main as bench_main

    bench_main(["step", *ctx.args])


@bench_app.command("gpu", context_settings=PASS_THROUGH)
def bench_gpu(ctx: typer.Context) -> None:
    """The platform on one machine in one command, against the GPU targets: the training step (CrOC and DINO,
    eager and compiled, the paper's setting), the data kernel on every core, feature extraction and K-Means at the
    evaluation's sizes; one table and one JSON object. Its --help lists the options."""
    from croc.bench.gpu import main as gpu_main

    gpu_main(list(ctx.args))


@bench_app.command("eval", context_settings=PASS_THROUGH)
def bench_eval(ctx: typer.Context) -> None:
    """Time feature extraction, K-Means + matching of a PVOC12-val-sized split, and DAVIS propagation per frame;
    its --help lists the options."""
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
    from croc.bench.data import DataBenchSettings
    from pipelines.bench.data import main as data_main

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
    from pipelines.bench.train import run_train_bench
    from pipelines.config import load_config

    run_train_bench(load_config(config, ["resources.num_workers=1", *ctx.args]), warmup, steps)
