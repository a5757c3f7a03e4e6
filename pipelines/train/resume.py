"""Resuming a run by its name: before anything starts, the checkpoint Ray Train will restore must load (weights
only), and the requested config must be the one the run was started with, or the change is asked for and recorded.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from mlflow.tracking import MlflowClient

from croc.checkpoint import load_training_state
from croc.errors import InputError
from pipelines.config import flatten

SNAPSHOT = "checkpoint_manager_snapshot.json"  # Ray Train's record of a run's checkpoints, the latest among them
# Sections that say where and how a run is tracked, evaluated and scheduled, not what it trains: free to change.
FREE_SECTIONS = ("name", "evaluation", "tracking", "resources", "checkpoint")


class ConfigChange(NamedTuple):
    key: str
    saved: Any
    requested: Any


def latest_checkpoint(storage_path: str, run_name: str) -> Path | None:
    """The checkpoint folder Ray Train restores for this run, or None for a new run (or storage that is not local)."""
    if "://" in storage_path:
        return None
    snapshot = Path(storage_path) / run_name / SNAPSHOT
    if not snapshot.is_file():
        return None
    try:
        name = json.loads(snapshot.read_text())["latest_checkpoint_result"]["checkpoint_dir_name"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise InputError(f"{snapshot} cannot be read ({error}): the run's checkpoint record is damaged") from error
    if name is None:
        return None
    folder = snapshot.parent / str(name)
    if folder.parent != snapshot.parent or not folder.is_dir():
        raise InputError(f"{snapshot} names checkpoint {name!r}, which is not a folder of run {run_name}")
    return folder


def config_changes(saved: Mapping[str, Any], requested: Mapping[str, Any]) -> list[ConfigChange]:
    """Settings (dotted keys) whose value differs, outside FREE_SECTIONS, sorted by key."""
    old, new = flatten(saved), flatten(requested)
    keys = sorted(set(old) | set(new))
    return [ConfigChange(k, old.get(k), new.get(k)) for k in keys
            if k.split(".")[0] not in FREE_SECTIONS and old.get(k) != new.get(k)]


def check_resume(storage_path: str, run_name: str, requested: Mapping[str, Any],
                 accept_changes: bool) -> tuple[int, list[ConfigChange]]:
    """-> (the step the run resumes from (0 for a new run), the accepted config changes).

    Raises InputError when the checkpoint cannot be loaded as weights only, or when the config differs from the
    one the run was started with and `accept_changes` is false.
    """
    folder = latest_checkpoint(storage_path, run_name)
    if folder is None:
        return 0, []
    state = load_training_state(folder)
    try:
        saved = json.loads(state["config_json"])
    except (KeyError, TypeError, ValueError) as error:
        raise InputError(f"checkpoint {folder} holds no readable config: not written by this platform") from error
    changes = config_changes(saved, requested)
    if changes and not accept_changes:
        listed = "; ".join(f"{c.key}: {c.saved!r} -> {c.requested!r}" for c in changes)
        raise InputError(f"run {run_name} was started with a different config ({listed}). Resume it with the "
                         "config it was started with, or pass --accept-config-change to continue with the new "
                         "values (recorded on the run)")
    return int(state["step"]), changes


def record_config_change(client: MlflowClient, run_id: str, step: int, changes: list[ConfigChange],
                         new_hash: str) -> None:
    """An accepted change on the MLflow run: each new value as a param named after its key and the step, the new
    config hash, and a line in the run's note."""
    if not changes:
        return
    for change in changes:
        client.log_param(run_id, f"{change.key}/from_step_{step}", str(change.requested)[:6000])
    client.set_tag(run_id, "croc.config_hash", new_hash)
    note = client.get_run(run_id).data.tags.get("mlflow.note.content", "")
    listed = ", ".join(f"`{c.key}` {c.saved!r} -> {c.requested!r}" for c in changes)
    line = f"Resumed at step {step} with a changed config: {listed}."
    client.set_tag(run_id, "mlflow.note.content", f"{note}\n\n{line}".strip())
