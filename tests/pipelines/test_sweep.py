"""`croc sweep` end to end on the shared 2-CPU Ray: two trials, MLflow hierarchy, a failed trial resumed alone
(past a malicious tuner.pkl planted in checkpoint storage, which is never loaded)."""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "experiments" / "synthetic" / "smoke.yaml"


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _sweep_file(tmp_path: Path, bench: Path, davis_later: Path) -> Path:
    """Two trials differing in the DAVIS root: the second one does not exist yet, so that trial fails."""
    path = tmp_path / "sweep.yaml"
    path.write_text(f"""
name: tiny-sweep
base: {SMOKE}
overrides:
  resources.num_workers: 1
  evaluation.tasks: [davis]
  data.synthetic.out_dir: {bench}
  checkpoint.storage_path: {tmp_path / 'runs'}
  tracking.tracking_uri: sqlite:///{tmp_path / 'mlflow.db'}
search_space:
  evaluation.datasets.davis: {{grid: ["{bench / 'davis'}", "{davis_later}"]}}
baselines: [random:vit_tiny]
""")
    return path


@pytest.mark.slow
def test_sweep_runs_trials_tracks_them_and_resumes_only_what_did_not_finish(tmp_path: Path, ray_session) -> None:
    from pipelines.datasets import ensure_synthetic_benchmark
    from pipelines.sweep.run import run_sweep

    bench, davis_later = tmp_path / "bench", tmp_path / "davis-later"
    sweep_file = _sweep_file(tmp_path, bench, davis_later)
    from pipelines.sweep.sweep_file import load_sweep

    ensure_synthetic_benchmark(load_sweep(sweep_file)[1])
    grid = run_sweep(sweep_file)
    assert sorted(bool(r.error) for r in grid) == [False, True]  # the missing DAVIS root fails one trial only
    assert os.environ["TUNE_DISABLE_SIGINT_HANDLER"] == "1"  # Ctrl-C is an interrupt, not Tune's graceful stop

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tiny-sweep").experiment_id
    (sweep_run,) = client.search_runs([experiment], "tags.`croc.kind` = 'sweep'")
    pretrain = client.search_runs([experiment], "tags.`croc.kind` = 'pretrain'")
    finished = [r for r in pretrain if r.info.status == "FINISHED"]
    assert len(finished) == 1 and finished[0].data.tags["mlflow.parentRunId"] == sweep_run.info.run_id
    first_end = finished[0].info.end_time
    evals = client.search_runs([experiment], "tags.`croc.kind` = 'eval'")
    nested = [r for r in evals if r.data.tags["mlflow.parentRunId"] == finished[0].info.run_id]
    assert len(nested) == 1 and nested[0].data.tags["croc.task"] == "davis"
    baseline = [r for r in evals if r.data.tags["mlflow.parentRunId"] == sweep_run.info.run_id]
    assert len(baseline) == 1 and baseline[0].data.tags["croc.checkpoint"] == "random:vit_tiny"

    assert finished[0].info.run_name == "tiny-sweep-t000"  # trial t000 (the DAVIS root that exists) finished

    shutil.copytree(bench / "davis", davis_later)  # fix the cause, then resume
    marker = tmp_path / "PWNED"  # and someone who can write to checkpoint storage plants code in Tune's state
    payload = pickle.dumps(_Payload(marker))
    (tmp_path / "runs" / "tiny-sweep" / "tuner.pkl").write_bytes(payload)
    (tmp_path / "runs" / "tiny-sweep" / "experiment_state-2099-01-01_00-00-00.json").write_bytes(payload)
    grid = run_sweep(sweep_file, resume=True)
    assert not marker.exists()  # resume rebuilt the sweep from the sweep file and MLflow: nothing was unpickled
    assert [bool(r.error) for r in grid] == [False, False]
    pretrain = client.search_runs([experiment], "tags.`croc.kind` = 'pretrain'")
    again = [r for r in pretrain if r.info.run_id == finished[0].info.run_id]
    assert again[0].info.end_time == first_end  # the finished trial was not rerun
    assert sorted(r.info.status for r in pretrain) == ["FINISHED", "FINISHED"]
    assert sorted(r.info.run_name for r in pretrain) == ["tiny-sweep-t000", "tiny-sweep-t001"]
    assert len(client.search_runs([experiment], "tags.`croc.kind` = 'eval'")) == 3  # baseline not re-evaluated
    assert all(0 <= r.metrics["davis/jf_mean"] <= 1 and r.metrics["done"] == 1 for r in grid)
