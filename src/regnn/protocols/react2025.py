"""REACT 2025/2026 (MARS): a folder tree per split, variable-length clips at 30 fps, the session rule.

Facts and quirks: notes/react2025.md. The knowledge lives in `regnn.data.mars` (layout, index, target sets)
and `regnn.metrics.{mars,mars_evaluate}` (metric set, loading); this module answers the protocol interface.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from regnn.metrics.settings import MARS_BASELINES
from regnn.paths import RESULTS, Results
from regnn.protocols import ExtractionClip, Protocol

if TYPE_CHECKING:
    import numpy as np


class React2025(Protocol):
    name = "react2025"
    fps = 30.0
    model_stages = False  # the next step: REGNN on MARS end to end
    clip_frames = None

    @property
    def metrics(self) -> tuple[str, ...]:
        from regnn.metrics.mars import METRICS

        return METRICS

    baselines = MARS_BASELINES
    directions = ("both", "speaker_to_listener")

    def metric_settings(self, evaluate: Mapping) -> dict:
        return {"device": evaluate["device"], "resampling": evaluate["resampling"]}

    def dataset_outputs(self, split: str, incomplete: str = "error", results: Results = RESULTS) -> dict[str, Path]:
        out = {"index": results.index(split), "emotions": results.emotions(split), "targets": results.targets(split)}
        return {**out, "skipped": results.skipped(split)} if incomplete == "skip" else out

    def index_split(self, root: Path, split: str, outputs: Mapping[str, Path], data: Mapping) -> int:
        from regnn.data import mars

        self.check_data(data)
        return mars.index_split(root, split, outputs["index"], outputs["emotions"], outputs["targets"],
                                outputs.get("skipped"), direction=data.get("direction", "both"),
                                incomplete=data.get("incomplete", "error"),
                                tolerance=data.get("length_tolerance", mars.LENGTH_TOLERANCE))

    def extraction_clips(self, index_tsv: Path) -> list[ExtractionClip]:
        """Each input clip once at its facial-attribute length (`frames`) and 30 fps; the official features are
        `<split>/video-features/<role>/<session>/<stem>.pth` and `audio-features/.../<stem>.npy`."""
        import csv

        from regnn.data import mars

        with Path(index_tsv).open(newline="") as f:
            reader = csv.DictReader(f, delimiter="\t")
            if reader.fieldnames != mars.INDEX_COLUMNS:
                raise ValueError(f"{index_tsv}: columns {reader.fieldnames}, expected {mars.INDEX_COLUMNS}")
            rows = list(reader)
        clips: dict[str, ExtractionClip] = {}
        for row in rows:
            key, video = row["speaker"], Path(row["video"])
            if key not in clips:
                split_dir = video.parents[len(key.split("/"))]  # <split>/video-face-crop/<role>/<session>/<stem>.mp4
                features = {"video": split_dir / "video-features" / f"{key}.pth",
                            "audio": split_dir / "audio-features" / f"{key}.npy"}
                clips[key] = ExtractionClip(key, video, Path(row["audio"]), features, int(row["frames"]), self.fps)
        return list(clips.values())

    def clip_lengths(self, dataset: Mapping[str, Path]) -> np.ndarray:
        import numpy as np

        from regnn.data import mars

        cache = mars.load_cache(dataset["emotions"])
        return np.diff(cache.offsets)[cache.speaker_index]

    def appropriateness(self, dataset: Mapping[str, Path]) -> list[np.ndarray]:
        """The session rule: every clip of the partner's role in the sample's session."""
        import numpy as np

        from regnn.data import mars

        cache = mars.load_cache(dataset["emotions"])
        roles = [c.split("/")[0] for c in cache.clips]
        return [np.array([j for j, c in enumerate(cache.clips) if cache.sessions[j] == cache.sessions[p]
                          and roles[j] == roles[p]]) for p in cache.listener_index]

    def evaluate_run(self, predictions_h5: Path, dataset: Mapping[str, Path], output: Path,
                     settings: Mapping | None = None, threads: int = 1) -> Mapping[str, float | str]:
        from regnn.metrics import mars_evaluate

        return mars_evaluate.evaluate_run(predictions_h5, dataset["emotions"], dataset["targets"], output,
                                          settings, threads)

    def evaluate_baseline(self, name: str, dataset: Mapping[str, Path], output: Path,
                          settings: Mapping | None = None, threads: int = 1,
                          train_dataset: Mapping[str, Path] | None = None) -> Mapping[str, float | str]:
        from regnn.metrics import mars_evaluate

        train = train_dataset["emotions"] if train_dataset else None
        return mars_evaluate.evaluate_baseline(name, dataset["emotions"], dataset["targets"], output, settings,
                                               threads, train_emotions_h5=train)

    def evaluate_dataset(self, data_dir: Path, pred_dir: Path, split: str, *, settings: Mapping,
                         threads: int, samples: int = 10, targets: Path | None = None, out: Path | None = None,
                         direction: str = "both") -> Mapping[str, float | str]:
        """Without `targets`, the seeded set is drawn and written beside `out` (or to targets-SPLIT.tsv)."""
        from regnn.metrics import mars_evaluate

        self.check_data({"direction": direction})
        drawn = None
        if targets is None:
            drawn = Path(out).with_name(Path(out).stem + ".targets.tsv") if out else Path(f"targets-{split}.tsv")
        return mars_evaluate.evaluate_dataset(data_dir, pred_dir, split, targets, drawn, direction, samples,
                                              settings, threads)

    def write_metrics(self, path: Path, metrics: Mapping[str, float | str]) -> None:
        from regnn.metrics.mars_evaluate import write_metrics

        write_metrics(path, metrics)

    def printed_lines(self, metrics: Mapping[str, float | str]) -> list[str]:
        from regnn.metrics import mars_evaluate

        return mars_evaluate.printed_lines(metrics)


PROTOCOL = React2025()
