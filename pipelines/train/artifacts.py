"""What a finished pre-training leaves: its final backbone, exported from the final checkpoint (timm safetensors),
and its MLflow run's artifacts (the resolved config, the teacher backbone as timm safetensors and as an MLflow
model)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from mlflow.tracking import MlflowClient

from croc.checkpoint import load_training_state
from croc.checkpoint_layouts import BACKBONE_FILE
from croc.export import export_network_backbone
from pipelines.backbone_model import log_backbone_model
from pipelines.config import PretrainConfig, dump_config


def export_final_backbone(checkpoint: Any, cfg: PretrainConfig, path: Path, network: str = "teacher") -> Path:
    """The final checkpoint's (a ray.train.Checkpoint) `network` backbone -> timm safetensors at `path`."""
    with checkpoint.as_directory() as folder:
        state = load_training_state(folder)
    return export_network_backbone(state["model"], network, path, cfg.model.arch, cfg.model.patch_size,
                                   cfg.data.image_size)


def log_artifacts(client: MlflowClient, run_id: str, cfg: PretrainConfig, checkpoint: Any,
                  teacher_backbone: Path | None = None) -> str:
    """Log the resolved config and the teacher backbone (`teacher_backbone` when the final one is exported already,
    else exported here); -> the backbone's artifact URI."""
    with tempfile.TemporaryDirectory() as tmp:
        config_path = Path(tmp) / "config.yaml"
        config_path.write_text(dump_config(cfg))
        client.log_artifact(run_id, str(config_path))
        path = teacher_backbone or export_final_backbone(checkpoint, cfg, Path(tmp) / BACKBONE_FILE)
        client.log_artifact(run_id, str(path))
        log_backbone_model(client, run_id, path)  # the same weights as an MLflow model (pyfunc, registrable)
    return f"{client.get_run(run_id).info.artifact_uri}/{BACKBONE_FILE}"
