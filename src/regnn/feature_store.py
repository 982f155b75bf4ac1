"""The feature-store format: one HDF5 file per extractor x split x shard, one (frames, D) float32 dataset per clip.

Sharding a split (instead of one file per clip) keeps a full REACT run to a few hundred Snakemake jobs. On the
ground floor because both sides of it use it: the extractors write shards, the training windows read them.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from regnn.io import atomic_output


def unique_clips(clips: Sequence[str]) -> list[str]:
    """Clips in first-seen order without duplicates: the order shards are cut from."""
    return list(dict.fromkeys(clips))


def shard_clips(clips: Sequence[str], shards: int, k: int) -> list[str]:
    """The clips of shard k: contiguous chunks of the de-duplicated list (numpy.array_split sizes)."""
    if not 0 <= k < shards:
        raise ValueError(f"shard {k} is outside 0..{shards - 1}")
    chunks = np.array_split(np.arange(len(unique := unique_clips(clips))), shards)
    return [unique[i] for i in chunks[k]]


@contextlib.contextmanager
def shard_writer(path: Path, extractor: str, settings: Mapping) -> Iterator[Callable[[str, np.ndarray], None]]:
    """Write one shard atomically, clip by clip: `put(clip, values)` stores a clip at once, so an extraction
    holds one clip's features, not the shard's (a MARS shard can be many GB). Every clip must have the same
    feature dimension; nothing is left under `path` if the block fails."""
    with atomic_output(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["extractor"] = extractor
            f.attrs["settings"] = json.dumps(settings, sort_keys=True)
            dim: int | None = None

            def put(clip: str, values: np.ndarray) -> None:
                nonlocal dim
                values = np.asarray(values, dtype=np.float32)
                if dim is None:
                    dim = int(values.shape[1])
                    f.attrs["dim"] = dim
                elif values.shape[1] != dim:
                    raise ValueError(f"{path}: clips have different feature dimensions {sorted({dim, values.shape[1]})}")
                f.create_dataset(clip, data=values)

            yield put
            if dim is None:
                f.attrs["dim"] = 0


def write_shard(path: Path, features: Mapping[str, np.ndarray], extractor: str, settings: Mapping) -> None:
    """Write one shard atomically; every clip must have the same feature dimension."""
    with shard_writer(path, extractor, settings) as put:
        for clip, values in features.items():
            put(clip, values)


def load_features(shard_paths: Sequence[Path], clips: Sequence[str]) -> np.ndarray:
    """Features of `clips` (in that order, duplicates allowed) from a split's shards, as one array.

    The output is allocated once and filled clip by clip, so peak memory is the result itself (about 8.6 GB
    for REACT 2024's train split at 768 + 128 dims) instead of twice that when clips are stacked.
    """
    rows: dict[str, list[int]] = {}
    for i, clip in enumerate(clips):
        rows.setdefault(clip, []).append(i)
    out: np.ndarray | None = None
    for path in shard_paths:
        with h5py.File(path, "r") as f:
            for clip in [c for c in rows if c in f]:
                values = f[clip][()]
                if out is None:
                    out = np.empty((len(clips), *values.shape), dtype=np.float32)
                out[rows.pop(clip)] = values
    if rows:
        missing = list(rows)
        raise KeyError(f"clips missing from feature shards {[str(p) for p in shard_paths]}: {missing[:5]}"
                       + (f" and {len(missing) - 5} more" if len(missing) > 5 else ""))
    return out if out is not None else np.empty((0, 0, 0), dtype=np.float32)


@dataclass(frozen=True)
class RaggedFeatures:
    """Features of clips of different lengths: clip i's (T_i, D) rows are `values[offsets[i]:offsets[i + 1]]`."""

    clips: list[str]
    values: np.ndarray  # (sum of T_i, D) float32
    offsets: np.ndarray  # (clips + 1,) int64

    @property
    def dim(self) -> int:
        return int(self.values.shape[1])

    def series(self, i: int) -> np.ndarray:
        return self.values[self.offsets[i]:self.offsets[i + 1]]


def load_ragged(shard_paths: Sequence[Path], clips: Sequence[str], lengths: Sequence[int]) -> RaggedFeatures:
    """Features of distinct `clips` of known `lengths` (the emotion cache's), concatenated in that order.

    MARS clips run from 58 to over 20,000 frames, so clips cannot share one (C, frames, D) array. The output
    is allocated once from the expected lengths and filled clip by clip: peak memory is the result itself.
    A clip missing from every shard, or stored with another length or dimension, is an error naming the shard
    and the clip.
    """
    if len(set(clips)) != len(clips) or len(clips) != len(lengths):
        raise ValueError("load_ragged needs distinct clips and one length per clip")
    offsets = np.concatenate([[0], np.cumsum(np.asarray(lengths, dtype=np.int64))]).astype(np.int64)
    row = {clip: i for i, clip in enumerate(clips)}
    values: np.ndarray | None = None
    problems = []
    for path in shard_paths:
        with h5py.File(path, "r") as f:
            for clip in [c for c in row if c in f]:
                i = row.pop(clip)
                data = f[clip]
                if data.ndim != 2 or data.shape[0] != lengths[i]:
                    problems.append(f"{path}: clip {clip} has features of shape {data.shape}, but the emotion "
                                    f"cache gives it {lengths[i]} frames")
                    continue
                if values is None:
                    values = np.empty((int(offsets[-1]), data.shape[1]), dtype=np.float32)
                if data.shape[1] != values.shape[1]:
                    problems.append(f"{path}: clip {clip} has {data.shape[1]}-d features, other clips "
                                    f"{values.shape[1]}-d")
                    continue
                values[offsets[i]:offsets[i + 1]] = data[()]
    if row:
        missing = list(row)
        problems.append(f"clips missing from feature shards {[str(p) for p in shard_paths]}: {missing[:5]}"
                        + (f" and {len(missing) - 5} more" if len(missing) > 5 else ""))
    if problems:
        raise ValueError("; ".join(problems))
    return RaggedFeatures(list(clips), values if values is not None else np.empty((0, 0), np.float32), offsets)
