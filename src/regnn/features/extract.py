"""Run one extraction job: one extractor over one shard of a split's speaker clips, into one HDF5 shard.

Clips are prepared (decoded, resampled, resized) in background threads while the network works on the
previous clip, so on a GPU the network is the bottleneck. The log says what weights were used (random ones
are called out), frames per second, how busy the network was, and every clip whose audio was padded.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from regnn.data.index import IndexRow, read_index
from regnn.features.kinds import implementation
from regnn.features.media import MediaError, prefetch
from regnn.features.runtime import COMMON_DEFAULTS, Extractor, Prepared
from regnn.feature_store import shard_clips, write_shard

log = logging.getLogger(__name__)


def build_extractor(name: str, settings: Mapping[str, Any]) -> Extractor:
    """The extractor object for a config entry (`kind` picks the implementation, imported only then)."""
    module, cls = implementation(name, settings)
    return getattr(importlib.import_module(module), cls)(name, settings)


def shard_rows(index: list[IndexRow], shards: int, shard: int) -> list[IndexRow]:
    """The index rows of shard `shard`: each speaker clip once, in index order, cut as `feature_store.shard_clips`."""
    first: dict[str, IndexRow] = {}
    for row in index:
        first.setdefault(row.speaker, row)
    return [first[clip] for clip in shard_clips([r.speaker for r in index], shards, shard)]


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
                  threads: int | None = None, progress: bool = True) -> ShardReport:
    """Extract shard `shard` of the split indexed by `index_tsv` with the extractor `name` and write `output`.

    Any bad clip raises `MediaError` (naming the clip, file and problem) before anything is written. The
    caller chooses where the log goes (`regnn.logs.log_to`, as for every other stage).
    """
    index_tsv, output = Path(index_tsv), Path(output)
    if threads:
        torch.set_num_threads(threads)
    shards = int(settings.get("shards", COMMON_DEFAULTS["shards"]))
    rows = shard_rows(read_index(index_tsv), shards, shard)
    extractor = build_extractor(name, settings)
    log.info("extractor %s (%s): %s", name, settings.get("kind"), extractor.description)
    if extractor.random_weights:
        log.warning("extractor %s uses random weights: its features are only good for testing the pipeline", name)
    log.info("shard %d/%d of %s: %d clips, device %s, %d torch threads", shard, shards, index_tsv, len(rows),
             extractor.device, torch.get_num_threads())
    frames = int(settings.get("frames", COMMON_DEFAULTS["frames"]))
    workers = int(settings.get("workers", COMMON_DEFAULTS["workers"]))
    depth = int(settings.get("prefetch", COMMON_DEFAULTS["prefetch"]))
    media = "audio" if settings.get("modality") == "audio" else "video"

    features: dict[str, np.ndarray] = {}
    notes: Counter[str] = Counter()
    network = 0.0
    start = time.perf_counter()
    with tqdm(total=len(rows), unit="clip", desc=f"{name} shard {shard}", disable=not progress) as bar:
        for row, prepared in prefetch(lambda r: extractor.prepare(r.speaker, r), rows, workers, depth):
            t0 = time.perf_counter()
            values = extractor.forward(prepared)
            network += time.perf_counter() - t0
            features[row.speaker] = _checked(values, prepared, frames, extractor.dim, getattr(row, media))
            for kind, detail in prepared.notes:
                notes[kind] += 1
                log.info("clip %s: %s: %s", row.speaker, kind, detail)
            bar.update(1)
    elapsed = time.perf_counter() - start
    report = ShardReport(len(rows), len(rows) * frames, elapsed, network, dict(notes))
    write_shard(output, features, name, dict(settings))
    log.info("wrote %s: %d clips x %d frames in %.1f s = %.1f frames/s; network busy %.0f%% of the time",
             output, report.clips, frames, elapsed, report.frames_per_second,
             100 * network / elapsed if elapsed > 0 else 0.0)
    for note, count in sorted(notes.items()):
        log.info("%d clip(s): %s", count, note)
    return report


def _checked(values: np.ndarray, prepared: Prepared, frames: int, dim: int | None, path: Path) -> np.ndarray:
    """The network's output as float32 (frames, dim); a wrong shape or a NaN names the clip."""
    values = np.asarray(values, dtype=np.float32)
    if values.ndim != 2 or values.shape[0] != frames or (dim is not None and values.shape[1] != dim):
        raise MediaError(prepared.clip, path, f"features have shape {values.shape}, expected ({frames}, {dim})")
    if not np.isfinite(values).all():
        raise MediaError(prepared.clip, path, "features contain NaN or infinite values")
    return values
