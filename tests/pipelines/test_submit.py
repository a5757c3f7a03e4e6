"""`croc submit`: what it sends (entrypoint, submission id, provenance, metadata), planned without a cluster."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from croc.errors import InputError
from pipelines.cli.submit import GitState, git_state, plan_job, submission_id

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ["pretrain", "--config", "experiments/synthetic/smoke.yaml", "--run-name", "sub1", "optim.epochs=2"]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A git checkout holding the project's configs and runtime env, one commit."""
    folder = tmp_path / "project"
    shutil.copytree(ROOT / "experiments", folder / "experiments")
    shutil.copytree(ROOT / "platform", folder / "platform")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "init", "-q", str(folder)], check=True)
    subprocess.run([*git, "add", "-A"], cwd=folder, check=True)
    subprocess.run([*git, "commit", "-qm", "c"], cwd=folder, check=True)
    return folder


def test_git_state_reads_the_commit_and_tracked_changes(project: Path, tmp_path: Path) -> None:
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=project, capture_output=True, text=True).stdout.strip()
    assert git_state(project) == GitState(sha, False)
    (project / "untracked.txt").write_text("x")  # untracked files do not make the tree dirty
    assert git_state(project) == GitState(sha, False)
    smoke = project / "experiments" / "synthetic" / "smoke.yaml"
    smoke.write_text(smoke.read_text() + "\n")
    assert git_state(project) == GitState(sha, True)
    outside = tmp_path / "plain"
    outside.mkdir()
    assert git_state(outside) == GitState("unknown", False)


def test_the_plan_carries_provenance_and_metadata(project: Path) -> None:
    from pipelines.config import config_hash, load_config

    git = GitState("a" * 40, True)
    plan = plan_job(SMOKE, project, git, now=0.0)
    assert plan.entrypoint == "croc pretrain --config experiments/synthetic/smoke.yaml --run-name sub1 optim.epochs=2"
    assert plan.submission_id.startswith("croc-pretrain-sub1-19700101-")
    env = plan.runtime_env
    assert env["working_dir"] == str(project)
    assert ".git/" in env["excludes"] and ".venv/" in env["excludes"]  # the project's excludes, from platform/
    assert env["env_vars"]["CROC_GIT_SHA"] == "a" * 40 and env["env_vars"]["CROC_GIT_DIRTY"] == "1"
    assert env["env_vars"]["CROC_SUBMISSION_ID"] == plan.submission_id
    assert env["env_vars"]["PYTHONUNBUFFERED"] == "1"  # the runtime env's own variables are kept
    expected_hash = config_hash(load_config(project / "experiments/synthetic/smoke.yaml", ["optim.epochs=2"]))
    assert plan.metadata["croc.config_hash"] == expected_hash
    assert plan.metadata["run_name"] == "sub1" and plan.metadata["croc.git_dirty"] == "true"
    assert plan.metadata["croc.command"] == plan.entrypoint


def test_a_bad_command_fails_before_anything_travels(project: Path) -> None:
    git = GitState("b" * 40, False)
    with pytest.raises(InputError, match="nothing to submit"):
        plan_job([], project, git)
    with pytest.raises(InputError, match="not in"):
        plan_job(["pretrain", "--config", "experiments/nope.yaml"], project, git)
    with pytest.raises(InputError, match=r"optim\.epochs"):  # the config is validated here, naming the key
        plan_job(["pretrain", "--config", "experiments/synthetic/smoke.yaml", "optim.epochs=-1"], project, git)


def test_submission_ids_are_readable_and_safe() -> None:
    job = submission_id(["sweep", "x.yaml"], "synthetic methods/longer", now=0.0)
    assert job.startswith("croc-sweep-synthetic-methods-longer-19700101-")
    assert all(c.isalnum() or c in "-_" for c in job)


def test_a_submitted_job_refuses_to_generate_data_in_its_working_copy(tmp_path: Path, monkeypatch) -> None:
    from pipelines.config import load_config
    from pipelines.datasets import ensure_synthetic_benchmark

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", "{}")  # what Ray sets for a job's entrypoint
    cfg = load_config(ROOT / "experiments/synthetic/smoke.yaml")  # data.synthetic.out_dir unset: under ./data
    with pytest.raises(InputError, match=r"data\.synthetic\.out_dir=unset .* temporary copy"):
        ensure_synthetic_benchmark(cfg)
    assert not (tmp_path / "data").exists()  # nothing written


def test_a_plain_ray_job_is_warned_of_an_unknown_commit_and_of_outputs_it_would_lose(tmp_path: Path,
                                                                                     monkeypatch) -> None:
    from pipelines.config import load_config
    from pipelines.train.pretrain import job_warnings

    monkeypatch.chdir(tmp_path)
    cfg = load_config(ROOT / "experiments/synthetic/smoke.yaml", [f"checkpoint.storage_path={tmp_path / 'runs'}"])
    monkeypatch.setenv("CROC_GIT_SHA", "unknown")
    assert job_warnings(cfg) == []  # not in a job: nothing to say
    monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", "{}")
    warnings = job_warnings(cfg)
    assert any(w.startswith("checkpoint.storage_path=") for w in warnings)
    assert any("croc.git_sha=unknown" in w and "croc submit" in w for w in warnings)
    monkeypatch.setenv("CROC_GIT_SHA", "d" * 40)  # as `croc submit` passes it
    assert not any("git_sha" in w for w in job_warnings(cfg))


def test_the_project_excludes_keep_the_code_and_drop_the_data() -> None:
    from ray._private.thirdparty.pathspec import PathSpec  # the matcher Ray applies to a job's working_dir

    from pipelines.cli.submit import load_runtime_env

    spec = PathSpec.from_lines("gitwildmatch", load_runtime_env(ROOT)["excludes"])
    for kept in ("croc/data/shards.py", "tests/data/clustering_golden.npz", "pipelines/compare/tables.py",
                 "experiments/synthetic/smoke.yaml"):
        assert not spec.match_file(kept), kept
    for dropped in ("data/croc-synthetic-2/coco/x.jpg", "runs/r/checkpoint_000001/state.pt", ".git/HEAD",
                    "mlflow.db", ".venv/bin/python", "compare/paper/linear.csv", ".gpu-wheels/faiss.whl"):
        assert spec.match_file(dropped), dropped
