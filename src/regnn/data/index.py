"""The per-split index: the mirrored 2N samples with resolved paths, every file checked, emotions cached.

Real REACT downloads are often incomplete; checking everything up front (and reporting every problem at
once) replaces crashes deep inside training with one actionable list. Caching the emotions in one HDF5 file
replaces the reference trainer's per-batch CSV reads.
"""

from __future__ import annotations

import csv
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import av
import h5py
import numpy as np
import soundfile

from regnn.data import layout, neighbours
from regnn.data.emotion_csv import read_emotion_csv
from regnn.data.layout import FRAMES, DatasetError
from regnn.io import atomic_output, decode_strings

INDEX_COLUMNS = ["position", "speaker", "listener", "video", "audio", "emotion"]


@dataclass(frozen=True)
class IndexRow:
    position: int
    speaker: str
    listener: str
    video: Path
    audio: Path
    emotion: Path


@dataclass(frozen=True)
class EmotionCache:
    """All emotions of a split in mirrored order, plus the neighbour matrix."""

    clips: list[str]
    emotions: np.ndarray  # (2N, frames, 25) float32: each clip's own series
    listener_index: np.ndarray  # (2N,) position of each sample's listener
    neighbours: np.ndarray  # (2N, 2N) uint8

    @property
    def speaker(self) -> np.ndarray:
        return self.emotions

    @property
    def listener(self) -> np.ndarray:
        return self.emotions[self.listener_index]


def _check_video(path: Path) -> str | None:
    if path.is_dir():
        n = sum(1 for _ in path.glob("*.png"))
        return None if n >= FRAMES else f"{path}: video frame folder has {n} PNG frames, expected >= {FRAMES}"
    if not path.is_file():
        return f"{path}: video is missing (neither an .mp4 nor a folder of PNG frames)"
    try:  # opening reads the container header only; decoding every frame is the extract stage's job
        with av.open(str(path)) as container:
            if not container.streams.video:
                return f"{path}: video file has no video stream"
    except (av.error.FFmpegError, OSError) as err:
        return f"{path}: video file is unreadable ({err})"
    return None


def _check_audio(path: Path) -> str | None:
    if not path.is_file():
        return f"{path}: audio is missing"
    try:
        info = soundfile.info(str(path))
    except (RuntimeError, soundfile.LibsndfileError) as err:
        return f"{path}: audio is unreadable ({err})"
    if info.frames == 0:
        return f"{path}: audio has no samples"
    return None


def _check_neighbours(root: Path, split: str, size: int) -> tuple[np.ndarray | None, list[str]]:
    """The split's neighbour matrix, or, when a download lacks it, the cut of the master matrix."""
    path = layout.neighbour_matrix_path(root, split)
    try:
        if path.is_file():
            matrix = np.load(path, allow_pickle=False)
        elif neighbours.has_master(root):
            matrix = neighbours.split_matrix(root, split)
        else:
            return None, [f"{path}: neighbour matrix is missing (and no {neighbours.MASTER_MATRIX} + "
                          f"{neighbours.MASTER_INDEX} to cut it from)"]
    except DatasetError as err:
        return None, err.problems
    except (OSError, ValueError) as err:
        return None, [f"{path}: neighbour matrix is unreadable ({err})"]
    if matrix.shape != (size, size):
        return None, [f"{path}: neighbour matrix has shape {matrix.shape}, expected ({size}, {size}) "
                      f"for the split's 2N = {size} mirrored samples"]
    if not np.isin(matrix, (0, 1)).all():
        return None, [f"{path}: neighbour matrix has values other than 0 and 1"]
    return matrix.astype(np.uint8), []


def build_index(root: Path, split: str, frames: int = FRAMES) -> tuple[list[IndexRow], EmotionCache]:
    """Resolve and check every file of a split; raise DatasetError listing all problems."""
    root = Path(root).resolve()
    rows = layout.read_split(root, split)
    speakers, listeners = layout.mirrored(rows)
    size = len(speakers)
    problems: list[str] = []
    index: list[IndexRow] = []
    for position, (speaker, listener) in enumerate(zip(speakers, listeners)):
        try:
            emotion = layout.emotion_path(root, split, speaker)
        except ValueError as err:
            problems.append(f"{layout.split_csv(root, split)}: {err}")
            continue
        index.append(IndexRow(position, speaker, listener, layout.video_path(root, split, speaker),
                              layout.audio_path(root, split, speaker), emotion))

    def check(row: IndexRow) -> tuple[np.ndarray | None, list[str]]:
        found = [p for p in (_check_video(row.video), _check_audio(row.audio)) if p]
        try:
            return read_emotion_csv(row.emotion, frames), found
        except ValueError as err:
            return None, found + [f"{row.emotion}: {err}"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        checked = list(pool.map(check, index))
    for _, found in checked:
        problems.extend(found)
    matrix, found = _check_neighbours(root, split, size)
    problems.extend(found)
    if problems:
        raise DatasetError(problems)
    emotions = np.stack([e for e, _ in checked])
    listener_index = layout.listener_positions(size)
    return index, EmotionCache(list(speakers), emotions, listener_index, matrix)


def write_index(index: list[IndexRow], cache: EmotionCache, index_tsv: Path, emotions_h5: Path) -> None:
    """Write the index TSV and the emotion cache, each atomically."""
    with atomic_output(emotions_h5) as tmp:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("clips", data=np.array(cache.clips, dtype=object), dtype=h5py.string_dtype())
            f.create_dataset("emotions", data=cache.emotions, compression="gzip", compression_opts=1)
            f.create_dataset("listener_index", data=cache.listener_index.astype(np.int64))
            f.create_dataset("neighbours", data=cache.neighbours, compression="gzip", compression_opts=1)
    with atomic_output(index_tsv) as tmp:
        with tmp.open("w", newline="") as f:
            writer = csv.writer(f, delimiter="\t", lineterminator="\n")
            writer.writerow(INDEX_COLUMNS)
            for r in index:
                writer.writerow([r.position, r.speaker, r.listener, r.video, r.audio, r.emotion])


def index_split(root: Path, split: str, index_tsv: Path, emotions_h5: Path, frames: int = FRAMES) -> int:
    """Build, check and write a split's index; returns the number of mirrored samples."""
    index, cache = build_index(root, split, frames)
    write_index(index, cache, index_tsv, emotions_h5)
    return len(index)


def read_index(path: Path) -> list[IndexRow]:
    with Path(path).open(newline="") as f:
        reader = csv.DictReader(f, delimiter="\t")
        if reader.fieldnames != INDEX_COLUMNS:
            raise ValueError(f"{path}: columns {reader.fieldnames}, expected {INDEX_COLUMNS}")
        return [IndexRow(int(r["position"]), r["speaker"], r["listener"], Path(r["video"]), Path(r["audio"]),
                         Path(r["emotion"])) for r in reader]


def load_emotions(path: Path) -> EmotionCache:
    with h5py.File(path, "r") as f:
        return EmotionCache(
            clips=decode_strings(f["clips"][()]),
            emotions=f["emotions"][()],
            listener_index=f["listener_index"][()],
            neighbours=f["neighbours"][()],
        )
