"""Cognitive processor: the latent mean mu (B, nodes, window) and the multi-dimensional edges E.

Graph nodes are the 25 facial attributes; a node's feature is its series over the window. mu is where the
motor processor's latent code of an appropriate reaction should lie; E (B, channels, nodes, nodes) is the
graph that code is decoded on.
"""

from __future__ import annotations

import torch
from torch import nn


class Mlp(nn.Module):
    """Two linear layers with a GELU between them."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int):
        super().__init__()
        self.fc1 = nn.Linear(in_dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


def normalise_edges(edge: torch.Tensor, eps: float = 1e-16) -> torch.Tensor:
    """Row-normalise, column-normalise that, and return R @ C^T (symmetric, non-negative)."""
    rows = edge / (edge.sum(dim=-1, keepdim=True) + eps)
    cols = rows / (rows.sum(dim=-2, keepdim=True) + eps)
    return rows @ cols.transpose(-1, -2)


class EdgeLayer(nn.Module):
    """Attention over nodes in `channels` heads, sparsified to the top-k neighbours and normalised."""

    def __init__(self, dim: int, channels: int = 8, neighbours: int = 5, union_mask: bool = True):
        super().__init__()
        self.dim = dim
        self.channels = channels
        self.neighbours = neighbours
        self.union_mask = union_mask
        self.qk = nn.Sequential(Mlp(dim, dim, dim), nn.Linear(dim, 2 * channels * dim, bias=False))

    def sparsity_mask(self, attn: torch.Tensor) -> torch.Tensor:
        """(B, N, N) 0/1 mask from the channel-summed attention, always keeping self-loops.

        Per row it keeps that row's top-k columns. With `union_mask` (the reference behaviour) every row
        keeps the union of all rows' top-k columns, which usually keeps every edge.
        """
        b, n = attn.shape[0], attn.shape[-1]
        k = min(self.neighbours, n)
        top = attn.detach().sum(dim=1).topk(k, dim=-1).indices  # (B, N, k)
        if self.union_mask:
            cols = torch.zeros(b, n, device=attn.device, dtype=attn.dtype)
            cols.scatter_(1, top.reshape(b, -1), 1.0)
            mask = cols[:, None, :].expand(b, n, n).clone()
        else:
            mask = torch.zeros(b, n, n, device=attn.device, dtype=attn.dtype).scatter_(-1, top, 1.0)
        eye = torch.eye(n, device=attn.device, dtype=attn.dtype)
        return torch.maximum(mask, eye)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qk = self.qk(x).reshape(b, n, 2, self.channels, c).permute(2, 0, 3, 1, 4)
        attn = (qk[0] @ qk[1].transpose(-2, -1) * c ** -0.5).softmax(dim=-1)  # (B, P, N, N)
        return normalise_edges(self.sparsity_mask(attn)[:, None] * attn)


class CognitiveProcessor(nn.Module):
    """Map fused features (B, T, input_dim) to mu (B, nodes, T) and edges (B, channels, nodes, nodes)."""

    def __init__(self, input_dim: int = 64, nodes: int = 25, window: int = 50, edge_channels: int = 8,
                 edge_neighbours: int = 5, union_mask: bool = True):
        super().__init__()
        self.convert = Mlp(input_dim, input_dim // 2, nodes)
        self.edges = EdgeLayer(window, edge_channels, edge_neighbours, union_mask)

    def forward(self, fused: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu = self.convert(fused).transpose(1, 2)
        return mu, self.edges(mu)
