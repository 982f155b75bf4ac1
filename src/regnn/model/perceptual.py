"""Perceptual processor: a MulT-style cross-modal transformer fusing per-frame video and audio features.

Video queries audio in a cross-modal encoder, a self-attention encoder follows, and a residual MLP head
maps each frame to the fused feature the cognitive processor reads. The layout follows the REGNN baseline
(pre-LayerNorm layers, FFN 4x width, sinusoidal positions counted from 1, inputs scaled by sqrt(d)) and
initialises every parameter as it does (Xavier-uniform attention projections, fc1/fc2 and out_proj; PyTorch
defaults elsewhere).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def positional_embedding(x: torch.Tensor, zero_frames_are_padding: bool) -> torch.Tensor:
    """(B, T, D) embeddings for the frames of an encoder input `x` (B, T, D).

    With `zero_frames_are_padding` (the reference): a frame whose channel 0 is exactly 0 counts as padding
    and gets a zero embedding, the others keep their position (fairseq `make_positions`, padding_idx 0, as
    MulT calls it on `x[:, :, 0]`). Quantised VGGish features have channel 0 == 0 on many frames.
    """
    pos = sinusoidal_positions(x.shape[1], x.shape[2]).to(x.device, x.dtype).expand(x.shape[0], -1, -1)
    if zero_frames_are_padding:
        pos = pos * (x[..., :1] != 0).to(x.dtype)
    return pos


def sinusoidal_positions(length: int, dim: int) -> torch.Tensor:
    """(length, dim) embeddings for positions 1..length: sines in the first half, cosines in the second.

    Positions start at 1 because the reference (fairseq) reserves position 0 for padding.
    """
    half = dim // 2
    step = math.log(10000) / max(half - 1, 1)
    freqs = torch.exp(torch.arange(half, dtype=torch.float32) * -step)
    angles = torch.arange(1, length + 1, dtype=torch.float32)[:, None] * freqs[None, :]
    emb = torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros(length, 1)], dim=1)
    return emb


class EncoderLayer(nn.Module):
    """Pre-LN transformer layer; with `keys`/`values` given it is cross-attention, else self-attention."""

    def __init__(self, dim: int, heads: int, attn_dropout: float, relu_dropout: float, res_dropout: float):
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, heads, dropout=attn_dropout, batch_first=True)
        # The reference's (fairseq) attention draws out_proj from Xavier-uniform too (PyTorch: Kaiming).
        nn.init.xavier_uniform_(self.attn.out_proj.weight)
        self.norm_attn = nn.LayerNorm(dim)
        self.norm_ffn = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.fc2 = nn.Linear(4 * dim, dim)
        for fc in (self.fc1, self.fc2):
            nn.init.xavier_uniform_(fc.weight)
            nn.init.zeros_(fc.bias)
        self.relu_dropout = relu_dropout
        self.res_dropout = res_dropout

    def forward(self, x: torch.Tensor, keys: torch.Tensor | None = None,
                values: torch.Tensor | None = None) -> torch.Tensor:
        q = self.norm_attn(x)
        # The reference normalises keys/values with the query's LayerNorm; kept for fidelity.
        k = q if keys is None else self.norm_attn(keys)
        v = q if values is None else self.norm_attn(values)
        h, _ = self.attn(q, k, v, need_weights=False)
        x = x + F.dropout(h, self.res_dropout, self.training)
        h = F.relu(self.fc1(self.norm_ffn(x)))
        h = self.fc2(F.dropout(h, self.relu_dropout, self.training))
        return x + F.dropout(h, self.res_dropout, self.training)


class TransformerEncoder(nn.Module):
    """A stack of `EncoderLayer`s with scaled inputs, sinusoidal positions, embedding dropout and final LN."""

    def __init__(self, dim: int, heads: int, layers: int, attn_dropout: float, relu_dropout: float,
                 res_dropout: float, embed_dropout: float, zero_frames_are_padding: bool = True):
        super().__init__()
        self.dim = dim
        self.zero_frames_are_padding = zero_frames_are_padding
        self.embed_dropout = embed_dropout
        self.layers = nn.ModuleList(
            EncoderLayer(dim, heads, attn_dropout, relu_dropout, res_dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        pos = positional_embedding(x, self.zero_frames_are_padding)
        return F.dropout(math.sqrt(self.dim) * x + pos, self.embed_dropout, self.training)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        x = self._embed(x)
        # Keys and values are embedded separately, so they get independent embedding-dropout masks.
        keys = None if context is None else self._embed(context)
        values = None if context is None else self._embed(context)
        for layer in self.layers:
            x = layer(x, keys, values)
        return self.norm(x)


class PerceptualProcessor(nn.Module):
    """Fuse video (B, T, Dv) and audio (B, T, Da) into (B, T, output_dim)."""

    def __init__(self, video_dim: int, audio_dim: int, dim: int = 128, heads: int = 4, layers: int = 5,
                 attn_dropout: float = 0.0, relu_dropout: float = 0.1, res_dropout: float = 0.1,
                 embed_dropout: float = 0.25, out_dropout: float = 0.0, output_dim: int = 64,
                 zero_frames_are_padding: bool = True):
        super().__init__()
        # 1x1 temporal convolutions, skipped when a modality already has the model width (as in MulT).
        self.proj_video = (nn.Identity() if video_dim == dim
                           else nn.Conv1d(video_dim, dim, kernel_size=1, bias=False))
        self.proj_audio = (nn.Identity() if audio_dim == dim
                           else nn.Conv1d(audio_dim, dim, kernel_size=1, bias=False))
        enc = dict(dim=dim, heads=heads, layers=layers, attn_dropout=attn_dropout,
                   relu_dropout=relu_dropout, res_dropout=res_dropout, embed_dropout=embed_dropout,
                   zero_frames_are_padding=zero_frames_are_padding)
        self.cross = TransformerEncoder(**enc)
        self.self_attention = TransformerEncoder(**enc)
        self.head1 = nn.Linear(dim, dim)
        self.head2 = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, output_dim)
        self.out_dropout = out_dropout

    @staticmethod
    def _project(proj: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return x if isinstance(proj, nn.Identity) else proj(x.transpose(1, 2)).transpose(1, 2)

    def forward(self, video: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        v = self._project(self.proj_video, video)
        a = self._project(self.proj_audio, audio)
        h = self.self_attention(self.cross(v, a))
        h = h + self.head2(F.dropout(F.relu(self.head1(h)), self.out_dropout, self.training))
        return self.out(h)
