"""Evaluations as Ray tasks, each recorded as an MLflow run (nested under the pre-training run it evaluates).

`submit` starts one Ray task per evaluation with its own resources; the tasks take the backbone file
as an argument, which may be an ObjectRef (the export of a checkpoint that is still being written), so they start
as soon as it exists and the driver never waits in between. A task records its run (tags, params, metrics,
per-class CSV, pictures) and returns a small summary; a failing task marks its run FAILED with the error and
leaves the other tasks alone. `collect` waits for all of them, drawing one progress bar per task.
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from croc.errors import InputError
from pipelines.config import PretrainConfig, config_hash
from pipelines.config.evaluation import EvaluationSection
from pipelines.datasets import dataset_roots
from pipelines.tracking import experiment_id, run_tags

RUN_ID = re.compile(r"^(runs:/)?([0-9a-f]{32})(/.*)?$")


@dataclass(frozen=True)
class EvalRequest:
    """Everything one evaluation task needs (plain values: it crosses process boundaries)."""

    task: str  # 'linear:voc', 'unsup:coco_stuff', 'davis'
    label: str  # which checkpoint: 'final', 'step 120', 'random init', a file name
    evaluation: dict[str, Any]  # EvaluationSection, JSON-ready
    roots: dict[str, str | None]
    out_dir: str
    tracking_uri: str
    experiment: str
    tags: dict[str, str]
    parent_run_id: str | None = None
    run_name: str = ""


@dataclass
class EvalSummary:
    task: str
    label: str
    run_id: str | None
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None


@ray.remote(num_cpus=0)
class EvalBoard:
    """Tasks post (description, done, total); the driver reads it to draw one bar per task."""

    def __init__(self) -> None:
        self.state: dict[str, tuple[str, int, int]] = {}

    def post(self, key: str, description: str, done: int, total: int) -> None:
        self.state[key] = (description, done, total)

    def read(self) -> dict[str, tuple[str, int, int]]:
        return dict(self.state)


def protocol_of(evaluation: EvaluationSection):
    """The pydantic section -> croc's plain protocol dataclasses."""
    from croc.eval.linear_probe import LinearProbeConfig
    from croc.eval.propagation import PropagationConfig
    from croc.eval.tasks import EvalProtocol
    from croc.eval.unsupervised import UnsupervisedConfig

    lin, uns, dav = evaluation.linear, evaluation.unsup, evaluation.davis
    linear = LinearProbeConfig(image_size=lin.image_size, last_n=lin.last_n, lr=lin.lr, batch_size=lin.batch_size,
                               scale=tuple(lin.scale), rotation_deg=lin.rotation_deg, flip=lin.flip,
                               max_train_images=lin.max_train_images, max_val_images=lin.max_val_images,
                               classes=evaluation.classes)
    ade20k = LinearProbeConfig(image_size=lin.ade20k_crop_size, last_n=lin.last_n, batch_size=lin.batch_size,
                               scale=tuple(lin.scale), rotation_deg=lin.rotation_deg, flip=lin.flip,
                               max_train_images=lin.max_train_images, max_val_images=lin.max_val_images,
                               iterations=lin.ade20k_iterations, crop_size=lin.ade20k_crop_size,
                               lrs=tuple(lin.ade20k_lrs), eval_every=lin.ade20k_eval_every,
                               classes=evaluation.classes)
    unsup = UnsupervisedConfig(image_size=uns.image_size, mask_size=uns.mask_size, last_n=uns.last_n,
                               pca_dim=uns.pca_dim, seeds=tuple(uns.seeds), iterations=uns.iterations,
                               restarts=uns.restarts, max_points_per_centroid=uns.max_points_per_centroid,
                               max_pca_vectors=uns.max_pca_vectors, cluster_tokens=uns.cluster_tokens,
                               max_images=uns.max_images, classes=evaluation.classes)
    davis = PropagationConfig(short_side=dav.short_side, size_multiple=dav.size_multiple, last_n=dav.last_n,
                              temperature=dav.temperature, n_last_frames=dav.n_last_frames,
                              neighborhood=dav.neighborhood, topk=dav.topk, max_videos=dav.max_videos)
    return EvalProtocol(linear=linear, linear_epochs=dict(lin.epochs), ade20k=ade20k, unsup=unsup, davis=davis,
                        davis_split=dav.split)


def resolve_checkpoint(spec: str, tracking_uri: str) -> tuple[str, str | None]:
    """A checkpoint argument -> (what croc.eval.backbones.load_backbone reads, the MLflow run it came from).

    'runs:/<id>' or a bare 32-hex run id: that run's backbone.safetensors artifact (downloaded); anything else
    (a file, a run / checkpoint folder, random:<arch>, stats:<kind>) is passed through.
    """
    match = RUN_ID.match(spec)
    if not match or Path(spec).exists():
        return spec, None
    run_id = match.group(2)
    client = MlflowClient(tracking_uri)
    try:
        client.get_run(run_id)
    except Exception as error:
        raise InputError(f"--checkpoint {spec}: no MLflow run {run_id} at {tracking_uri}") from error
    try:
        local = client.download_artifacts(run_id, "backbone.safetensors")
    except Exception as error:
        raise InputError(f"MLflow run {run_id} has no backbone.safetensors artifact (did its pre-training "
                         f"finish?): {error}") from error
    return local, run_id


def _log_table(client: MlflowClient, run_id: str, name: str, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    client.log_text(run_id, buffer.getvalue(), name)


def _flat(prefix: str, value: Any, out: dict[str, str]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flat(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = json.dumps(value) if isinstance(value, (list, tuple)) else str(value)


def _start_eval_run(client: MlflowClient, request: EvalRequest, source: str) -> str:
    kind, _, dataset = request.task.partition(":")
    tags = {**request.tags, "croc.kind": "eval", "croc.task": kind, "croc.eval_dataset": dataset or kind,
            "croc.checkpoint": source, "croc.checkpoint_label": request.label}
    if request.parent_run_id:
        tags["mlflow.parentRunId"] = request.parent_run_id
    run = client.create_run(experiment_id(client, request.experiment),
                            run_name=request.run_name or f"{request.task} @ {request.label}", tags=tags)
    section = {"linear": "linear", "unsup": "unsup", "davis": "davis"}[kind]
    params: dict[str, str] = {"task": request.task, "checkpoint": source,
                              "network": str(request.evaluation.get("network"))}
    _flat(section, request.evaluation.get(section, {}), params)
    items = [Param(k, v[:6000]) for k, v in params.items()]
    for i in range(0, len(items), 100):
        client.log_batch(run.info.run_id, params=items[i:i + 100])
    return run.info.run_id


def _record(client: MlflowClient, run_id: str, outcome: Any) -> None:
    now = int(time.time() * 1000)
    metrics = [Metric(k, float(v), now, 0) for k, v in outcome.metrics.items()]
    metrics += [Metric(name, float(v), now, int(step)) for name, points in outcome.series.items()
                for step, v in points]
    for i in range(0, len(metrics), 1000):
        client.log_batch(run_id, metrics=metrics[i:i + 1000])
    for name, rows in outcome.tables.items():
        _log_table(client, run_id, name, rows)
    for name, picture in outcome.pictures.items():
        client.log_image(run_id, picture, artifact_file=name)


def _evaluate(request: EvalRequest, checkpoint: str, board: Any, cpus: float) -> EvalSummary:
    import torch

    from croc.eval.backbones import load_backbone
    from croc.eval.tasks import run_task

    torch.set_num_threads(max(1, int(cpus)))
    client = MlflowClient(request.tracking_uri)
    source = str(checkpoint)
    run_id = _start_eval_run(client, request, source)
    key = f"{request.task} @ {request.label}"

    def progress(description: str, done: int, total: int) -> None:
        if board is not None:
            board.post.remote(key, description, done, total)

    try:
        backbone = load_backbone(checkpoint, which=request.evaluation.get("network", "teacher"))
        client.log_batch(run_id, tags=[RunTag("croc.arch", f"{backbone.arch}/{backbone.patch_size}")])
        device = "cuda" if torch.cuda.is_available() else "cpu"
        protocol = protocol_of(EvaluationSection.model_validate(request.evaluation))
        outcome = run_task(request.task, backbone, protocol, request.roots, request.out_dir, device, progress,
                           pictures=int(request.evaluation.get("pictures", 4)))
        _record(client, run_id, outcome)
    except BaseException as error:
        client.log_text(run_id, traceback.format_exc(), "error.txt")
        client.log_batch(run_id, tags=[RunTag("croc.error", f"{type(error).__name__}: {error}"[:5000])])
        client.set_terminated(run_id, status="FAILED")
        return EvalSummary(request.task, request.label, run_id, error=f"{type(error).__name__}: {error}")
    finally:
        progress("done", 1, 1)
    client.set_terminated(run_id, status="FINISHED")
    return EvalSummary(request.task, request.label, run_id, dict(outcome.metrics))


@ray.remote(max_retries=0)
def evaluation_task(request: EvalRequest, checkpoint: str, board: Any = None, cpus: float = 1.0) -> EvalSummary:
    """One evaluation in its own process; `checkpoint` may arrive as the result of an export task."""
    return _evaluate(request, checkpoint, board, cpus)


@ray.remote(num_cpus=0.5, max_retries=1, scheduling_strategy="DEFAULT")  # never in a Tune trial's group
def export_checkpoint(checkpoint_dir: str, destination: str, network: str = "teacher") -> str:
    """Our training state -> a timm-loadable backbone.safetensors (what evaluations read)."""
    from croc.eval.backbones import load_backbone
    from croc.export import export_backbone

    backbone = load_backbone(checkpoint_dir, which=network)
    Path(destination).parent.mkdir(parents=True, exist_ok=True)
    return str(export_backbone(backbone.model, destination, backbone.arch, backbone.patch_size))


def label_folder(label: str) -> str:
    """The folder name of an evaluation label: runs of other characters become '-', and leading or trailing '-' and
    '.' go, so that no label ('..', '../x', '/abs') names a folder outside the evaluation's output folder."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", label).strip("-.") or "checkpoint"


def eval_requests(cfg: PretrainConfig, tasks: Sequence[str], label: str, out_dir: Path, *, method: str,
                  parent_run_id: str | None, source_tags: Mapping[str, str] | None = None) -> list[EvalRequest]:
    """One request per task, with the run hierarchy and tags of docs/architecture.md ("MLflow runs")."""
    roots = dataset_roots(cfg)
    tags = run_tags("eval", method, cfg.data.source, config_hash(cfg), source_tags)
    evaluation = cfg.evaluation.model_dump(mode="json")
    slug = label_folder(label)
    return [EvalRequest(task=task, label=label, evaluation=evaluation, roots=roots,
                        out_dir=str(out_dir / slug / task.replace(":", "_")), tracking_uri=cfg.tracking.tracking_uri,
                        experiment=cfg.tracking.experiment or cfg.name, tags=dict(tags),
                        parent_run_id=parent_run_id) for task in tasks]


def submit(requests: Sequence[EvalRequest], checkpoint: Any, evaluation: EvaluationSection,
           board: Any = None) -> list[tuple[EvalRequest, ray.ObjectRef]]:
    """Start the tasks (they wait for `checkpoint` if it is an ObjectRef); returns immediately."""
    res = evaluation.resources
    # "DEFAULT": outside the caller's placement group (a Tune trial holds a 0.1-CPU one that would capture them)
    options = {"num_cpus": res.cpus_per_task, "num_gpus": res.gpus_per_task, "scheduling_strategy": "DEFAULT"}
    return [(r, evaluation_task.options(**options).remote(r, checkpoint, board, res.cpus_per_task))
            for r in requests]


def baseline_label(spec: str) -> str:
    """'random:vit_tiny' -> 'random init'; 'stats:colour' -> 'colour statistics'; a file -> its name."""
    if spec.startswith("random:"):
        return "random init"
    if spec.startswith("stats:"):
        return f"{spec.split(':')[1]} statistics"
    return Path(spec).name


def check_roots(cfg: PretrainConfig, tasks: Sequence[str]) -> None:
    """Every task's dataset root is set and exists (the readers check the layout inside, naming the file)."""
    from croc.eval.tasks import SEGMENTATION_SETS, parse_task

    roots = dataset_roots(cfg)
    for task in tasks:
        kind, dataset = parse_task(task)
        key = "davis" if kind == "davis" else SEGMENTATION_SETS[dataset][3]
        root = roots.get(key)
        if not root:
            raise InputError(f"evaluation task {task!r} needs evaluation.datasets.{key} (the dataset's root folder)"
                             + ("" if key == "ade20k" else " or evaluation.datasets.synthetic=true"))
        if not Path(root).is_dir():
            raise InputError(f"evaluation.datasets.{key}={root} is not a folder (needed by task {task!r})")


def collect(pending: Sequence[tuple[EvalRequest, ray.ObjectRef]], board: Any, console: Console,
            on_done: Callable[[EvalSummary], None] | None = None) -> list[EvalSummary]:
    """Wait for every task, one progress bar each; a failed task becomes a summary with its error."""
    by_ref = {ref: request for request, ref in pending}
    summaries: dict[ray.ObjectRef, EvalSummary] = {}
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        bars = {f"{r.task} @ {r.label}": progress.add_task(f"{r.task} @ {r.label}: waiting", total=1)
                for r in by_ref.values()}
        remaining = list(by_ref)
        while remaining:
            done, remaining = ray.wait(remaining, num_returns=len(remaining), timeout=1.0)
            for ref in done:
                summary = _summary_of(by_ref[ref], ref)
                summaries[ref] = summary
                if on_done:
                    on_done(summary)
            if board is not None:
                for key, (description, n, total) in ray.get(board.read.remote()).items():
                    if key in bars:
                        progress.update(bars[key], description=f"{key}: {description}", completed=n,
                                        total=max(total, 1))
            for summary in summaries.values():
                key = f"{summary.task} @ {summary.label}"
                state = "failed" if summary.error else "done"
                progress.update(bars[key], description=f"{key}: {state}", completed=1, total=1)
    return [summaries[ref] for _, ref in pending]


def _summary_of(request: EvalRequest, ref: ray.ObjectRef) -> EvalSummary:
    try:
        return ray.get(ref)
    except Exception as error:  # the task's process died, or it never started
        return EvalSummary(request.task, request.label, None, error=f"{type(error).__name__}: {error}")


def finished(pending: Sequence[tuple[EvalRequest, ray.ObjectRef]], reported: set) -> list[EvalSummary]:
    """The summaries of tasks that ended since the last call (without waiting); `reported` remembers them."""
    waiting = [ref for _, ref in pending if ref not in reported]
    if not waiting:
        return []
    ready, _ = ray.wait(waiting, num_returns=len(waiting), timeout=0)
    requests = {ref: request for request, ref in pending}
    reported.update(ready)
    return [_summary_of(requests[ref], ref) for ref in ready]


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
