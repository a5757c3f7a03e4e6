"""`croc data ...`: turn a dataset on disk into Parquet shards; generate the synthetic benchmark."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from croc.data.pretrain_images import KINDS, list_pretrain_images
from pipelines.cli.errors import exit_2_on_input_error
from pipelines.terminal import make_console

data_app = typer.Typer(help="Prepare data: Parquet shards from datasets on disk, the synthetic benchmark.",
                       no_args_is_help=True)
console = make_console()


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console)


@data_app.command("prepare")
def prepare(
    kind: Annotated[str, typer.Argument(help=f"one of {', '.join(KINDS)}")],
    root: Annotated[Path, typer.Option(help="the dataset in its official layout")],
    out: Annotated[Path, typer.Option(help="folder for the shards and manifest.json")],
    images_per_shard: Annotated[int, typer.Option(min=1)] = 1000,
    workers: Annotated[int, typer.Option(min=1, help="processes reading and checking images")] = 1,
) -> None:
    """Write Parquet shards (id, source, encoded bytes, width, height) and a manifest; a rerun resumes."""
    if kind not in KINDS:
        raise typer.BadParameter(f"{kind!r}: allowed {', '.join(KINDS)}", param_hint="KIND")
    with exit_2_on_input_error(console):
        images = list_pretrain_images(kind, root)
        console.print(f"{len(images)} images found under {root} ({kind})")
        with _progress() as progress:
            task = progress.add_task("writing shards", total=None)

            def advance(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            from croc.data.shards import write_shards

            manifest = write_shards(images, out, images_per_shard, workers, kind=kind, root=str(root),
                                    progress=advance)
    console.print(f"done: {manifest['num_images']} images in {len(manifest['shards'])} shards at {out}; "
                  f"{manifest['num_skipped']} unreadable (listed in {out / 'manifest.json'})")


@data_app.command("synth")
def synth(
    out: Annotated[Path, typer.Option(help="output folder: coco/, voc/, davis/ in the official layouts")],
    seed: Annotated[int, typer.Option(help="the same seed gives byte-identical files")] = 0,
    tiny: Annotated[bool, typer.Option(help="a few small items of every kind")] = False,
    train_images: Annotated[int | None, typer.Option(min=1, help="COCO-style train2017 images")] = None,
    image_size: Annotated[tuple[int, int] | None, typer.Option(help="HEIGHT WIDTH of the images")] = None,
) -> None:
    """Generate the embedded synthetic benchmark (scene-centric images, exact labels, videos); resumable."""
    from dataclasses import replace

    from croc.synthetic.benchmark import SynthSpec, generate_benchmark

    with exit_2_on_input_error(console):
        spec = SynthSpec.tiny(seed) if tiny else SynthSpec(seed=seed)
        if train_images is not None:
            spec = replace(spec, coco_train=train_images)
        if image_size is not None:
            spec = replace(spec, height=image_size[0], width=image_size[1])
        with _progress() as progress:
            task = progress.add_task("generating", total=None)

            def advance(done: int, total: int, stage: str) -> None:
                progress.update(task, completed=done, total=total, description=f"generating {stage}")

            manifest = generate_benchmark(out, spec, progress=advance)
    console.print(f"done: {manifest['counts']} at {out}")
