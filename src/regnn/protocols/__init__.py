"""The challenge protocols a config can choose (`data.protocol`), behind one small interface.

Everything that differs between REACT 2023/2024 and REACT 2025/2026 (MARS) is answered here: how a split is
indexed and what files that writes, which reactions are appropriate, the frame rate and clip lengths, the
metric set and how it is scored, and the baselines. The stages (workflow scripts, the CLI) ask
`get(name)` and call its methods; no stage tests the protocol's name.
"""

from __future__ import annotations

import abc
import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from regnn.paths import RESULTS, Results
from regnn.settings import merge_settings

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    import numpy as np

MODULES = {"react2024": "regnn.protocols.react2024", "react2025": "regnn.protocols.react2025"}
NAMES = tuple(MODULES)
DEFAULT = "react2024"


@dataclass(frozen=True)
class ExtractionClip:
    """One input clip as the feature stage reads it: its key (the shard's dataset name), its media, the official
    pre-extracted feature files by modality, and its length. `frames` and `fps` are None where the protocol
    fixes every clip's length (REACT 2024): the extractor's own `frames` and `fps` settings apply."""

    key: str
    video: Path
    audio: Path
    features: Mapping[str, Path]  # "video" / "audio" -> the release's pre-extracted file (may not exist)
    frames: int | None = None
    fps: float | None = None


class Protocol(abc.ABC):
    """One challenge protocol. `dataset` arguments map the names of `dataset_outputs` to files."""

    name: str
    fps: float
    clip_frames: int | None  # every clip's length, or None when lengths vary per clip
    metrics: tuple[str, ...]
    baselines: tuple[str, ...]
    directions: tuple[str, ...]
    model_stages: bool  # whether features, training and generation run on this protocol's data yet
    renders: bool  # whether the reaction videos (rule render) handle this protocol's clips
    defaults: Mapping[str, Mapping] = {}
    """This protocol's defaults for config sections (train, generate), under the config's own values."""

    def configured(self, config: Mapping) -> dict:
        """`config` with this protocol's defaults filled in under its sections (the one place they apply:
        the workflow and the CLI both call this before reading train or generate settings)."""
        return {**config, **{section: merge_settings(dict(values), config.get(section))
                             for section, values in self.defaults.items()}}

    def training_resampling(self, evaluate: Mapping) -> dict | None:
        """The settings with which training length-aligns its targets (None: targets need no alignment)."""
        return None

    def check_data(self, data: Mapping) -> None:
        """Raise ValueError for `data` settings this protocol cannot honour."""
        if data.get("direction", "both") not in self.directions:
            raise ValueError(f"data.direction {data.get('direction')!r} is not available with protocol "
                             f"{self.name} (choose {', '.join(self.directions)})")

    @abc.abstractmethod
    def metric_settings(self, evaluate: Mapping) -> dict:
        """The part of a resolved `evaluate` section that changes this protocol's numbers (a rule's params:
        editing anything else must not rerun the metrics)."""

    @abc.abstractmethod
    def dataset_outputs(self, split: str, incomplete: str = "error", results: Results = RESULTS) -> dict[str, Path]:
        """The files `index_split` writes for `split`, by name (`skipped` when `incomplete` is skip); a rule
        passes `"{split}"` and gets patterns."""

    @abc.abstractmethod
    def write_demo_data(self, out: Path, settings: Mapping) -> object:
        """The demo_data rule: a synthetic dataset in this protocol's layout (`settings`: config demo_data);
        returns the settings used, for the log."""

    @abc.abstractmethod
    def index_split(self, root: Path, split: str, outputs: Mapping[str, Path], data: Mapping) -> int:
        """Check a split and write `outputs`; returns the number of samples. `data` is the config section."""

    @abc.abstractmethod
    def extraction_clips(self, index_tsv: Path) -> list[ExtractionClip]:
        """Every input clip of a split's `index.tsv` once, in index order: what the feature stage extracts."""

    @abc.abstractmethod
    def clip_lengths(self, dataset: Mapping[str, Path]) -> np.ndarray:
        """Frames of every sample's input clip, in sample order."""

    @abc.abstractmethod
    def appropriateness(self, dataset: Mapping[str, Path]) -> list[np.ndarray]:
        """Per sample, the positions (in the cache's own clip order) of its appropriate real reactions."""

    @abc.abstractmethod
    def training_windows(self, emotions: Path, video_shards: Sequence[Path], audio_shards: Sequence[Path],
                         model: Mapping, train: Mapping, resampling: Mapping | None):
        """The training split's window sampler (`n_windows`, `dims`, `batch(ids, rng)`), from resolved
        model and train settings."""

    @abc.abstractmethod
    def generate(self, checkpoint: Path, emotions: Path, video_shards: Sequence[Path], audio_shards: Sequence[Path],
                 settings: Mapping, seed: int, output: Path, threads: int | None = None) -> None:
        """The generate rule: every sample's reactions, in the predictions file this protocol's evaluation reads."""

    @abc.abstractmethod
    def reaction_series(self, predictions_h5: Path, emotions: Path, clips: int
                        ) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
        """For the first `clips` samples: key, predictions (samples, frames, 25), the true partner (T, 25)."""

    @abc.abstractmethod
    def evaluate_run(self, predictions_h5: Path, dataset: Mapping[str, Path], output: Path,
                     settings: Mapping | None = None, threads: int = 1) -> Mapping[str, float | str]:
        """The evaluate rule: score one predictions file and write its one-row metrics TSV."""

    @abc.abstractmethod
    def evaluate_baseline(self, name: str, dataset: Mapping[str, Path], output: Path,
                          settings: Mapping | None = None, threads: int = 1,
                          train_dataset: Mapping[str, Path] | None = None) -> Mapping[str, float | str]:
        """The baseline rule (`train_dataset`: the training split's outputs, for baselines built from it)."""

    @abc.abstractmethod
    def evaluate_dataset(self, data_dir: Path, pred_dir: Path, split: str, *, settings: Mapping,
                         threads: int, samples: int = 10, targets: Path | None = None, out: Path | None = None,
                         direction: str = "both") -> Mapping[str, float | str]:
        """`regnn evaluate`: a dataset folder in the challenge's layout plus predictions."""

    @abc.abstractmethod
    def write_metrics(self, path: Path, metrics: Mapping[str, float | str]) -> None:
        """The one-row metrics TSV, written atomically."""

    @abc.abstractmethod
    def printed_lines(self, metrics: Mapping[str, float | str]) -> list[str]:
        """What the official evaluation prints for these metrics."""


def get(name: str | None) -> Protocol:
    """The protocol of a config's `data.protocol` (default react2024); each module exports PROTOCOL."""
    name = name or DEFAULT
    if name not in MODULES:
        raise ValueError(f"unknown protocol {name!r}; choose one of {', '.join(NAMES)}")
    return importlib.import_module(MODULES[name]).PROTOCOL
