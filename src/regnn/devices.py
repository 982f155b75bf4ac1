"""The one rule every stage uses to turn a `device` setting into a torch device."""

from __future__ import annotations

import torch


def choose_device(setting: str) -> torch.device:
    """`auto` picks the GPU when one is visible, else the CPU; anything else is a torch device name."""
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(setting)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {setting!r} was asked for but no CUDA GPU is visible")
    return device
