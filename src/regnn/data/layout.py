"""The REACT 2023/2024 dataset layout: split CSVs, the mirrored sample order and per-modality paths.

Every official reader rewrites paths by hand (the Emotion folder names persons P1/P2 while the media folders
use the site's own names); this module is the one place that knows those rules.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FRAMES = 750
"""Frames per clip used everywhere (the 751st video frame is dropped)."""
VIDEO_FRAMES = 751
EMOTION_DIMS = 25
FPS = 25
SPLITS = ("train", "val", "test")
FEATURE_FOLDERS = {"video": "Video_features", "audio": "Audio_features"}
"""Where a release keeps each modality's pre-extracted feature tensors, beside Video_files / Audio_files."""
SPLIT_HEADER = ["", "speaker_path", "listener_path"]
EMOTION_COLUMNS = [
    "AU1", "AU2", "AU4", "AU6", "AU7", "AU9", "AU10", "AU12", "AU14", "AU15", "AU17", "AU23", "AU24",
    "AU25", "AU26", "valence", "arousal", "Neutral", "Happy", "Sad", "Surprise", "Fear", "Disgust", "Anger",
    "Contempt",
]

# Media folders name persons by site; Emotion/ calls the first person P1 and the second P2.
EMOTION_PERSON = {
    "Expert_video": "P1", "Novice_video": "P2",  # NoXI
    "P25": "P1", "P26": "P2", "P41": "P1", "P42": "P2", "P45": "P1", "P46": "P2",  # RECOLA
    "FC1": "P1", "FC2": "P2",  # UDIVA (REACT 2023)
    "P1": "P1", "P2": "P2",
}


class DatasetError(Exception):
    """Bad or missing dataset input; carries every problem found so the user can fix them in one pass."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        shown = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{len(self.problems)} problem(s) in the dataset:\n{shown}")


@dataclass(frozen=True)
class ClipKey:
    """A clip's relative path `<site>/<session...>/<person>/<clip>` split into its parts."""

    site: str
    session: str
    person: str
    clip: str

    @classmethod
    def parse(cls, key: str) -> "ClipKey":
        parts = key.strip("/").split("/")
        if len(parts) < 4 or any(not p for p in parts):
            raise ValueError(f"clip path {key!r} is not <site>/<session>/<person>/<clip>")
        return cls(parts[0], "/".join(parts[1:-2]), parts[-2], parts[-1])

    @property
    def emotion_person(self) -> str:
        try:
            return EMOTION_PERSON[self.person]
        except KeyError:
            raise ValueError(f"clip {self}: unknown person folder {self.person!r} (no P1/P2 mapping)") from None

    def __str__(self) -> str:
        return f"{self.site}/{self.session}/{self.person}/{self.clip}"


def split_csv(root: Path, split: str) -> Path:
    return Path(root) / f"{split}.csv"


def neighbour_matrix_path(root: Path, split: str) -> Path:
    return Path(root) / f"neighbour_emotion_{split}.npy"


def video_path(root: Path, split: str, key: str) -> Path:
    """The clip's mp4 if present, else its folder of PNG frames (older releases)."""
    base = Path(root) / split / "Video_files" / key
    mp4 = base.with_name(base.name + ".mp4")
    return mp4 if mp4.exists() or not base.is_dir() else base


def audio_path(root: Path, split: str, key: str) -> Path:
    base = Path(root) / split / "Audio_files" / key
    return base.with_name(base.name + ".wav")


def emotion_path(root: Path, split: str, key: str) -> Path:
    k = ClipKey.parse(key)
    return Path(root) / split / "Emotion" / k.site / k.session / k.emotion_person / f"{k.clip}.csv"


def features_path(root: Path, split: str, folder: str, key: str) -> Path:
    """A clip's pre-extracted feature tensor `<split>/<folder>/<key>.pth` (folder e.g. Video_features)."""
    return Path(root) / split / folder / f"{key}.pth"


def read_split(root: Path, split: str) -> list[tuple[str, str]]:
    """Rows (speaker_path, listener_path) of `<root>/<split>.csv`, validated."""
    path = split_csv(root, split)
    if not path.is_file():
        raise DatasetError([f"{path}: split CSV is missing"])
    rows: list[tuple[str, str]] = []
    problems: list[str] = []
    with path.open(newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or [h.strip() for h in header] != SPLIT_HEADER:
            raise DatasetError([f"{path}: header is {header!r}, expected {','.join(SPLIT_HEADER)!r}"])
        for line, row in enumerate(reader, start=2):
            if len(row) != 3 or not row[1].strip() or not row[2].strip():
                problems.append(f"{path}:{line}: expected 'index,speaker_path,listener_path', got {row!r}")
                continue
            rows.append((row[1].strip().strip("/"), row[2].strip().strip("/")))
    if not rows and not problems:
        problems.append(f"{path}: no rows")
    if problems:
        raise DatasetError(problems)
    return rows


def listener_positions(size: int) -> np.ndarray:
    """Position of each mirrored sample's listener: sample k and k + N are the same dyad, reversed."""
    return (np.arange(size) + size // 2) % size


def mirrored(rows: list[tuple[str, str]]) -> tuple[list[str], list[str]]:
    """The 2N directed samples every REACT consumer builds: speakers col1+col2, listeners col2+col1."""
    speakers = [s for s, _ in rows] + [l for _, l in rows]
    listeners = [l for _, l in rows] + [s for s, _ in rows]
    return speakers, listeners
