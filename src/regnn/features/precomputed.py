"""Import the dataset's own pre-extracted feature files (`<root>/<split>/<folder>/<clip key>.pth`).

REACT users often have the official `Video_features` / `Audio_features` tensors (after `clean_dataset` has
moved nested files up). Importing them into shards lets an experiment use them like any other extractor.
The reference saved 751 video rows and 749-750 audio rows; rows are trimmed or padded (last row repeated,
as the reference loader does) to the clip's frames, within `max_padded_rows`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from regnn.data.index import IndexRow
from regnn.data.layout import FEATURE_FOLDERS
from regnn.features.media import MediaError
from regnn.features.runtime import Prepared, fit_rows, resolve_settings

DEFAULTS: dict[str, Any] = {
    "folder": None,  # folder beside Video_files in <root>/<split>/; None = Video_features or Audio_features
    "dim": None,  # expected feature dimension (checked when set; else taken from the first clip)
    "max_padded_rows": 2,  # a file with fewer than frames - this rows is an error
}


def split_dir(row: IndexRow, modality: str) -> Path:
    """`<root>/<split>` recovered from the clip's media path `<root>/<split>/<Media_files>/<clip key>[.ext]`."""
    media = row.video if modality == "video" else row.audio
    return media.parents[len(row.speaker.split("/"))]


class PrecomputedExtractor:
    """Rows of the dataset's `.pth` feature tensors, checked and fitted to the clip's frames."""

    def __init__(self, name: str, settings: Mapping[str, Any]):
        s = resolve_settings(settings, DEFAULTS, name)
        if s.get("modality") not in ("video", "audio"):
            raise ValueError(f"extractor {name!r}: precomputed features need modality video or audio")
        self.s = s
        self.folder = s["folder"] or FEATURE_FOLDERS[s["modality"]]
        self.dim = s["dim"]
        self.device = torch.device("cpu")  # no network: tensors are only read and checked
        self.random_weights = False
        self.description = f"precomputed {s['modality']} features from <split>/{self.folder}/<clip>.pth"

    def path(self, row: IndexRow) -> Path:
        return split_dir(row, self.s["modality"]) / self.folder / f"{row.speaker}.pth"

    def prepare(self, clip: str, row: IndexRow) -> Prepared:
        path = self.path(row)
        if not path.is_file():
            raise MediaError(clip, path, "pre-extracted feature file is missing (did clean_dataset run?)")
        try:
            tensor = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # torch raises many types for a corrupt file; all mean the same here
            raise MediaError(clip, path, f"feature file is unreadable ({type(err).__name__}: {err})") from None
        if not isinstance(tensor, torch.Tensor):
            raise MediaError(clip, path, f"expected a tensor, found {type(tensor).__name__}")
        values = tensor.detach().float().numpy()
        if values.ndim == 3 and values.shape[0] == 1:
            values = values[0]
        if values.ndim != 2:
            raise MediaError(clip, path, f"feature tensor has shape {tuple(tensor.shape)}, expected (frames, dim)")
        if self.dim is not None and values.shape[1] != self.dim:
            raise MediaError(clip, path, f"feature dimension {values.shape[1]}, expected {self.dim}")
        if not np.isfinite(values).all():
            raise MediaError(clip, path, "feature tensor has non-finite values")
        frames = self.s["frames"]
        if values.shape[0] < frames - self.s["max_padded_rows"]:
            raise MediaError(clip, path, f"feature tensor has {values.shape[0]} rows, expected {frames}")
        fitted, added = fit_rows(values, frames)
        prepared = Prepared(clip, fitted)
        if added:
            prepared.notes.append(("padded rows", f"{added} row(s) repeat the last one"))
        return prepared

    def forward(self, prepared: Prepared) -> np.ndarray:
        if self.dim is None:
            self.dim = prepared.inputs.shape[1]
        return prepared.inputs
