"""The evaluations' allowed values, each declared once: kinds, datasets, splits, dataset roots, task names,
headline metrics, the linear protocol's epochs, class rules, and the platform's `after` / `network` choices.

The readers (croc/eval/tasks.py), the config schema (pipelines/config/evaluation.py), the sweeps and
`croc compare` derive their lists from these. No torch here (the CLI reads these for `--help`).
"""

from __future__ import annotations

from typing import NamedTuple

from croc.errors import InputError

KINDS = ("linear", "unsup", "davis")


class SegmentationSet(NamedTuple):
    """A segmentation dataset: its splits in its official layout and the key of its root (evaluation.datasets)."""

    train_split: str
    val_split: str
    root_key: str


SEGMENTATION_SETS: dict[str, SegmentationSet] = {
    "voc": SegmentationSet("trainaug", "val", "voc"),
    "coco_things": SegmentationSet("train", "val", "coco"),
    "coco_stuff": SegmentationSet("train", "val", "coco"),
    "ade20k": SegmentationSet("training", "validation", "ade20k"),
}
DAVIS = "davis"  # the task, its dataset and its root key
DAVIS_SPLITS = ("train", "val")
# kind -> the datasets it accepts ('davis' takes no dataset: the task is the kind)
EVAL_DATASETS: dict[str, tuple[str, ...]] = {"linear": ("voc", "coco_things", "coco_stuff", "ade20k"),
                                             "unsup": ("voc", "coco_things", "coco_stuff")}
EVAL_TASKS = (*(f"{kind}:{ds}" for kind, names in EVAL_DATASETS.items() for ds in names), DAVIS)
ROOT_KEYS = ("voc", "coco", "ade20k", DAVIS)  # evaluation.datasets.<key>: a dataset's root folder
SYNTHETIC_ROOTS = ("voc", "coco", DAVIS)  # the roots the synthetic benchmark has a stand-in for (no ADE20K)

HEADLINE = {"linear": "miou_best", "unsup": "miou_mean", "davis": "jf_mean"}  # what tables, Tune and ASHA see
HEADLINE_NAMES = {"linear": "miou", "unsup": "miou", "davis": "jf"}  # eval/<task>/<name> on the pre-training run

# the linear protocol's epochs per dataset (epoch mode; ADE20K runs in iteration mode)
PROTOCOL_EPOCHS = {"voc": 45, "coco_things": 10, "coco_stuff": 10}
CLASS_RULES = ("all", "present")  # which classes mIoU averages over (croc.eval.miou)
AFTER = ("final", "all_checkpoints")  # which checkpoints of a pre-training are evaluated
NETWORKS = ("teacher", "student")  # which network of a checkpoint is evaluated


def parse_task(task: str) -> tuple[str, str]:
    """'linear:voc' -> ('linear', 'voc'); 'davis' -> ('davis', 'davis'); anything else is an error."""
    kind, _, dataset = task.partition(":")
    if kind == DAVIS and not dataset:
        return DAVIS, DAVIS
    if kind not in EVAL_DATASETS or dataset not in EVAL_DATASETS[kind]:
        raise InputError(f"unknown evaluation task {task!r}; allowed: {', '.join(EVAL_TASKS)}")
    return kind, dataset


def task_kind(task: str) -> str:
    """'linear:voc' -> 'linear', 'davis' -> 'davis' (no check: for names read back from records)."""
    return task.partition(":")[0]


def task_dataset(task: str) -> str:
    """'linear:voc' -> 'voc', 'davis' -> 'davis' (no check: for names read back from records)."""
    kind, _, dataset = task.partition(":")
    return dataset or kind


def headline_metric(task: str) -> str:
    """The metric that ranks a task: 'linear:voc' -> 'miou_best'."""
    return HEADLINE[task_kind(task)]


def root_key(task: str) -> str:
    """The evaluation.datasets key whose root a task reads: 'unsup:coco_stuff' -> 'coco'."""
    kind, dataset = parse_task(task)
    return DAVIS if kind == DAVIS else SEGMENTATION_SETS[dataset].root_key
