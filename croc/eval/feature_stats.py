"""Streaming per-channel standardisation and PCA of bilinearly upsampled token features, without upsampling them.

The unsupervised protocol (docs/evaluation.md) standardises every channel over all pixel vectors of a split
at the mask resolution, then fits a PCA. Upsampling [N, C, h, w] tokens to [N, C, M, M] would cost N*C*M*M
values (14.5e9 bytes of float32 per 1,449 VOC images with ViT-S), so nothing here materialises it:

* PyTorch's bilinear upsampling (align_corners=False) is separable: U_c = A_h X_c A_w^T with 1-D interpolation
  matrices A_h [M, h], A_w [M, w] whose rows sum to 1 and hold at most two non-zeros. Hence, per channel,
  sum(U_c) = 1^T A_h X_c A_w^T 1 and sum(U_c^2) = sum(X_c * (G_h X_c G_w)) with G = A^T A: the exact mean and
  variance over all upsampled vectors cost O(C h w (h + w)) per image (``UpsampledChannelStats``).
* A single upsampled vector is the weighted sum of at most four tokens (``GridTaps.gather``), so a random subsample
  of upsampled vectors is gathered without upsampling (used for the PCA fit and the K-Means training sample).
* Standardisation + projection is affine and the bilinear weights sum to 1, so projecting the TOKENS then
  upsampling equals upsampling then projecting (``StandardisedPCA.project``).

Shapes: N images, C channels, (h, w) token grid, (H, W) output (mask) grid, d = PCA dimension.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from croc.errors import InputError

Progress = Callable[[str, int, int], None]
MIN_SCALE = 1e-12  # a channel with (near) zero variance is centred but not scaled (like sklearn's StandardScaler)


def interpolation_matrix(in_size: int, out_size: int) -> torch.Tensor:
    """[out_size, in_size] float64 weights of 1-D linear interpolation exactly as F.interpolate (align_corners=False).

    in_size == out_size gives the identity. Built by interpolating the unit vectors, so it matches PyTorch's kernel.
    """
    if in_size == out_size:
        return torch.eye(in_size, dtype=torch.float64)
    eye = torch.eye(in_size, dtype=torch.float64).unsqueeze(1)  # [in, 1, in]: row a is the unit vector e_a
    columns = F.interpolate(eye, size=out_size, mode="linear", align_corners=False)  # [in, 1, out]
    return columns[:, 0, :].T.contiguous()


def _taps(matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Interpolation matrix [out, in] -> (source index [out, k] int64, weight [out, k] float32), k = max non-zeros."""
    k = int((matrix != 0).sum(1).max())
    weight, index = matrix.topk(k, dim=1)
    return index, weight.float()


@dataclass(frozen=True)
class GridTaps:
    """The (at most) two source rows/columns and weights of every output row/column of a bilinear upsampling."""

    row_index: torch.Tensor  # [H, 2] int64
    row_weight: torch.Tensor  # [H, 2] float32
    col_index: torch.Tensor  # [W, 2] int64
    col_weight: torch.Tensor  # [W, 2] float32

    @staticmethod
    def create(grid: tuple[int, int], out: tuple[int, int]) -> GridTaps:
        ri, rw = _taps(interpolation_matrix(grid[0], out[0]))
        ci, cw = _taps(interpolation_matrix(grid[1], out[1]))
        return GridTaps(ri, rw, ci, cw)

    @property
    def out_size(self) -> tuple[int, int]:
        return self.row_index.shape[0], self.col_index.shape[0]

    def token_taps(self, flat_index: torch.Tensor, grid: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Output positions ``flat_index`` (into [B, H, W] flattened) -> the tokens they interpolate.

        Returns (token [n, k] int64 into [B, h, w] flattened, weight [n, k] float32), k <= 4, weights summing to 1.
        """
        height, width = self.out_size
        per_image = height * width
        local_token, local_weight = self._position_table(grid)  # [H*W, k] each
        position = flat_index % per_image
        base = (flat_index // per_image) * (grid[0] * grid[1])
        return base.unsqueeze(1) + local_token[position], local_weight[position]

    def _position_table(self, grid: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Per output position (row-major [H*W]): its tokens [H*W, k] into [h, w] flattened and weights [H*W, k]."""
        w = grid[1]
        token = self.row_index.unsqueeze(1).unsqueeze(3) * w + self.col_index.unsqueeze(0).unsqueeze(2)
        weight = self.row_weight.unsqueeze(1).unsqueeze(3) * self.col_weight.unsqueeze(0).unsqueeze(2)
        return token.flatten(2).flatten(0, 1), weight.flatten(2).flatten(0, 1)  # [H, W, kr, kc] -> [H*W, kr*kc]

    def gather(self, tokens: torch.Tensor, flat_index: torch.Tensor) -> torch.Tensor:
        """Upsampled vectors at ``flat_index`` (into [B, H, W] flattened) of tokens [B, C, h, w] -> [n, C] float32.

        Equal to ``F.interpolate(tokens, (H, W), mode="bilinear").permute(0, 2, 3, 1).reshape(-1, C)[flat_index]``.
        """
        channels = tokens.shape[1]
        token, weight = self.token_taps(flat_index, tuple(tokens.shape[2:]))
        rows = tokens.detach().cpu().permute(0, 2, 3, 1).float().reshape(-1, channels)  # [B*h*w, C] contiguous
        out = torch.zeros(flat_index.numel(), channels, dtype=torch.float32)
        for t in range(token.shape[1]):
            out.addcmul_(weight[:, t:t + 1], rows.index_select(0, token[:, t]))
        return out

    def sample_gram(self, flat_index: torch.Tensor, batch: int,
                    grid: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Second-moment operator of the upsampled vectors at ``flat_index`` (into [batch, H, W] flattened).

        With W_b [n_b, h*w] the interpolation weights of image b's sampled positions, returns
        (gram [batch, h*w, h*w] float32 = W_b^T W_b, mass [batch, h*w] float32 = W_b^T 1), so that for tokens
        Z_b [C, h*w]: sum of the sampled vectors = Z_b mass_b and sum of their outer products = Z_b gram_b Z_b^T.
        """
        hw = grid[0] * grid[1]
        token, weight = self.token_taps(flat_index, grid)  # [n, k] into [batch * hw]
        image = token // hw
        local = token % hw
        pair = (image.unsqueeze(2) * hw + local.unsqueeze(2)) * hw + local.unsqueeze(1)  # [n, k, k]
        pair_weight = weight.unsqueeze(2) * weight.unsqueeze(1)
        gram = torch.zeros(batch * hw * hw, dtype=torch.float32)
        gram.index_add_(0, pair.flatten(), pair_weight.flatten())
        mass = torch.zeros(batch * hw, dtype=torch.float32).index_add_(0, token.flatten(), weight.flatten())
        return gram.view(batch, hw, hw), mass.view(batch, hw)


class UpsampledChannelStats:
    """Exact streaming per-channel mean / variance of tokens [B, C, h, w] bilinearly upsampled to (H, W).

    Float64 accumulators of shifted sums (the shift, the first batch's token mean, is exact since upsampling
    preserves constants), so E[x^2] - E[x]^2 suffers no cancellation; each batch's centred sums are computed
    in float32 (exact up to float32 rounding of one batch) and added to the float64 accumulators. Variance is
    the population one (ddof=0).
    """

    def __init__(self, channels: int, grid: tuple[int, int], out: tuple[int, int]) -> None:
        ah, aw = interpolation_matrix(grid[0], out[0]), interpolation_matrix(grid[1], out[1])  # [H, h], [W, w]
        self.row_mass, self.col_mass = ah.sum(0), aw.sum(0)  # [h], [w]
        self.row_gram, self.col_gram = ah.T @ ah, aw.T @ aw  # [h, h], [w, w]
        # Per-batch algebra runs in float32 on centred values; the per-channel results accumulate in float64.
        self.row_mass_f, self.col_mass_f = self.row_mass.float(), self.col_mass.float()
        self.row_gram_f, self.col_gram_f = self.row_gram.float(), self.col_gram.float()
        self.grid, self.out = grid, out
        self.shift: torch.Tensor | None = None  # [C] float64
        self.sum = torch.zeros(channels, dtype=torch.float64)
        self.sum_sq = torch.zeros(channels, dtype=torch.float64)
        self.count = 0

    def update(self, tokens: torch.Tensor) -> None:
        """Add tokens [B, C, h, w] (any float dtype)."""
        if tokens.shape[1] != self.sum.shape[0] or tuple(tokens.shape[2:]) != self.grid:
            raise InputError(f"tokens shape {list(tokens.shape)}: expected [B, {self.sum.shape[0]}, *{self.grid}]")
        x = tokens.detach().cpu().float()
        if self.shift is None:
            self.shift = x.mean(dim=(0, 2, 3), dtype=torch.float64)
        x = x - self.shift.float().view(1, -1, 1, 1)  # [B, C, h, w] float32, centred-ish
        self.sum += torch.einsum("bcij,i,j->c", x, self.row_mass_f, self.col_mass_f).double()
        # sum(U_c^2) = sum(X_c * (G_h X_c G_w)), as two large GEMMs over the transposed layout:
        right = (x.reshape(-1, x.shape[-1]) @ self.col_gram_f).view(x.shape)  # X G_w
        both_t = right.transpose(-1, -2).reshape(-1, x.shape[-2]) @ self.row_gram_f  # (G_h X G_w)^T rows
        prod = x.transpose(-1, -2).reshape(both_t.shape) * both_t
        self.sum_sq += prod.view(x.shape[0], x.shape[1], -1).sum(dim=(0, 2), dtype=torch.float64)
        self.count += x.shape[0] * self.out[0] * self.out[1]

    @property
    def mean(self) -> torch.Tensor:
        """[C] float64 mean over every upsampled vector."""
        self._check_any()
        return self.shift + self.sum / self.count

    @property
    def var(self) -> torch.Tensor:
        """[C] float64 population variance (ddof=0) over every upsampled vector."""
        self._check_any()
        centred = self.sum / self.count
        return (self.sum_sq / self.count - centred * centred).clamp_min(0.0)

    @property
    def std(self) -> torch.Tensor:
        return self.var.sqrt()

    def _check_any(self) -> None:
        if self.count == 0:
            raise InputError("no features were added to the channel statistics")


def sample_indices(total: int, n: int, generator: torch.Generator) -> torch.Tensor:
    """``min(n, total)`` distinct indices of [0, total), uniformly without replacement, sorted; int64 [n].

    Memory O(n) when n is small against total (rejection of duplicates), else one permutation of total.
    """
    if n >= total:
        return torch.arange(total)
    if 4 * n >= total:
        return torch.randperm(total, generator=generator)[:n].sort().values
    picked = torch.empty(0, dtype=torch.int64)
    while picked.numel() < n:
        draw = torch.randint(0, total, (int((n - picked.numel()) * 1.1) + 16,), generator=generator)
        picked = torch.cat([picked, draw]).unique()
    keep = torch.randperm(picked.numel(), generator=generator)[:n]
    return picked[keep].sort().values


def batched_gather(tokens: torch.Tensor, taps: GridTaps, flat_index: torch.Tensor, batch_size: int,
                   consume: Callable[[torch.Tensor], None], progress: Progress | None = None,
                   description: str = "gather") -> None:
    """Stream the upsampled vectors at sorted ``flat_index`` (into [N, H, W]) of tokens [N, C, h, w] to ``consume``.

    Images are read ``batch_size`` at a time; ``consume`` receives [n_batch, C] float32 chunks in index order.
    """
    n_images = tokens.shape[0]
    per_image = taps.out_size[0] * taps.out_size[1]
    for start in range(0, n_images, batch_size):
        stop = min(start + batch_size, n_images)
        lo, hi = torch.searchsorted(flat_index, torch.tensor([start * per_image, stop * per_image])).tolist()
        if hi > lo:
            consume(taps.gather(tokens[start:stop], flat_index[lo:hi] - start * per_image))
        if progress is not None:
            progress(description, stop, n_images)


@dataclass(frozen=True)
class StandardisedPCA:
    """Per-channel standardisation then PCA, as one affine map: y = weight @ x + bias.

    ``components`` [d, C] are the top eigenvectors (descending eigenvalue, sign fixed so that the largest |entry|
    is positive) of the covariance of the standardised sample; y = components @ ((x - mean) / scale - centre).
    """

    mean: torch.Tensor  # [C] float64, over every upsampled vector
    scale: torch.Tensor  # [C] float64 standard deviation (ddof=0), 1 where it is ~0
    centre: torch.Tensor  # [C] float64 mean of the standardised PCA sample
    components: torch.Tensor  # [d, C] float64
    explained_variance: torch.Tensor  # [d] float64 eigenvalues
    sample_size: int

    @property
    def weight(self) -> torch.Tensor:
        """[d, C] float64."""
        return self.components / self.scale

    @property
    def bias(self) -> torch.Tensor:
        """[d] float64."""
        return -self.components @ (self.mean / self.scale + self.centre)

    def project(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens [B, C, h, w] (any float dtype, any device) -> [B, d, h, w] float32 on the same device."""
        weight = self.weight.to(tokens.device, torch.float32)
        bias = self.bias.to(tokens.device, torch.float32)
        y = torch.einsum("dc,bchw->bdhw", weight, tokens.float())
        return y + bias.view(1, -1, 1, 1)


def channel_statistics(tokens: torch.Tensor, out: tuple[int, int], batch_size: int,
                       progress: Progress | None = None) -> UpsampledChannelStats:
    """Exact per-channel statistics of tokens [N, C, h, w] upsampled (bilinear) to ``out``, streamed per batch."""
    stats = UpsampledChannelStats(tokens.shape[1], tuple(tokens.shape[2:]), out)
    for start in range(0, tokens.shape[0], batch_size):
        stats.update(tokens[start:start + batch_size])
        if progress is not None:
            progress("statistics", min(start + batch_size, tokens.shape[0]), tokens.shape[0])
    return stats


def fit_standardised_pca(tokens: torch.Tensor, stats: UpsampledChannelStats, pca_dim: int, max_vectors: int,
                         seed: int, batch_size: int, progress: Progress | None = None) -> StandardisedPCA:
    """Fit the PCA on a seeded uniform subsample of at most ``max_vectors`` upsampled, standardised vectors.

    tokens [N, C, h, w]; ``stats`` (from ``channel_statistics``) fixes the output grid and the standardisation.
    The sample is never gathered: per batch of images its second moments are Z W^T W Z^T with the standardised
    tokens Z [C, h*w] and the sparse interpolation weights W of the sampled positions (``GridTaps.sample_gram``),
    one float32 GEMM per batch added into float64 accumulators; the covariance is eigendecomposed in float64.
    """
    channels = tokens.shape[1]
    if not 1 <= pca_dim <= channels:
        raise InputError(f"unsupervised.pca_dim={pca_dim}: must lie in [1, {channels}] (the feature channels)")
    taps = GridTaps.create(stats.grid, stats.out)
    total = tokens.shape[0] * stats.out[0] * stats.out[1]
    index = sample_indices(total, max_vectors, torch.Generator().manual_seed(seed))
    if index.numel() <= pca_dim:
        raise InputError(f"PCA sample of {index.numel()} vectors is too small for pca_dim={pca_dim}: need more "
                         "than pca_dim vectors (raise max_pca_vectors or use more images)")
    mean, scale = stats.mean, stats.std
    scale = torch.where(scale > MIN_SCALE, scale, torch.ones_like(scale))
    z_sum = torch.zeros(channels, dtype=torch.float64)
    z_outer = torch.zeros(channels, channels, dtype=torch.float64)
    per_image = stats.out[0] * stats.out[1]
    n_images = tokens.shape[0]
    for lo in range(0, n_images, batch_size):
        hi = min(lo + batch_size, n_images)
        first, last = torch.searchsorted(index, torch.tensor([lo * per_image, hi * per_image])).tolist()
        if last > first:
            gram, mass = taps.sample_gram(index[first:last] - lo * per_image, hi - lo, stats.grid)
            z = (tokens[lo:hi].float().flatten(2) - mean.float().view(1, -1, 1)) / scale.float().view(1, -1, 1)
            smoothed = torch.bmm(z, gram)  # [B, C, hw]: Z_b W_b^T W_b
            z_outer += torch.einsum("bcn,bdn->cd", smoothed, z).double()  # sum of z z^T over the sampled vectors
            z_sum += torch.einsum("bcn,bn->c", z, mass).double()
        if progress is not None:
            progress("pca", hi, n_images)
    n = index.numel()
    centre = z_sum / n
    cov = z_outer / n - torch.outer(centre, centre)  # [C, C]
    eigval, eigvec = torch.linalg.eigh(cov)  # ascending
    order = torch.argsort(eigval, descending=True)[:pca_dim]
    components = eigvec[:, order].T.contiguous()  # [d, C]
    flip = components.gather(1, components.abs().argmax(1, keepdim=True)).sign()
    components = components * torch.where(flip == 0, torch.ones_like(flip), flip)
    return StandardisedPCA(mean, scale, centre, components, eigval[order].clamp_min(0.0), n)


def project_tokens(tokens: torch.Tensor, pca: StandardisedPCA, batch_size: int,
                   progress: Progress | None = None) -> torch.Tensor:
    """tokens [N, C, h, w] -> projected tokens [N, d, h, w] float32 (CPU), batch by batch."""
    n = tokens.shape[0]
    out = torch.empty(n, pca.components.shape[0], *tokens.shape[2:], dtype=torch.float32)
    for start in range(0, n, batch_size):
        out[start:start + batch_size] = pca.project(tokens[start:start + batch_size])
        if progress is not None:
            progress("projection", min(start + batch_size, n), n)
    return out
