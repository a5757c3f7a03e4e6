"""The typed config: shipped YAMLs, overrides, every error path, the method's dataclasses, dump/hash/params."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from croc.clustering import ClusteringConfig
from croc.config import MethodConfig, ModelConfig, OptimConfig, TrainConfig
from croc.errors import InputError
from pipelines.config import (
    ConfigError,
    PretrainConfig,
    apply_overrides,
    config_hash,
    dump_config,
    flat_params,
    load_config,
)

ROOT = Path(__file__).resolve().parents[2]
PAPER = ROOT / "experiments" / "paper"
SYNTHETIC = ROOT / "experiments" / "synthetic"
SHIPPED = sorted(PAPER.glob("*.yaml")) + sorted(SYNTHETIC.glob("*.yaml"))
COCO_TASKS = ["linear:voc", "linear:coco_things", "linear:coco_stuff", "unsup:voc", "unsup:coco_things",
              "unsup:coco_stuff", "davis"]


def base(*overrides: str) -> PretrainConfig:
    return load_config(None, ["name=t", *overrides])


def error_of(*overrides: str, path: str | Path | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, ["name=t", *overrides])
    return str(info.value)


# ---------------------------------------------------------------- shipped files


def test_every_shipped_yaml_loads_and_round_trips():
    names = {p.relative_to(ROOT).as_posix() for p in SHIPPED}
    assert {"experiments/paper/coco.yaml", "experiments/paper/coco_plus.yaml", "experiments/paper/imagenet.yaml",
            "experiments/paper/dino_coco.yaml", "experiments/synthetic/pretrain.yaml",
            "experiments/synthetic/smoke.yaml"} <= names
    for path in SHIPPED:
        cfg = load_config(path)
        assert cfg.name == path.stem or cfg.name.startswith("synthetic-")
        assert isinstance(cfg.to_train_config(), TrainConfig)


@pytest.mark.parametrize(("stem", "shards", "batch", "gpus", "method", "lambda_pos", "k", "tokens", "tasks"), [
    ("coco", "/data/shards/coco_train2017", 256, 2, "croc", 4.0, 12, "values", COCO_TASKS),
    ("coco_plus", "/data/shards/coco_plus", 256, 2, "croc", 4.0, 12, "values", COCO_TASKS),
    ("imagenet", "/data/shards/imagenet_train", 1024, 4, "croc", 3.0, 12, "keys", []),
    ("dino_coco", "/data/shards/coco_train2017", 256, 2, "dino", None, None, None, COCO_TASKS),
])
def test_paper_settings(stem, shards, batch, gpus, method, lambda_pos, k, tokens, tasks):
    cfg = load_config(PAPER / f"{stem}.yaml")
    assert cfg.name == stem
    assert (cfg.data.source, cfg.data.shard_dir) == ("shards", shards)
    assert "croc data prepare" in (PAPER / f"{stem}.yaml").read_text()
    assert (cfg.optim.batch_size, cfg.resources.num_workers, cfg.resources.use_gpu) == (batch, gpus, True)
    assert cfg.method.method == method
    if method == "croc":
        assert (cfg.clustering.lambda_pos, cfg.clustering.n_init, cfg.method.tokens) == (lambda_pos, k, tokens)
    assert cfg.evaluation.tasks == tasks
    # common to every paper file
    m, o = cfg.model, cfg.optim
    assert (m.arch, m.patch_size, m.drop_path_rate, m.norm_last_layer) == ("vit_small", 16, 0.1, False)
    assert (m.out_dim, m.out_dim_c) == (65536, 8192)
    assert (cfg.data.image_size, cfg.data.global_scale) == (224, (0.25, 1.0))
    assert (o.epochs, o.lr, o.warmup_epochs, o.min_lr) == (300, 5e-4, 10, 1e-5)
    assert (o.weight_decay, o.weight_decay_end, o.momentum_teacher, o.clip_grad) == (0.04, 0.4, 0.996, 0.0)
    assert o.freeze_last_layer_epochs == 1 and o.clip_grad_mode == "per_parameter"
    mt = cfg.method
    assert (mt.warmup_teacher_temp, mt.teacher_temp, mt.warmup_teacher_temp_epochs) == (0.04, 0.07, 30)


def test_synthetic_settings():
    demo = load_config(SYNTHETIC / "pretrain.yaml")
    assert demo.data.source == "synthetic" and demo.data.image_size == 96
    assert (demo.model.arch, demo.model.patch_size, demo.model.out_dim, demo.model.out_dim_c) == ("vit_tiny", 16,
                                                                                                 4096, 1024)
    assert (demo.model.hidden_dim, demo.model.bottleneck_dim, demo.clustering.n_init) == (512, 128, 8)
    assert (demo.optim.epochs, demo.optim.batch_size, demo.optim.warmup_epochs) == (16, 32, 2)
    assert (demo.optim.lr, demo.optim.momentum_teacher, demo.method.teacher_temp) == (1.6e-2, 0.99, 0.04)
    assert (demo.evaluation.classes, demo.evaluation.linear.lr, demo.evaluation.linear.epochs["voc"]) == (
        "present", 1e-2, 40)
    assert (demo.method.warmup_teacher_temp_epochs, demo.optim.precision) == (1, "fp32")
    assert (demo.resources.num_workers, demo.resources.use_gpu, demo.resources.threads_per_worker) == (1, False, 2)
    assert (demo.checkpoint.every_steps, demo.tracking.log_every_steps) == (20, 5)
    smoke = load_config(SYNTHETIC / "smoke.yaml")
    assert (smoke.data.image_size, smoke.optim.batch_size, smoke.optim.epochs) == (64, 8, 1)
    assert (smoke.data.synthetic.train_images, smoke.resources.num_workers) == (48, 2)
    assert (smoke.checkpoint.every_steps, smoke.tracking.log_every_steps) == (2, 1)
    assert smoke.model.arch == "vit_tiny" and smoke.optim.precision == "fp32"


def test_defaults_are_the_papers_and_match_the_method_dataclasses():
    cfg = base()
    train = cfg.to_train_config()
    assert train == TrainConfig()  # croc's defaults are the paper's too
    assert cfg.tracking.experiment == "t" and cfg.data.source == "synthetic"


# ---------------------------------------------------------------- overrides


def test_overrides_are_typed_and_nested():
    cfg = base("optim.lr=1e-3", "data.global_scale=[0.3,1.0]", "method.method=dino", "optim.epochs=7",
               "optim.warmup_epochs=2", "model.norm_last_layer=true", "data.synthetic.train_images=64",
               "resources.cpus_per_worker=1.5", "evaluation.tasks=[davis, linear:ade20k]", "tracking.experiment=study")
    assert cfg.optim.lr == 1e-3 and isinstance(cfg.optim.lr, float)
    assert cfg.data.global_scale == (0.3, 1.0)
    assert cfg.method.method == "dino" and cfg.optim.epochs == 7 and cfg.model.norm_last_layer is True
    assert cfg.data.synthetic.train_images == 64 and cfg.resources.cpus_per_worker == 1.5
    assert cfg.evaluation.tasks == ["davis", "linear:ade20k"] and cfg.tracking.experiment == "study"
    assert base("data.source=shards", "data.shard_dir=/s").data.shard_dir == "/s"
    assert load_config(None, ["name=2024"]).name == "2024"  # a numeric name stays a name


def test_overrides_on_a_file_and_later_ones_win():
    cfg = load_config(PAPER / "coco.yaml", ["data.shard_dir=/elsewhere", "clustering.lambda_pos=2", "optim.lr=1",
                                            "optim.lr=2e-4"])
    assert cfg.data.shard_dir == "/elsewhere" and cfg.clustering.lambda_pos == 2.0 and cfg.optim.lr == 2e-4
    assert cfg.clustering.n_init == 12  # untouched siblings kept


def test_apply_overrides_for_a_sweep():
    cfg = load_config(SYNTHETIC / "pretrain.yaml")
    trial = apply_overrides(cfg, {"clustering.lambda_pos": 3.0, "method.tokens": "keys", "name": "trial-1"})
    assert (trial.clustering.lambda_pos, trial.method.tokens, trial.name) == (3.0, "keys", "trial-1")
    assert trial.tracking.experiment == cfg.tracking.experiment  # the sweep's experiment is kept
    assert apply_overrides(cfg, ["clustering.n_init=6"]).clustering.n_init == 6
    assert cfg.clustering.lambda_pos == 4.0  # the original is untouched (frozen)
    with pytest.raises(ConfigError, match=r"clustering\.lambda_pos.*-1"):
        apply_overrides(cfg, {"clustering.lambda_pos": -1})


# ---------------------------------------------------------------- errors


def test_unknown_keys_name_the_key_and_the_allowed_ones():
    top = error_of("lr=1")
    assert "'lr'" in top and "optim" in top and "clustering" in top
    nested = error_of("optim.lrr=0.1")
    assert "optim.lrr" in nested and "0.1" in nested and "warmup_epochs" in nested
    deep = error_of("data.synthetic.colour=red")
    assert "data.synthetic.colour" in deep and "red" in deep and "train_images" in deep
    past_a_leaf = error_of("optim.lr.value=1")
    assert "optim.lr" in past_a_leaf and "not a section" in past_a_leaf


def test_unknown_keys_in_a_file_name_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\noptim:\n  lr: 0.1\n  warmpu_epochs: 3\nfoo: 1\n")
    message = error_of(path=path)
    assert str(path) in message
    assert "optim.warmpu_epochs" in message and "(got 3)" in message and "warmup_epochs" in message
    assert "foo: unknown key" in message and "allowed in the top level" in message


@pytest.mark.parametrize(("override", "key", "shown", "allowed"), [
    ("optim.epochs=many", "optim.epochs", "many", "integer"),
    ("optim.lr=fast", "optim.lr", "fast", "number"),
    ("resources.use_gpu=maybe", "resources.use_gpu", "maybe", "boolean"),
    ("method.tokens=pixels", "method.tokens", "pixels", "'values'"),
    ("model.arch=vit_huge", "model.arch", "vit_huge", "'vit_small'"),
    ("model.patch_size=14", "model.patch_size", "14", "16"),
    ("optim.precision=fp8", "optim.precision", "fp8", "'bf16'"),
    ("optim.clip_grad_mode=layerwise", "optim.clip_grad_mode", "layerwise", "'per_parameter'"),
    ("clustering.cost_normalization=global", "clustering.cost_normalization", "global", "'batch'"),
    ("model.drop_path_rate=1.0", "model.drop_path_rate", "1.0", "less than 1"),
    ("clustering.n_init=1", "clustering.n_init", "1", "greater than or equal to 2"),
    ("clustering.lambda_pos=-2", "clustering.lambda_pos", "-2", "greater than or equal to 0"),
    ("resources.num_workers=0", "resources.num_workers", "0", "greater than or equal to 1"),
    ("checkpoint.every_steps=0", "checkpoint.every_steps", "0", "greater than or equal to 1"),
    ("data.global_scale=[0,1]", "data.global_scale", "0", "0 < low <= high <= 1"),
    ("data.global_scale=[0.5,0.2]", "data.global_scale", "0.2", "0 < low <= high <= 1"),
    ("evaluation.tasks=[unsup:ade20k]", "evaluation.tasks", "unsup:ade20k", "linear:ade20k"),
    ("evaluation.after=sometimes", "evaluation.after", "sometimes", "'all_checkpoints'"),
    ("name=a/b", "name", "a/b", "letters, digits"),
    ("optim=3", "optim", "3", "dictionary"),
])
def test_bad_values_name_key_value_and_what_is_allowed(override, key, shown, allowed):
    message = error_of(override)
    assert f"{key}: " in message and shown in message and allowed in message and "Traceback" not in message


@pytest.mark.parametrize(("overrides", "keys", "values"), [
    (["clustering.n_init=4", "clustering.n_centroids_max=5"], ["clustering.n_centroids_max", "clustering.n_init"],
     ["5", "4"]),
    (["optim.batch_size=250", "resources.num_workers=3"], ["optim.batch_size", "resources.num_workers"],
     ["250", "3"]),
    (["optim.epochs=5", "optim.warmup_epochs=10"], ["optim.warmup_epochs", "optim.epochs"], ["10", "5"]),
    (["data.source=shards"], ["data.shard_dir", "data.source"], ["None", "shards"]),
    (["data.image_size=100"], ["data.image_size", "model.patch_size"], ["100", "16"]),
    (["optim.lr=5e-4", "optim.batch_size=64", "optim.min_lr=2e-4"], ["optim.min_lr", "optim.lr", "optim.batch_size"],
     ["0.0002", "0.0005", "64", "0.000125"]),  # the peak is lr x batch / 256 = 1.25e-4 < min_lr
])
def test_cross_field_rules_name_both_keys(overrides, keys, values):
    message = error_of(*overrides)
    for text in keys + values:
        assert text in message


@pytest.mark.parametrize("override", [
    "optim.lr=.inf", "optim.lr=inf", "optim.weight_decay=.nan", "optim.min_lr=inf", "clustering.lambda_pos=.inf",
    "method.teacher_temp=inf", "method.student_temp=-.inf", "evaluation.linear.lr=nan", "data.global_scale=[0.2, .inf]",
])
def test_non_finite_numbers_are_refused_for_every_float_setting(override):
    key = override.split("=")[0]
    message = error_of(override)
    assert f"{key}" in message and "finite number" in message and "Traceback" not in message


def test_every_problem_is_listed_once_per_line():
    message = error_of("optim.lr=x", "model.arch=y", "clustering.n_init=0")
    lines = [line for line in message.splitlines() if line.startswith("  - ")]
    assert len(lines) == 3 and "3 problem(s)" in message
    assert all("[override]" in line for line in lines)


def test_malformed_overrides_missing_name_and_files(tmp_path):
    for bad in ("optim.lr", "=3"):
        with pytest.raises(ConfigError, match=r"expected <dotted\.key>=<value>"):
            load_config(None, ["name=t", bad])
    with pytest.raises(ConfigError, match=r"optim\.lr.*not valid YAML"):
        base("optim.lr=[1,")
    with pytest.raises(ConfigError, match="name: required"):
        load_config(None)
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match=r"not found.*nope\.yaml"):
        load_config(missing)
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match=r"list\.yaml.*mapping"):
        load_config(tmp_path / "list.yaml")
    (tmp_path / "dup.yaml").write_text("name: a\noptim:\n  lr: 1\n  lr: 2\n")
    with pytest.raises(ConfigError, match=r"dup\.yaml.*duplicate key 'lr'"):
        load_config(tmp_path / "dup.yaml")
    (tmp_path / "broken.yaml").write_text("name: [a\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml.*not valid YAML"):
        load_config(tmp_path / "broken.yaml")
    assert issubclass(ConfigError, InputError)


def test_the_config_is_frozen():
    cfg = base()
    with pytest.raises(Exception, match="frozen"):
        cfg.optim.lr = 1.0  # type: ignore[misc]


# ---------------------------------------------------------------- the method's dataclasses and the data pipeline


def test_to_train_config_carries_every_value():
    cfg = load_config(PAPER / "imagenet.yaml", ["optim.compile=true", "clustering.cost_normalization=batch",
                                                "method.dense_weight=0.5", "data.image_size=160"])
    train = cfg.to_train_config()
    assert train.image_size == 160 and train.optim.compile is True
    assert isinstance(train.model, ModelConfig) and dataclasses.asdict(train.model) == cfg.model.model_dump()
    assert isinstance(train.optim, OptimConfig)
    assert dataclasses.asdict(train.optim) == cfg.optim.model_dump()
    assert isinstance(train.method, MethodConfig) and isinstance(train.method.clustering, ClusteringConfig)
    assert dataclasses.asdict(train.method.clustering) == cfg.clustering.model_dump()
    method = dataclasses.asdict(train.method)
    method.pop("clustering")
    assert method == cfg.method.model_dump()


def test_data_settings():
    cfg = base("seed=3", "data.image_size=96", "data.global_scale=[0.4,0.9]", "data.decode_rows=4",
               "data.shuffle_buffer=0", "data.prefetch_batches=1")
    settings = cfg.data_settings("/shards")
    assert (settings.shard_dir, settings.image_size, settings.scale, settings.seed) == ("/shards", 96, (0.4, 0.9), 3)
    assert (settings.decode_rows, settings.shuffle_buffer, settings.prefetch_batches) == (4, 0, 1)


def test_photometric_settings():
    from croc.augment import Photometric

    assert base().photometric() == Photometric()  # DINO's
    cfg = base("data.image_size=112", "data.photometric.hue=0.5", "data.photometric.grayscale_p=0.5",
               "data.photometric.solarize_p=[0.1,0.3]")
    assert cfg.photometric() == Photometric(hue=0.5, grayscale_p=0.5, solarize_p=(0.1, 0.3))
    scaled = base("data.image_size=112", "data.photometric.blur_scales_with_view=true").photometric()
    assert scaled.blur_sigma == pytest.approx((0.05, 1.0))
    for bad in ("data.photometric.hue=0.7", "data.photometric.blur_sigma=[0.1,3.0]", "data.photometric.blur_p=[2,0]"):
        with pytest.raises(InputError, match=bad.split("=")[0].replace(".", r"\.")):
            base(bad)


# ---------------------------------------------------------------- paths


def test_relative_paths_become_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = base()
    assert cfg.checkpoint.storage_path == str(tmp_path / "runs")
    assert cfg.tracking.tracking_uri == f"sqlite:///{tmp_path}/mlflow.db"
    cfg = base("checkpoint.storage_path=out/ckpt", "tracking.tracking_uri=sqlite:///db/m.db",
               "data.source=shards", "data.shard_dir=shards", "data.synthetic.out_dir=bench")
    assert cfg.checkpoint.storage_path == str(tmp_path / "out" / "ckpt")
    assert cfg.tracking.tracking_uri == f"sqlite:///{tmp_path}/db/m.db"
    assert cfg.data.shard_dir == str(tmp_path / "shards")
    assert cfg.data.synthetic.out_dir == str(tmp_path / "bench")
    kept = base("checkpoint.storage_path=s3://bucket/runs", "tracking.tracking_uri=http://mlflow:5000",
                "data.source=shards", "data.shard_dir=gs://b/shards")
    assert kept.checkpoint.storage_path == "s3://bucket/runs" and kept.tracking.tracking_uri == "http://mlflow:5000"
    assert kept.data.shard_dir == "gs://b/shards"
    assert base("tracking.tracking_uri=sqlite:////abs/m.db").tracking.tracking_uri == "sqlite:////abs/m.db"
    assert base("tracking.tracking_uri=databricks").tracking.tracking_uri == "databricks"
    assert base("tracking.tracking_uri=mlruns").tracking.tracking_uri == str(tmp_path / "mlruns")


def test_empty_sections_mean_defaults(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("name: e\ntracking:\n  # tracking_uri: http://x\ndata:\n  synthetic:\n")
    cfg = load_config(path, ["tracking.log_every_steps=3"])
    assert cfg.tracking.log_every_steps == 3 and cfg.data.synthetic.train_images == 256
    assert cfg.tracking.experiment == "e"


# ---------------------------------------------------------------- dump, hash, params


def test_dump_round_trip(tmp_path, monkeypatch):
    for path in SHIPPED:
        cfg = load_config(path, ["optim.lr=1e-3", "evaluation.tasks=[davis]"])
        text = dump_config(cfg)
        assert isinstance(yaml.safe_load(text), dict)
        saved = tmp_path / f"{path.stem}.yaml"
        saved.write_text(text)
        monkeypatch.chdir(tmp_path)  # absolute paths: the dump means the same anywhere
        assert load_config(saved) == cfg
        monkeypatch.chdir(ROOT)


def test_config_hash_is_stable_and_follows_values():
    cfg = load_config(PAPER / "coco.yaml")
    digest = config_hash(cfg)
    assert len(digest) == 12 and all(c in "0123456789abcdef" for c in digest)
    assert config_hash(load_config(PAPER / "coco.yaml")) == digest
    assert config_hash(apply_overrides(cfg, ["optim.lr=5e-4"])) == digest  # the same value is the same config
    assert config_hash(apply_overrides(cfg, ["clustering.lambda_pos=3"])) != digest


def test_flat_params():
    params = flat_params(load_config(PAPER / "coco.yaml"))
    assert params["optim.lr"] == "0.0005" and params["clustering.n_init"] == "12"
    assert params["data.global_scale"] == "[0.25, 1.0]" and params["model.norm_last_layer"] == "false"
    assert params["data.synthetic.out_dir"] == "null" and params["method.tokens"] == "values"
    assert params["evaluation.tasks"].startswith('["linear:voc"')
    assert all(isinstance(v, str) and len(v) <= 6000 for v in params.values())
    assert "tracking.experiment" in params and len(params) > 60


def test_config_hash_ignores_where_a_run_writes(tmp_path) -> None:
    from pipelines.config import apply_overrides, config_hash

    cfg = load_config(ROOT / "experiments" / "synthetic" / "smoke.yaml")
    moved = apply_overrides(cfg, [f"checkpoint.storage_path={tmp_path}", f"tracking.tracking_uri=sqlite:///{tmp_path}/x.db"])
    assert config_hash(moved) == config_hash(cfg)
    assert config_hash(apply_overrides(cfg, ["optim.lr=0.001"])) != config_hash(cfg)


@pytest.mark.parametrize("uri", ["ftp://x", "s3://bucket/runs", "gs://b/x", "htp://typo:5000"])
def test_a_tracking_uri_mlflow_cannot_store_runs_in_is_refused_at_load(uri):
    message = error_of(f"tracking.tracking_uri={uri}")
    assert "tracking.tracking_uri" in message and uri.split(":")[0] in message and "sqlite" in message


@pytest.mark.parametrize("uri", ["sqlite:///m.db", "http://localhost:5000", "https://h", "postgresql+psycopg2://u@h/d",
                                 "databricks", "file:///tmp/mlruns", "/tmp/mlruns"])
def test_tracking_stores_mlflow_can_use_are_accepted(uri):
    assert base(f"tracking.tracking_uri={uri}").tracking.tracking_uri.endswith(uri.split("///")[-1].split("//")[-1])
