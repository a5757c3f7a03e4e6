"""What is checked before any evaluation task starts: every task's dataset root is set and is a folder."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from croc.errors import InputError
from croc.eval.registry import SYNTHETIC_ROOTS, root_key
from pipelines.config import PretrainConfig
from pipelines.datasets import dataset_roots


def check_roots(cfg: PretrainConfig, tasks: Sequence[str]) -> None:
    """Every task's dataset root is set and exists (the readers check the layout inside, naming the file)."""
    roots = dataset_roots(cfg)
    for task in tasks:
        key = root_key(task)
        root = roots.get(key)
        if not root:
            raise InputError(f"evaluation task {task!r} needs evaluation.datasets.{key} (the dataset's root folder)"
                             + (" or evaluation.datasets.synthetic=true" if key in SYNTHETIC_ROOTS else ""))
        if not Path(root).is_dir():
            raise InputError(f"evaluation.datasets.{key}={root} is not a folder (needed by task {task!r})")
