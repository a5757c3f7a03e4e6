"""CrOC = a student and an EMA teacher (backbone + projection head each) and the two losses.

Images travel as [2B, 3, S, S]: view 1 of every image, then view 2.
"""

from __future__ import annotations

from dataclasses import replace
from typing import NamedTuple

import torch
from torch import nn

from croc.backbone import QKV_INDEX, BackboneOutput, backbone_forward, create_backbone
from croc.clustering import check_inputs, cluster_views, mean_cls_norm, view_centroids
from croc.config import ModelConfig, TrainConfig
from croc.heads import ProjectionHead
from croc.losses import CentroidLoss, ImageLoss


class NetworkOutput(NamedTuple):
    cls_logits: torch.Tensor  # [2, B, out_dim]
    centroid_logits: torch.Tensor | None  # [2, R, out_dim_c], R = B * H * Kmax


class Network(nn.Module):
    """Backbone + projection head. forward() is the whole student pass (so DDP can wrap it)."""

    def __init__(self, config: ModelConfig, dense: bool) -> None:
        super().__init__()
        self.backbone = create_backbone(config.arch, config.patch_size, config.drop_path_rate)
        self.head = ProjectionHead(self.backbone.embed_dim, config.out_dim, config.out_dim_c if dense else None,
                                   config.hidden_dim, config.bottleneck_dim, config.norm_last_layer)
        self.features = self._features
        self.logits = self._logits

    def compile_passes(self, **kwargs) -> None:
        """Compile the backbone pass and the head pass separately (they are timed as separate phases)."""
        self.features = torch.compile(self._features, **kwargs)
        self.logits = torch.compile(self._logits, **kwargs)

    def _features(self, images: torch.Tensor, with_qkv: bool = False) -> BackboneOutput:
        return backbone_forward(self.backbone, images, with_qkv)

    def _logits(self, features: BackboneOutput, assignments: torch.Tensor | None = None,
                heads: int = 1) -> NetworkOutput:
        """Image-level logits from the CLS outputs; centroid logits when assignments [2, Q, N, Kmax] are given."""
        two_b, n, dim = features.patches.shape
        if assignments is None:
            return NetworkOutput(self.head(features.cls).view(2, two_b // 2, -1), None)
        patches = features.patches.view(2, two_b // 2, n, dim)
        centroids = view_centroids(patches, assignments, mean_cls_norm(features.cls), heads)  # [2, R, D]
        image_logits, centroid_logits = self.head.forward_both(features.cls, centroids.flatten(0, 1).to(patches.dtype))
        return NetworkOutput(image_logits.view(2, two_b // 2, -1), centroid_logits.view(2, centroids.shape[1], -1))

    def forward(self, images: torch.Tensor, assignments: torch.Tensor | None = None, heads: int = 1) -> NetworkOutput:
        return self.logits(self.features(images), assignments, heads)


def clustered_tokens(features: BackboneOutput, tokens: str) -> torch.Tensor:
    """The tokens to cluster, per view: [2, B, H, 1+N, d] (H = 1 for the last-block tokens), CLS first."""
    if tokens == "last":
        joint = torch.cat([features.cls[:, None], features.patches], dim=1)[:, None]  # [2B, 1, 1+N, D]
    else:
        joint = features.qkv[QKV_INDEX[tokens]]  # [2B, H, 1+N, d]
    return joint.view(2, joint.shape[0] // 2, *joint.shape[1:])


class CrOC(nn.Module):
    """Student, teacher and losses. `method: dino` drops the clustering, the centroid head and the dense loss."""

    def __init__(self, config: TrainConfig) -> None:
        super().__init__()
        self.config = config
        self.dense = config.method.method == "croc"
        self.student = Network(config.model, self.dense)
        self.teacher = Network(replace(config.model, drop_path_rate=0.0), self.dense)
        self.teacher.load_state_dict(self.student.state_dict())
        self.teacher.requires_grad_(False)
        method = config.method
        self.image_loss = ImageLoss(config.model.out_dim, method.student_temp, method.center_momentum)
        self.centroid_loss = (CentroidLoss(config.model.out_dim_c, method.student_temp, method.center_momentum)
                              if self.dense else None)
        self.cluster = cluster_views

    def compile_passes(self, **kwargs) -> None:
        """torch.compile the backbone and head passes of both networks, and the clustering (fullgraph)."""
        self.student.compile_passes(**kwargs)
        self.teacher.compile_passes(**kwargs)
        self.cluster = torch.compile(cluster_views, fullgraph=True)

    def train(self, mode: bool = True) -> CrOC:
        super().train(mode)
        self.teacher.eval()  # no dropout / drop-path in the teacher, ever
        return self

    @torch.no_grad()
    def teacher_features(self, images: torch.Tensor) -> BackboneOutput:
        return self.teacher.features(images, with_qkv=self.dense and self.config.method.tokens != "last")

    @torch.no_grad()
    def teacher_clusters(self, features: BackboneOutput, patch_xy: torch.Tensor,
                         init_idx: torch.Tensor | None = None, check: bool = False):
        """-> (ViewCentroids, heads). check=True validates the input (synchronises: not on the hot path)."""
        tokens = clustered_tokens(features, self.config.method.tokens)
        last = torch.cat([features.cls[:, None], features.patches], dim=1)
        last = last.view(2, last.shape[0] // 2, *last.shape[1:])
        if check:
            check_inputs(tokens, patch_xy, self.config.method.clustering, check_finite=True)
        return self.cluster(tokens, last, patch_xy, self.config.method.clustering, init_idx), tokens.shape[2]

    @torch.no_grad()
    def teacher_logits(self, features: BackboneOutput, centroids: torch.Tensor | None) -> NetworkOutput:
        """centroids [2, R, D] (already computed by the clustering) -> teacher logits."""
        b2 = features.cls.shape[0]
        if centroids is None:
            return NetworkOutput(self.teacher.head(features.cls).view(2, b2 // 2, -1), None)
        images, cents = self.teacher.head.forward_both(features.cls, centroids.flatten(0, 1).to(features.cls.dtype))
        return NetworkOutput(images.view(2, b2 // 2, -1), cents.view(2, centroids.shape[1], -1))

    def losses(self, student: NetworkOutput, teacher: NetworkOutput, valid: torch.Tensor | None,
               teacher_temp: float) -> dict[str, torch.Tensor]:
        image_loss, entropy = self.image_loss(student.cls_logits, teacher.cls_logits, teacher_temp)
        out = {"image_loss": image_loss, "teacher_entropy": entropy}
        if self.dense:
            dense_loss, entropy_c = self.centroid_loss(student.centroid_logits, teacher.centroid_logits, valid,
                                                       teacher_temp)
            out.update(dense_loss=dense_loss, teacher_entropy_c=entropy_c)
            out["loss"] = image_loss + self.config.method.dense_weight * dense_loss
        else:
            out["loss"] = image_loss
        return out

