"""The allowed values of the method's settings, each declared once (the way timm registers its models).

The config schema, the CLI's help, the sweeps and `croc compare` derive their choices from these; a new
architecture or token kind is added here and nowhere else. Evaluation tasks and their datasets are registered in
croc/eval/registry.py. No torch here (the CLI reads these for `--help`).
"""

from __future__ import annotations

# model.arch -> the timm model it builds (patch size and image size are passed to timm separately)
ARCHITECTURES = {"vit_tiny": "vit_tiny_patch16_224", "vit_small": "vit_small_patch16_224",
                 "vit_base": "vit_base_patch16_224"}
PATCH_SIZES = (8, 16)
METHODS = ("croc", "dino")  # dino: the same step without the dense branch
TOKENS = ("queries", "keys", "values", "last")  # the last block's q / k / v per head, or its output tokens
QKV_INDEX = {"queries": 0, "keys": 1, "values": 2}  # position in the attention's fused qkv projection
PRECISIONS = ("bf16", "fp16", "fp32")
CLIP_GRAD_MODES = ("per_parameter", "global_norm")  # DINO's rule, each gradient on its own | one global norm
COST_NORMALIZATIONS = ("problem", "batch")  # per clustering problem | the authors' batch-wide min-max
