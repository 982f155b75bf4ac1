"""The full REGNN: perceptual -> cognitive -> motor processor, built from the config's `model` section.

`regnn.settings.PAPER_MODEL` holds the published settings; a config or test gives only what it changes.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from regnn.data.layout import EMOTION_DIMS
from regnn.model.cognitive import CognitiveProcessor
from regnn.model.perceptual import PerceptualProcessor
from regnn.model.reversible_gnn import ReversibleGNN
from regnn.settings import resolve_model_settings

class REGNN(nn.Module):
    """Speaker windows (video, audio) -> latent mean mu and edges E; listener windows <-> latent codes."""

    def __init__(self, video_dim: int, audio_dim: int, settings: dict[str, Any] | None = None):
        super().__init__()
        s = resolve_model_settings(settings)
        self.settings = s
        self.video_dim = video_dim
        self.audio_dim = audio_dim
        p, c, g = s["perceptual"], s["cognitive"], s["gnn"]
        self.perceptual = PerceptualProcessor(video_dim, audio_dim, **p)
        self.cognitive = CognitiveProcessor(p["output_dim"], EMOTION_DIMS, s["window"], c["edge_channels"],
                                            c["edge_neighbours"], c["union_mask"])
        self.motor = ReversibleGNN(nodes=EMOTION_DIMS, window=s["window"], edge_channels=c["edge_channels"], **g)

    def perceive(self, video: torch.Tensor, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, window, Dv), (B, window, Da) -> mu (B, 25, window), edges (B, channels, 25, 25)."""
        return self.cognitive(self.perceptual(video, audio))

    def encode(self, reactions: torch.Tensor, edge: torch.Tensor,
               with_logdet: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Listener windows (L, window, 25) -> latent codes (L, 25, window) on the given edges (L, ...)."""
        return self.motor(reactions.transpose(1, 2), edge, with_logdet)

    def decode(self, latent: torch.Tensor, edge: torch.Tensor) -> torch.Tensor:
        """Latent codes (B, 25, window) -> reactions (B, window, 25) by the GNN's inverse."""
        return self.motor.inverse(latent, edge).transpose(1, 2)
