"""`--run-name` follows the config's `name` rule and is refused, one line and exit 2, before Ray or MLflow start."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from croc.errors import InputError
from pipelines.cli import app
from pipelines.config import load_config
from pipelines.config.base import NAME_RULE

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "experiments" / "synthetic" / "smoke.yaml"
BAD_NAMES = ["../../escaped-run", "/abs/path", "a'b", "x;rm -rf y", "", "..", ".", "ok\n", "a b", "$(touch x)"]


@pytest.fixture
def nothing_starts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Ray, MLflow and the pre-training itself fail the test if reached."""
    import mlflow.tracking
    import ray

    import pipelines.cluster
    import pipelines.train.pretrain

    reached: list[str] = []

    def forbid(what: str):
        def call(*args, **kwargs):
            reached.append(what)
            raise AssertionError(f"{what} reached with a bad run name")
        return call

    monkeypatch.setattr(ray, "init", forbid("ray.init"))
    monkeypatch.setattr(pipelines.cluster, "connect_ray", forbid("connect_ray"))
    monkeypatch.setattr(pipelines.train.pretrain, "training_shards", forbid("training_shards"))
    monkeypatch.setattr(mlflow.tracking, "MlflowClient", forbid("MlflowClient"))
    monkeypatch.setattr(pipelines.train.pretrain, "MlflowClient", forbid("MlflowClient"))
    return reached


def _overrides(tmp_path: Path) -> list[str]:
    return [f"checkpoint.storage_path={tmp_path / 'runs'}", f"tracking.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
            f"data.synthetic.out_dir={tmp_path / 'bench'}"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_pretrain_refuses_a_bad_run_name_before_anything_starts(name: str, tmp_path: Path, nothing_starts,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["pretrain", "--config", str(SMOKE), "--run-name", name, *_overrides(tmp_path)])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0] == f"error: --run-name {name!r}: {NAME_RULE}"
    assert not nothing_starts
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no run folder, no store, no escaped folder
    assert not (tmp_path.parent / "escaped-run").exists()


def test_pretrain_passes_a_valid_run_name_through(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pipelines.train.pretrain

    seen: dict = {}
    monkeypatch.setattr(pipelines.train.pretrain, "run_pretrain",
                        lambda cfg, run_name=None, **_: seen.update(cfg=cfg, run_name=run_name))
    result = CliRunner().invoke(app, ["pretrain", "--config", str(SMOKE), "--run-name", "smoke-2026.v1_a",
                                      *_overrides(tmp_path)])
    assert result.exit_code == 0, result.output
    assert seen["run_name"] == "smoke-2026.v1_a" and seen["cfg"].checkpoint.storage_path == str(tmp_path / "runs")


@pytest.mark.parametrize("name", ["../../escaped-run", "/abs/path", "a'b", ""])
def test_run_pretrain_refuses_a_bad_run_name_too(name: str, tmp_path: Path, nothing_starts) -> None:
    from pipelines.train.pretrain import run_pretrain

    cfg = load_config(SMOKE, _overrides(tmp_path))
    with pytest.raises(InputError, match=r"^run name .*: must be letters"):
        run_pretrain(cfg, run_name=name)
    assert not nothing_starts


@pytest.mark.parametrize("name", ["..", "a/b", "ok\n"])
def test_the_config_name_follows_the_same_rule(name: str) -> None:
    with pytest.raises(InputError, match="name: must be letters"):
        load_config(SMOKE, {"name": name})
