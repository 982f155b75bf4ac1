"""The per-split index: the mirrored 2N samples with resolved paths, every file checked, emotions cached.

Real REACT downloads are often incomplete; checking everything up front (and reporting every problem at
once) replaces crashes deep inside training with one actionable list. Caching the emotions in one HDF5 file
replaces the reference trainer's per-batch CSV reads.
"""

from __future__ import annotations

import csv
import logging
from collections import defaultdict
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

log = logging.getLogger(__name__)

INDEX_COLUMNS = ["position", "speaker", "listener", "video", "audio", "emotion"]
SKIPPED_COLUMNS = ["clip", "reason"]


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


def repeated_clips(speakers: list[str]) -> dict[str, list[int]]:
    """Clips that are the speaker at more than one mirrored position -> those positions (0-based)."""
    positions: dict[str, list[int]] = defaultdict(list)
    for k, clip in enumerate(speakers):
        positions[clip].append(k)
    return {clip: found for clip, found in positions.items() if len(found) > 1}


def _warn_repeats(split_csv: Path, speakers: list[str], rows: int) -> None:
    """Name every repeated clip: its neighbour rows differ between the reference's rule and this project's."""
    for clip, positions in repeated_clips(speakers).items():
        where = ", ".join(f"row {k % rows} as {'speaker' if k < rows else 'listener'}" for k in positions)
        log.warning("%s lists clip %s more than once (%s; mirrored positions %s). The reference looks its "
                    "neighbour row up by name (the first, position %d, for all of them); here each position "
                    "uses its own row of the neighbour matrix.", split_csv, clip, where,
                    ", ".join(map(str, positions)), positions[0])


def _check_split(root: Path, split: str, frames: int) -> tuple[
        list[str], list[IndexRow | None], list[np.ndarray | None], list[list[str]], np.ndarray | None, list[str]]:
    """Every mirrored sample checked: speakers, rows (None if unresolvable), emotions, problems per sample,
    the neighbour matrix and the split-wide problems."""
    rows = layout.read_split(root, split)
    speakers, listeners = layout.mirrored(rows)
    size = len(speakers)
    _warn_repeats(layout.split_csv(root, split), list(speakers), len(rows))
    per_sample: list[list[str]] = [[] for _ in range(size)]
    index: list[IndexRow | None] = []
    for position, (speaker, listener) in enumerate(zip(speakers, listeners)):
        try:
            emotion = layout.emotion_path(root, split, speaker)
        except ValueError as err:
            per_sample[position].append(f"{layout.split_csv(root, split)}: {err}")
            index.append(None)
            continue
        index.append(IndexRow(position, speaker, listener, layout.video_path(root, split, speaker),
                              layout.audio_path(root, split, speaker), emotion))

    def check(row: IndexRow | None) -> tuple[np.ndarray | None, list[str]]:
        if row is None:
            return None, []
        found = [p for p in (_check_video(row.video), _check_audio(row.audio)) if p]
        try:
            return read_emotion_csv(row.emotion, frames), found
        except ValueError as err:
            return None, found + [f"{row.emotion}: {err}"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        checked = list(pool.map(check, index))
    for position, (_, found) in enumerate(checked):
        per_sample[position].extend(found)
    matrix, split_problems = _check_neighbours(root, split, size)
    return list(speakers), index, [e for e, _ in checked], per_sample, matrix, split_problems


def build_index(root: Path, split: str, frames: int = FRAMES) -> tuple[list[IndexRow], EmotionCache]:
    """Resolve and check every file of a split; raise DatasetError listing all problems.

    A clip listed more than once gets a warning naming its rows (see `_warn_repeats`).
    """
    index, cache, _ = build_index_skipping(root, split, frames, "error")
    return index, cache


def build_index_skipping(root: Path, split: str, frames: int = FRAMES, incomplete: str = "error",
                         ) -> tuple[list[IndexRow], EmotionCache, list[tuple[str, str]]]:
    """Resolve and check every file of a split: the index, the emotion cache and the skipped samples.

    `incomplete: error` raises DatasetError listing all problems. `skip` drops every dyad (both mirrored
    samples) with a problem, cuts the neighbour matrix to the kept rows and columns, then also drops the
    dyads that skipping left without any appropriate listener, and returns each dropped sample with its reason.
    Problems of the split as a whole (split CSV, neighbour matrix) are always an error.
    """
    root = Path(root).resolve()
    speakers, index, emotions, per_sample, matrix, split_problems = _check_split(root, split, frames)
    size, half = len(speakers), len(speakers) // 2
    if split_problems or (incomplete == "error" and any(per_sample)):
        raise DatasetError([p for found in per_sample for p in found] + split_problems)
    reasons = {k: "; ".join(per_sample[k] + per_sample[(k + half) % size]) for k in range(size)
               if per_sample[k] or per_sample[(k + half) % size]}
    keep = np.array([k not in reasons for k in range(size)])
    had_listeners = (matrix == 1).any(axis=1)
    while True:  # a dyad whose appropriate listeners were all dropped cannot be scored either
        orphans = keep & had_listeners & ~(matrix[:, keep] == 1).any(axis=1)
        if not orphans.any():
            break
        for k in np.flatnonzero(orphans):
            for j in (k, (k + half) % size):
                reasons.setdefault(j, "no appropriate listener is left in the neighbour matrix after skipping")
                keep[j] = False
    if not keep.any():
        raise DatasetError([f"{layout.split_csv(root, split)}: every sample was skipped"]
                           + [p for found in per_sample for p in found])
    kept = np.flatnonzero(keep)
    rows = [IndexRow(new, *(getattr(index[k], f) for f in ("speaker", "listener", "video", "audio", "emotion")))
            for new, k in enumerate(kept)]
    cache = EmotionCache([speakers[k] for k in kept], np.stack([emotions[k] for k in kept]),
                         layout.listener_positions(len(kept)), matrix[np.ix_(kept, kept)])
    return rows, cache, [(speakers[k], reasons[k]) for k in sorted(reasons)]


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


def write_skipped(path: Path, skipped: list[tuple[str, str]]) -> None:
    """`skipped.tsv`: each dropped sample (the speaker clip of a mirrored sample) and why."""
    with atomic_output(path) as tmp:
        with tmp.open("w", newline="") as f:
            writer = csv.writer(f, delimiter="\t", lineterminator="\n")
            writer.writerow(SKIPPED_COLUMNS)
            writer.writerows(skipped)


def index_split(root: Path, split: str, index_tsv: Path, emotions_h5: Path, frames: int = FRAMES,
                incomplete: str = "error", skipped_tsv: Path | None = None) -> int:
    """Build, check and write a split's index (and, when skipping, what was skipped); returns the number of
    mirrored samples."""
    index, cache, skipped = build_index_skipping(root, split, frames, incomplete)
    for clip, reason in skipped:
        log.warning("skipped %s: %s", clip, reason)
    if skipped_tsv is not None:
        write_skipped(skipped_tsv, skipped)
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
