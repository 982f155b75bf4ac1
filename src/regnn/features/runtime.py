"""What every extractor shares: settings with defaults, device choice, autocast, weight files, the protocol.

An extractor splits its work in two so the model never waits for I/O: `prepare` (decode, resample, resize;
runs in background threads) and `forward` (the network on the chosen device; runs in the main thread).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from regnn.data.layout import FPS, FRAMES
from regnn.settings import EXTRACTOR_DEFAULTS, resolve

COMMON_DEFAULTS: dict[str, Any] = {**EXTRACTOR_DEFAULTS, "frames": FRAMES, "fps": FPS, "chunk_frames": 1000}
"""The settings every extractor kind has (beside `kind` and `modality`, which have no default). `frames` and
`fps` are REACT 2024's fixed clip length and rate (a MARS clip's come from its index); `chunk_frames` bounds
how many frames of one clip are decoded and run through the network at once (the official MARS extractor's
1,000), so a 20,000-frame clip needs no more memory than a short one."""
IDENTITY = ("kind", "modality")


def resolve_settings(settings: Mapping[str, Any], defaults: Mapping[str, Any], name: str) -> dict[str, Any]:
    """An extractor's settings over the common and its kind's `defaults`, by the one merge rule
    (`regnn.settings.resolve`: unknown keys are an error, so a typo cannot silently use a default)."""
    given = {k: v for k, v in settings.items() if k not in IDENTITY}
    resolved = resolve({**COMMON_DEFAULTS, **defaults}, given, f"extractors.{name}")
    return {**{k: settings[k] for k in IDENTITY if k in settings}, **resolved}


def autocast(device: torch.device, bf16: bool) -> contextlib.AbstractContextManager:
    """bfloat16 autocast when asked for, else a no-op (float32 everywhere)."""
    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def load_state_dict(path: str | Path, what: str) -> dict[str, Any]:
    """A state dict from a local `.pth`/`.pt`, loaded without running pickled code; unwraps `model`/`state_dict`."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{what} weights file {path} does not exist (set its path in the config)")
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("model", "state_dict"):
        if isinstance(state, Mapping) and isinstance(state.get(key), Mapping):
            state = state[key]
    if not isinstance(state, Mapping):
        raise ValueError(f"{path}: expected a state dict, found {type(state).__name__}")
    return dict(state)


def check_state_dict(model: torch.nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Raise naming every missing, unexpected and wrongly shaped key, instead of a partial or silent load."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
              for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or shapes:
        def show(items: list[str]) -> str:
            return ", ".join(items[:8]) + (f" and {len(items) - 8} more" if len(items) > 8 else "")
        parts = [f"{label} ({len(items)}): {show(items)}" for label, items in
                 (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes)) if items]
        raise ValueError(f"{source} does not match the configured model: " + "; ".join(parts))


@dataclass(frozen=True)
class Clip:
    """One clip as an extractor reads it, its length settled: the shard holds `frames` rows for it, one per
    frame at `fps`. `tolerance`: frames by which its media or feature file may differ from `frames` (extra ones
    are dropped, a shortfall repeats the last frame; both are logged), or None for REACT 2024's rule (at least
    `frames` video frames, the rest ignored; each kind's own padding rule for audio and feature files)."""

    key: str
    video: Path
    audio: Path
    features: Mapping[str, Path]  # the release's pre-extracted files by modality
    frames: int
    fps: float
    tolerance: int | None = None


@dataclass
class Prepared:
    """One clip made ready for the network in a background thread.

    `notes` are (kind, detail) pairs, e.g. ("short audio", "29.700 s"): logged per clip, counted per kind.
    """

    clip: str
    inputs: Any
    notes: list[tuple[str, str]] = field(default_factory=list)


class Extractor(Protocol):
    """A feature extractor: `dim` features per video frame, `clip.frames` rows per clip.

    `chunks` (background threads) yields a clip's inputs in pieces of at most `chunk_frames` frames, and
    `forward` (main thread) turns one piece into its rows: the clip's rows are the pieces' rows in order."""

    dim: int
    device: torch.device
    description: str  # what was loaded (weights file or "random weights, seed N"), for the log
    random_weights: bool  # True when no weights file was configured (demo, tests)

    def chunks(self, clip: Clip) -> Iterator[Prepared]: ...

    def forward(self, prepared: Prepared) -> np.ndarray: ...


def fit_rows(values: np.ndarray, rows: int) -> tuple[np.ndarray, int]:
    """Trim to `rows` or pad by repeating the last row (as REGNN's loader pads 749 VGGish rows to 750).

    Returns the array and the number of rows added.
    """
    n = values.shape[0]
    if n >= rows:
        return values[:rows], 0
    if n == 0:
        raise ValueError("no feature rows to pad")
    return np.concatenate([values, np.repeat(values[-1:], rows - n, axis=0)]), rows - n


@contextlib.contextmanager
def inference(device: torch.device, bf16: bool) -> Iterator[None]:
    """No gradients, and bf16 autocast when asked for."""
    with torch.inference_mode(), autocast(device, bf16):
        yield
