"""`croc evaluate` on the shared local Ray: tasks, MLflow runs and tags, a failing task isolated, run checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from croc.backbone import create_backbone
from croc.errors import InputError
from croc.export import export_backbone
from pipelines.cli import app
from pipelines.evaluate.outputs import label_folder
from pipelines.evaluate.resolve import resolve_checkpoint

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "experiments" / "synthetic" / "smoke.yaml"


@pytest.mark.slow
def test_evaluate_runs_tasks_in_parallel_and_one_failure_spares_the_others(tmp_path: Path, ray_session) -> None:
    empty_davis = tmp_path / "not-davis"
    empty_davis.mkdir()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = CliRunner().invoke(app, [
        "evaluate", "--checkpoint", "random:vit_tiny", "--config", str(SMOKE), "--tasks", "linear:voc,unsup:voc,davis",
        f"tracking.tracking_uri={uri}", f"checkpoint.storage_path={tmp_path / 'runs'}",
        f"data.synthetic.out_dir={tmp_path / 'bench'}", f"evaluation.datasets.davis={empty_davis}"])
    assert result.exit_code == 1, result.output  # a failed evaluation is reported, not hidden
    assert "evaluation results" in result.output and "failed" in result.output
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("synthetic-smoke").experiment_id])
    by_task = {r.data.tags["croc.task"]: r for r in runs}
    assert set(by_task) == {"linear", "unsup", "davis"} and len(runs) == 3
    davis = by_task.pop("davis")
    assert davis.info.status == "FAILED"
    assert "not-davis" in davis.data.tags["croc.error"]  # the error names the folder
    assert "error.txt" in {a.path for a in client.list_artifacts(davis.info.run_id)}
    for task, run in by_task.items():
        tags = run.data.tags
        assert run.info.status == "FINISHED", tags.get("croc.error")
        assert tags["croc.kind"] == "eval" and tags["croc.method"] == "external" and tags["croc.eval_dataset"] == "voc"
        assert tags["croc.checkpoint"] == "random:vit_tiny" and "mlflow.parentRunId" not in tags  # top level
        assert run.data.params["task"] == f"{task}:voc"
    linear, unsup = by_task["linear"], by_task["unsup"]
    assert {m.step for m in client.get_metric_history(linear.info.run_id, "val_miou")} == {1, 2}  # per epoch
    assert linear.data.metrics["miou_best"] >= linear.data.metrics["miou_last"]
    assert {"miou_seed_0", "miou_seed_1", "miou_std"} <= set(unsup.data.metrics)
    csv = client.download_artifacts(unsup.info.run_id, "per_class_iou.csv", str(tmp_path))
    assert Path(csv).read_text().splitlines()[0] == "class,iou_mean"


def test_an_mlflow_run_resolves_to_its_backbone_and_becomes_the_parent(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    run = client.create_run(client.create_experiment("e", artifact_location=(tmp_path / "art").as_uri()))
    with pytest.raises(InputError, match=r"no backbone\.safetensors"):
        resolve_checkpoint(f"runs:/{run.info.run_id}", uri)
    export_backbone(create_backbone("vit_tiny", 16, 0.0), tmp_path / "backbone.safetensors", "vit_tiny", 16)
    client.log_artifact(run.info.run_id, str(tmp_path / "backbone.safetensors"))
    for spec in (f"runs:/{run.info.run_id}", run.info.run_id):
        local, parent = resolve_checkpoint(spec, uri)
        assert parent == run.info.run_id and Path(local).name == "backbone.safetensors"
    with pytest.raises(InputError, match="no MLflow run"):
        resolve_checkpoint("0" * 32, uri)
    assert resolve_checkpoint("random:vit_tiny", uri) == ("random:vit_tiny", None)


def test_evaluate_without_tasks_or_with_a_bad_task_exits_2(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = CliRunner().invoke(app, ["evaluate", "--checkpoint", "random:vit_tiny", "--tasks", "linear:kitti",
                                      f"tracking.tracking_uri={uri}"])
    assert result.exit_code == 2 and "linear:kitti" in result.output


@pytest.mark.slow
def test_all_checkpoints_are_evaluated_while_training_goes_on(tmp_path: Path, ray_session) -> None:
    from pipelines.config import load_config
    from pipelines.train.pretrain import run_pretrain

    cfg = load_config(SMOKE, [f"checkpoint.storage_path={tmp_path / 'runs'}",
                              f"tracking.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
                              f"data.synthetic.out_dir={tmp_path / 'bench'}", "evaluation.tasks=[unsup:voc]",
                              "evaluation.after=all_checkpoints", "checkpoint.every_steps=3"])
    result = run_pretrain(cfg)
    labels = sorted(s.label for s in result.evaluations)
    assert labels == ["final", "step 3"], labels  # step 6 is the final one
    assert all(s.error is None for s in result.evaluations), [s.error for s in result.evaluations]
    client = MlflowClient(result.tracking_uri)
    for summary in result.evaluations:
        run = client.get_run(summary.run_id)
        assert run.data.tags["mlflow.parentRunId"] == result.run_id
        assert run.data.tags["croc.checkpoint_label"] == summary.label
    # the intermediate backbone stays outside Ray Train's checkpoint rotation
    assert (Path(cfg.checkpoint.storage_path) / result.run_name / "evaluations" / "step_3" /
                         "backbone.safetensors").exists()


@pytest.mark.parametrize(("label", "folder"), [
    ("..", "checkpoint"), (".", "checkpoint"), ("../../escaped", "escaped"), ("/abs/path", "abs-path"),
    ("random:vit_tiny:16:0", "random-vit_tiny-16-0"), ("run-1.final", "run-1.final"), ("", "checkpoint"),
])
def test_an_evaluation_label_names_a_folder_inside_the_output_folder(label: str, folder: str) -> None:
    assert label_folder(label) == folder
    assert (Path("/out") / label_folder(label)).resolve().parent == Path("/out")


@pytest.mark.parametrize(("checkpoint", "extra", "words"), [
    ("/nowhere/backbone.safetensors", [], ["/nowhere/backbone.safetensors", "not found"]),
    ("random:vit_huge", [], ["random:vit_huge", "vit_tiny"]),
    ("stats:bogus", [], ["stats:bogus", "texture"]),
    ("random:vit_tiny", ["evaluation.datasets.synthetic=false", "evaluation.datasets.voc=/nowhere/voc"],
     ["evaluation.datasets.voc", "/nowhere/voc", "not a folder"]),
    ("random:vit_tiny", ["evaluation.datasets.synthetic=false"], ["evaluation.datasets.voc", "linear:voc"]),
])
def test_evaluate_refuses_a_bad_checkpoint_or_dataset_root_before_ray_starts(tmp_path: Path, monkeypatch, checkpoint,
                                                                           extra, words) -> None:
    import ray

    import pipelines.cluster

    def forbidden(*args, **kwargs):
        raise AssertionError("Ray was started before the inputs were checked")

    monkeypatch.setattr(ray, "init", forbidden)
    monkeypatch.setattr(pipelines.cluster, "connect_ray", forbidden)
    result = CliRunner().invoke(app, ["evaluate", "--checkpoint", checkpoint, "--tasks", "linear:voc", "--config",
                                      str(SMOKE), f"tracking.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
                                      f"data.synthetic.out_dir={tmp_path / 'bench'}", *extra])
    assert result.exit_code == 2, result.output
    assert all(word in result.output for word in words), result.output
