"""`ray job submit` round trip against a head this test starts itself (own temp dir and ports, own process group)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory: pytest.TempPathFactory):
    """A Ray head with the dashboard (job API) on free ports, shared by this module's jobs (each writes to its own
    folders); stopped by SIGTERM, then its process group killed."""
    tmp_path = tmp_path_factory.mktemp("ray-head")
    gcs, dashboard, client, agent, agent_grpc, runtime_env, metrics = free_ports(7)
    temp_dir = Path("/tmp") / f"rh{os.getpid()}"  # short: Ray's socket paths are length-limited
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
           "RAY_USAGE_STATS_ENABLED": "0",
           "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0"}  # a throw-away head: no drain (up to 30 s) on SIGTERM
    log = (tmp_path / "head.log").open("w")
    head = subprocess.Popen(
        [str(BIN / "ray"), "start", "--head", "--block", f"--port={gcs}", "--num-cpus=2", "--include-dashboard=true",
         "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}", f"--ray-client-server-port={client}",
         f"--dashboard-agent-listen-port={agent}", f"--dashboard-agent-grpc-port={agent_grpc}",
         f"--runtime-env-agent-port={runtime_env}", f"--metrics-export-port={metrics}",
         f"--temp-dir={temp_dir}", "--disable-usage-stats"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    address = f"http://127.0.0.1:{dashboard}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{address}/api/version", timeout=2):
                    break
            except OSError as error:
                if head.poll() is not None or time.time() > deadline:
                    message = "the Ray head did not start:\n" + (tmp_path / "head.log").read_text()[-3000:]
                    raise RuntimeError(message) from error
                time.sleep(1)
        yield address, env
    finally:
        # SIGTERM to `ray start` alone: it stops its own processes in order (signalling the whole group kills the
        # GCS first, and a drain would then wait 30 s for it).
        head.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            head.wait(timeout=60)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(head.pid, signal.SIGKILL)  # whatever of the group outlived the head
        log.close()
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.mark.slow
def test_ray_job_submit_runs_a_pretraining(tmp_path: Path, ray_head) -> None:
    address, env = ray_head
    runtime_env = {"excludes": [".venv/", ".git/", "/data/", "/runs/", "/mlruns/", "/mlartifacts/", "mlflow.db",
                                "*.parquet", "*.safetensors"], "env_vars": {"RAY_AUTH_MODE": "disabled"}}
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    command = [str(BIN / "ray"), "job", "submit", "--address", address, "--working-dir", str(ROOT),
               "--runtime-env-json", json.dumps(runtime_env), "--",
               "croc", "pretrain", "--config", "experiments/synthetic/smoke.yaml", "--run-name", "submitted",
               f"checkpoint.storage_path={tmp_path / 'runs'}", f"tracking.tracking_uri={tracking}",
               f"data.synthetic.out_dir={tmp_path / 'synthetic'}", "evaluation.tasks=[]"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "succeeded" in (done.stdout + done.stderr).lower()
    assert "croc.git_sha=unknown" in done.stdout + done.stderr  # .git/ did not travel: the user is told
    client = MlflowClient(tracking)
    (run,) = client.search_runs([client.get_experiment_by_name("synthetic-smoke").experiment_id],
                                "tags.`croc.kind` = 'pretrain'")
    assert run.info.status == "FINISHED" and run.info.run_name == "submitted"
    assert sorted(m.step for m in client.get_metric_history(run.info.run_id, "train/loss")) == list(range(1, 7))
    assert list((tmp_path / "runs" / "submitted").glob("checkpoint_*"))


@pytest.mark.slow
def test_croc_submit_records_the_commit_and_names_the_job(tmp_path: Path, ray_head) -> None:
    """What `croc submit` adds to any croc command (here an evaluation, the shortest job that writes an MLflow
    run; the pre-training job is the test above): the commit, the tree's state, a job name, MLflow's source tags."""
    address, env = ray_head
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    command = [str(BIN / "croc"), "submit", "--address", address, "--",
               "evaluate", "--checkpoint", "random:vit_tiny:16", "--tasks", "davis", "--label", "provenance",
               "--config", "experiments/synthetic/smoke.yaml", f"tracking.tracking_uri={tracking}",
               f"data.synthetic.out_dir={tmp_path / 'synthetic'}", f"checkpoint.storage_path={tmp_path / 'runs'}"]
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=900)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert "submitted croc-evaluate-" in output and "succeeded" in output
    assert "croc.git_sha=unknown" not in output  # no warning: the commit travelled with the job
    client = MlflowClient(tracking)
    (run,) = client.search_runs([client.get_experiment_by_name("synthetic-smoke").experiment_id],
                                "tags.`croc.kind` = 'eval'")
    tags = run.data.tags
    assert run.info.status == "FINISHED" and tags["croc.task"] == "davis"
    assert tags["croc.git_sha"] == head and tags["mlflow.source.git.commit"] == head
    assert tags["croc.git_dirty"] in ("true", "false") and tags["mlflow.source.type"] == "JOB"
    assert tags["croc.submission_id"].startswith("croc-evaluate-")
    assert tags["mlflow.source.name"].startswith("croc evaluate --checkpoint random:vit_tiny:16 --tasks davis")
