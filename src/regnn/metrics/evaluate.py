"""Load what the metrics need, score it, and report it: the `evaluate` rule and `regnn evaluate`.

Two sources, one result:
- the pipeline's own files: predictions HDF5 + the split's emotion cache (`results/dataset/{split}/emotions.h5`);
- a REACT dataset folder read like the official `evaluation.py` (`<split>.csv`, `neighbour_emotion_<split>.npy`,
  Emotion CSVs with the P1/P2 mapping) plus predictions in the official layout
  (`<pred_dir>/<split>/<speaker_path>/result-{j}.pth`) or as our predictions HDF5.

`regnn evaluate` runs as a process per evaluation, so start-up counts: the official-layout path imports
neither torch nor pandas nor h5py (the .pth files are read by `tensor_file`, the CSVs by numpy); the HDF5
paths import h5py when they run.
"""

from __future__ import annotations

import csv
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from regnn.data import layout
from regnn.data.emotion_csv import read_emotion_csv
from regnn.data.layout import DatasetError, listener_positions
from regnn.io import atomic_output, decode_strings
from regnn.metrics.react import CORRECTED, METRICS, MetricInputError, compute_metrics
from regnn.metrics.settings import resolve_settings
from regnn.metrics.tensor_file import load_tensor_file

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class EvaluationSet:
    """Everything one evaluation scores, in mirrored order."""

    clips: list[str]
    pred: np.ndarray  # (2N, samples, frames, 25) float32
    speaker: np.ndarray  # (2N, frames, 25) float32
    listener: np.ndarray  # (2N, frames, 25) float32
    neighbours: np.ndarray  # (2N, 2N)


def load_predictions_h5(path: Path, clips: Sequence[str]) -> np.ndarray:
    """`predictions` of a predictions HDF5, checked against the split's clip order."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise MetricInputError(f"{path}: predictions file is missing")
    with h5py.File(path, "r") as f:
        for name in ("predictions", "clips"):
            if name not in f:
                raise MetricInputError(f"{path}: no '{name}' dataset")
        theirs = decode_strings(f["clips"][()])
        if len(theirs) != len(clips):
            raise MetricInputError(f"{path}: {len(theirs)} clips, but the split has {len(clips)} mirrored samples")
        for k, (a, b) in enumerate(zip(theirs, clips)):
            if a != b:
                raise MetricInputError(f"{path}: position {k} holds clip {a!r}, expected {b!r} (mirrored order)")
        pred = f["predictions"][()]
    if pred.ndim != 4 or pred.shape[0] != len(clips):
        raise MetricInputError(f"{path}: predictions have shape {pred.shape}, expected ({len(clips)}, samples, "
                               "frames, 25)")
    return pred.astype(np.float32, copy=False)


def load_pipeline_set(predictions_h5: Path, emotions_h5: Path) -> EvaluationSet:
    """The pipeline's predictions and the split's emotion cache."""
    from regnn.data.index import load_emotions

    cache = load_emotions(emotions_h5)
    pred = load_predictions_h5(predictions_h5, cache.clips)
    return EvaluationSet(cache.clips, pred, cache.speaker, cache.listener, cache.neighbours)


def _load_pth(path: Path, clip: str, frames: int) -> np.ndarray:
    try:
        value = load_tensor_file(path)
    except Exception as err:  # zipfile, pickle and torch raise many types for corrupt files
        raise MetricInputError(f"clip {clip!r}: prediction file {path} is unreadable ({err})") from None
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "fiub":
        raise MetricInputError(f"clip {clip!r}: {path} holds a {type(value).__name__}, expected a tensor")
    array = value.astype(np.float32, copy=False)
    while array.ndim > 2 and array.shape[0] == 1:
        array = array[0]
    if array.shape != (frames, layout.EMOTION_DIMS):
        raise MetricInputError(f"clip {clip!r}: {path} has shape {tuple(value.shape)}, expected "
                               f"({frames}, {layout.EMOTION_DIMS})")
    return array


def load_official_set(data_dir: Path, pred_dir: Path, split: str, samples: int = 10,
                      frames: int = layout.FRAMES) -> EvaluationSet:
    """A REACT dataset folder plus predictions, read the way the official evaluation script reads them."""
    data_dir, pred_dir = Path(data_dir), Path(pred_dir)
    speakers, _ = layout.mirrored(layout.read_split(data_dir, split))
    size = len(speakers)
    problems: list[str] = []
    emotions: list[np.ndarray] = []
    for key in speakers:
        try:
            path = layout.emotion_path(data_dir, split, key)
        except ValueError as err:
            problems.append(f"{layout.split_csv(data_dir, split)}: {err}")
            continue
        if not path.is_file():
            problems.append(f"{path}: emotion CSV of clip {key!r} is missing")
            continue
        try:
            emotions.append(read_emotion_csv(path, frames))
        except ValueError as err:
            problems.append(f"{path}: {err}")
    matrix_path = layout.neighbour_matrix_path(data_dir, split)
    if not matrix_path.is_file():
        problems.append(f"{matrix_path}: neighbour matrix is missing")
    if problems:
        raise DatasetError(problems)
    neighbours = np.load(matrix_path, allow_pickle=False)
    if neighbours.shape != (size, size):
        raise MetricInputError(f"{matrix_path}: shape {neighbours.shape}, but {split}.csv gives 2N = {size} "
                               "mirrored samples; the matrix does not match the split")
    speaker = np.stack(emotions)
    listener = speaker[listener_positions(size)]
    if pred_dir.is_file():
        pred = load_predictions_h5(pred_dir, speakers)
    else:
        root = pred_dir / split
        if not root.is_dir():
            raise MetricInputError(f"{root}: no prediction folder for split {split!r} (expected "
                                   f"{root}/<speaker_path>/result-0.pth ...)")
        missing = [(key, root / key / f"result-{j}.pth") for key in speakers for j in range(samples)
                   if not (root / key / f"result-{j}.pth").is_file()]
        if missing:
            shown = "; ".join(f"clip {key!r}: prediction file {path} is missing" for key, path in missing[:5])
            more = f" (and {len(missing) - 5} more)" if len(missing) > 5 else ""
            raise MetricInputError(f"{len(missing)} prediction file(s) missing: {shown}{more}")
        pred = np.empty((size, samples, frames, layout.EMOTION_DIMS), dtype=np.float32)  # filled in place: one copy
        for k, key in enumerate(speakers):
            for j in range(samples):
                pred[k, j] = _load_pth(root / key / f"result-{j}.pth", key, frames)
    return EvaluationSet(list(speakers), pred, speaker, listener, neighbours)


def score(data: EvaluationSet, settings: Mapping | None = None, threads: int | None = None) -> dict[str, float]:
    """All metrics of one evaluation set; `settings` is (part of) the config's `evaluate` section."""
    s = resolve_settings(settings)
    start = time.perf_counter()
    metrics = compute_metrics(data.pred, data.speaker, data.listener, data.neighbours,
                              corrected=bool(s["corrected"]), device=str(s["device"]),
                              threads=int(threads or s["threads"]), clips=data.clips)
    log.info("scored %d clips x %d samples in %.1f s", data.pred.shape[0], data.pred.shape[1],
             time.perf_counter() - start)
    return metrics


def metric_columns(metrics: Mapping[str, float]) -> list[str]:
    return list(METRICS) + [c for c in CORRECTED if c in metrics]


def write_metrics(path: Path, metrics: Mapping[str, float]) -> None:
    """A one-row TSV, one column per metric (full precision), written atomically."""
    columns = metric_columns(metrics)
    with atomic_output(path) as tmp:
        with tmp.open("w", newline="") as f:
            writer = csv.writer(f, delimiter="\t", lineterminator="\n")
            writer.writerow(columns)
            writer.writerow([repr(float(metrics[c])) for c in columns])


def read_metrics(path: Path) -> dict[str, float | str]:
    """A one-row metrics TSV of either protocol (react2024: METRICS; react2025: `mars.METRICS` and the
    resampling used, kept as text)."""
    from regnn.metrics.mars import METRICS as MARS_METRICS

    with Path(path).open(newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    if len(rows) != 1 or not any(all(m in rows[0] for m in names) for names in (METRICS, MARS_METRICS)):
        raise ValueError(f"{path}: expected one row with the columns {', '.join(METRICS)} (react2024) or "
                         f"{', '.join(MARS_METRICS)} (react2025)")
    return {k: v if k == "resampling" else float(v) for k, v in rows[0].items()}


def official_lines(metrics: Mapping[str, float], model_name: str = "model_name") -> list[str]:
    """The two lines the official evaluation script prints."""
    m = metrics
    return [
        "Metric: | FRC: {:.5f} | FRD: {:.5f} | S-MSE: {:.5f} | FRVar: {:.5f} | FRDvs: {:.5f} | TLCC: {:.5f}".format(
            m["FRC"], m["FRD"], m["S-MSE"], m["FRVar"], m["FRDvs"], m["TLCC"]),
        "Latex-friendly --> {} & {:.2f} & {:.2f} & {:.4f} & {:.4f} & {:.4f} & - & {:.2f} \\\\".format(
            model_name, m["FRC"], m["FRD"], m["S-MSE"], m["FRVar"], m["FRDvs"], m["TLCC"]),
    ]


def evaluate_run(predictions_h5: Path, emotions_h5: Path, output: Path, settings: Mapping | None = None,
                 threads: int | None = None) -> dict[str, float]:
    """The `evaluate` rule: score one experiment x seed x split and write its metrics TSV."""
    metrics = score(load_pipeline_set(predictions_h5, emotions_h5), settings, threads)
    for line in official_lines(metrics):
        log.info("%s", line)
    write_metrics(output, metrics)
    return metrics
