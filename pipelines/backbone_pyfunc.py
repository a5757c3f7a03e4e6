"""The MLflow pyfunc model of an exported backbone, logged as code ("models from code"), not pickled.

MLflow runs this file when the model is logged and when it is loaded (`mlflow.pyfunc.load_model`); the `croc`
package travels with the model (its code_paths), so loading needs torch, timm, safetensors and numpy alone.
pipelines/backbone_model.py logs it.
"""

from __future__ import annotations

import mlflow.models
import mlflow.pyfunc
import numpy as np


class BackboneModel(mlflow.pyfunc.PythonModel):
    """A frozen ViT backbone: normalised images in, every output token out (CLS first)."""

    def load_context(self, context):
        from croc.export import load_timm_backbone

        self.model = load_timm_backbone(context.artifacts["backbone"])

    def predict(self, context, model_input: np.ndarray, params: dict | None = None) -> np.ndarray:
        """model_input: float32 [B, 3, H, W] (or {"images": it}) -> float32 [B, 1 + N, D]."""
        import torch

        if isinstance(model_input, dict):  # a named tensor input arrives as {name: array}
            model_input = model_input["images"]
        images = torch.as_tensor(np.asarray(model_input, dtype=np.float32))
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images [B, 3, H, W], got {list(images.shape)}")
        with torch.inference_mode():
            return self.model.forward_features(images).float().numpy()


mlflow.models.set_model(BackboneModel())
