"""Load what the MARS metrics need and score it: `regnn evaluate --protocol react2025`, the evaluate and
baseline rules of a react2025 config.

Predictions come in one of two forms:
- the official layout `<pred_dir>/<split>/<role>/<session>/<stem>/result-{j}.pth` (or `.npy`), each (T, 25)
  with T the input clip's length (a leading singleton axis is tolerated);
- our variable-length predictions HDF5: `clips` (sample keys), `offsets` (samples + 1) and `predictions`
  (sum of lengths, samples, 25) float32, sample k's rows `offsets[k]:offsets[k + 1]`.
Each clip is loaded, scored and dropped in turn, so memory stays at one clip (20,000 frames x 10 samples is
20 MB) whatever the split's size.
"""

from __future__ import annotations

import csv
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from regnn.data import mars
from regnn.data.layout import EMOTION_DIMS
from regnn.io import atomic_output, decode_strings
from regnn.metrics import mars as metrics
from regnn.metrics.react import MetricInputError
from regnn.metrics.settings import MARS_BASELINES
from regnn.metrics.tensor_file import load_tensor_file

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class MarsSet:
    """A split to score: per sample its key and attributes, its target keys, and every clip's attributes."""

    samples: list[str]
    series: Callable[[str], np.ndarray]  # clip key -> (T, 25) float32
    targets: dict[str, list[str]]
    partner: dict[str, str]


def _pairs_by_sample(rows: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for speaker, target in rows:
        out.setdefault(speaker, []).append(target)
    return out


def dataset_set(data_dir: Path, split: str, direction: str = "both", targets: Path | None = None,
                drawn_out: Path | None = None) -> MarsSet:
    """A MARS split read from its facial attributes only (media are not needed to score)."""
    index = mars.build_index(data_dir, split, direction, modalities={mars.ATTRIBUTES: ".npy"})
    by_key = dict(zip(index.clips, index.attributes))
    samples = [s for s, _ in index.samples]
    if targets:
        chosen = mars.read_targets(targets, samples, by_key)
    else:
        chosen = _pairs_by_sample(index.targets)
        if drawn_out:
            mars.write_rows(drawn_out, mars.TARGET_COLUMNS, index.targets)
            log.info("wrote the drawn target set (seed %d) to %s", mars.TARGET_SEED, drawn_out)
    return MarsSet(samples, by_key.__getitem__, chosen, dict(index.samples))


def pipeline_set(emotions_h5: Path, targets_tsv: Path) -> MarsSet:
    """The dataset stage's cache and target file."""
    cache = mars.load_cache(emotions_h5)
    samples = cache.samples
    position = {c: i for i, c in enumerate(cache.clips)}
    chosen = mars.read_targets(targets_tsv, samples, cache.clips)
    partner = {cache.clips[s]: cache.clips[p] for s, p in zip(cache.speaker_index, cache.listener_index)}
    return MarsSet(samples, lambda key: cache.series(position[key]), chosen, partner)


def _load_result(path: Path, key: str, frames: int) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False) if path.suffix == ".npy" else load_tensor_file(path)
    except Exception as err:  # numpy, zipfile, pickle and torch raise many types for corrupt files
        raise MetricInputError(f"clip {key!r}: prediction file {path} is unreadable ({err})") from None
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "fiub":
        raise MetricInputError(f"clip {key!r}: {path} holds a {type(array).__name__}, expected a tensor")
    while array.ndim > 2 and array.shape[0] == 1:
        array = array[0]
    if array.shape != (frames, EMOTION_DIMS):
        raise MetricInputError(f"clip {key!r}: {path} has shape {array.shape}, expected ({frames}, {EMOTION_DIMS}) "
                               "(the speaker clip's length)")
    return np.asarray(array, dtype=np.float32)


def _result_path(folder: Path, j: int) -> Path | None:
    for ext in (".pth", ".npy"):
        if (folder / f"result-{j}{ext}").is_file():
            return folder / f"result-{j}{ext}"
    return None


class DirectoryPredictions:
    """`<pred_dir>/<split>/<key>/result-{j}.pth|.npy`, checked for completeness before any scoring."""

    def __init__(self, pred_dir: Path, split: str, samples: Sequence[str], count: int):
        self.root, self.count = Path(pred_dir) / split, count
        if not self.root.is_dir():
            raise MetricInputError(f"{self.root}: no prediction folder for split {split!r} (expected "
                                   f"{self.root}/<role>/<session>/<stem>/result-0.pth ...)")
        missing = [f"clip {k!r}: {self.root / k}/result-{j}.pth (or .npy) is missing" for k in samples
                   for j in range(count) if _result_path(self.root / k, j) is None]
        if missing:
            more = f" (and {len(missing) - 5} more)" if len(missing) > 5 else ""
            raise MetricInputError(f"{len(missing)} prediction file(s) missing: {'; '.join(missing[:5])}{more}")

    def __call__(self, key: str, frames: int) -> np.ndarray:
        return np.stack([_load_result(_result_path(self.root / key, j), key, frames) for j in range(self.count)])


class H5Predictions:
    """Our variable-length predictions HDF5 (see the module docstring)."""

    def __init__(self, path: Path, samples: Sequence[str]):
        import h5py

        self.path = Path(path)
        if not self.path.is_file():
            raise MetricInputError(f"{self.path}: predictions file is missing")
        with h5py.File(self.path, "r") as f:
            for name in ("predictions", "clips", "offsets"):
                if name not in f:
                    raise MetricInputError(f"{self.path}: no '{name}' dataset (a variable-length predictions "
                                           "file holds clips, offsets and predictions)")
            clips = decode_strings(f["clips"][()])
            self.offsets = f["offsets"][()]
            shape = f["predictions"].shape
        if len(shape) != 3 or shape[2] != EMOTION_DIMS or len(self.offsets) != len(clips) + 1 \
                or self.offsets[-1] != shape[0]:
            raise MetricInputError(f"{self.path}: predictions {shape} and offsets do not match {len(clips)} clips")
        self.position = {c: i for i, c in enumerate(clips)}
        missing = [s for s in samples if s not in self.position]
        if missing:
            raise MetricInputError(f"{self.path}: no predictions for {len(missing)} sample(s), e.g. {missing[0]!r}")

    def __call__(self, key: str, frames: int) -> np.ndarray:
        i = self.position[key]
        lo, hi = int(self.offsets[i]), int(self.offsets[i + 1])
        if hi - lo != frames:
            raise MetricInputError(f"clip {key!r}: {self.path} holds {hi - lo} frames, expected {frames} "
                                   "(the speaker clip's length)")
        import h5py

        with h5py.File(self.path, "r") as f:
            return np.ascontiguousarray(f["predictions"][lo:hi].transpose(1, 0, 2), dtype=np.float32)


def clips(data: MarsSet, predictions: Callable[[str, int], np.ndarray]) -> Iterator[metrics.ClipInput]:
    for key in data.samples:
        speaker = data.series(key)
        yield metrics.ClipInput(key, predictions(key, len(speaker)), speaker,
                                [data.series(t) for t in data.targets[key]])


def score(data: MarsSet, predictions: Callable[[str, int], np.ndarray], settings: Mapping | None = None,
          threads: int = 1) -> dict[str, float | str]:
    """The metric set; `settings` is (part of) the config's evaluate section (device, resampling)."""
    s = dict(settings or {})
    start = time.perf_counter()
    result = metrics.compute_metrics(clips(data, predictions), s.get("resampling"), device=str(s.get("device", "cpu")),
                                     threads=threads)
    log.info("scored %d clips in %.1f s", len(data.samples), time.perf_counter() - start)
    return result


def baseline(name: str, data: MarsSet, samples: int = 10, seed: int = 0, mean_frame: np.ndarray | None = None,
             resample: Callable[[np.ndarray, int], np.ndarray] = metrics.interpolate,
             ) -> Callable[[str, int], np.ndarray]:
    """Predictions of one baseline, per clip: ground truth (the paired target at the clip's length, by the
    same resampling as the metrics), random (uniform [0, 1), seeded per clip), mime (the speaker's own
    attributes) and mean_frame (the mean partner frame of the training split, from the 2026 baselines)."""
    if name not in MARS_BASELINES:
        raise ValueError(f"unknown baseline {name!r}; choose one of {', '.join(MARS_BASELINES)}")
    if name == "mean_frame" and mean_frame is None:
        raise ValueError("the mean_frame baseline needs the training split's mean frame")

    def predict(key: str, frames: int) -> np.ndarray:
        if name == "ground_truth":
            one = resample(data.series(data.partner[key]), frames)
        elif name == "mime":
            one = data.series(key)
        elif name == "mean_frame":
            one = np.broadcast_to(mean_frame, (frames, EMOTION_DIMS))
        else:
            rng = np.random.default_rng([seed, data.samples.index(key)])
            return rng.random((samples, frames, EMOTION_DIMS), dtype=np.float32)
        return np.repeat(np.asarray(one, dtype=np.float32)[None], samples, axis=0)

    return predict


def mean_partner_frame(emotions_h5: Path) -> np.ndarray:
    """The mean frame over every partner (listener) clip of a split, each frame counted once."""
    cache = mars.load_cache(emotions_h5)
    partners = sorted(set(cache.listener_index.tolist()))
    return np.concatenate([cache.series(int(i)) for i in partners]).astype(np.float64).mean(axis=0)


def write_metrics(path: Path, values: Mapping[str, float | str]) -> None:
    """One row: the metrics at full precision, then the resampling used."""
    columns = [*metrics.METRICS, "resampling"]
    with atomic_output(path) as tmp:
        with tmp.open("w", newline="") as f:
            writer = csv.writer(f, delimiter="\t", lineterminator="\n")
            writer.writerow(columns)
            writer.writerow([repr(float(values[c])) for c in metrics.METRICS] + [values["resampling"]])


def printed_lines(values: Mapping[str, float | str]) -> list[str]:
    """One line per metric, as the 2025/2026 driver prints them (without its timings)."""
    return [f"{m:6s} = {float(values[m]):.6f}" for m in metrics.METRICS] + [f"(targets resampled by "
                                                                            f"{values['resampling']})"]


def evaluate_run(predictions_h5: Path, emotions_h5: Path, targets_tsv: Path, output: Path,
                 settings: Mapping | None = None, threads: int = 1) -> dict[str, float | str]:
    data = pipeline_set(emotions_h5, targets_tsv)
    values = score(data, H5Predictions(predictions_h5, data.samples), settings, threads)
    write_metrics(output, values)
    return values


def evaluate_baseline(name: str, emotions_h5: Path, targets_tsv: Path, output: Path,
                      settings: Mapping | None = None, threads: int = 1,
                      train_emotions_h5: Path | None = None) -> dict[str, float | str]:
    """The baseline rule; `settings` is the evaluate section (its `baselines` sets samples and seed)."""
    s = dict(settings or {})
    b = {"samples": 10, "seed": 0, **s.get("baselines", {})}
    data = pipeline_set(emotions_h5, targets_tsv)
    mean = mean_partner_frame(train_emotions_h5) if name == "mean_frame" else None
    resample, _ = metrics.resampler(s.get("resampling"))
    values = score(data, baseline(name, data, int(b["samples"]), int(b["seed"]), mean, resample), s, threads)
    print("\n".join(printed_lines(values)))
    write_metrics(output, values)
    return values


def evaluate_dataset(data_dir: Path, pred_dir: Path, split: str, targets: Path | None = None,
                     drawn_out: Path | None = None, direction: str = "both", samples: int = 10,
                     settings: Mapping | None = None, threads: int = 1) -> dict[str, float | str]:
    """`regnn evaluate --protocol react2025`: a MARS folder plus predictions (folder or HDF5)."""
    data = dataset_set(data_dir, split, direction, targets, drawn_out)
    pred_dir = Path(pred_dir)
    predictions = (H5Predictions(pred_dir, data.samples) if pred_dir.is_file()
                   else DirectoryPredictions(pred_dir, split, data.samples, samples))
    return score(data, predictions, settings, threads)
