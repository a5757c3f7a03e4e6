"""What one evaluation task is given and what it returns (plain values: they cross process boundaries), and the
requests that evaluate one checkpoint on a list of tasks."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from croc.checkpoint_layouts import named_kind, parse_named
from croc.eval.registry import SYNTHETIC_ROOTS, root_key, task_kind
from croc.eval.settings import EvalProtocol
from pipelines.config import PretrainConfig, config_hash
from pipelines.datasets import dataset_roots
from pipelines.evaluate.outputs import label_folder
from pipelines.tracking import run_tags


@dataclass(frozen=True)
class EvalRequest:
    """Everything one evaluation task needs (plain values: it crosses process boundaries)."""

    task: str  # 'linear:voc', 'unsup:coco_stuff', 'davis'
    label: str  # which checkpoint: 'final', 'step 120', 'random init', a file name
    protocol: EvalProtocol  # the protocols' constants (frozen, plain: croc.eval.settings)
    network: str  # which network of the checkpoint: teacher / student
    pictures: int  # images (and one video) shown per evaluation
    params: dict[str, str]  # what the task's run records as MLflow params (its evaluation section, flattened)
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


def eval_requests(cfg: PretrainConfig, tasks: Sequence[str], label: str, out_dir: Path, *, method: str,
                  parent_run_id: str | None, source_tags: Mapping[str, str] | None = None) -> list[EvalRequest]:
    """One request per task, with the run hierarchy and tags of docs/architecture.md ("MLflow runs")."""
    roots = dataset_roots(cfg)
    tags = run_tags("eval", method, cfg.data.source, config_hash(cfg), source_tags)
    evaluation = cfg.evaluation.model_dump(mode="json")
    protocol = cfg.evaluation.protocol()
    slug = label_folder(label)
    return [EvalRequest(task=task, label=label, protocol=protocol, network=cfg.evaluation.network,
                        pictures=cfg.evaluation.pictures, params=run_params(task, evaluation), roots=roots,
                        out_dir=str(out_dir / slug / task.replace(":", "_")), tracking_uri=cfg.tracking.tracking_uri,
                        experiment=cfg.tracking.experiment or cfg.name,
                        tags={**tags, "croc.eval_synthetic": str(on_synthetic_stand_in(cfg, task)).lower()},
                        parent_run_id=parent_run_id) for task in tasks]


def on_synthetic_stand_in(cfg: PretrainConfig, task: str) -> bool:
    """True when `task` reads the synthetic benchmark in its dataset's layout rather than the dataset itself (the
    dataset's root unset and evaluation.datasets.synthetic on)."""
    key = root_key(task)
    datasets = cfg.evaluation.datasets
    return bool(datasets.synthetic) and key in SYNTHETIC_ROOTS and not getattr(datasets, key)


def _flat(prefix: str, value: Any, out: dict[str, str]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flat(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = json.dumps(value) if isinstance(value, (list, tuple)) else str(value)


def run_params(task: str, evaluation: dict[str, Any]) -> dict[str, str]:
    """The network and the task's own section of `evaluation` (JSON-ready), flattened: 'linear.epochs.voc'."""
    kind = task_kind(task)
    params = {"network": str(evaluation.get("network"))}
    _flat(kind, evaluation.get(kind, {}), params)
    return params


def baseline_label(spec: str) -> str:
    """'random:vit_tiny' -> 'random init' ('random init (seed 1)' for random:vit_tiny:16:1, so that several seeds
    stay apart in tables); 'stats:colour' -> 'colour statistics'; a file -> its name."""
    kind = named_kind(spec)
    if kind is None:
        return Path(spec).name
    try:
        _, name, numbers = parse_named(spec)
    except ValueError:  # not a valid name: loading it says why; the label is the spec itself
        return spec
    if kind == "stats":
        return f"{name} statistics"
    seed = numbers[1]
    return "random init" if seed == 0 else f"random init (seed {seed})"
