"""`croc pretrain` end to end on the shared 2-CPU local Ray: DDP workers, failures, resume, NaN, MLflow contents."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import timm
import torch
from mlflow.tracking import MlflowClient
from safetensors.torch import load_file
from typer.testing import CliRunner

from croc.export import load_timm_backbone
from pipelines.cli import app
from pipelines.config import load_config

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "experiments" / "synthetic" / "smoke.yaml"
STEPS = 6  # 48 images / batch 8, one epoch


@pytest.fixture(scope="module")
def synthetic_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("synthetic") / "bench"  # generated once by the first run, reused


def smoke_config(tmp_path: Path, synthetic_dir: Path, *overrides: str):
    """The smoke run without its evaluations (the demo test covers them)."""
    return load_config(SMOKE, [f"checkpoint.storage_path={tmp_path / 'runs'}",
                               f"tracking.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
                               f"data.synthetic.out_dir={synthetic_dir}", "evaluation.tasks=[]", *overrides])


def history_steps(client: MlflowClient, run_id: str, key: str = "train/loss") -> list[int]:
    return sorted(m.step for m in client.get_metric_history(run_id, key))


def test_demo_smoke_runs_two_workers_tracked_in_mlflow(tmp_path: Path, ray_session,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's main command in its smoke mode: synthetic data, local Ray, local MLflow store (in the cwd)."""
    monkeypatch.chdir(tmp_path)
    output = CliRunner().invoke(app, ["demo", "--smoke"])
    assert output.exit_code == 0, output.output
    assert "done: 6 steps" in output.output
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("synthetic-smoke")
    (run,) = client.search_runs([experiment.experiment_id], "tags.`croc.kind` = 'pretrain'")
    run_id = run.info.run_id
    assert run.info.status == "FINISHED"
    assert run.data.params["clustering.n_init"] == "8" and run.data.params["resources.num_workers"] == "2"
    assert run.data.tags["croc.kind"] == "pretrain" and run.data.tags["croc.method"] == "croc"
    description = run.data.tags["mlflow.note.content"]  # the MLflow UI's Description
    assert description.startswith("croc pre-training of vit_tiny/16 at 64 px on the synthetic benchmark (seed 0)")
    assert f"{STEPS} steps of batch" in description and "linear:voc, unsup:voc, davis" in description
    assert list((tmp_path / "runs").glob("synthetic-smoke-*/checkpoint_*"))
    for key in ("loss", "image_loss", "dense_loss", "lr", "weight_decay", "momentum", "teacher_entropy",
                "clusters_per_problem", "images_per_s", "skipped_records"):
        assert history_steps(client, run_id, f"train/{key}") == list(range(1, STEPS + 1)), key
    (trained_on,) = client.get_run(run_id).inputs.dataset_inputs  # the Datasets column of the MLflow UI
    assert trained_on.dataset.name.endswith("/coco") and trained_on.dataset.name.startswith("croc-synthetic-2")
    assert len(trained_on.dataset.digest) == 16 and '"num_images": 48' in trained_on.dataset.profile
    assert [(t.key, t.value) for t in trained_on.tags] == [("mlflow.data.context", "train")]
    system = {key for key in client.get_run(run_id).data.metrics if key.startswith("system/")}
    assert {"system/cpu_utilization_percentage", "system/system_memory_usage_megabytes"} <= system, system
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert {"config.yaml", "backbone.safetensors", "backbone_model"} <= artifacts and "images" not in artifacts
    _check_cluster_pictures(client, experiment.experiment_id, run, description)
    local = client.download_artifacts(run_id, "backbone.safetensors", str(tmp_path))
    backbone = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, dynamic_img_size=True)
    backbone.load_state_dict(load_file(local))  # strict: every timm key present
    assert backbone(torch.zeros(1, 3, 64, 64)).shape == (1, 192)
    loaded = load_timm_backbone(local)  # the one-line loader: the right model and its data config
    data = timm.data.resolve_data_config({}, model=loaded)
    assert data["mean"] == (0.485, 0.456, 0.406) and data["std"] == (0.229, 0.224, 0.225)
    assert data["input_size"] == (3, 64, 64)  # the smoke run's image size
    torch.testing.assert_close(loaded(torch.ones(1, 3, 64, 64)), backbone.eval()(torch.ones(1, 3, 64, 64)))
    _check_demo_evaluations(client, experiment.experiment_id, run_id, output.output)


def _check_cluster_pictures(client: MlflowClient, experiment_id: str, run, description: str) -> None:
    """The cluster pictures sit in a child run whose few params are what MLflow's picture card lists under it."""
    name = f"clusters of {run.info.run_name}"
    (pictures_run,) = client.search_runs([experiment_id], "tags.`croc.kind` = 'pictures'")
    assert pictures_run.info.run_name == name and f"Cluster pictures: child run '{name}'." in description
    assert pictures_run.data.tags["mlflow.parentRunId"] == run.info.run_id
    assert pictures_run.info.status == "FINISHED"
    assert pictures_run.data.params == {"method.tokens": "values", "clustering.n_init": "8",
                                        "clustering.n_centroids_max": "4", "clustering.lambda_pos": "4.0",
                                        "tracking.cluster_pictures_every_steps": "3"}
    caption = ", ".join(f"{k}={v}" for k, v in pictures_run.data.params.items())  # what the UI prints under it
    assert len(caption) < 200 and len(run.data.params) > 100
    names = sorted(a.path.rsplit("/", 1)[-1] for a in client.list_artifacts(pictures_run.info.run_id, "images"))
    assert [n.split("+")[2] for n in names if n.endswith(".png") and "compressed" not in n] == ["3", "6"]


def _check_demo_evaluations(client: MlflowClient, experiment_id: str, pretrain_id: str, printed: str) -> None:
    """Three evaluations nested under the pre-training run, the same three of a random init at the top level."""
    evals = client.search_runs([experiment_id], "tags.`croc.kind` = 'eval'")
    nested = [r for r in evals if r.data.tags.get("mlflow.parentRunId") == pretrain_id]
    baseline = [r for r in evals if "mlflow.parentRunId" not in r.data.tags]
    assert len(nested) == 3 and len(baseline) == 3, [r.info.run_name for r in evals]
    headline = {"linear": "miou_best", "unsup": "miou_mean", "davis": "jf_mean"}
    for runs, method in ((nested, "croc"), (baseline, "external")):
        assert {r.data.tags["croc.task"] for r in runs} == set(headline)
        for r in runs:
            assert r.info.status == "FINISHED", (r.info.run_name, r.data.tags.get("croc.error"))
            assert r.data.tags["croc.method"] == method
            assert r.data.tags["mlflow.note.content"].startswith(f"{r.data.tags['croc.task']}")
            assert r.data.tags["croc.eval_synthetic"] == "true"  # the demo's datasets are the synthetic stand-ins
            assert 0.0 <= r.data.metrics[headline[r.data.tags["croc.task"]]] <= 1.0
            artifacts = {a.path for a in client.list_artifacts(r.info.run_id)}
            table = "per_object.csv" if r.data.tags["croc.task"] == "davis" else "per_class_iou.csv"
            assert table in artifacts and ({"predictions.png", "propagation.png"} & artifacts), artifacts
    assert all(r.data.tags["croc.checkpoint"].startswith("random:") for r in baseline)
    # each headline also on the pre-training run, at the checkpoint's step, one name pattern for every task
    by_task = {r.data.tags["croc.task"]: r.data.metrics[headline[r.data.tags["croc.task"]]] for r in nested}
    for key, task in (("eval/linear_voc/miou", "linear"), ("eval/unsup_voc/miou", "unsup"), ("eval/davis/jf", "davis")):
        (point,) = client.get_metric_history(pretrain_id, key)
        assert point.step == STEPS and point.value == pytest.approx(by_task[task])
    assert "evaluation results" in printed and "random init" in printed and "final" in printed


@pytest.mark.slow
def test_a_killed_worker_is_replaced_and_a_failed_run_resumes_when_resubmitted(tmp_path: Path, synthetic_dir: Path,
                                                                               ray_session) -> None:
    """Two failures in one run of two DDP workers (resources.max_failures=1): worker 1 killed at step 3 is replaced
    and training goes on from the step-2 checkpoint; worker 0 killed at step 5 is one failure too many, so the run
    fails and keeps its checkpoints. Re-running it under the same name resumes it from step 4. Each step is logged
    once, each cluster picture once, in the same MLflow runs."""
    from ray.train import TrainingFailedError

    from pipelines.train.pretrain import run_pretrain

    cfg = smoke_config(tmp_path, synthetic_dir, "resources.max_failures=1")
    replaced, fatal = tmp_path / "replaced", tmp_path / "fatal"
    faults = [{"rank": 1, "step": 3, "kind": "exit", "marker": str(replaced)},
              {"rank": 0, "step": 5, "kind": "exit", "marker": str(fatal)}]
    with pytest.raises(TrainingFailedError):
        run_pretrain(cfg, run_name="resume-me", fault=faults)
    assert replaced.exists() and fatal.exists(), "a fault was not injected"
    checkpoints = sorted((tmp_path / "runs" / "resume-me").glob("checkpoint_*"))
    assert checkpoints, "the failed run kept its checkpoints"
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(cfg.tracking.experiment).experiment_id
    (failed,) = client.search_runs([experiment], "tags.`croc.kind` = 'pretrain'")
    # metrics are written at checkpoints: step 5's died with its worker, and the resumed run logs it
    assert failed.info.status == "FAILED" and history_steps(client, failed.info.run_id) == [1, 2, 3, 4]
    (pictures,) = client.search_runs([experiment], "tags.`croc.kind` = 'pictures'")
    assert pictures.info.status == "FAILED" and pictures.info.run_name == "clusters of resume-me"

    result = run_pretrain(cfg, run_name="resume-me")  # the same name: Ray Train restores the latest checkpoint
    assert result.run_id == failed.info.run_id and client.get_run(result.run_id).info.status == "FINISHED"
    assert history_steps(client, result.run_id) == list(range(1, STEPS + 1))  # each step exactly once
    (again,) = client.search_runs([experiment], "tags.`croc.kind` = 'pictures'")  # the same child run, re-opened
    assert again.info.run_id == pictures.info.run_id and again.info.status == "FINISHED"
    names = [a.path for a in client.list_artifacts(again.info.run_id, "images") if a.path.endswith(".png")]
    assert sorted(int(n.split("+")[2]) for n in names if "compressed" not in n) == [3, 6]  # each step once


@pytest.mark.slow
def test_nan_loss_stops_the_run_naming_the_step(tmp_path: Path, synthetic_dir: Path, ray_session) -> None:
    from ray.train import TrainingFailedError

    from pipelines.train.pretrain import run_pretrain

    cfg = smoke_config(tmp_path, synthetic_dir, "method.method=dino")  # DINO under DDP, too
    with pytest.raises(TrainingFailedError, match="non-finite loss nan at step 3"):
        run_pretrain(cfg, run_name="nan", fault={"rank": 0, "step": 3, "kind": "nan", "marker": ""})
    assert list((tmp_path / "runs" / "nan").glob("checkpoint_*")), "the last good checkpoint is kept"
    runs = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").search_runs(
        [MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").get_experiment_by_name(cfg.tracking.experiment)
         .experiment_id])
    assert runs[0].info.status == "FAILED" and runs[0].data.tags["croc.method"] == "dino"
    assert [r.data.tags["croc.kind"] for r in runs] == ["pretrain"]  # DINO draws no clusters: no pictures run


def test_bad_config_fails_before_ray(tmp_path: Path) -> None:
    for override, words in (("optim.lr=fast", ("optim.lr", "fast")), ("clustering.K=3", ("clustering.K", "n_init"))):
        result = CliRunner().invoke(app, ["pretrain", "--config", str(SMOKE), override])
        assert result.exit_code == 2 and all(w in result.output for w in words), result.output
    missing = CliRunner().invoke(app, ["pretrain", "--config", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 2 and "nope.yaml" in missing.output


def test_impossible_resources_are_an_error(tmp_path: Path, synthetic_dir: Path, ray_session) -> None:
    from croc.errors import InputError
    from pipelines.cluster import check_cluster_fits

    cfg = smoke_config(tmp_path, synthetic_dir, "resources.use_gpu=true")
    with pytest.raises(InputError, match="needs 2 GPUs"):
        check_cluster_fits(cfg, 0.5)
    with pytest.raises(InputError, match="leaves less than the 1 CPU a Ray Data decode task needs"):
        check_cluster_fits(smoke_config(tmp_path, synthetic_dir), 1.0)
    # One worker holding 1.5 of 2 CPUs left half a CPU: no decode task could start, and the run hung.
    with pytest.raises(InputError, match="decode task"):
        check_cluster_fits(smoke_config(tmp_path, synthetic_dir, "resources.num_workers=1"), 1.5)
    check_cluster_fits(smoke_config(tmp_path, synthetic_dir, "resources.num_workers=1"), 1.0)


@pytest.mark.slow
def test_bench_train_compares_ray_train_with_a_plain_loop(tmp_path: Path, synthetic_dir: Path, ray_session,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["bench", "train", "--config", str(SMOKE), "--steps", "1", "--warmup", "1",
                                      f"data.synthetic.out_dir={synthetic_dir}"])
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if x.startswith('{"bench": "train"'))
    assert '"plain_images_per_s"' in line and '"overhead_pct"' in line


@pytest.mark.slow
def test_shards_with_no_decodable_record_stop_with_the_workers_own_message(tmp_path: Path, ray_session) -> None:
    """Every record corrupt: the user's last line is the worker's one-line reason, with exit status 2, not Ray's
    wrapped traceback. (Any number short of all is skipped and counted: tests/pipelines/test_data_pipeline.py.)"""
    from tests.pipelines.test_data_pipeline import make_shards

    shard_dir = make_shards(tmp_path / "data", 16, per_shard=8, corrupt=tuple(range(16)))
    result = CliRunner().invoke(app, [
        "pretrain", "--config", str(SMOKE), "--run-name", "all-corrupt", "data.source=shards",
        f"data.shard_dir={shard_dir}", "data.image_size=32", "optim.batch_size=8", "resources.num_workers=1",
        "resources.max_failures=0", f"checkpoint.storage_path={tmp_path / 'runs'}",
        f"tracking.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}", "evaluation.tasks=[]"])
    assert result.exit_code == 2, result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("error: none of the") and "could be decoded" in last, result.output


def test_the_local_ray_instance_keeps_token_authentication_on_and_its_logs_in_files(monkeypatch) -> None:
    """Ray binds a local instance's GCS and raylet to every interface: the token must stay on (issue: a laptop on a
    shared network was open). connect_ray must neither disable it nor ask Ray to."""
    import ray

    from pipelines import cluster

    calls = []
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kwargs: calls.append((kwargs, dict(cluster.os.environ))))
    monkeypatch.delenv("CROC_VERBOSE", raising=False)
    cluster.connect_ray()
    (kwargs, env), = calls
    assert kwargs["address"] == "local" and "RAY_AUTH_MODE" not in env
    # (not RAY_AUTH_MODE=token either: set after Ray's import, the driver keeps Ray's import-time mode while the GCS
    # it starts reads the variable, and the driver is refused by its own GCS)
    assert "RAY_AUTH_MODE" not in str(kwargs.get("runtime_env", ""))
    assert kwargs["log_to_driver"] is False  # Ray's internal lines stay in its log files...
    auth = logging.getLogger(cluster.AUTH_LOGGER)  # ...and so does its notice that the token is on (by design),
    notice = auth.makeRecord(auth.name, logging.WARNING, "f", 1, "Token authentication is enabled for this Ray "
                             "cluster. Set RAY_AUTH_MODE=disabled to opt out.", None, None)
    alarm = auth.makeRecord(auth.name, logging.WARNING, "f", 1, "Token authentication is disabled for this Ray "
                            "cluster. Anyone with network access ...", None, None)
    assert not auth.filter(notice) and auth.filter(alarm)  # while a warning that it is off still shows
    monkeypatch.setenv("CROC_VERBOSE", "1")
    cluster.connect_ray()
    assert calls[-1][0]["log_to_driver"] is True  # ...unless `croc --verbose`
