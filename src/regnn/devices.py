"""The one rule every stage uses to turn a `device` setting into a torch device."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

GPU_DRIVER_FILES = ("/dev/nvidiactl", "/dev/kfd")
"""Device files of the NVIDIA and ROCm kernel drivers: without either, torch cannot see a GPU."""


def choose_device(setting: str) -> "torch.device":
    """`auto` picks the GPU when one is visible, else the CPU; anything else is a torch device name."""
    import torch

    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(setting)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {setting!r} was asked for but no CUDA GPU is visible")
    return device


def cpu_only(setting: str) -> bool:
    """Whether `setting` resolves to the CPU, decided without importing torch (~2 s) when no GPU driver is
    present, so CPU-only paths (e.g. `regnn evaluate`) start fast."""
    if setting == "cpu" or (setting == "auto" and not any(Path(p).exists() for p in GPU_DRIVER_FILES)):
        return True
    return choose_device(setting).type == "cpu"
