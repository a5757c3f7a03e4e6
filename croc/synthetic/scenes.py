"""Procedural scene-centric images for the demo (in memory: no files, no downloads).

A thin view of the embedded synthetic benchmark's renderer (`croc.synthetic.benchmark.render_scene`): a few 'stuff'
regions with smooth irregular boundaries and their own textures, and a few 'thing' objects whose class sets shape
and texture (the colour of every instance is random), drawn with occlusion. Deterministic for a seed. Labels are
dense indices here (stuff 0..N_STUFF-1, things after); the benchmark on disk uses the real COCO ids.
"""

from __future__ import annotations

import numpy as np
import torch

from croc.synthetic.benchmark import SynthSpec, render_scene

N_STUFF, N_THINGS = 4, 6
SPEC = SynthSpec(n_thing_classes=N_THINGS, n_stuff_classes=N_STUFF, objects_min=1, objects_max=4)
_DENSE = np.zeros(256, np.int64)  # COCO id -> dense label
for _i, _c in enumerate(SPEC.stuff):
    _DENSE[_c.id] = _i
for _i, _c in enumerate(SPEC.things):
    _DENSE[_c.id] = N_STUFF + _i


def synthetic_scene(seed: int, height: int = 128, width: int = 160) -> tuple[torch.Tensor, np.ndarray]:
    """-> (image uint8 [3, H, W], label map int64 [H, W]: stuff classes 0..N_STUFF-1, things after)."""
    scene = render_scene(seed, height, width, SPEC)
    labels = _DENSE[np.where(scene.thing_ids > 0, scene.thing_ids, scene.stuff_ids)]
    pixels = torch.from_numpy(scene.image).permute(2, 0, 1).contiguous()
    return pixels, labels
