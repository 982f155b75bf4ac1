"""Training windows and appropriate-neighbour sampling, entirely in memory.

REGNN trains on 50-frame windows (stride 25, 29 per 750-frame clip) of the speaker's video and audio
features; each speaker window is paired with up to 10 appropriate listener windows at the same offset,
drawn from the neighbour matrix. The reference re-read an emotion CSV per neighbour per batch; here every
array a batch needs is loaded once, and a batch is a few fancy-indexing gathers.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from regnn.data.index import EmotionCache, load_emotions
from regnn.feature_store import load_features, unique_clips


def window_starts(frames: int, window: int, stride: int) -> np.ndarray:
    """First frame of every window; the windows must tile the clip exactly (as overlap-averaging needs)."""
    if window < 1 or stride < 1 or window > frames:
        raise ValueError(f"window {window} / stride {stride} do not fit {frames} frames")
    if (frames - window) % stride:
        raise ValueError(f"windows of {window} frames with stride {stride} do not end on frame {frames}: "
                         f"({frames} - {window}) must be a multiple of {stride}")
    return np.arange(0, frames - window + 1, stride)


def clip_windows(series: np.ndarray, window: int, stride: int) -> np.ndarray:
    """(C, frames, D) -> (C, n_windows, window, D) view (no copy)."""
    starts = window_starts(series.shape[1], window, stride)
    view = np.lib.stride_tricks.sliding_window_view(series, window, axis=1)  # (C, F-w+1, D, w)
    return view[:, starts].swapaxes(-1, -2)


@dataclass(frozen=True)
class SplitArrays:
    """Everything training or generation needs from a split, in memory.

    `position_clip[k]` is the row of `video`/`audio` holding position k's speaker clip.
    """

    clips: list[str]  # speaker clip key per mirrored position
    position_clip: np.ndarray  # (2N,) int64
    video: np.ndarray  # (C, frames, Dv) float32
    audio: np.ndarray  # (C, frames, Da) float32
    emotions: EmotionCache

    @property
    def video_dim(self) -> int:
        return int(self.video.shape[2])

    @property
    def audio_dim(self) -> int:
        return int(self.audio.shape[2])


def load_split(emotions_h5: Path, video_shards: Sequence[Path], audio_shards: Sequence[Path]) -> SplitArrays:
    """Load a split's emotion cache and both modalities' feature shards, checking that frames agree."""
    cache = load_emotions(Path(emotions_h5))
    unique = unique_clips(cache.clips)
    row = {clip: i for i, clip in enumerate(unique)}
    video = load_features([Path(p) for p in video_shards], unique)
    audio = load_features([Path(p) for p in audio_shards], unique)
    frames = cache.emotions.shape[1]
    for name, feats, shards in (("video", video, video_shards), ("audio", audio, audio_shards)):
        if feats.shape[1] != frames:
            raise ValueError(f"{name} features in {[str(s) for s in shards]} have {feats.shape[1]} frames per "
                             f"clip, but {emotions_h5} has {frames}")
        bad = next((clip for clip, values in zip(unique, feats) if not np.isfinite(values).all()), None)
        if bad is not None:  # checked clip by clip: a whole-array mask would double peak memory
            raise ValueError(f"{name} features of clip {bad} (in {[str(s) for s in shards]}) are not finite")
    return SplitArrays(list(cache.clips), np.array([row[c] for c in cache.clips], dtype=np.int64),
                       video, audio, cache)


@dataclass(frozen=True)
class Batch:
    """Speaker windows and their sampled appropriate listener windows (`counts[i]` for window i)."""

    video: torch.Tensor  # (B, window, Dv)
    audio: torch.Tensor  # (B, window, Da)
    targets: torch.Tensor  # (L, window, 25), L = counts.sum()
    counts: torch.Tensor  # (B,) int64

    def to(self, device: torch.device) -> "Batch":
        return Batch(self.video.to(device, non_blocking=True), self.audio.to(device, non_blocking=True),
                     self.targets.to(device, non_blocking=True), self.counts.to(device))


class WindowSampler:
    """Windows over all mirrored positions, each with up to `max_neighbours` appropriate listener windows.

    Window id w = position * n_windows + window index. Neighbour j of speaker k contributes the emotions of
    j's listener (the clip at `listener_index[j]`) at the same frame offset.
    """

    def __init__(self, data: SplitArrays, window: int, stride: int, max_neighbours: int):
        if max_neighbours < 1:
            raise ValueError(f"max_neighbours must be >= 1, got {max_neighbours}")
        self.data = data
        self.window = window
        self.starts = window_starts(data.emotions.emotions.shape[1], window, stride)
        self.max_neighbours = max_neighbours
        matrix = data.emotions.neighbours.astype(bool)
        empty = np.flatnonzero(~matrix.any(axis=1))
        if len(empty):
            raise ValueError(f"speaker {data.clips[empty[0]]} (position {empty[0]}) has no appropriate "
                             f"listener in the neighbour matrix ({len(empty)} such positions)")
        # CSR layout of each speaker's appropriate listener emotion rows.
        rows, cols = np.nonzero(matrix)
        self._indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=len(matrix)))])
        self._targets = data.emotions.listener_index[cols].astype(np.int64)
        self._frames = np.arange(window)

    @property
    def n_windows(self) -> int:
        return len(self.data.clips) * len(self.starts)

    @property
    def dims(self) -> dict[str, int]:
        return {"video": self.data.video_dim, "audio": self.data.audio_dim}

    def sample_neighbours(self, positions: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Emotion rows of the sampled listeners (concatenated) and how many each position got."""
        chosen, counts = [], np.empty(len(positions), dtype=np.int64)
        for i, k in enumerate(positions):
            options = self._targets[self._indptr[k]:self._indptr[k + 1]]
            if len(options) > self.max_neighbours:
                options = rng.choice(options, self.max_neighbours, replace=False)
            chosen.append(options)
            counts[i] = len(options)
        return np.concatenate(chosen), counts

    def batch(self, window_ids: np.ndarray, rng: np.random.Generator) -> Batch:
        positions, which = np.divmod(np.asarray(window_ids, dtype=np.int64), len(self.starts))
        frames = self.starts[which][:, None] + self._frames[None, :]  # (B, window)
        clip_rows = self.data.position_clip[positions][:, None]
        listeners, counts = self.sample_neighbours(positions, rng)
        target_frames = np.repeat(frames, counts, axis=0)
        return Batch(torch.from_numpy(self.data.video[clip_rows, frames]),
                     torch.from_numpy(self.data.audio[clip_rows, frames]),
                     torch.from_numpy(self.data.emotions.emotions[listeners[:, None], target_frames]),
                     torch.from_numpy(counts))


def prefetched_batches(sampler: WindowSampler, order: np.ndarray, batch_size: int, n_batches: int,
                       rng: np.random.Generator, depth: int = 2) -> Iterator[Batch]:
    """Batches of `order`, assembled up to `depth` ahead in one background thread.

    One worker builds them strictly in order, so the neighbour draws (and hence training) are the same as
    building them inline; numpy's gathers release the GIL, so assembly overlaps the model step.
    """
    def make(b: int) -> Batch:
        return sampler.batch(order[b * batch_size:(b + 1) * batch_size], rng)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="batches") as pool:
        pending = deque(pool.submit(make, b) for b in range(min(depth, n_batches)))
        for b in range(n_batches):
            batch = pending.popleft().result()
            if b + depth < n_batches:
                pending.append(pool.submit(make, b + depth))
            yield batch
