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
    from collections.abc import Iterator, Sequence

    import numpy as np

    from regnn.data.mars import MarsCache


class React2025(Protocol):
    name = "react2025"
    fps = 30.0
    model_stages = True
    renders = False  # the reaction videos assume REACT 2024's fixed-length cache
    clip_frames = None
    defaults = {
        # The 2025/2026 REGNN baseline (README 2026 commands): Adam lr 1e-4, weight decay 5e-4, milestone 9,
        # gamma 0.1, 100 epochs, batch 64, seed 1 (config `seeds`), a checkpoint every 5 epochs
        # (mhp-epoch{5..100}: after 5, 10, ..., 100 epochs) and generation from the last. An epoch is one pass
        # over the speaker clips; k_select 2; the threshold update never fires.
        "train": {"epochs": 100, "batch_size": 64, "batches_per_epoch": None, "checkpoint_every": 5,
                  "checkpoint_offset": 0, "lr": 1.0e-4, "weight_decay": 5.0e-4, "milestones": [9], "gamma": 0.1,
                  "neighbours": 2, "threshold_rule": "never"},
        "generate": {"epoch": None, "eval_clip_batch_size": 1},
    }

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

    def write_demo_data(self, out: Path, settings: Mapping) -> object:
        from regnn.data.mars_synthetic import MarsSyntheticSettings, write_mars_dataset

        given = dict(settings)
        for key in ("stems_per_session", "frames"):  # YAML lists -> the settings' (low, high) pairs
            if key in given:
                given[key] = tuple(given[key])
        chosen = MarsSyntheticSettings(**given)
        write_mars_dataset(out, chosen)
        return chosen

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
        from regnn.data import mars

        return _session_rule(mars.load_cache(dataset["emotions"]))

    def training_resampling(self, evaluate: Mapping) -> dict | None:
        """The metrics' resampling (evaluate.resampling), so REGNN trains on the targets it is scored against."""
        return dict(evaluate.get("resampling") or {"checkpoint": None})

    def training_windows(self, emotions: Path, video_shards: Sequence[Path], audio_shards: Sequence[Path],
                         model: Mapping, train: Mapping, resampling: Mapping | None):
        """One random window per speaker clip per epoch, k_select (train.neighbours) session listeners."""
        from regnn.data.mars_windows import MarsWindowSampler, load_mars_split
        from regnn.metrics.mars import resampler

        data = load_mars_split(emotions, video_shards, audio_shards)
        return MarsWindowSampler(data, model["window"], train["neighbours"], _session_rule(data.cache),
                                 resampler(resampling)[0], train["short_clips"])

    def generate(self, checkpoint: Path, emotions: Path, video_shards: Sequence[Path], audio_shards: Sequence[Path],
                 settings: Mapping, seed: int, output: Path, threads: int | None = None) -> None:
        from regnn.generation import generate_chunks

        generate_chunks(checkpoint, emotions, video_shards, audio_shards, dict(settings), seed, output, threads)

    def reaction_series(self, predictions_h5: Path, emotions: Path, clips: int
                        ) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
        import h5py

        from regnn.data import mars
        from regnn.io import decode_strings

        cache = mars.load_cache(emotions)
        with h5py.File(predictions_h5, "r") as f:
            keys, offsets = decode_strings(f["clips"][()]), f["offsets"][()]
            for k in range(min(clips, len(keys))):
                pred = f["predictions"][offsets[k]:offsets[k + 1]].transpose(1, 0, 2)
                yield keys[k], pred, cache.series(int(cache.listener_index[k]))

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


def _session_rule(cache: MarsCache) -> list[np.ndarray]:
    """The session rule: per sample, every clip of the partner's role in the sample's session."""
    import numpy as np

    roles = [c.split("/")[0] for c in cache.clips]
    return [np.array([j for j, c in enumerate(cache.clips) if cache.sessions[j] == cache.sessions[p]
                      and roles[j] == roles[p]]) for p in cache.listener_index]


PROTOCOL = React2025()
