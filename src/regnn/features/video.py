"""Per-frame video features from a timm backbone (REGNN: the authors' Swin-T fine-tuned for 7-class FER).

REGNN 2024 resizes each frame to 256, centre-crops 224, normalises with mean = std = 0.5 and keeps the 768-d
pooled feature before the classifier; the 2025/2026 (MARS) extractor resizes the 384x384 face crops to 224
with no crop (`resize: 224, crop: null`) and uses every frame. Here resizing and cropping run on uint8 frames
in background threads, chunk by chunk, and only the normalisation and the network run on the device, so a GPU
receives 4x fewer bytes and a long clip is never decoded whole.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import timm
import torch
import torchvision.transforms.v2.functional as TF

from regnn.devices import choose_device
from regnn.features.media import MediaError, video_chunks
from regnn.features.runtime import Clip, Prepared, check_state_dict, inference, load_state_dict, resolve_settings

DEFAULTS: dict[str, Any] = {
    "model": "swin_tiny_patch4_window7_224",  # any timm model name
    "model_args": {},  # keyword arguments for timm.create_model (embed_dim, depths, img_size, ...)
    "weights": None,  # local state dict (the authors' swin_fer.pth or a timm one); None = seeded random
    "seed": 0,  # seeds the random weights when `weights` is None
    "resize": 256,  # shorter side after resizing
    "crop": 224,  # centre crop fed to the network; None: the resized frame as it is (it must be square)
    "mean": [0.5, 0.5, 0.5],
    "std": [0.5, 0.5, 0.5],
    "batch_size": 125,  # frames per forward pass (750 = 6 x 125, so no ragged batches)
}

RESIZE_GROUP = 50
"""Frames decoded and resized at a time (each image is resized alone: the grouping changes no pixel)."""

_MS_DOWNSAMPLE = re.compile(r"layers\.(\d+)\.downsample\.")


def from_microsoft_swin(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a state dict of Microsoft's Swin (the layout of the authors' swin_fer.pth) to timm's layout.

    Microsoft's stages end with their patch merging (stage 0 has one), timm's stages start with it (stage 0
    has none), so `layers.i.downsample` becomes `layers.(i+1).downsample`; the classifier `head` becomes
    `head.fc`; the derived buffers `relative_position_index` and `attn_mask` are dropped (timm rebuilds them).
    Both layouts concatenate the 2x2 merged patches in the same order, so weights need no permutation.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.endswith(("relative_position_index", "attn_mask")):
            continue
        key = _MS_DOWNSAMPLE.sub(lambda m: f"layers.{int(m.group(1)) + 1}.downsample.", key)
        if key.startswith("head.") and not key.startswith("head.fc."):
            key = "head.fc." + key[len("head."):]
        out[key] = value
    return out


def is_microsoft_swin(state: Mapping[str, Any]) -> bool:
    return "layers.0.downsample.reduction.weight" in state or "head.weight" in state


def build_backbone(s: Mapping[str, Any]) -> tuple[torch.nn.Module, str]:
    """The timm model of the settings with its weights (checked key by key), and a line saying what was loaded."""
    args = dict(s["model_args"])
    if s["weights"] is None:
        torch.manual_seed(int(s["seed"]))
        model = timm.create_model(s["model"], pretrained=False, num_classes=0, **args)
        return model.eval(), f"{s['model']} with RANDOM weights (seed {s['seed']}; no weights file configured)"
    state = load_state_dict(s["weights"], f"video backbone {s['model']}")
    converted = ""
    if is_microsoft_swin(state):
        state = from_microsoft_swin(state)
        converted = ", converted from Microsoft Swin layout"
    head = state.get("head.fc.weight")
    model = timm.create_model(s["model"], pretrained=False, num_classes=0 if head is None else head.shape[0], **args)
    check_state_dict(model, state, f"weights file {s['weights']}")
    model.load_state_dict(state)
    classes = "headless" if head is None else f"{head.shape[0]}-class head unused"
    return model.eval(), f"{s['model']} weights from {s['weights']} ({classes}{converted})"


def resize_crop(frames: torch.Tensor, resize: int, crop: int | None) -> torch.Tensor:
    """(N, 3, H, W) uint8 -> (N, 3, crop, crop) uint8: shorter side to `resize` (antialiased bilinear, as PIL
    does in the reference), then the centre crop (none when `crop` is None)."""
    if min(frames.shape[-2:]) != resize:
        frames = TF.resize(frames, [resize], antialias=True)
    return frames if crop is None else TF.center_crop(frames, [crop, crop])


class VideoExtractor:
    """A timm backbone's pooled pre-classifier feature for each of a clip's `frames` frames."""

    def __init__(self, name: str, settings: Mapping[str, Any]):
        s = resolve_settings(settings, DEFAULTS, name)
        self.s = s
        self.device = choose_device(s["device"])
        model, self.description = build_backbone(s)
        self.random_weights = s["weights"] is None
        self.model = model.to(self.device)
        self.dim = int(self.model.num_features)
        self.mean = torch.tensor(s["mean"], device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(s["std"], device=self.device).view(1, 3, 1, 1)

    def chunks(self, clip: Clip) -> Iterator[Prepared]:
        """Pieces of `chunk_frames` resized frames; frames are decoded and resized `RESIZE_GROUP` at a time, so
        the full-size frames held stay few (a 1,000-frame piece of 384x384 frames would be 442 MB raw)."""
        notes: list[tuple[str, str]] = []
        size = self.s["chunk_frames"]
        piece: torch.Tensor | None = None
        filled = done = 0
        for frames in video_chunks(clip.key, clip.video, clip.frames, min(size, RESIZE_GROUP), clip.fps,
                                   clip.tolerance, notes):
            small = resize_crop(torch.from_numpy(frames).permute(0, 3, 1, 2), self.s["resize"], self.s["crop"])
            del frames
            if small.shape[-1] != small.shape[-2]:
                raise MediaError(clip.key, clip.video, f"frames resized to {tuple(small.shape[-2:])} are not "
                                                       "square: set the extractor's `crop`")
            offset = 0
            while offset < len(small):
                if piece is None:
                    piece = torch.empty((min(size, clip.frames - done), *small.shape[1:]), dtype=torch.uint8,
                                        pin_memory=self.device.type == "cuda")
                    filled = 0
                take = min(len(piece) - filled, len(small) - offset)
                piece[filled:filled + take] = small[offset:offset + take]
                filled, offset, done = filled + take, offset + take, done + take
                if filled == len(piece):
                    yield Prepared(clip.key, piece)
                    piece = None
        if notes:  # the reader's notes are known once it is exhausted: an empty last piece carries them
            yield Prepared(clip.key, torch.empty((0, 3, 1, 1), dtype=torch.uint8), notes)

    def embed(self, batch: torch.Tensor) -> torch.Tensor:
        """Normalised uint8 frames (B, 3, crop, crop) -> (B, dim) features, on the device."""
        x = batch.to(self.device, non_blocking=True).float().div_(255.0)
        x = (x - self.mean) / self.std
        with inference(self.device, self.s["bf16"]):
            return self.model.forward_head(self.model.forward_features(x), pre_logits=True).float()

    def forward(self, prepared: Prepared) -> np.ndarray:
        frames: torch.Tensor = prepared.inputs
        if not len(frames):
            return np.empty((0, self.dim), dtype=np.float32)
        out = [self.embed(frames[i:i + self.s["batch_size"]]) for i in range(0, len(frames), self.s["batch_size"])]
        return torch.cat(out).cpu().numpy()
