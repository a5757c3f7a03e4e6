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


def test_an_outage_fails_fast_and_a_resume_logs_every_step_exactly_once(tmp_path: Path, monkeypatch) -> None:
    """Steps 1-5 logged at the checkpoint of step 5; MLflow goes down before the checkpoint of step 10 is flushed:
    the flush fails within seconds naming the steps, their metrics are in the checkpoint, and the resumed attempt
    logs them, then goes on: every step exactly once."""
    import time

    from pipelines.tracking import BOUNDED_RETRIES, TrackingOutageError, bound_retries

    for name in BOUNDED_RETRIES:
        monkeypatch.delenv(name, raising=False)
    bound_retries()
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(store)
    run_id = start_run(client, "exp", "outage", run_tags("pretrain", "croc", "synthetic", "abc"), {})
    buffer = MetricBuffer(client, run_id)
    for step in range(1, 6):
        buffer.add(step, {"loss": 10.0 - step, "lr": 0.1})
    buffer.flush()  # the checkpoint of step 5
    for step in range(6, 11):
        buffer.add(step, {"loss": 10.0 - step, "lr": 0.1})
    checkpoint = tmp_path / "checkpoint_10"
    checkpoint.mkdir()
    buffer.save_pending(checkpoint)
    buffer.client = MlflowClient(f"http://127.0.0.1:{closed_port()}")  # the server is gone
    started = time.monotonic()
    with pytest.raises(TrackingOutageError, match=r"did not take the metrics of steps 6-10.*kept with the checkpoint"):
        buffer.flush()
    assert time.monotonic() - started < 60  # bounded retries, not minutes

    resumed = MetricBuffer(MlflowClient(store), run_id)  # MLflow is back; the run resumes from checkpoint 10
    assert resumed.replay(checkpoint) == 10  # steps 6-10, two keys each
    assert resumed.replay(checkpoint) == 0  # a second restart from the same checkpoint logs nothing twice
    for step in (11, 12):
        resumed.add(step, {"loss": 10.0 - step, "lr": 0.1})
    resumed.flush()
    for key in ("loss", "lr"):
        assert sorted(m.step for m in client.get_metric_history(run_id, key)) == list(range(1, 13))


def test_evaluation_headlines_are_logged_on_the_pretraining_run_at_their_step(tmp_path: Path) -> None:
    from pipelines.evaluate.requests import EvalSummary
    from pipelines.train.pretrain import log_headlines

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run_id = start_run(client, "exp", "pre", run_tags("pretrain", "croc", "synthetic", "abc"), {})
    log_headlines(client, run_id, [
        EvalSummary("linear:voc", "final", "r1", {"miou_best": 0.4, "miou_last": 0.3}),
        EvalSummary("unsup:voc", "step 40", "r2", {"miou_mean": 0.2}),
        EvalSummary("davis", "final", "r3", {"jf_mean": 0.5}),
        EvalSummary("davis", "step 40", "r4", {}, error="failed"),  # a failed one logs nothing
        EvalSummary("linear:voc", "random init", "r5", {"miou_best": 0.1}),  # a baseline is not this run's
    ], final_step=80)
    logged = {key: [(m.step, m.value) for m in client.get_metric_history(run_id, key)]
              for key in client.get_run(run_id).data.metrics}
    assert logged == {"eval/linear_voc/miou": [(80, 0.4)], "eval/unsup_voc/miou": [(40, 0.2)],
                      "eval/davis/jf": [(80, 0.5)]}


def test_runs_carry_mlflow_source_tags_and_what_croc_submit_passed(tmp_path: Path, monkeypatch) -> None:
    for name in ("CROC_SUBMISSION_ID", "CROC_GIT_DIRTY", "RAY_JOB_CONFIG_JSON_ENV_VAR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CROC_COMMAND", "croc pretrain --config experiments/synthetic/smoke.yaml")
    monkeypatch.setenv("CROC_GIT_SHA", "c" * 40)
    local = run_tags("pretrain", "croc", "synthetic", "abc")
    assert local["mlflow.source.name"] == "croc pretrain --config experiments/synthetic/smoke.yaml"
    assert local["mlflow.source.type"] == "LOCAL" and local["mlflow.source.git.commit"] == "c" * 40
    assert "croc.git_dirty" not in local and "croc.submission_id" not in local  # not known outside `croc submit`
    monkeypatch.setenv("CROC_SUBMISSION_ID", "croc-pretrain-x-20261130-120000")
    monkeypatch.setenv("CROC_GIT_DIRTY", "1")
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = client.get_run(start_run(client, "exp", "job", run_tags("pretrain", "croc", "synthetic", "abc"), {}))
    tags = run.data.tags
    assert tags["mlflow.source.type"] == "JOB" and tags["croc.git_dirty"] == "true"
    assert tags["croc.submission_id"] == "croc-pretrain-x-20261130-120000" and tags["croc.git_sha"] == "c" * 40
    monkeypatch.setenv("CROC_GIT_SHA", "unknown")
    assert "mlflow.source.git.commit" not in run_tags("pretrain", "croc", "synthetic", "abc")
