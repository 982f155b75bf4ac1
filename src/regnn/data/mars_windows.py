"""MARS (REACT 2025/2026) training windows and generation chunks, as the official 2025/2026 REGNN baseline.

Clips have their own lengths (58 to over 20,000 frames), so features are ragged (`feature_store.load_ragged`)
and nothing is tiled (notes/react2025.md §3):
- training: one random `window`-frame window per sample (speaker clip) per epoch; its targets are the
  paired listener plus `k_select - 1` random other listeners of the session (all of them if the session has
  fewer), each first length-aligned to the speaker clip with the metrics' own resampling (passed in as
  `resample`, so training and scoring see the same targets), then cropped to the window. The official code
  crashes on clips shorter than a window (`randint(0, T - 50)`); here they are zero-padded or skipped
  (`short_clips`), and the log says how many.
- generation: the whole clip cut into disjoint `window`-frame chunks, the last zero-padded (`clip_chunks`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from regnn.data.layout import EMOTION_DIMS
from regnn.data.mars import MarsCache, load_cache
from regnn.data.windows import Batch
from regnn.feature_store import RaggedFeatures, load_ragged, unique_clips

log = logging.getLogger(__name__)

SHORT_CLIPS = ("pad", "skip")
Resample = Callable[[np.ndarray, int], np.ndarray]


@dataclass(frozen=True)
class MarsSplit:
    """A MARS split in memory: the attribute cache and each distinct input clip's video and audio features."""

    cache: MarsCache
    video: RaggedFeatures
    audio: RaggedFeatures
    input_row: np.ndarray  # (samples,) row of each sample's input clip in `video` / `audio`

    @property
    def samples(self) -> list[str]:
        return self.cache.samples

    @property
    def lengths(self) -> np.ndarray:
        """Frames of each sample's input clip."""
        return np.diff(self.cache.offsets)[self.cache.speaker_index]

    @property
    def dims(self) -> dict[str, int]:
        return {"video": self.video.dim, "audio": self.audio.dim}


def load_mars_split(emotions_h5: Path, video_shards: Sequence[Path], audio_shards: Sequence[Path]) -> MarsSplit:
    """The split's cache and the features of its input clips, each the length the cache gives it."""
    cache = load_cache(Path(emotions_h5))
    inputs = unique_clips([cache.clips[i] for i in cache.speaker_index])
    position = {c: i for i, c in enumerate(cache.clips)}
    lengths = np.diff(cache.offsets)
    frames = [int(lengths[position[c]]) for c in inputs]
    modalities = {}
    for name, shards in (("video", video_shards), ("audio", audio_shards)):
        try:
            features = load_ragged([Path(p) for p in shards], inputs, frames)
        except ValueError as err:
            raise ValueError(f"{name} features for {emotions_h5}: {err}") from None
        for i, clip in enumerate(inputs):  # clip by clip: a whole-array mask would double peak memory
            if not np.isfinite(features.series(i)).all():
                raise ValueError(f"{name} features of clip {clip} (in {[str(s) for s in shards]}) are not finite")
        modalities[name] = features
    row = {c: i for i, c in enumerate(inputs)}
    return MarsSplit(cache, modalities["video"], modalities["audio"],
                     np.array([row[cache.clips[i]] for i in cache.speaker_index], dtype=np.int64))


class MarsWindowSampler:
    """One random window per sample per epoch (window id = sample), with its session's listener targets.

    `appropriate[k]` are the cache positions of sample k's appropriate reactions (the protocol's session
    rule); the paired listener is always the first target.
    """

    def __init__(self, data: MarsSplit, window: int, k_select: int, appropriate: Sequence[np.ndarray],
                 resample: Resample, short_clips: str = "pad"):
        if k_select < 1:
            raise ValueError(f"k_select (train.neighbours) must be >= 1, got {k_select}")
        if short_clips not in SHORT_CLIPS:
            raise ValueError(f"unknown train.short_clips {short_clips!r}; choose pad or skip")
        self.data, self.window, self.k_select, self.resample = data, window, k_select, resample
        lengths = data.lengths
        short = np.flatnonzero(lengths < window)
        if len(short):
            log.warning("%d of %d clips are shorter than a %d-frame window (the official code crashes on them); "
                        "%s, e.g. %s (%d frames)", len(short), len(lengths), window,
                        "their windows are zero-padded" if short_clips == "pad" else "they are skipped",
                        data.samples[short[0]], lengths[short[0]])
        self.samples = np.arange(len(lengths)) if short_clips == "pad" else np.flatnonzero(lengths >= window)
        if not len(self.samples):
            raise ValueError(f"no clip has {window} frames or more (train.short_clips: pad would use them)")
        listeners = data.cache.listener_index
        self._others = [np.array([j for j in appropriate[k] if j != listeners[k]], dtype=np.int64)
                        for k in range(len(lengths))]

    @property
    def n_windows(self) -> int:
        return len(self.samples)

    @property
    def dims(self) -> dict[str, int]:
        return self.data.dims

    def listeners(self, k: int, rng: np.random.Generator) -> list[int]:
        """The paired listener, then k_select - 1 random others of the session (all when there are fewer)."""
        others = self._others[k]
        if len(others) > self.k_select - 1:
            others = rng.choice(others, self.k_select - 1, replace=False)
        return [int(self.data.cache.listener_index[k]), *(int(j) for j in others)]

    def batch(self, window_ids: np.ndarray, rng: np.random.Generator) -> Batch:
        data, window = self.data, self.window
        ids = self.samples[np.asarray(window_ids, dtype=np.int64)]
        video = np.zeros((len(ids), window, data.video.dim), dtype=np.float32)
        audio = np.zeros((len(ids), window, data.audio.dim), dtype=np.float32)
        targets, counts = [], np.empty(len(ids), dtype=np.int64)
        for b, k in enumerate(ids):
            frames = int(data.lengths[k])
            start = int(rng.integers(0, frames - window + 1)) if frames >= window else 0
            n = min(window, frames)
            row = data.input_row[k]
            video[b, :n] = data.video.series(row)[start:start + n]
            audio[b, :n] = data.audio.series(row)[start:start + n]
            chosen = self.listeners(int(k), rng)
            for j in chosen:
                target = np.zeros((window, EMOTION_DIMS), dtype=np.float32)
                target[:n] = self.resample(data.cache.series(j), frames)[start:start + n]
                targets.append(target)
            counts[b] = len(chosen)
        return Batch(torch.from_numpy(video), torch.from_numpy(audio), torch.from_numpy(np.stack(targets)),
                     torch.from_numpy(counts))


def clip_chunks(series: np.ndarray, window: int) -> np.ndarray:
    """(T, D) -> (ceil(T / window), window, D): disjoint chunks, the last zero-padded (`segment_torch2d`)."""
    n = -(-len(series) // window)
    out = np.zeros((n * window, series.shape[1]), dtype=np.float32)
    out[:len(series)] = series
    return out.reshape(n, window, series.shape[1])
