"""Resuming by run name: the checkpoint is checked before anything starts, and a changed config is refused unless
accepted, then recorded on the MLflow run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from croc.checkpoint import save_training_state
from croc.errors import InputError
from pipelines.cli import app
from pipelines.config import config_hash, load_config
from pipelines.tracking import start_run
from pipelines.train.resume import check_resume, config_changes, latest_checkpoint, record_config_change

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "experiments" / "synthetic" / "smoke.yaml"


def saved_run(storage: Path, name: str, config: dict, step: int = 4) -> Path:
    """A run folder as Ray Train leaves it: two checkpoints and the snapshot naming the latest."""
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.AdamW(model.parameters())
    names = ["checkpoint_2026-01-01_00-00-01.000000", "checkpoint_2026-01-01_00-00-02.000000"]
    for i, folder_name in enumerate(names):
        folder = storage / name / folder_name
        folder.mkdir(parents=True)
        save_training_state(folder, model=model, optimizer=optimizer, scaler=torch.amp.GradScaler("cpu"),
                            step=step - 1 + i, epoch=0, data_seed=0, config=config)
    snapshot = {"latest_checkpoint_result": {"checkpoint_dir_name": names[-1], "metrics": {"step": step}}}
    (storage / name / "checkpoint_manager_snapshot.json").write_text(json.dumps(snapshot))
    return storage / name / names[-1]


def test_a_new_run_has_nothing_to_check(tmp_path: Path) -> None:
    assert latest_checkpoint(str(tmp_path), "new") is None
    assert check_resume(str(tmp_path), "new", {}, accept_changes=False) == (0, [])


def test_the_same_config_resumes_and_free_sections_may_change(tmp_path: Path) -> None:
    cfg = load_config(SMOKE)
    folder = saved_run(tmp_path, "r1", cfg.model_dump(mode="json"))
    assert latest_checkpoint(str(tmp_path), "r1") == folder
    moved = load_config(SMOKE, ["tracking.log_every_steps=1", "evaluation.tasks=[]", "resources.num_workers=1"])
    assert check_resume(str(tmp_path), "r1", moved.model_dump(mode="json"), accept_changes=False) == (4, [])


def test_a_changed_config_is_refused_listing_the_keys_unless_accepted(tmp_path: Path) -> None:
    saved_run(tmp_path, "d2", load_config(SMOKE).model_dump(mode="json"))
    changed = load_config(SMOKE, ["optim.epochs=5", "optim.lr=1e-2"]).model_dump(mode="json")
    with pytest.raises(InputError) as refused:
        check_resume(str(tmp_path), "d2", changed, accept_changes=False)
    message = str(refused.value)
    assert "optim.epochs: 1 -> 5" in message and "optim.lr: 0.0005 -> 0.01" in message
    assert "--accept-config-change" in message
    step, changes = check_resume(str(tmp_path), "d2", changed, accept_changes=True)
    assert step == 4 and [c.key for c in changes] == ["optim.epochs", "optim.lr"]


def test_config_changes_compare_nested_keys_and_missing_ones() -> None:
    saved = {"optim": {"lr": 1.0, "epochs": 2}, "tracking": {"uri": "a"}, "model": {"arch": "vit_tiny"}}
    requested = {"optim": {"lr": 1.0, "epochs": 3}, "tracking": {"uri": "b"}, "model": {"arch": "vit_tiny", "x": 1}}
    assert [tuple(c) for c in config_changes(saved, requested)] == [("model.x", None, 1), ("optim.epochs", 2, 3)]


def test_a_tampered_checkpoint_is_refused_before_anything_starts(tmp_path: Path) -> None:
    cfg = load_config(SMOKE, [f"checkpoint.storage_path={tmp_path / 'runs'}",
                              f"tracking.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}"])
    folder = saved_run(tmp_path / "runs", "t1", cfg.model_dump(mode="json"))
    (folder / "state.pt").write_bytes(b"\x80\x04\x95tampered")
    result = CliRunner().invoke(app, ["pretrain", "--config", str(SMOKE), "--run-name", "t1",
                                      f"checkpoint.storage_path={tmp_path / 'runs'}",
                                      f"tracking.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}"])
    assert result.exit_code == 2, result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("error: checkpoint") and "cannot be loaded safely" in last
    assert "weights_only=False" not in result.output
    assert not (tmp_path / "mlflow.db").exists()  # refused before MLflow (and Ray) started


def test_an_accepted_change_is_recorded_on_the_run(tmp_path: Path) -> None:
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run_id = start_run(client, "exp", "d2", {"croc.config_hash": "old"}, {"optim.epochs": "1"})
    cfg = load_config(SMOKE, ["optim.epochs=5"])
    saved_run(tmp_path, "d2", load_config(SMOKE).model_dump(mode="json"))
    step, changes = check_resume(str(tmp_path), "d2", cfg.model_dump(mode="json"), accept_changes=True)
    record_config_change(client, run_id, step, changes, config_hash(cfg))
    run = client.get_run(run_id)
    assert run.data.params["optim.epochs"] == "1" and run.data.params["optim.epochs/from_step_4"] == "5"
    assert run.data.tags["croc.config_hash"] == config_hash(cfg)
    assert "Resumed at step 4 with a changed config: `optim.epochs` 1 -> 5." in run.data.tags["mlflow.note.content"]
