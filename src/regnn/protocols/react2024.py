"""REACT 2023/2024: split CSVs, the mirrored 2N samples, 750-frame clips at 25 fps, the neighbour matrix.

A thin adapter: the knowledge lives in `regnn.data.{layout,index,neighbours}` and `regnn.metrics.{react,
evaluate,baselines}`, unchanged; this module only answers the protocol interface with them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from regnn.data.layout import FRAMES
from regnn.metrics.settings import BASELINES
from regnn.paths import RESULTS, Results
from regnn.protocols import ExtractionClip, Protocol

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    import numpy as np


class React2024(Protocol):
    name = "react2024"
    fps = 25.0
    model_stages = True
    renders = True
    clip_frames = 750

    @property
    def metrics(self) -> tuple[str, ...]:
        from regnn.metrics.react import METRICS

        return METRICS

    baselines = BASELINES
    directions = ("both",)  # the mirrored 2N convention: every dyad is scored in both directions

    def metric_settings(self, evaluate: Mapping) -> dict:
        return {"corrected": evaluate["corrected"], "device": evaluate["device"]}

    def dataset_outputs(self, split: str, incomplete: str = "error", results: Results = RESULTS) -> dict[str, Path]:
        out = {"index": results.index(split), "emotions": results.emotions(split)}
        return {**out, "skipped": results.skipped(split)} if incomplete == "skip" else out

    def write_demo_data(self, out: Path, settings: Mapping) -> object:
        from regnn.data.synthetic import SyntheticSettings, write_dataset

        chosen = SyntheticSettings(**settings)
        write_dataset(out, chosen)
        return chosen

    def index_split(self, root: Path, split: str, outputs: Mapping[str, Path], data: Mapping) -> int:
        from regnn.data.index import index_split

        self.check_data(data)
        return index_split(root, split, outputs["index"], outputs["emotions"], frames=data.get("frames", FRAMES),
                           incomplete=data.get("incomplete", "error"), skipped_tsv=outputs.get("skipped"))

    def extraction_clips(self, index_tsv: Path) -> list[ExtractionClip]:
        """Each speaker once; lengths are the extractor's `frames` (750); features `<split>/Video_features/...`."""
        from regnn.data.index import read_index
        from regnn.data.layout import FEATURE_FOLDERS

        clips: dict[str, ExtractionClip] = {}
        for row in read_index(index_tsv):
            if row.speaker not in clips:
                split_dir = row.video.parents[len(row.speaker.split("/"))]  # <root>/<split>/Video_files/<key>.mp4
                features = {m: split_dir / folder / f"{row.speaker}.pth" for m, folder in FEATURE_FOLDERS.items()}
                clips[row.speaker] = ExtractionClip(row.speaker, row.video, row.audio, features)
        return list(clips.values())

    def clip_lengths(self, dataset: Mapping[str, Path]) -> np.ndarray:
        import numpy as np

        from regnn.data.index import load_emotions

        cache = load_emotions(dataset["emotions"])
        return np.full(len(cache.clips), cache.emotions.shape[1], dtype=np.int64)

    def appropriateness(self, dataset: Mapping[str, Path]) -> list[np.ndarray]:
        import numpy as np

        from regnn.data.index import load_emotions

        return [np.flatnonzero(row == 1) for row in load_emotions(dataset["emotions"]).neighbours]

    def training_windows(self, emotions: Path, video_shards: Sequence[Path], audio_shards: Sequence[Path],
                         model: Mapping, train: Mapping, resampling: Mapping | None):
        """50/25 windows over every mirrored position, up to `neighbours` listeners from the neighbour matrix."""
        from regnn.data.windows import WindowSampler, load_split

        return WindowSampler(load_split(emotions, video_shards, audio_shards), model["window"], model["stride"],
                             train["neighbours"])

    def generate(self, checkpoint: Path, emotions: Path, video_shards: Sequence[Path], audio_shards: Sequence[Path],
                 settings: Mapping, seed: int, output: Path, threads: int | None = None) -> None:
        from regnn.generation import generate

        generate(checkpoint, emotions, video_shards, audio_shards, dict(settings), seed, output, threads)

    def reaction_series(self, predictions_h5: Path, emotions: Path, clips: int
                        ) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
        import h5py

        from regnn.data.index import load_emotions

        cache = load_emotions(emotions)
        with h5py.File(predictions_h5, "r") as f:
            pred = f["predictions"][:clips]
        for k in range(len(pred)):
            yield cache.clips[k], pred[k], cache.listener[k]

    def evaluate_run(self, predictions_h5: Path, dataset: Mapping[str, Path], output: Path,
                     settings: Mapping | None = None, threads: int = 1) -> Mapping[str, float | str]:
        from regnn.metrics.evaluate import evaluate_run

        return evaluate_run(predictions_h5, dataset["emotions"], output, settings, threads)

    def evaluate_baseline(self, name: str, dataset: Mapping[str, Path], output: Path,
                          settings: Mapping | None = None, threads: int = 1,
                          train_dataset: Mapping[str, Path] | None = None) -> Mapping[str, float | str]:
        from regnn.metrics.baselines import evaluate_baseline

        return evaluate_baseline(name, dataset["emotions"], output, settings, threads)

    def evaluate_dataset(self, data_dir: Path, pred_dir: Path, split: str, *, settings: Mapping,
                         threads: int, samples: int = 10, targets: Path | None = None, out: Path | None = None,
                         direction: str = "both") -> Mapping[str, float | str]:
        from regnn.metrics.evaluate import load_official_set, score

        if targets is not None:
            raise ValueError("--targets is for react2025; REACT 2024's appropriate reactions come from "
                             "neighbour_emotion_<split>.npy")
        self.check_data({"direction": direction})
        return score(load_official_set(data_dir, pred_dir, split, samples=samples), settings, threads=threads)

    def write_metrics(self, path: Path, metrics: Mapping[str, float | str]) -> None:
        from regnn.metrics.evaluate import write_metrics

        write_metrics(path, metrics)

    def printed_lines(self, metrics: Mapping[str, float | str]) -> list[str]:
        from regnn.metrics.evaluate import official_lines

        return official_lines(metrics)


PROTOCOL = React2024()
