"""The exported backbone as an MLflow model: logged on a run, loaded back with pyfunc, registered."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import mlflow
import numpy as np
import torch
from mlflow.tracking import MlflowClient

from croc.backbone import create_backbone
from croc.export import export_backbone, load_timm_backbone
from pipelines.backbone_model import ARTIFACT_PATH, log_backbone_model
from pipelines.tracking import run_tags, start_run


def test_the_logged_model_loads_predicts_like_timm_and_registers(tmp_path: Path, caplog) -> None:
    torch.manual_seed(0)
    backbone_file = export_backbone(create_backbone("vit_tiny", 16, 0.0), tmp_path / "backbone.safetensors",
                                    "vit_tiny", 16, image_size=64)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    run_id = start_run(client, "exp", "pre", run_tags("pretrain", "croc", "synthetic", "abc"), {})
    with warnings.catch_warnings(record=True) as warned, caplog.at_level(logging.WARNING, logger="mlflow"):
        warnings.simplefilter("always")
        model_uri = log_backbone_model(client, run_id, backbone_file)  # the width read from the file: 192
    # nothing for the user to act on: the model is logged as code (not pickled), with type hints, a signature and
    # an input example, so MLflow has no warning to print in the middle of a run's output
    assert not [w for w in warned if issubclass(w.category, UserWarning)], [str(w.message)[:200] for w in warned]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text[-2000:]
    assert model_uri == f"runs:/{run_id}/{ARTIFACT_PATH}"
    assert "MLmodel" in {Path(a.path).name for a in client.list_artifacts(run_id, ARTIFACT_PATH)}

    mlflow.set_tracking_uri(uri)
    try:
        model = mlflow.pyfunc.load_model(model_uri)
        images = np.random.default_rng(0).standard_normal((2, 3, 48, 64)).astype(np.float32)
        tokens = model.predict(images)
        with torch.inference_mode():
            expected = load_timm_backbone(backbone_file).forward_features(torch.from_numpy(images)).numpy()
        assert tokens.shape == (2, 1 + 3 * 4, 192)  # CLS + a 3x4 patch grid, any image size
        np.testing.assert_allclose(tokens, expected, rtol=1e-5, atol=1e-5)
        inputs = model.metadata.get_input_schema().inputs[0]
        assert inputs.name == "images" and inputs.shape == (-1, 3, -1, -1)
        assert np.asarray(model.input_example["images"]).shape == (1, 3, 32, 32)  # named, as the signature
        version = mlflow.register_model(model_uri, "croc-test-backbone")
        assert int(version.version) == 1 and version.run_id == run_id
    finally:
        mlflow.set_tracking_uri(None)
