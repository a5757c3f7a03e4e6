"""`croc sweep --resume` rebuilds the sweep from the sweep file and MLflow: nothing in checkpoint storage is
unpickled, so a planted tuner.pkl / experiment state runs no code. Fast: Ray is never started here."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from croc.errors import InputError
from pipelines.cli import app
from pipelines.sweep.sweep_file import load_sweep, plan_trials
from pipelines.tracking import start_run

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "experiments" / "synthetic" / "smoke.yaml"
NAME = "resume-sweep"


class Payload:
    """Unpickling this runs a shell command that creates `marker`."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _sweep_file(tmp_path: Path, grid: str = "[4, 6]") -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(f"""
name: {NAME}
base: {SMOKE}
overrides:
  evaluation.tasks: [davis]
  data.synthetic.out_dir: {tmp_path / 'bench'}
  checkpoint.storage_path: {tmp_path / 'runs'}
  tracking.tracking_uri: sqlite:///{tmp_path / 'mlflow.db'}
search_space:
  clustering.n_init: {{grid: {grid}}}
""")
    return path


def _plant(tmp_path: Path) -> Path:
    """The attack: a malicious tuner.pkl and experiment state where Tune keeps the sweep -> the marker file."""
    marker = tmp_path / "PWNED"
    folder = tmp_path / "runs" / NAME
    folder.mkdir(parents=True)
    payload = pickle.dumps(Payload(marker))
    (folder / "tuner.pkl").write_bytes(payload)
    (folder / "experiment_state-2099-01-01_00-00-00.json").write_bytes(payload)
    return marker


def _record(tmp_path: Path, sweep_file: Path, done: dict[str, float | None]) -> MlflowClient:
    """MLflow as an earlier attempt left it: the sweep run, and trial runs (done ones tagged with their metrics)."""
    from pipelines.sweep.records import OVERRIDES_TAG, _json, record_trial

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    sweep_id = start_run(client, NAME, NAME, {"croc.kind": "sweep", "croc.sweep": NAME}, {})
    plan = {t.key: t for t in plan_trials(load_sweep(sweep_file)[0])}
    for key, jf in done.items():
        run_id = start_run(client, NAME, f"{NAME}-{key}",
                           {"croc.kind": "pretrain", "croc.sweep": NAME, "croc.trial": key,
                            OVERRIDES_TAG: _json(plan[key].overrides)}, {}, parent_run_id=sweep_id)
        if jf is not None:
            record_trial(client, run_id, "done", {"davis/jf_mean": jf, "done": 1, "pretrain_run_id": run_id})
    return client


@pytest.fixture
def no_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    import ray

    import pipelines.cluster

    def forbidden(*args, **kwargs):
        raise AssertionError("Ray started")

    monkeypatch.setattr(ray, "init", forbidden)
    monkeypatch.setattr(pipelines.cluster, "connect_ray", forbidden)


def test_the_plan_is_the_same_on_every_call_and_keys_name_the_trials(tmp_path: Path) -> None:
    body = (f"name: plan\nbase: {SMOKE}\nnum_samples: 2\nsearch_space:\n  clustering.n_init: {{grid: [4, 6]}}\n"
            "  optim.lr: {loguniform: [1.0e-3, 1.0e-2]}\n  method.tokens: {choice: [keys, values]}\n")
    (tmp_path / "s.yaml").write_text(body)
    sweep, _ = load_sweep(tmp_path / "s.yaml")
    first, again = plan_trials(sweep), plan_trials(sweep)
    assert first == again
    assert [t.key for t in first] == ["t000", "t001", "t002", "t003"]
    assert [t.overrides["clustering.n_init"] for t in first] == [4, 6, 4, 6]
    assert all(1e-3 <= t.overrides["optim.lr"] < 1e-2 and t.overrides["method.tokens"] in ("keys", "values")
               for t in first)
    assert len({t.overrides["optim.lr"] for t in first}) == 4  # each trial draws its own sample


def test_resume_without_a_recorded_sweep_is_refused_and_runs_no_planted_code(tmp_path: Path, no_ray,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    sweep_file = _sweep_file(tmp_path)
    marker = _plant(tmp_path)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["sweep", str(sweep_file), "--resume"])
    assert result.exit_code == 2, result.output
    line = result.output.strip().splitlines()[-1]  # before it, only MLflow's own log lines (a new store)
    assert line.startswith(f"error: no sweep named {NAME} to resume") and "never from" in line
    assert not marker.exists()


def test_resume_keeps_recorded_trials_and_never_loads_tune_state(tmp_path: Path, no_ray,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    sweep_file = _sweep_file(tmp_path)
    marker = _plant(tmp_path)
    _record(tmp_path, sweep_file, {"t000": 0.25, "t001": 0.5})
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["sweep", str(sweep_file), "--resume"])
    assert result.exit_code == 0, result.output
    assert "2 recorded trial(s) kept, 0 to run" in result.output and "done (recorded)" in result.output
    assert "25.0" in result.output and "50.0" in result.output
    assert not marker.exists()
    pickle.loads((tmp_path / "runs" / NAME / "tuner.pkl").read_bytes())  # the payload is live: loading it would
    assert marker.exists()                                                 # have run the command


def test_resume_runs_again_only_the_unfinished_trials_under_their_own_names(tmp_path: Path, no_ray,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import pipelines.sweep.run
    from pipelines.sweep.run import run_sweep
    from pipelines.sweep.trial import TrialOutcome

    sweep_file = _sweep_file(tmp_path, "[4, 6, 8]")
    marker = _plant(tmp_path)
    _record(tmp_path, sweep_file, {"t000": 0.25, "t001": None})  # t001 started (its checkpoints resume it), t002 not
    seen: list[str] = []

    def run_trials(sweep, base, sweep_run_id, todo):
        seen.extend(t.key for t in todo)
        return {t.key: TrialOutcome(t.key, t.overrides, "done", {"davis/jf_mean": 0.75, "done": 1}) for t in todo}

    monkeypatch.setattr(pipelines.sweep.run, "_run_trials", run_trials)
    outcomes = run_sweep(sweep_file, resume=True)
    assert seen == ["t001", "t002"]
    assert [(o.key, o.recorded, o.metrics["davis/jf_mean"]) for o in outcomes] == [
        ("t000", True, 0.25), ("t001", False, 0.75), ("t002", False, 0.75)]
    assert not marker.exists()


def test_a_sweep_file_changed_since_the_start_is_refused(tmp_path: Path, no_ray) -> None:
    from pipelines.sweep.run import run_sweep

    _record(tmp_path, _sweep_file(tmp_path), {"t000": 0.25})
    with pytest.raises(InputError, match=r"trial t000 ran with .* the file changed"):
        run_sweep(_sweep_file(tmp_path, "[5, 6]"), resume=True)


def test_starting_a_recorded_sweep_again_without_resume_is_refused(tmp_path: Path, no_ray) -> None:
    sweep_file = _sweep_file(tmp_path)
    _record(tmp_path, sweep_file, {})
    result = CliRunner().invoke(app, ["sweep", str(sweep_file)])
    assert result.exit_code == 2 and f"a sweep named {NAME} already exists" in result.output


def test_ctrl_c_exits_non_zero_and_marks_what_it_left_killed(tmp_path: Path, no_ray,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C during the trials (Tune's own handler is off, so it arrives as KeyboardInterrupt): exit status 130, the
    sweep run and the trial's pre-training run end KILLED, and the message says how to continue."""
    import pipelines.sweep.run

    sweep_file = _sweep_file(tmp_path)
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")

    def interrupted_trials(sweep, base, sweep_run_id, todo):
        start_run(client, NAME, f"{NAME}-t000", {"croc.kind": "pretrain", "croc.trial": "t000"}, {},
                  parent_run_id=sweep_run_id)
        raise KeyboardInterrupt

    monkeypatch.setattr(pipelines.sweep.run, "_run_trials", interrupted_trials)
    result = CliRunner().invoke(app, ["sweep", str(sweep_file)])
    assert result.exit_code == 130, result.output
    assert "--resume" in result.output.strip().splitlines()[-1]
    runs = client.search_runs([client.get_experiment_by_name(NAME).experiment_id])
    assert sorted((r.info.run_name, r.info.status) for r in runs) == [(NAME, "KILLED"), (f"{NAME}-t000", "KILLED")]
