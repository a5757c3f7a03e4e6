"""The worker reports a collapse alert to its log and as an MLflow tag of the run."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from croc.collapse import CollapseMonitor
from pipelines.tracking import MetricBuffer, run_tags, start_run
from pipelines.train.train_loop import _report_collapse


def test_an_alert_goes_to_the_log_and_to_a_run_tag(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run_id = start_run(client, "exp", "run", run_tags("pretrain", "croc", "synthetic", "abc"), {})
    tracker, monitor = MetricBuffer(client, run_id), CollapseMonitor(after_step=0)
    with caplog.at_level(logging.WARNING, logger="pipelines.train.train_loop"):
        for step in (10, 20, 30):
            _report_collapse(monitor.observe(step, {"teacher_entropy_ratio": 0.99}), tracker)
    logged = [r.getMessage() for r in caplog.records if r.name == "pipelines.train.train_loop"]
    assert len(logged) == 1 and "step 20" in logged[0]
    tags = client.get_run(run_id).data.tags
    assert tags["croc.collapse_warning.teacher_entropy_ratio.uniform"] == logged[0]
