"""Cross-view online clustering: the join-locate-split core of CrOC (paper Sec. 3.3).

One clustering problem per (image, head): the teacher's tokens of BOTH views are joined, clustered with
Sinkhorn-Knopp while the closest centroids are merged one pair at a time (K -> 2), the number of clusters is
picked a posteriori by the lowest transport cost, and clusters not present in both views are pruned.

Everything is batched over all problems with static shapes: no Python loop over problems, no host-device
synchronisation, variable cluster counts expressed with masks. The functions compile with
``torch.compile(fullgraph=True)``. All arithmetic is fp32, also under autocast.

Shapes: B images, H heads, Q = B * H problems (q = b * H + h), N patches per view, n = 2N joined tokens
(view 1 then view 2), d / D per-head / full token width, K initial centroids, Kmax = n_centroids_max.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from croc.config import ClusteringConfig
from croc.errors import InputError

TINY = 1e-12


class Clusters(NamedTuple):
    """Result of clustering Q problems; columns past a problem's chosen k are zero padding."""

    assignments: torch.Tensor  # [2, Q, N, Kmax] per-view weights, kept only at each token's argmax column
    valid: torch.Tensor  # [Q, Kmax] bool, column non-empty in both views
    chosen_k: torch.Tensor  # [Q] int64, clusters kept before pruning
    costs: torch.Tensor  # [Q, K-1] transport cost at k = K, K-1, ..., 2


class JointTokens(NamedTuple):
    """Clustering input built from per-view tokens."""

    tokens: torch.Tensor  # [Q, n, d] L2-normalised, view 1 then view 2
    cls_similarity: torch.Tensor  # [Q, n] cosine of each token with its view's CLS token (same head)


def join_views(tokens: torch.Tensor) -> JointTokens:
    """tokens: [2, B, H, 1+N, d] per view, CLS first (H=1 for the last-block tokens) -> JointTokens."""
    if tokens.dim() != 5 or tokens.shape[0] != 2 or tokens.shape[3] < 2:
        raise InputError(f"clustering tokens: expected [2, B, H, 1+N, d] with N >= 1, got {list(tokens.shape)}")
    views, b, h, n1, d = tokens.shape
    unit = F.normalize(tokens.float(), dim=-1)
    cls, patches = unit[:, :, :, :1], unit[:, :, :, 1:]  # [2,B,H,1,d], [2,B,H,N,d]
    similarity = (patches * cls).sum(-1)  # [2, B, H, N]
    joint = patches.permute(1, 2, 0, 3, 4).reshape(b * h, views * (n1 - 1), d)
    joint_similarity = similarity.permute(1, 2, 0, 3).reshape(b * h, views * (n1 - 1))
    return JointTokens(joint, joint_similarity)


def join_positions(patch_xy: torch.Tensor, heads: int) -> torch.Tensor:
    """patch_xy: [2, B, N, 2] patch centres in the original frame -> [Q, n, 2] (shared by an image's heads)."""
    views, b, n, _ = patch_xy.shape
    joint = patch_xy.float().permute(1, 0, 2, 3).reshape(b, views * n, 2)
    return joint[:, None].expand(b, heads, views * n, 2).reshape(b * heads, views * n, 2)


def sample_initial_centroids(
    token_marginal: torch.Tensor, k: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Draw k distinct token indices per problem with probabilities token_marginal [Q, n] -> [Q, k].

    Gumbel top-k: the same law as sequential sampling without replacement, with no host synchronisation.
    """
    uniform = torch.rand(token_marginal.shape, generator=generator, device=token_marginal.device)
    gumbel = -torch.log(-torch.log(uniform.clamp(TINY, 1.0 - 1e-7)))
    return (token_marginal.clamp_min(TINY).log() + gumbel).topk(k, dim=1).indices


def sinkhorn(
    cost: torch.Tensor, r: torch.Tensor, c: torch.Tensor, weight: float, iterations: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Entropic optimal transport. cost [Q, n, k], r [Q, n], c [Q, k] -> plan [Q, n, k], <plan, cost> [Q].

    Rows are scaled to r, then columns to c, `iterations` times: columns end exact, rows close.
    """
    plan = torch.exp(-weight * cost)
    plan = plan / plan.sum(dim=(1, 2), keepdim=True)
    for _ in range(iterations):
        plan = plan * (r / plan.sum(dim=2))[:, :, None]
        plan = plan * (c / plan.sum(dim=1))[:, None, :]
    plan = torch.nan_to_num(plan, nan=1e-8)
    return plan, (plan * cost).sum(dim=(1, 2))


def column_normalise(plan: torch.Tensor) -> torch.Tensor:
    """plan [Q, n, k] -> columns summing to 1 over the tokens."""
    return plan / plan.sum(dim=1, keepdim=True).clamp_min(TINY)


def merge_closest_centroids(plan: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Merge, per problem, the two columns whose (un-normalised) weighted-mean centroids have the highest dot product.

    plan [Q, n, k], tokens [Q, n, d] -> plan [Q, n, k-1]: the other columns keep their order, the merged column
    (sum of the pair) goes last.
    """
    q, n, k = plan.shape
    centroids = column_normalise(plan).transpose(1, 2) @ tokens  # [Q, k, d]
    similarity = centroids @ centroids.transpose(1, 2)
    similarity = similarity - 2.0 * torch.eye(k, device=plan.device, dtype=plan.dtype)
    flat = similarity.flatten(1).argmax(dim=1)  # [Q]
    i, j = flat // k, flat % k
    columns = torch.arange(k, device=plan.device).expand(q, k)
    removed = (columns == i[:, None]) | (columns == j[:, None])
    kept = torch.where(removed, columns + k, columns).argsort(dim=1)[:, : k - 2]  # [Q, k-2], original order
    kept_plan = plan.gather(2, kept[:, None, :].expand(q, n, k - 2))
    merged = plan.gather(2, i.view(q, 1, 1).expand(q, n, 1)) + plan.gather(2, j.view(q, 1, 1).expand(q, n, 1))
    return torch.cat([kept_plan, merged], dim=2)


def transport_cost(
    tokens: torch.Tensor,
    centroids: torch.Tensor,
    positions: torch.Tensor,
    centroid_positions: torch.Tensor,
    lambda_pos: float,
    per_problem: bool,
) -> torch.Tensor:
    """M = -<t, c/|c|> + lambda_pos * dist / max(dist), min-max normalised. -> [Q, n, k]."""
    cost = -(tokens @ F.normalize(centroids, dim=-1).transpose(1, 2))
    if lambda_pos != 0:
        distance = (positions[:, :, None, :] - centroid_positions[:, None, :, :]).pow(2).sum(-1).sqrt()
        distance = distance / distance.amax(dim=(1, 2), keepdim=True).clamp_min(TINY)
        cost = cost + lambda_pos * distance
    if per_problem:
        low, high = cost.amin(dim=(1, 2), keepdim=True), cost.amax(dim=(1, 2), keepdim=True)
    else:
        low, high = cost.amin(), cost.amax()
    return (cost - low) / (high - low).clamp_min(TINY)


def split_views(plan: torch.Tensor) -> torch.Tensor:
    """plan [Q, n, k] -> [Q, 2, N, k] with each view's columns normalised to sum 1.

    Divides by the plain per-view sum like the authors' code, however tiny (a cluster can hold ~1e-20 of its mass
    in one view under a sharp Sinkhorn weight, and still sums to 1 there); only a column with no mass at all in a
    view stays zero (the authors' code gives NaN there).
    """
    q, n, k = plan.shape
    per_view = plan.view(q, 2, n // 2, k)
    sums = per_view.sum(dim=2, keepdim=True)  # [Q, 2, 1, k]
    return per_view / torch.where(sums > 0, sums, torch.ones_like(sums))


def _cluster(
    joint: JointTokens,
    positions: torch.Tensor,
    config: ClusteringConfig,
    init_idx: torch.Tensor | None,
    generator: torch.Generator | None,
) -> Clusters:
    tokens, similarity = joint.tokens.float(), joint.cls_similarity.float()
    q, _n, d = tokens.shape
    k_init, k_max = config.n_init, config.n_centroids_max
    per_problem = config.cost_normalization == "problem"
    token_marginal = torch.softmax(similarity / config.temp_r, dim=1)  # r: [Q, n]
    if init_idx is None:
        init_idx = sample_initial_centroids(token_marginal, k_init, generator)
    centroid_marginal = torch.softmax(similarity.gather(1, init_idx) / config.temp_c, dim=1)  # c: [Q, K]
    centroids = tokens.gather(1, init_idx[:, :, None].expand(q, k_init, d))
    centroid_positions = positions.gather(1, init_idx[:, :, None].expand(q, k_init, 2))

    costs, candidates = [], []
    for k in range(k_init, 1, -1):
        cost = transport_cost(tokens, centroids, positions, centroid_positions, config.lambda_pos, per_problem)
        plan, total = sinkhorn(cost, token_marginal, centroid_marginal, config.sinkhorn_weight,
                               config.sinkhorn_iterations)
        costs.append(total)
        if k <= k_max:
            candidates.append(F.pad(split_views(plan), (0, k_max - k)))  # [Q, 2, N, Kmax]
        if k == 2:
            break
        weights = column_normalise(merge_closest_centroids(plan, tokens))  # [Q, n, k-1]
        centroids = weights.transpose(1, 2) @ tokens
        centroid_positions = weights.transpose(1, 2) @ positions
        centroid_marginal = (token_marginal[:, :, None] * weights).sum(dim=1)
        centroid_marginal = centroid_marginal / centroid_marginal.sum(dim=1, keepdim=True)

    all_costs = torch.stack(costs, dim=1)  # [Q, K-1], k = K .. 2
    best = all_costs[:, -(k_max - 1):].argmin(dim=1)  # first minimum: ties go to the larger k
    chosen = torch.stack(candidates, dim=1)  # [Q, Kmax-1, 2, N, Kmax], k = Kmax .. 2
    selected = chosen.gather(1, best.view(q, 1, 1, 1, 1).expand(q, 1, *chosen.shape[2:])).squeeze(1)
    assignments = prune_to_argmax(selected)  # [Q, 2, N, Kmax]
    valid = (assignments.sum(dim=2) > 0).all(dim=1)  # [Q, Kmax]
    return Clusters(assignments.permute(1, 0, 2, 3), valid, k_max - best, all_costs)


def prune_to_argmax(weights: torch.Tensor) -> torch.Tensor:
    """Keep each token's weight only at its largest column (all tied maxima kept), zero elsewhere. [..., k]."""
    return weights * (weights == weights.amax(dim=-1, keepdim=True))


def view_centroids(
    last_tokens: torch.Tensor, assignments: torch.Tensor, cls_norm: torch.Tensor, heads: int
) -> torch.Tensor:
    """Weighted sums of each view's output tokens, L2-normalised, scaled to cls_norm.

    last_tokens [2, B, N, D] (patches only), assignments [2, Q, N, Kmax], cls_norm [] -> [2, Q*Kmax, D]
    with row q * Kmax + k.
    """
    views, b, n, dim = last_tokens.shape
    k_max = assignments.shape[-1]
    weights = assignments.view(views, b, heads, n, k_max).permute(0, 1, 2, 4, 3).reshape(views, b, heads * k_max, n)
    centroids = weights.to(last_tokens.dtype) @ last_tokens  # [2, B, H*Kmax, D]
    centroids = F.normalize(centroids.float(), dim=-1) * cls_norm.float()
    return centroids.reshape(views, b * heads * k_max, dim)


def mean_cls_norm(cls_tokens: torch.Tensor) -> torch.Tensor:
    """cls_tokens [..., D] -> mean L2 norm [] (the scale the centroids are given)."""
    return cls_tokens.float().norm(dim=-1).mean()


def check_inputs(tokens: torch.Tensor, patch_xy: torch.Tensor, config: ClusteringConfig, check_finite: bool) -> None:
    """Clear errors for bad clustering input. check_finite synchronises with the device: not for the hot path."""
    if tokens.dim() != 5 or tokens.shape[0] != 2:
        raise InputError(f"clustering tokens: expected [2, B, H, 1+N, d], got {list(tokens.shape)}")
    _, b, _, n1, _ = tokens.shape
    if patch_xy.shape != (2, b, n1 - 1, 2):
        raise InputError(f"patch positions: expected [2, {b}, {n1 - 1}, 2], got {list(patch_xy.shape)}")
    if config.n_init > 2 * (n1 - 1):
        raise InputError(
            f"clustering.n_init={config.n_init} is larger than the {2 * (n1 - 1)} joined tokens of the two views"
        )
    if check_finite and not (torch.isfinite(tokens).all() and torch.isfinite(patch_xy).all()):
        raise InputError("clustering input holds NaN or Inf values (teacher features or patch positions)")


class ViewCentroids(NamedTuple):
    """Teacher clusters and the centroids they give, per view."""

    clusters: Clusters
    centroids: torch.Tensor  # [2, Q*Kmax, D] teacher centroids (rows q * Kmax + k)
    valid: torch.Tensor  # [Q*Kmax] bool, a centroid pair present in both views


def cluster_views(
    clustered_tokens: torch.Tensor,
    last_tokens: torch.Tensor,
    patch_xy: torch.Tensor,
    config: ClusteringConfig,
    init_idx: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> ViewCentroids:
    """Join, locate and split for a batch of view pairs (teacher side, no gradient, fp32).

    clustered_tokens [2, B, H, 1+N, d] (per-head q/k/v, or last tokens with H=1), CLS first, not normalised;
    last_tokens [2, B, 1+N, D] after the final norm, CLS first; patch_xy [2, B, N, 2] in the original frame.
    """
    heads = clustered_tokens.shape[2]
    with torch.no_grad(), torch.autocast(device_type=last_tokens.device.type, enabled=False):
        clusters = _cluster(join_views(clustered_tokens), join_positions(patch_xy, heads), config, init_idx,
                            generator)
        cls_norm = mean_cls_norm(last_tokens[:, :, 0])
        centroids = view_centroids(last_tokens[:, :, 1:].float(), clusters.assignments, cls_norm, heads)
    return ViewCentroids(clusters, centroids, clusters.valid.flatten())
