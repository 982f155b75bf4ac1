"""REGNN training losses over speaker windows with a variable number of appropriate listener windows.

`counts[i]` listener codes belong to speaker window i; codes are stored consecutively (L = sum(counts)).
"""

from __future__ import annotations

import torch


def _repeat(x: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    return torch.repeat_interleave(x, counts, dim=0, output_size=int(counts.sum()))


def _group_min(values: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    groups = torch.repeat_interleave(torch.arange(len(counts), device=values.device), counts)
    out = torch.full((len(counts),), float("inf"), device=values.device, dtype=values.dtype)
    return out.scatter_reduce(0, groups, values, reduce="amin")


def best_neighbour_mse(mu: torch.Tensor, codes: torch.Tensor, counts: torch.Tensor,
                       threshold: float | None) -> torch.Tensor:
    """Mean over speakers of the smallest MSE between mu_i and its listeners' codes.

    Speakers whose best MSE is not above `threshold` contribute 0 (the reference's curriculum: the
    threshold is a third of the previous epoch's mean loss, so already-fitted windows stop pulling).
    """
    mse = (_repeat(mu, counts) - codes).pow(2).mean(dim=(1, 2))
    best = _group_min(mse, counts)
    if threshold is not None:
        best = torch.where(best > threshold, best, torch.zeros_like(best))
    return best.mean()


def mid_loss(codes: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """MSE of each code to the mean code of its speaker window: pulls appropriate reactions together."""
    groups = torch.repeat_interleave(torch.arange(len(counts), device=codes.device), counts)
    sums = torch.zeros((len(counts),) + codes.shape[1:], device=codes.device, dtype=codes.dtype)
    sums = sums.index_add(0, groups, codes)
    means = sums / counts.to(codes.dtype).view(-1, *([1] * (codes.dim() - 1)))
    return (_repeat(means, counts) - codes).pow(2).mean()


def smoothness_loss(codes: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between consecutive frames of (L, nodes, window) codes."""
    return (codes[..., 1:] - codes[..., :-1]).abs().mean()
