"""The two decisions a stage's `device` setting makes: the GPUs its jobs ask for, and the torch device it uses.

Torch is imported only when a torch device is chosen, so the workflow applies the GPU policy while it plans
the DAG and CPU-only paths start fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

GPU_DRIVER_FILES = ("/dev/nvidiactl", "/dev/kfd")
"""Device files of the NVIDIA and ROCm kernel drivers: without either, torch cannot see a GPU."""


def gpus_for(setting: str) -> int:
    """The GPUs a job asks for (its Snakemake `gpu` resource): none when the setting pins it to the CPU, else
    one. `auto` asks for one, uses it when the job is given it and falls back to the CPU when not."""
    return 0 if setting == "cpu" else 1


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
