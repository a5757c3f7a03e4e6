"""`croc submit`: send a croc command to a Ray cluster as a job, with its provenance.

`ray job submit --working-dir .` uploads the code without `.git/`, so the job cannot tell which commit it runs.
This wrapper on Ray's JobSubmissionClient reads the commit and whether the tree is dirty here, before uploading,
and hands them to the job as environment variables (CROC_GIT_SHA, CROC_GIT_DIRTY, CROC_SUBMISSION_ID) that the
runs record as tags. It uploads the working directory with the project's excludes (platform/runtime_env.yaml),
checks the command's config before anything travels, names the job (a submission id made of the command and the
time) and sets the job's metadata (command, run name, config hash, commit).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from croc.errors import InputError

RUNTIME_ENV = Path("platform") / "runtime_env.yaml"
DEFAULT_ADDRESS = "http://127.0.0.1:8265"
FINAL_STATUSES = ("SUCCEEDED", "FAILED", "STOPPED")


@dataclass(frozen=True)
class GitState:
    sha: str  # "unknown" outside a git checkout
    dirty: bool  # tracked files differ from the commit (untracked files do not count)


def git_state(folder: Path) -> GitState:
    """The commit checked out in `folder`, and whether its tracked files have changes."""
    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True, timeout=10)

    try:
        head = git("rev-parse", "HEAD")
        if head.returncode != 0:
            return GitState("unknown", False)
        changes = git("status", "--porcelain", "--untracked-files=no")
        return GitState(head.stdout.strip(), bool(changes.stdout.strip()))
    except (OSError, subprocess.SubprocessError):
        return GitState("unknown", False)


@dataclass(frozen=True)
class JobPlan:
    entrypoint: str
    submission_id: str
    runtime_env: dict[str, Any]
    metadata: dict[str, str] = field(default_factory=dict)


def _option(command: Sequence[str], name: str) -> str | None:
    """The value of `--name value` or `--name=value` in a command line."""
    for i, token in enumerate(command):
        if token == name and i + 1 < len(command):
            return command[i + 1]
        if token.startswith(name + "="):
            return token.split("=", 1)[1]
    return None


def _overrides(command: Sequence[str]) -> list[str]:
    """The `key=value` overrides of a croc command (tokens that are neither options nor option values)."""
    out, skip = [], False
    for token in command[1:]:
        if skip:
            skip = False
            continue
        if token.startswith("--"):
            skip = "=" not in token and token not in ("--resume", "--accept-config-change", "--dry-run")
            continue
        if "=" in token:
            out.append(token)
    return out


def describe_command(command: Sequence[str], folder: Path) -> dict[str, str]:
    """Run name and config hash of a pretrain/evaluate/sweep command, checked here before anything travels."""
    info: dict[str, str] = {"croc.command": shlex.join(["croc", *command])}
    config = _option(command, "--config")
    if command and command[0] == "sweep" and len(command) > 1:
        config = command[1]
    if config is None:
        return info
    path = Path(config) if Path(config).is_absolute() else folder / config
    if not path.exists():
        raise InputError(f"the command's config {config} is not in {folder} (the folder that would be uploaded)")
    if command[0] == "sweep":
        from pipelines.sweep.sweep_file import load_sweep

        sweep = load_sweep(path)
        info["run_name"] = sweep.name
        return info
    from pipelines.config import config_hash, load_config

    cfg = load_config(path, _overrides(command))
    info["croc.config_hash"] = config_hash(cfg)
    info["run_name"] = _option(command, "--run-name") or cfg.name
    return info


def submission_id(command: Sequence[str], run_name: str | None, now: float | None = None) -> str:
    """A readable, unique job id: croc-<subcommand>-<run name>-<date>-<time> (letters, digits, '-', '_')."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    parts = ["croc", command[0] if command else "job", *([run_name] if run_name else []), stamp]
    return re.sub(r"[^A-Za-z0-9_-]+", "-", "-".join(parts))


def load_runtime_env(folder: Path) -> dict[str, Any]:
    """platform/runtime_env.yaml of the uploaded folder (its excludes and variables), the working dir pinned."""
    path = folder / RUNTIME_ENV
    env = yaml.safe_load(path.read_text()) if path.exists() else {}
    env = dict(env or {})
    env["working_dir"] = str(folder)
    return env


def plan_job(command: Sequence[str], folder: Path, git: GitState, now: float | None = None) -> JobPlan:
    """What `croc submit` sends: the entrypoint, a submission id, the runtime env with provenance, the metadata."""
    if not command:
        raise InputError("nothing to submit: give a croc command after --, e.g. "
                         "croc submit -- pretrain --config experiments/synthetic/smoke.yaml")
    if command[0] == "submit":
        raise InputError("croc submit cannot submit itself")
    info = describe_command(command, folder)
    job_id = submission_id(command, info.get("run_name"), now)
    runtime_env = load_runtime_env(folder)
    runtime_env["env_vars"] = {**runtime_env.get("env_vars", {}), "CROC_GIT_SHA": git.sha,
                               "CROC_GIT_DIRTY": "1" if git.dirty else "0", "CROC_SUBMISSION_ID": job_id}
    for name in ("RAY_AUTH_MODE",):  # the submitting side's Ray auth mode applies to the job's own Ray calls
        if os.environ.get(name):
            runtime_env["env_vars"][name] = os.environ[name]
    metadata = {**info, "croc.git_sha": git.sha, "croc.git_dirty": str(git.dirty).lower()}
    return JobPlan(shlex.join(["croc", *command]), job_id, runtime_env, metadata)


def submit(command: Sequence[str], address: str | None = None, folder: Path | None = None, wait: bool = True,
           echo: Callable[[str], None] = print) -> tuple[str, str]:
    """Submit `croc <command>` to the cluster at `address`; with `wait`, stream its logs until it ends.

    Returns (submission id, last status known).
    """
    from ray.job_submission import JobSubmissionClient

    folder = (folder or Path.cwd()).resolve()
    git = git_state(folder)
    plan = plan_job(command, folder, git)
    if git.sha == "unknown":
        echo(f"warning: {folder} is not a git checkout: the runs will record croc.git_sha=unknown")
    elif git.dirty:
        echo(f"warning: uncommitted changes in {folder}: the runs record commit {git.sha[:12]} with "
             "croc.git_dirty=true")
    address = address or os.environ.get("RAY_ADDRESS") or DEFAULT_ADDRESS
    client = JobSubmissionClient(address)
    job_id = client.submit_job(entrypoint=plan.entrypoint, submission_id=plan.submission_id,
                               runtime_env=plan.runtime_env, metadata=plan.metadata)
    echo(f"submitted {job_id} to {address} (commit {git.sha[:12]}{', dirty' if git.dirty else ''})")
    if not wait:
        echo(f"follow it with: ray job logs --address {address} --follow {job_id}")
        return job_id, str(client.get_job_status(job_id))
    status = follow(client, job_id, echo)
    echo(f"job {job_id} {status.lower()}")
    return job_id, status


def follow(client: Any, job_id: str, echo: Callable[[str], None], poll_s: float = 1.0) -> str:
    """Print the job's new log lines until it reaches a final status; return that status's name."""
    printed = 0
    while True:
        status = str(getattr(client.get_job_status(job_id), "value", client.get_job_status(job_id)))
        logs = client.get_job_logs(job_id)
        if len(logs) > printed:
            echo(logs[printed:].rstrip("\n"))
            printed = len(logs)
        if status in FINAL_STATUSES:
            return status
        time.sleep(poll_s)
