"""The exported backbone as an MLflow model: loadable with `mlflow.pyfunc.load_model` and registrable.

The model folder holds the timm-compatible `backbone.safetensors` (the same file timm users load), the `croc`
package (the code that rebuilds the timm model from it), the model's own code (`backbone_pyfunc.py`, logged as
code rather than pickled), a signature, a small input example and the pinned requirements:

    model = mlflow.pyfunc.load_model("runs:/<run id>/backbone_model")
    tokens = model.predict(images)       # float32 [B, 3, H, W], normalised -> float32 [B, 1 + N, D] (CLS first)
    mlflow.register_model("runs:/<run id>/backbone_model", "croc-vit-small")
"""

from __future__ import annotations

import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

import croc

ARTIFACT_PATH = "backbone_model"
REQUIREMENTS = ("torch", "timm", "safetensors", "numpy")
EXAMPLE_SIZE = 32  # the input example's side: 2 x 2 patches of 16 (4 x 4 of 8), a few KB in the model folder


def signature(dim: int) -> Any:
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Schema, TensorSpec

    return ModelSignature(inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, 3, -1, -1), "images")]),
                          outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, -1, dim), "tokens")]))


def save_backbone_model(backbone_file: str | Path, out_dir: str | Path, dim: int) -> Path:
    """Write the MLflow model folder for an exported backbone file -> the folder."""
    import mlflow.pyfunc

    out = Path(out_dir)
    requirements = [f"{name}=={metadata.version(name)}" for name in REQUIREMENTS]
    example = np.zeros((1, 3, EXAMPLE_SIZE, EXAMPLE_SIZE), dtype=np.float32)  # any size: the model is dynamic
    mlflow.pyfunc.save_model(path=str(out), python_model=str(Path(__file__).with_name("backbone_pyfunc.py")),
                             artifacts={"backbone": str(backbone_file)},
                             code_paths=[str(Path(croc.__file__).parent)], signature=signature(dim),
                             input_example=example, pip_requirements=requirements)
    return out


def token_dim(backbone_file: str | Path) -> int:
    """The width of the exported backbone's tokens (its CLS token's size)."""
    from safetensors import safe_open

    with safe_open(str(backbone_file), framework="numpy") as weights:
        return int(weights.get_slice("cls_token").get_shape()[-1])


def log_backbone_model(client: Any, run_id: str, backbone_file: str | Path, dim: int | None = None) -> str:
    """Save the model and log it under the run's `backbone_model` -> its URI (runs:/<id>/backbone_model)."""
    dim = dim or token_dim(backbone_file)
    with tempfile.TemporaryDirectory() as tmp:
        folder = save_backbone_model(backbone_file, Path(tmp) / ARTIFACT_PATH, dim)
        client.log_artifacts(run_id, str(folder), ARTIFACT_PATH)
    return f"runs:/{run_id}/{ARTIFACT_PATH}"
