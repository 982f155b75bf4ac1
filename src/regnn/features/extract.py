"""Run one extraction job: one extractor over one shard of a split's input clips, into one HDF5 shard.

The protocol says which clips a split's index holds and how long each is (`Protocol.extraction_clips`):
REACT 2024's are all the extractor's `frames` (750) at 25 fps, a MARS clip's its facial-attribute length at
30 fps, its media allowed to differ by `data.length_tolerance` frames. Clips are prepared (decoded, resampled,
resized) in pieces of at most `chunk_frames` frames in background threads while the network works on the
previous piece, so on a GPU the network is the bottleneck and a 20,000-frame clip needs no more memory than a
short one. The log says what weights were used (random ones are called out), frames per second, how busy the
network was, and every clip whose media were padded or trimmed.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from regnn import protocols
from regnn.data.mars import LENGTH_TOLERANCE
from regnn.features.kinds import implementation
from regnn.features.media import MediaError, prefetch_chunks
from regnn.features.runtime import COMMON_DEFAULTS, Clip, Extractor
from regnn.feature_store import shard_clips, shard_writer
from regnn.protocols import ExtractionClip

log = logging.getLogger(__name__)


def build_extractor(name: str, settings: Mapping[str, Any]) -> Extractor:
    """The extractor object for a config entry (`kind` picks the implementation, imported only then)."""
    module, cls = implementation(name, settings)
    return getattr(importlib.import_module(module), cls)(name, settings)


def shard_rows(clips: Sequence[ExtractionClip], shards: int, shard: int) -> list[ExtractionClip]:
    """The clips of shard `shard`: each clip once, in index order, cut as `feature_store.shard_clips`."""
    first: dict[str, ExtractionClip] = {}
    for clip in clips:
        first.setdefault(clip.key, clip)
    return [first[key] for key in shard_clips([c.key for c in clips], shards, shard)]


def settled(clip: ExtractionClip, settings: Mapping[str, Any], tolerance: int) -> Clip:
    """The clip with its length decided: the protocol's, else (REACT 2024) the extractor's `frames` and `fps`
    with REACT's own length rule; `tolerance` applies only to lengths the protocol gave."""
    if clip.frames is None:
        return Clip(clip.key, clip.video, clip.audio, clip.features, int(settings["frames"]), float(settings["fps"]))
    return Clip(clip.key, clip.video, clip.audio, clip.features, clip.frames, float(clip.fps or settings["fps"]),
                tolerance)


@dataclass(frozen=True)
class ShardReport:
    clips: int
    frames: int
    seconds: float
    network_seconds: float
    notes: dict[str, int]  # note kind -> clips

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else float("nan")


def extract_shard(index_tsv: Path, output: Path, name: str, settings: Mapping[str, Any], shard: int,
                  threads: int | None = None, progress: bool = True, protocol: str | None = None,
                  length_tolerance: int | None = None) -> ShardReport:
    """Extract shard `shard` of the split indexed by `index_tsv` (of `protocol`, default react2024) with the
    extractor `name` and write `output`. `length_tolerance` (default `data.mars.LENGTH_TOLERANCE`): frames by
    which a clip's media may differ from the length its protocol gives.

    Any bad clip raises `MediaError` (naming the clip, file and problem) before anything is written. The
    caller chooses where the log goes (`regnn.logs.log_to`, as for every other stage).
    """
    index_tsv, output = Path(index_tsv), Path(output)
    if threads:
        torch.set_num_threads(threads)
    common = {key: settings.get(key, default) for key, default in COMMON_DEFAULTS.items()}
    tolerance = LENGTH_TOLERANCE if length_tolerance is None else int(length_tolerance)
    clips = [settled(c, common, tolerance) for c in
             shard_rows(protocols.get(protocol).extraction_clips(index_tsv), int(common["shards"]), shard)]
    if any(c.frames is not None for c in clips) and {"frames", "fps"} & set(settings):
        log.warning("extractor %s: its `frames` / `fps` settings are not used: the %s index gives each clip's "
                    "length and rate", name, protocols.get(protocol).name)
    extractor = build_extractor(name, settings)
    log.info("extractor %s (%s): %s", name, settings.get("kind"), extractor.description)
    if extractor.random_weights:
        log.warning("extractor %s uses random weights: its features are only good for testing the pipeline", name)
    log.info("shard %d/%d of %s: %d clips, device %s, %d torch threads", shard, common["shards"], index_tsv,
             len(clips), extractor.device, torch.get_num_threads())
    media = "audio" if settings.get("modality") == "audio" else "video"

    notes: Counter[str] = Counter()
    network = 0.0
    start = time.perf_counter()
    with shard_writer(output, name, dict(settings)) as put, \
            tqdm(total=len(clips), unit="clip", desc=f"{name} shard {shard}", disable=not progress) as bar:
        for clip, pieces in prefetch_chunks(extractor.chunks, clips, int(common["workers"]),
                                            int(common["prefetch"])):
            rows = []
            for prepared in pieces:
                t0 = time.perf_counter()
                rows.append(np.asarray(extractor.forward(prepared), dtype=np.float32))
                network += time.perf_counter() - t0
                for kind, detail in prepared.notes:
                    notes[kind] += 1
                    log.info("clip %s: %s: %s", clip.key, kind, detail)
            values = rows[0] if len(rows) == 1 else np.concatenate(rows)
            put(clip.key, _checked(values, clip, extractor.dim, getattr(clip, media)))
            bar.update(1)
        elapsed = time.perf_counter() - start
    report = ShardReport(len(clips), sum(c.frames for c in clips), elapsed, network, dict(notes))
    log.info("wrote %s: %d clips, %d frames in %.1f s = %.1f frames/s; network busy %.0f%% of the time",
             output, report.clips, report.frames, elapsed, report.frames_per_second,
             100 * network / elapsed if elapsed > 0 else 0.0)
    for note, count in sorted(notes.items()):
        log.info("%d clip(s): %s", count, note)
    return report


def _checked(values: np.ndarray, clip: Clip, dim: int | None, path: Path) -> np.ndarray:
    """The network's output as float32 (frames, dim); a wrong shape or a NaN names the clip."""
    if values.ndim != 2 or values.shape[0] != clip.frames or (dim is not None and values.shape[1] != dim):
        raise MediaError(clip.key, path, f"features have shape {values.shape}, expected ({clip.frames}, {dim})")
    if not np.isfinite(values).all():
        raise MediaError(clip.key, path, "features contain NaN or infinite values")
    return values
