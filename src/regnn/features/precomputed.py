"""Import the dataset's own pre-extracted feature files into shards.

REACT 2024 users often have the official `<split>/Video_features` / `Audio_features/<clip key>.pth` tensors
(after `clean_dataset` has moved nested files up); MARS users the REGNN 2025/2026 baseline's
`<split>/video-features/<role>/<session>/<stem>.pth` (Swin, (T, 768) torch tensor) and
`audio-features/.../<stem>.npy` (wav2vec2, (T, 768)). The protocol names each clip's files
(`Protocol.extraction_clips`); `folder` replaces the folder. Importing them lets an experiment use them like
any other extractor. Tensors are loaded with `weights_only=True` and arrays without pickles: a feature file
never runs code. Rows are fitted to the clip's frames: REACT 2024 saved 751 video and 749-750 audio rows, so
extra rows are dropped and up to `max_padded_rows` missing ones repeat the last (as the reference loader
does); a MARS file may differ from the clip's facial-attribute length by `data.length_tolerance` either way.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from regnn.features.media import MediaError
from regnn.features.runtime import Clip, Prepared, fit_rows, resolve_settings

DEFAULTS: dict[str, Any] = {
    "folder": None,  # folder in <root>/<split>/ holding the files; None = the protocol's (Video_features, video-features, ...)
    "dim": None,  # expected feature dimension (checked when set; else taken from the first clip)
    "max_padded_rows": 2,  # REACT 2024: a file with fewer than frames - this rows is an error
}


def feature_file(clip: Clip, modality: str, folder: str | None) -> Path:
    """The clip's pre-extracted file: the protocol's path, or the same key and suffix under `folder`."""
    default = clip.features[modality]
    if folder is None:
        return default
    split_dir = default.parents[len(clip.key.split("/"))]  # <split>/<folder>/<clip key><suffix>
    return split_dir / folder / f"{clip.key}{default.suffix}"


def load_feature_file(clip: str, path: Path) -> np.ndarray:
    """A (rows, dim) float32 array from a `.pth` tensor or a `.npy` array, checked; errors name the file."""
    if not path.is_file():
        raise MediaError(clip, path, "pre-extracted feature file is missing (REACT 2024: did clean_dataset run?)")
    try:
        if path.suffix == ".npy":
            values = np.load(path, allow_pickle=False)
        else:
            tensor = torch.load(path, map_location="cpu", weights_only=True)
            if not isinstance(tensor, torch.Tensor):
                raise MediaError(clip, path, f"expected a tensor, found {type(tensor).__name__}")
            values = tensor.detach().float().numpy() if tensor.is_floating_point() else tensor.numpy()
    except MediaError:
        raise
    except Exception as err:  # torch and numpy raise many types for a corrupt file; all mean the same here
        raise MediaError(clip, path, f"feature file is unreadable ({type(err).__name__}: {err})") from None
    if values.dtype == bool or not (np.issubdtype(values.dtype, np.floating) or np.issubdtype(values.dtype, np.integer)):
        raise MediaError(clip, path, f"feature values have dtype {values.dtype}, expected real numbers")
    if values.ndim == 3 and values.shape[0] == 1:
        values = values[0]
    if values.ndim != 2:
        raise MediaError(clip, path, f"feature tensor has shape {tuple(values.shape)}, expected (frames, dim)")
    values = values.astype(np.float32)
    if not np.isfinite(values).all():
        row = int(np.argwhere(~np.isfinite(values))[0, 0])
        raise MediaError(clip, path, f"feature tensor has non-finite values (first at row {row})")
    return values


class PrecomputedExtractor:
    """Rows of the dataset's pre-extracted feature files, checked and fitted to the clip's frames."""

    def __init__(self, name: str, settings: Mapping[str, Any]):
        s = resolve_settings(settings, DEFAULTS, name)
        if s.get("modality") not in ("video", "audio"):
            raise ValueError(f"extractor {name!r}: precomputed features need modality video or audio")
        self.s = s
        self.dim = s["dim"]
        self.device = torch.device("cpu")  # no network: tensors are only read and checked
        self.random_weights = False
        where = f"<split>/{s['folder']}/<clip>" if s["folder"] else "the release's feature files"
        self.description = f"precomputed {s['modality']} features from {where}"

    def chunks(self, clip: Clip) -> Iterator[Prepared]:
        """The whole file as one piece: a 20,000-frame file is 61 MB, and the file is what memory holds anyway."""
        path = feature_file(clip, self.s["modality"], self.s["folder"])
        values = load_feature_file(clip.key, path)
        if self.dim is not None and values.shape[1] != self.dim:
            raise MediaError(clip.key, path, f"feature dimension {values.shape[1]}, expected {self.dim}")
        rows, frames = values.shape[0], clip.frames
        short = self.s["max_padded_rows"] if clip.tolerance is None else clip.tolerance
        if rows < frames - short or (clip.tolerance is not None and rows > frames + clip.tolerance):
            allowed = f"at least {frames - short}" if clip.tolerance is None else \
                f"{frames} (tolerance {clip.tolerance})"
            raise MediaError(clip.key, path, f"feature tensor has {rows} rows, expected {allowed}")
        fitted, added = fit_rows(values, frames)
        prepared = Prepared(clip.key, fitted)
        if added:
            prepared.notes.append(("padded rows", f"{added} row(s) repeat the last one"))
        elif rows > frames and clip.tolerance is not None:
            prepared.notes.append(("trimmed rows", f"{rows - frames} row(s) beyond {frames} dropped"))
        yield prepared

    def forward(self, prepared: Prepared) -> np.ndarray:
        if self.dim is None:
            self.dim = prepared.inputs.shape[1]
        return prepared.inputs
