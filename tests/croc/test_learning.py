"""Pre-training learns: a short CrOC run on the synthetic benchmark beats random init on a dense task.

The margin is far outside what chance gives: the random baseline is the same architecture from the same seed
(the trained network's starting point) and a second seed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from croc.clustering import ClusteringConfig
from croc.config import MethodConfig, ModelConfig, OptimConfig, TrainConfig
from croc.eval.backbones import FrozenBackbone, load_backbone
from croc.eval.propagation import PropagationConfig
from croc.eval.tasks import EvalProtocol, run_task
from croc.short_pretrain import short_pretrain
from croc.synthetic.benchmark import SynthSpec, generate_benchmark

SPEC = SynthSpec(seed=0, height=128, width=160, coco_train=128, coco_val=0, coco_unlabeled=0, voc_train=0, voc_val=0,
                 videos_train=0, videos_val=3, frames=8, video_height=128, video_width=192)
CONFIG = TrainConfig(
    model=ModelConfig(arch="vit_tiny", patch_size=16, drop_path_rate=0.1, out_dim=1024, out_dim_c=512,
                      hidden_dim=256, bottleneck_dim=64),
    method=MethodConfig(method="croc", clustering=ClusteringConfig(n_init=8, n_centroids_max=4),
                        warmup_teacher_temp=0.04, teacher_temp=0.04, warmup_teacher_temp_epochs=1),
    optim=OptimConfig(epochs=12, batch_size=16, lr=1.6e-2, warmup_epochs=1, momentum_teacher=0.99,
                      freeze_last_layer_epochs=1, precision="fp32"),
    image_size=64,
)
PROTOCOL = EvalProtocol(davis=PropagationConfig(short_side=128, size_multiple=16))
MARGIN = 8.0  # J&F points


def _jf(backbone: FrozenBackbone, root: Path, out: Path) -> float:
    return 100 * run_task("davis", backbone, PROTOCOL, {"davis": str(root / "davis")}, out, pictures=0).headline


@pytest.mark.slow
def test_short_croc_pretraining_beats_random_init_on_davis(tmp_path: Path) -> None:
    root = tmp_path / "bench"
    generate_benchmark(root, SPEC)
    images = [torch.from_numpy(np.array(Image.open(p).convert("RGB"))).permute(2, 0, 1).contiguous()
              for p in sorted((root / "coco" / "train2017").glob("*.jpg"))]
    torch.set_num_threads(2)
    model = short_pretrain(images, CONFIG, seed=0)
    trained = FrozenBackbone(model.teacher.backbone.eval().requires_grad_(False), "vit_tiny", 16, "short run")
    random_scores = [_jf(load_backbone(f"random:vit_tiny:16:{seed}"), root, tmp_path / f"random{seed}")
                     for seed in (0, 1)]
    trained_score = _jf(trained, root, tmp_path / "trained")
    assert trained_score > max(random_scores) + MARGIN, (trained_score, random_scores)


def test_short_pretrain_steps_and_logs() -> None:
    images = [torch.randint(0, 256, (3, 40, 48), dtype=torch.uint8, generator=torch.Generator().manual_seed(i))
              for i in range(5)]
    config = TrainConfig(model=ModelConfig(arch="vit_tiny", out_dim=64, out_dim_c=32, hidden_dim=32, bottleneck_dim=16),
                         method=CONFIG.method, image_size=32,
                         optim=OptimConfig(epochs=2, batch_size=2, lr=1e-2, warmup_epochs=0, precision="fp32"))
    logs: list[tuple[int, dict[str, float]]] = []
    model = short_pretrain(images, config, seed=0, on_log=lambda step, m: logs.append((step, m)), log_every=3)
    assert [step for step, _ in logs] == [3, 4]  # 5 images // 2 = 2 steps per epoch, 2 epochs
    assert {"loss", "teacher_entropy_ratio"} <= set(logs[-1][1])
    start = load_backbone("random:vit_tiny:16:0").model.state_dict()
    moved = model.student.backbone.state_dict()
    assert any(not torch.equal(start[k], moved[k]) for k in start)  # seed 0 starts from random:vit_tiny:16:0
    with pytest.raises(ValueError, match="cannot fill one batch"):
        short_pretrain(images[:1], config)
