"""MLflow helpers: an unreachable tracking store is caught before training; runs are found again by name."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from croc.errors import InputError
from pipelines.tracking import MetricBuffer, check_tracking_uri, run_tags, start_run


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_tracking_server_is_named() -> None:
    uri = f"http://127.0.0.1:{closed_port()}"
    with pytest.raises(InputError, match=r"does not answer"):
        check_tracking_uri(uri, timeout_s=2)


def test_sqlite_store_folder_is_created(tmp_path: Path) -> None:
    check_tracking_uri(f"sqlite:///{tmp_path / 'new' / 'mlflow.db'}")
    assert (tmp_path / "new").is_dir()


def test_runs_are_reopened_by_name_and_steps_logged_once(tmp_path: Path) -> None:
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    tags = run_tags("pretrain", "croc", "synthetic", "abc123")
    first = start_run(client, "exp", "run-a", tags, {"optim.lr": "0.0005"})
    assert start_run(client, "exp", "run-a", tags, {}) == first
    assert start_run(client, "exp", "run-b", tags, {}) != first
    run = client.get_run(first)
    assert run.data.params == {"optim.lr": "0.0005"} and run.data.tags["croc.config_hash"] == "abc123"
    assert Path(run.info.artifact_uri.removeprefix("file://")).is_relative_to(tmp_path)  # beside the store
    buffer = MetricBuffer(client, first)
    buffer.add(1, {"loss": 2.0})
    buffer.add(2, {"loss": 1.5})
    buffer.flush()
    again = MetricBuffer(client, first)  # a resumed attempt that restarted from step 0
    for step in (1, 2, 3):
        again.add(step, {"loss": 9.0})
    again.flush()
    history = sorted((m.step, m.value) for m in client.get_metric_history(first, "loss"))
    assert history == [(1, 2.0), (2, 1.5), (3, 9.0)]


def test_a_resumed_attempt_logs_each_steps_picture_once(tmp_path: Path) -> None:
    import numpy as np

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run_id = start_run(client, "exp", "pictures", run_tags("pretrain", "croc", "synthetic", "abc"), {})
    image = np.zeros((8, 8, 3), np.uint8)
    first = MetricBuffer(client, run_id)
    first.picture(5, image)
    first.picture(10, image)  # logged, then the worker died before the checkpoint at step 12
    again = MetricBuffer(client, run_id)  # the restarted worker recomputes steps 6-12
    again.picture(10, image + 1)
    again.picture(15, image)
    again.picture(15, image)
    names = [a.path.rsplit("/", 1)[-1] for a in client.list_artifacts(run_id, "images")]
    steps = sorted(int(n.split("+")[2]) for n in names if n.endswith(".png"))
    assert steps == [5, 10, 15]
