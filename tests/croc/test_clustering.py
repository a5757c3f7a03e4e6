"""The cross-view online clustering against the authors' outputs and against hand-computed cases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from croc.clustering import (
    ClusteringConfig,
    check_inputs,
    cluster_views,
    merge_closest_centroids,
    prune_to_argmax,
    sample_initial_centroids,
    sinkhorn,
    split_views,
)
from croc.errors import InputError

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "clustering_golden.npz"


def golden_cases() -> dict[str, dict[str, np.ndarray]]:
    data = np.load(GOLDEN)
    cases: dict[str, dict[str, np.ndarray]] = {}
    for key in data.files:
        case, field = key.split("/")
        cases.setdefault(case, {})[field] = data[key]
    return cases


CASES = golden_cases()


def config_from(params: np.ndarray, normalization: str) -> ClusteringConfig:
    k, k_max, lambda_pos, weight, iterations, temp_r, temp_c = params.tolist()
    return ClusteringConfig(int(k), int(k_max), lambda_pos, weight, int(iterations), temp_r, temp_c, normalization)


def run_case(case: dict[str, np.ndarray], normalization: str):
    config = config_from(case["params"], normalization)
    return cluster_views(torch.from_numpy(case["qkv_tokens"]), torch.from_numpy(case["last_tokens"]),
                         torch.from_numpy(case["patch_xy"]), config, torch.from_numpy(case["init_idx"]))


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_authors_code(name: str) -> None:
    case = CASES[name]
    normalization = "batch" if name.startswith("batch") else "problem"  # copies_*: our default must match
    out = run_case(case, normalization)
    clusters = out.clusters
    np.testing.assert_array_equal(clusters.chosen_k.numpy(), case["chosen_k"])
    np.testing.assert_allclose(clusters.costs.numpy(), case["costs"], atol=1e-4)

    k_used = int(case["chosen_k"].max())
    ours = clusters.assignments.numpy()
    np.testing.assert_array_equal(ours[..., :k_used] > 0, case["assignments"] > 0)
    np.testing.assert_allclose(ours[..., :k_used], case["assignments"], atol=1e-4)
    assert not ours[..., k_used:].any(), "columns past every chosen k must be zero padding"

    problem, column = np.divmod(case["valid_centroids"], k_used)
    np.testing.assert_array_equal(torch.nonzero(clusters.valid).numpy(), np.stack([problem, column], 1))
    rows = problem * clusters.valid.shape[1] + column
    golden_rows = np.argsort(case["order_valid"])
    for view, key in enumerate(("centroids_v1", "centroids_v2")):
        np.testing.assert_allclose(out.centroids[view][rows].numpy(), case[key][golden_rows], atol=1e-4)


def test_default_normalisation_differs_from_batch_only_where_problems_differ() -> None:
    copies = CASES["copies_seed1_pos4"]
    a, b = run_case(copies, "problem"), run_case(copies, "batch")
    torch.testing.assert_close(a.clusters.assignments, b.clusters.assignments)


def random_problem(b: int, h: int, n_side: int = 6, d: int = 16, dim: int = 32, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    n = n_side * n_side
    qkv = torch.randn(2, b, h, 1 + n, d, generator=g)
    last = torch.randn(2, b, 1 + n, dim, generator=g)
    grid = torch.stack(torch.meshgrid(torch.arange(n_side), torch.arange(n_side), indexing="xy"), -1)
    xy = grid.reshape(n, 2).float() * 16 + 7.5
    view1 = xy + 3.0 * torch.rand(b, 1, 2, generator=g)
    patch_xy = torch.stack([view1, (xy * 0.7 + 20.0).expand(b, n, 2)])  # [2, B, N, 2]
    return qkv, last, patch_xy


def test_sinkhorn_columns_exact_rows_close() -> None:
    g = torch.Generator().manual_seed(1)
    cost = torch.rand(3, 50, 6, generator=g)
    r = torch.softmax(torch.randn(3, 50, generator=g), 1)
    c = torch.softmax(torch.randn(3, 6, generator=g), 1)
    plan, total = sinkhorn(cost, r, c, weight=20.0, iterations=5)
    torch.testing.assert_close(plan.sum(1), c, atol=1e-6, rtol=0)
    assert (plan.sum(2) - r).abs().max() < 0.2 * r.max()
    torch.testing.assert_close(total, (plan * cost).sum((1, 2)))
    # more iterations bring the rows to their marginal
    plan_long, _ = sinkhorn(cost, r, c, weight=20.0, iterations=500)
    torch.testing.assert_close(plan_long.sum(2), r, atol=1e-5, rtol=1e-3)


def test_merge_rule_and_column_order() -> None:
    # 4 tokens (unit vectors), 4 columns; columns 1 and 3 weigh nearly identical directions -> merged, last.
    tokens = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8], [0.0, -1.0]])[None]
    plan = torch.tensor([[0.9, 0.1, 0.0, 0.0],
                         [0.0, 0.5, 0.0, 0.5],
                         [0.1, 0.2, 0.0, 0.3],
                         [0.0, 0.0, 1.0, 0.0]])[None]
    # weighted means: c0 = (0.9 t0 + 0.1 t2)/1.0, c1 = (.1 t0 + .5 t1 + .2 t2)/.8, c2 = t3, c3 = (.5 t1 + .3 t2)/.8
    c = torch.stack([(0.9 * tokens[0, 0] + 0.1 * tokens[0, 2]) / 1.0,
                     (0.1 * tokens[0, 0] + 0.5 * tokens[0, 1] + 0.2 * tokens[0, 2]) / 0.8,
                     tokens[0, 3],
                     (0.5 * tokens[0, 1] + 0.3 * tokens[0, 2]) / 0.8])
    sim = c @ c.T - 2 * torch.eye(4)
    i, j = divmod(int(sim.argmax()), 4)
    assert {i, j} == {1, 3}
    merged = merge_closest_centroids(plan, tokens)
    expected = torch.stack([plan[0, :, 0], plan[0, :, 2], plan[0, :, 1] + plan[0, :, 3]], 1)[None]
    torch.testing.assert_close(merged, expected)


def test_centroid_marginal_update_by_hand() -> None:
    # After a merge, c_k ~ sum_n r_n P_nk / sum_n P_nk; check with numpy on one iteration of the loop.
    qkv, last, patch_xy = random_problem(1, 1, n_side=3, seed=3)
    config = ClusteringConfig(n_init=3, n_centroids_max=2, lambda_pos=0.0)
    init = torch.tensor([[0, 5, 11]])
    out = cluster_views(qkv, last, patch_xy, config, init)
    # Recompute independently: k=3 plan, merge, then the k=2 plan with the updated marginal.
    t = torch.nn.functional.normalize(qkv[:, 0, 0], dim=-1).numpy()  # [2, 1+N, d]
    cls, patches = t[:, 0], t[:, 1:]
    tokens = np.concatenate([patches[0], patches[1]])
    s = np.concatenate([patches[0] @ cls[0], patches[1] @ cls[1]])
    r = np.exp(s / 2) / np.exp(s / 2).sum()
    c = np.exp(s[init[0].numpy()] / 2) / np.exp(s[init[0].numpy()] / 2).sum()

    def plan_for(centroids, c):
        m = -(tokens @ (centroids / np.linalg.norm(centroids, axis=1, keepdims=True)).T)
        m = (m - m.min()) / (m.max() - m.min())
        p = np.exp(-20 * m)
        p /= p.sum()
        for _ in range(5):
            p *= (r / p.sum(1))[:, None]
            p *= (c / p.sum(0))[None]
        return p, (p * m).sum()

    p3, cost3 = plan_for(tokens[init[0].numpy()], c)
    a = p3 / p3.sum(0)
    cent = a.T @ tokens
    sim = cent @ cent.T - 2 * np.eye(3)
    i, j = divmod(int(sim.argmax()), 3)
    keep = [x for x in range(3) if x not in (i, j)]
    p_merged = np.concatenate([p3[:, keep], p3[:, [i]] + p3[:, [j]]], 1)
    a2 = p_merged / p_merged.sum(0)
    c2 = (r[:, None] * a2).sum(0)
    c2 /= c2.sum()
    _p2, cost2 = plan_for(a2.T @ tokens, c2)
    np.testing.assert_allclose(out.clusters.costs[0].numpy(), [cost3, cost2], rtol=1e-4, atol=1e-6)


def test_chosen_k_is_lowest_cost_in_window_ties_to_larger_k() -> None:
    qkv, last, patch_xy = random_problem(4, 3, seed=5)
    config = ClusteringConfig(n_init=8, n_centroids_max=5)
    out = cluster_views(qkv, last, patch_xy, config, generator=torch.Generator().manual_seed(0))
    costs = out.clusters.costs.numpy()  # k = 8..2
    ks = np.arange(8, 1, -1)
    window = ks <= 5
    for q in range(costs.shape[0]):
        best = costs[q, window].min()
        expected = ks[window][costs[q, window] == best].max()
        assert out.clusters.chosen_k[q] == expected
        assert out.clusters.valid[q, expected:].sum() == 0


def test_split_views_normalises_tiny_view_mass_and_keeps_empty_columns_zero() -> None:
    # N = 2 tokens per view, 4 columns. Column 0 holds ~1e-20 in view 2 (a sharp Sinkhorn weight does this): the
    # plain division of the authors' code still sums it to 1 there. Column 2 is empty in view 2, column 3 in both.
    plan = torch.tensor([[0.30, 0.20, 0.04, 0.0],
                         [0.10, 0.20, 0.01, 0.0],
                         [1e-20, 0.10, 0.0, 0.0],
                         [3e-20, 0.10, 0.0, 0.0]])[None]  # [Q=1, n=4, k=4], view 1 rows then view 2 rows
    # by hand: each view's column divided by its own sum (0.4 / 4e-20 / 0.05 ...), empty ones left at zero
    expected = torch.tensor([[[0.75, 0.5, 0.8, 0.0],
                              [0.25, 0.5, 0.2, 0.0]],
                             [[0.25, 0.5, 0.0, 0.0],
                              [0.75, 0.5, 0.0, 0.0]]])[None]  # [Q, 2, N, k]
    out = split_views(plan)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(out[0, 1, :, 0].sum(), torch.tensor(1.0))


def test_prune_keeps_argmax_only() -> None:
    weights = torch.tensor([[0.2, 0.5, 0.3], [0.6, 0.1, 0.3], [0.0, 0.0, 0.0]])
    expected = torch.tensor([[0.0, 0.5, 0.0], [0.6, 0.0, 0.0], [0.0, 0.0, 0.0]])
    torch.testing.assert_close(prune_to_argmax(weights), expected)


def test_batching_equals_solving_each_problem_alone() -> None:
    qkv, last, patch_xy = random_problem(3, 2, seed=7)
    config = ClusteringConfig(n_init=6, n_centroids_max=4, lambda_pos=3.0)
    init = sample_initial_centroids(torch.full((6, 72), 1 / 72), 6, torch.Generator().manual_seed(1))
    batched = cluster_views(qkv, last, patch_xy, config, init)
    for b in range(3):
        for h in range(2):
            q = b * 2 + h
            alone = cluster_views(qkv[:, b:b + 1, h:h + 1], last[:, b:b + 1], patch_xy[:, b:b + 1], config,
                                  init[q:q + 1])
            torch.testing.assert_close(batched.clusters.assignments[:, q], alone.clusters.assignments[:, 0])
            assert batched.clusters.chosen_k[q] == alone.clusters.chosen_k[0]


def test_lambda_pos_zero_ignores_positions() -> None:
    qkv, last, patch_xy = random_problem(2, 2, seed=9)
    config = ClusteringConfig(n_init=6, lambda_pos=0.0)
    init = sample_initial_centroids(torch.full((4, 72), 1 / 72), 6, torch.Generator().manual_seed(2))
    a = cluster_views(qkv, last, patch_xy, config, init)
    b = cluster_views(qkv, last, torch.rand_like(patch_xy) * 500, config, init)
    torch.testing.assert_close(a.clusters.assignments, b.clusters.assignments)
    with_pos = cluster_views(qkv, last, torch.rand_like(patch_xy) * 500, ClusteringConfig(n_init=6), init)
    assert not torch.equal(with_pos.clusters.costs, a.clusters.costs)


def test_sampling_is_without_replacement_and_follows_marginal() -> None:
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    draws = sample_initial_centroids(probs.expand(20000, 4), 3, torch.Generator().manual_seed(0))
    assert all(len(set(row)) == 3 for row in draws[:200].tolist())
    first = torch.bincount(draws[:, 0], minlength=4).float() / 20000
    torch.testing.assert_close(first, probs, atol=0.015, rtol=0)


def test_centroids_have_mean_cls_norm_and_use_last_tokens() -> None:
    qkv, last, patch_xy = random_problem(2, 3, seed=11)
    out = cluster_views(qkv, last, patch_xy, ClusteringConfig(n_init=6), generator=torch.Generator().manual_seed(3))
    norms = out.centroids.norm(dim=-1)[:, out.valid]
    torch.testing.assert_close(norms, torch.full_like(norms, float(last[:, :, 0].norm(dim=-1).mean())))


def test_bad_inputs_are_named() -> None:
    qkv, _last, patch_xy = random_problem(1, 1, n_side=2)
    with pytest.raises(InputError, match="n_init"):
        ClusteringConfig(n_init=1)
    with pytest.raises(InputError, match="n_centroids_max"):
        ClusteringConfig(n_init=4, n_centroids_max=6)
    with pytest.raises(InputError, match="larger than the 8 joined tokens"):
        check_inputs(qkv, patch_xy, ClusteringConfig(n_init=12), check_finite=True)
    with pytest.raises(InputError, match=r"expected \[2, B, H, 1\+N, d\]"):
        check_inputs(qkv[0], patch_xy, ClusteringConfig(n_init=4), check_finite=True)
    with pytest.raises(InputError, match="patch positions"):
        check_inputs(qkv, patch_xy[:, :, :3], ClusteringConfig(n_init=4), check_finite=True)
    bad = qkv.clone()
    bad[0, 0, 0, 2, 1] = float("nan")
    with pytest.raises(InputError, match="NaN or Inf"):
        check_inputs(bad, patch_xy, ClusteringConfig(n_init=4), check_finite=True)


def test_runs_in_fp32_under_autocast() -> None:
    case = CASES["copies_seed2_pos0"]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = run_case(case, "problem")
    assert out.centroids.dtype == torch.float32
    np.testing.assert_array_equal(out.clusters.chosen_k.numpy(), case["chosen_k"])


def test_traces_as_one_graph() -> None:
    """fullgraph=True fails on any graph break: no .item(), no data-dependent shape, no Python loop over data.

    Dynamo's tracing decides graph breaks whatever the backend; the cheap "eager" backend keeps this test fast.
    """
    qkv, last, patch_xy = random_problem(2, 2, seed=13)
    config = ClusteringConfig(n_init=6, n_centroids_max=3)
    init = sample_initial_centroids(torch.full((4, 72), 1 / 72), 6, torch.Generator().manual_seed(4))
    torch._dynamo.reset()
    traced = torch.compile(cluster_views, fullgraph=True, backend="eager")
    got, expected = traced(qkv, last, patch_xy, config, init), cluster_views(qkv, last, patch_xy, config, init)
    torch.testing.assert_close(got.clusters.assignments, expected.clusters.assignments)
    sampled = traced(qkv, last, patch_xy, config, None)  # the sampling path traces as one graph too
    assert sampled.clusters.chosen_k.shape == (4,)


@pytest.mark.slow
def test_compiles_with_inductor_and_matches_eager() -> None:
    qkv, last, patch_xy = random_problem(2, 2, n_side=4, seed=13)
    config = ClusteringConfig(n_init=4, n_centroids_max=3)
    init = sample_initial_centroids(torch.full((4, 32), 1 / 32), 4, torch.Generator().manual_seed(4))
    compiled = torch.compile(cluster_views, fullgraph=True)
    got, expected = compiled(qkv, last, patch_xy, config, init), cluster_views(qkv, last, patch_xy, config, init)
    torch.testing.assert_close(got.clusters.assignments, expected.clusters.assignments, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(got.centroids, expected.centroids, atol=1e-5, rtol=1e-4)
