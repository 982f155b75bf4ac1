"""Motor processor: a reversible graph neural network (i-ResNet style) over the facial-attribute graph.

Each block is y = a(x) + f(a(x)) with a per-node ActNorm `a` and a graph-attention branch `f` divided by a
Lipschitz normaliser so that f is a contraction; the block is then invertible and its inverse is the
fixed point of x <- y - f(x). Training encodes real listener reactions into the latent space
(forward); generation decodes sampled latents into reactions (inverse).
"""

from __future__ import annotations

import torch
from torch import nn

ACTIVATIONS = {"ReLU": nn.ReLU, "ELU": nn.ELU, "GELU": nn.GELU, "None": nn.Identity}


class InverseError(RuntimeError):
    """The fixed-point iteration did not reach the requested tolerance."""


class ActNorm(nn.Module):
    """Per-node affine normalisation y = x * exp(s) + b, initialised from the first batch's statistics.

    The "initialised" flag is a buffer (the reference kept it as a Python attribute), so a model loaded
    from a checkpoint does not re-initialise itself from the next batch and overwrite trained values.
    """

    def __init__(self, nodes: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.log_scale = nn.Parameter(torch.zeros(nodes))
        self.shift = nn.Parameter(torch.zeros(nodes))
        self.register_buffer("initialised", torch.tensor(False))

    @torch.no_grad()
    def _initialise(self, x: torch.Tensor) -> None:
        mean = x.mean(dim=(0, 2))
        std = ((x - mean[None, :, None]) ** 2).mean(dim=(0, 2)).add(self.eps).sqrt()
        self.log_scale.copy_(-torch.log(std))
        self.shift.copy_(-mean / std)
        self.initialised.fill_(True)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not bool(self.initialised):
            self._initialise(x)
        y = x * self.log_scale.exp()[None, :, None] + self.shift[None, :, None]
        logdet = self.log_scale.sum() * x.shape[2]
        return y, logdet.expand(x.shape[0])

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return (y - self.shift[None, :, None]) * (-self.log_scale).exp()[None, :, None]


class GraphAttention(nn.Module):
    """The residual branch f(x): node attention mixed with the edges E, divided by the Lipschitz normaliser.

    x (B, N, D) -> sigmoid(act(x)) -> attention A over nodes from a width-W query/key projection ->
    A * E per edge channel, row-normalised, mixed over channels -> (mixed @ h) / L, where
    L = ||I + 2 * W_q W_k^T / sqrt(W)||_2 + offset is computed from the current weights without gradient.
    """

    def __init__(self, window: int, width: int, edge_channels: int, act: str = "ELU",
                 lipschitz_offset: float = 5.0):
        super().__init__()
        if act not in ACTIVATIONS:
            raise ValueError(f"unknown GNN activation {act!r}; choose one of {sorted(ACTIVATIONS)}")
        self.width = width
        self.scale = width ** -0.5
        self.lipschitz_offset = lipschitz_offset
        self.act = ACTIVATIONS[act]()
        self.qk = nn.Linear(window, 2 * width)
        self.channel_weights = nn.Parameter(torch.ones(edge_channels))

    def lipschitz_norm(self) -> torch.Tensor:
        with torch.no_grad():
            w = self.qk.weight
            wq, wk = w[: self.width], w[self.width:]
            eye = torch.eye(self.width, device=w.device, dtype=w.dtype)
            return torch.linalg.matrix_norm(eye + 2 * self.scale * (wq @ wk.T), ord=2) + self.lipschitz_offset

    def forward(self, x: torch.Tensor, edge: torch.Tensor, norm: torch.Tensor | None = None) -> torch.Tensor:
        h = torch.sigmoid(self.act(x))
        q, k = self.qk(h).split(self.width, dim=-1)
        attn = (q @ k.transpose(-2, -1) * self.scale).softmax(dim=-1)
        weighted = attn[:, None] * edge
        weighted = weighted / weighted.sum(dim=-1, keepdim=True)
        mix = torch.einsum("bpnm,p->bnm", weighted, self.channel_weights / self.channel_weights.sum())
        return mix @ h / (self.lipschitz_norm() if norm is None else norm)


def power_series_logdet(fx: torch.Tensor, x: torch.Tensor, terms: int, samples: int,
                        create_graph: bool) -> torch.Tensor:
    """Estimate log|det(I + df/dx)| per sample: sum_k (-1)^(k+1) tr(J^k)/k with Hutchinson probes."""
    total = torch.zeros(x.shape[0], device=x.device, dtype=x.dtype)
    for _ in range(samples):
        u = torch.randn_like(x)
        v = u
        for k in range(1, terms + 1):
            (v,) = torch.autograd.grad(fx, x, grad_outputs=v, retain_graph=True, create_graph=create_graph)
            total = total + (-1) ** (k + 1) / k * (v * u).flatten(1).sum(dim=1)
    return total / samples


class GraphBlock(nn.Module):
    """One invertible block: optional ActNorm, then y = x + f(x)."""

    def __init__(self, nodes: int, window: int, width: int, edge_channels: int, act: str, actnorm: bool,
                 lipschitz_offset: float):
        super().__init__()
        self.norm = ActNorm(nodes) if actnorm else None
        self.f = GraphAttention(window, width, edge_channels, act, lipschitz_offset)

    def forward(self, x: torch.Tensor, edge: torch.Tensor, logdet_terms: int = 0,
                logdet_samples: int = 1) -> tuple[torch.Tensor, torch.Tensor | None]:
        logdet = None
        if self.norm is not None:
            x, logdet = self.norm(x)
        if logdet_terms and not x.requires_grad:
            x = x.detach().requires_grad_(True)
        fx = self.f(x, edge)
        if logdet_terms:
            series = power_series_logdet(fx, x, logdet_terms, logdet_samples, create_graph=self.training)
            logdet = series if logdet is None else logdet + series
        return x + fx, logdet

    @torch.no_grad()
    def inverse(self, y: torch.Tensor, edge: torch.Tensor, iters: int, tol: float) -> torch.Tensor:
        norm = self.f.lipschitz_norm()
        x = y
        for _ in range(iters):
            new = y - self.f(x, edge, norm)
            converged = bool((new - x).abs().max() <= tol)
            x = new
            if converged:
                break
        residual = float((x + self.f(x, edge, norm) - y).abs().max())
        if residual > tol:
            raise InverseError(f"fixed-point inverse left a residual of {residual:.3g} after {iters} "
                               f"iterations (tolerance {tol:g}); raise model.gnn.inverse_iters")
        return x if self.norm is None else self.norm.inverse(x)


class ReversibleGNN(nn.Module):
    """A stack of `GraphBlock`s mapping (B, nodes, window) to the same shape, invertible given the edges."""

    def __init__(self, layers: int = 2, nodes: int = 25, window: int = 50, width: int = 50,
                 edge_channels: int = 8, act: str = "ELU", actnorm: bool = True, lipschitz_offset: float = 5.0,
                 inverse_iters: int = 5, inverse_tol: float = 1e-3, logdet_terms: int = 5,
                 logdet_samples: int = 1):
        super().__init__()
        self.blocks = nn.ModuleList(
            GraphBlock(nodes, window, width, edge_channels, act, actnorm, lipschitz_offset)
            for _ in range(layers))
        self.inverse_iters = inverse_iters
        self.inverse_tol = inverse_tol
        self.logdet_terms = logdet_terms
        self.logdet_samples = logdet_samples

    def forward(self, x: torch.Tensor, edge: torch.Tensor,
                with_logdet: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Encode x; with `with_logdet`, also return the mean per-block log|det J| estimate per sample."""
        total = None
        for block in self.blocks:
            x, logdet = block(x, edge, self.logdet_terms if with_logdet else 0, self.logdet_samples)
            if with_logdet and logdet is not None:
                total = logdet if total is None else total + logdet
        if total is not None:
            total = total / len(self.blocks)
        return x, total

    def inverse(self, y: torch.Tensor, edge: torch.Tensor) -> torch.Tensor:
        for block in reversed(self.blocks):
            y = block.inverse(y, edge, self.inverse_iters, self.inverse_tol)
        return y
