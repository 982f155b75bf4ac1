"""REGNN checkpoints: what a checkpoint file holds, which ones a run keeps, and saving/loading them safely.

A checkpoint (and the resume state, which has the same format) is a plain dict of tensors, numbers and
strings: `format`, `epoch` (how many epochs of training the weights hold), `seed`, `dims` (feature widths),
`settings` (resolved model and train settings), `fingerprint`, `threshold`, `rows` (logged epochs), `model`
and `optimizer` state dicts. It is loaded with `weights_only=True`, so a file cannot run code.

File names come from `regnn.paths.checkpoint_name` (torch-free, because the workflow names the outputs
while it plans); the schedule of epochs that get one from `regnn.settings.checkpoint_epochs`.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import torch

from regnn.io import atomic_output
from regnn.paths import CHECKPOINT_GLOB, checkpoint_name

CHECKPOINT_FORMAT = 2
"""2: names say the epochs held (`after-NNN-epochs.pt`), settings carry the reference switches."""


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    """Write `state` atomically (a temp file renamed into place: never a half-written checkpoint)."""
    with atomic_output(Path(path)) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint or resume state, loaded safely (`weights_only=True`) onto the CPU."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a REGNN checkpoint of format {CHECKPOINT_FORMAT}")
    return state


def link_checkpoint(source: Path, target: Path) -> None:
    """Expose a kept copy as a checkpoint output (hard link; a copy where links are not possible)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError:
        with atomic_output(target) as tmp:
            shutil.copy2(source, tmp)


def select_checkpoint(checkpoint_dir: Path, epochs: int | None) -> Path:
    """The checkpoint holding `epochs` epochs of training, or the one holding the most when None."""
    checkpoint_dir = Path(checkpoint_dir)
    if epochs is not None:
        return checkpoint_dir / checkpoint_name(epochs)
    found = sorted(checkpoint_dir.glob(CHECKPOINT_GLOB))  # zero-padded epoch counts sort numerically
    if not found:
        raise FileNotFoundError(f"no checkpoints in {checkpoint_dir}")
    return found[-1]
