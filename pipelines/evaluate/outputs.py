"""Where evaluations write their outputs (DAVIS predictions): a run's evaluation folder, in it one folder per
checkpoint label and, in that, one per task."""

from __future__ import annotations

import re
from pathlib import Path

from croc.errors import InputError
from pipelines.config import PretrainConfig


def evaluation_dir(cfg: PretrainConfig, run_name: str) -> Path:
    if cfg.evaluation.output_dir:
        return Path(cfg.evaluation.output_dir)
    storage = cfg.checkpoint.storage_path
    if "://" in storage:
        raise InputError(f"checkpoint.storage_path={storage} is a URI: set evaluation.output_dir to a local or "
                         "shared folder for the DAVIS predictions")
    return Path(storage) / run_name / "evaluations"


def label_folder(label: str) -> str:
    """The folder name of an evaluation label: runs of other characters become '-', and leading or trailing '-' and
    '.' go, so that no label ('..', '../x', '/abs') names a folder outside the evaluation's output folder."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", label).strip("-.") or "checkpoint"
