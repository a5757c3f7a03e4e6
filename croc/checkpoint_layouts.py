"""How a backbone to evaluate is named, and the files it is read from: the one registry of checkpoint layouts.

A backbone source (`croc evaluate --checkpoint`, a sweep's `baselines`, `croc.eval.backbones.load_backbone`) is one
of:
- a named backbone: `random:<arch>[:<patch>][:<seed>]` (a randomly initialised ViT) or `stats:<kind>[:<patch>]`
  (per-patch colour or texture statistics, a no-learning reference);
- a training state (`STATE_FILE`, format `STATE_FORMAT`), or a run or Ray checkpoint folder holding one;
- an exported backbone (`BACKBONE_FILE`, safetensors with timm names), a timm / DINO / authors' `.pth`;
- an MLflow run (`runs:/<id>` or the bare id), whose `BACKBONE_FILE` artifact is read.
No torch here: the CLI's help and the platform's label code read these.
"""

from __future__ import annotations

from croc.config import ModelConfig
from croc.registry import ARCHITECTURES

STATE_FILE = "state.pt"  # a checkpoint folder's training state
STATE_FORMAT = "croc-training-state-1"  # its "format" entry
RAY_CHECKPOINT_GLOB = "checkpoint_*"  # Ray Train's checkpoint folders inside a run folder
BACKBONE_FILE = "backbone.safetensors"  # an exported backbone: a file, an MLflow artifact
PATCH_STATISTICS = ("colour", "texture")  # the kinds of `stats:` backbones

# named backbone kind -> (usage, allowed first fields, defaults of the numeric fields)
NAMED_BACKBONES: dict[str, tuple[str, tuple[str, ...], tuple[int, ...]]] = {
    "random": ("random:<arch>[:<patch>][:<seed>]", tuple(ARCHITECTURES), (ModelConfig.patch_size, 0)),
    "stats": ("stats:<kind>[:<patch>]", PATCH_STATISTICS, (ModelConfig.patch_size,)),
}


def named_kind(spec: str) -> str | None:
    """'random:vit_tiny:16:1' -> 'random'; 'stats:colour' -> 'stats'; a path or run id -> None."""
    kind, sep, _ = str(spec).partition(":")
    return kind if sep and kind in NAMED_BACKBONES else None


def random_spec(arch: str, patch_size: int, seed: int) -> str:
    """The named random-init backbone of this architecture, patch size and seed."""
    return f"random:{arch}:{patch_size}:{seed}"


def parse_named(spec: str) -> tuple[str, str, list[int]]:
    """'random:vit_tiny' -> ('random', 'vit_tiny', [16, 0]): the kind, the name, the numbers with their defaults.

    Raises ValueError with the usage when the spec does not follow it (croc.eval.backbones turns it into an
    InputError naming the spec).
    """
    kind = named_kind(spec)
    if kind is None:
        raise ValueError(f"expected one of {', '.join(usage for usage, _, _ in NAMED_BACKBONES.values())}")
    usage, names, defaults = NAMED_BACKBONES[kind]
    parts = spec.split(":")[1:]
    if not 1 <= len(parts) <= 1 + len(defaults) or parts[0] not in names:
        raise ValueError(f"expected {usage} with the first field in {sorted(names)}")
    try:
        numbers = [int(v) for v in parts[1:]]
    except ValueError:
        raise ValueError(f"expected {usage}, whose numeric fields are integers") from None
    return kind, parts[0], numbers + list(defaults[len(numbers):])
