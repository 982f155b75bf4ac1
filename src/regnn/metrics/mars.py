"""The REACT 2025/2026 metric set on variable-length MARS clips (notes/react2025.md §5).

Per speaker clip (one evaluation sample) with predictions P (S, L, 25), L the clip's own length, its target
set (each target resampled to L, see below) and its own facial attributes:

- FRC: sum over the S predictions of the max over targets of CCC (2024's CCC: mean over 25 dims, a constant
  dim's NaN correlation counts 0, +1e-8); the split's value is the mean over clips (range up to S).
- FRD: sum over predictions of the min over targets of DTW(0:15)/15 + DTW(15:17) + DTW(17:25)/8 on the full
  clip, no truncation; mean over clips. DTW through `regnn.metrics.dtw.frd_distances` (O(L) memory; a
  batch of clips per call, their pairs sorted by length into the CPU kernel's SIMD lanes).
- TLCC: sample 0 only, against the speaker's attributes, lags -49..49 (the official `fps=25, seconds=2`
  even at 30 fps), with the official NaN quirk (a constant dim over an overlap gives offset 49); mean over clips.
- S-MSE: sum_ij |p_i - p_j|^2 / (S (S-1) L 25) with the clip's own L, then the mean over clips.
- FRVar: unbiased variance over time per (prediction, dim), mean per clip, mean over clips (every clip counts
  equally whatever its length).
- MAE: mean |p - t| over dims 15-24 (valence, arousal, expressions) and frames, pooled over every
  (prediction, target) pair of the split (a clip with more targets weighs more), as in the baselines script.
No FRDvs: the 2025/2026 driver dropped it.

Targets whose length differs from L are resampled to L. The official code runs them through a pretrained
emotion autoencoder; with `resampling: {checkpoint: PATH}` a TorchScript module with the calling convention
of `AutoencoderResampler` does that here, else `interpolate` below. The metrics table names which was used.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from regnn.metrics import dtw, react
from regnn.metrics.react import MetricInputError

log = logging.getLogger(__name__)

METRICS = ("FRC", "FRD", "TLCC", "S-MSE", "FRVar", "MAE")
MAE_DIMS = slice(15, 25)
AU_DIMS, EXPRESSION_DIMS = slice(0, 15), slice(17, 25)


def interpolate(target: np.ndarray, length: int) -> np.ndarray:
    """A (T, 25) target resampled to `length` frames without a learned model.

    Time is stretched linearly (frame 0 to frame 0, last to last); every dim is linearly interpolated, then
    AUs are re-binarised at 0.5 (the post-processor's sigmoid >= 0.5 on its outputs) and the expression
    probabilities renormalised to sum 1 (the post-processor's softmax; a softmax of probabilities would
    flatten them). Valence and arousal stay interpolated.
    """
    target = np.asarray(target, dtype=np.float64)
    if len(target) == length:
        return target.astype(np.float32)
    source = np.linspace(0.0, len(target) - 1.0, length) if len(target) > 1 else np.zeros(length)
    lo = np.floor(source).astype(np.int64)
    hi = np.minimum(lo + 1, len(target) - 1)
    w = (source - lo)[:, None]
    out = target[lo] * (1 - w) + target[hi] * w
    out[:, AU_DIMS] = out[:, AU_DIMS] >= 0.5
    expressions = np.clip(out[:, EXPRESSION_DIMS], 0.0, None)
    total = expressions.sum(axis=1, keepdims=True)
    out[:, EXPRESSION_DIMS] = np.where(total > 0, expressions / np.where(total > 0, total, 1.0), 1.0 / 8)
    return out.astype(np.float32)


class AutoencoderResampler:
    """A length-changing emotion autoencoder saved with TorchScript (`torch.jit.save`).

    Calling convention: `module(x, length)` with x a float32 tensor (1, T, 25) returns (1, length, 25)
    pre-activation outputs; as the official post-processor does, AUs become sigmoid >= 0.5 and the
    expressions a softmax (valence/arousal as returned). The official checkpoint
    (`pretrained_models/post_processor/checkpoint.pth`) must be wrapped into such a module first: its model
    code is only distributed compiled, so it is not reproduced here.
    """

    def __init__(self, path: Path):
        import torch  # only for a configured checkpoint

        self.path = Path(path)
        try:
            self.module = torch.jit.load(str(self.path), map_location="cpu").eval()
        except (RuntimeError, ValueError, OSError) as err:
            raise MetricInputError(f"{self.path}: not a TorchScript resampling model ({err})") from None

    def __call__(self, target: np.ndarray, length: int) -> np.ndarray:
        import torch

        if len(target) == length:
            return np.asarray(target, dtype=np.float32)
        with torch.no_grad():
            out = self.module(torch.as_tensor(target, dtype=torch.float32)[None], int(length))
        if tuple(out.shape) != (1, length, dtw.DIMS):
            raise MetricInputError(f"{self.path}: returned shape {tuple(out.shape)}, expected (1, {length}, 25)")
        out = out[0].double()
        out[:, AU_DIMS] = (torch.sigmoid(out[:, AU_DIMS]) >= 0.5).double()
        out[:, EXPRESSION_DIMS] = torch.softmax(out[:, EXPRESSION_DIMS], dim=1)
        return out.float().numpy()


def resampler(settings: Mapping | None) -> tuple[Callable[[np.ndarray, int], np.ndarray], str]:
    """The configured resampling and the name the metrics table shows for it."""
    checkpoint = (settings or {}).get("checkpoint")
    if checkpoint:
        return AutoencoderResampler(Path(checkpoint)), f"autoencoder:{Path(checkpoint).name}"
    return interpolate, "interpolate"


@dataclass(frozen=True)
class ClipInput:
    """One speaker clip to score: its key, predictions (S, L, 25), its own attributes (L, 25), raw targets."""

    key: str
    pred: np.ndarray
    speaker: np.ndarray
    targets: Sequence[np.ndarray]


def check_clip(clip: ClipInput) -> None:
    pred, speaker = clip.pred, clip.speaker
    if pred.ndim != 3 or pred.shape[2] != dtw.DIMS or pred.shape[0] < 1:
        raise MetricInputError(f"clip {clip.key!r}: predictions have shape {pred.shape}, expected "
                               f"(samples, frames, {dtw.DIMS})")
    if speaker.shape != pred.shape[1:]:
        raise MetricInputError(f"clip {clip.key!r}: predictions have {pred.shape[1]} frames but the clip has "
                               f"{len(speaker)} (predictions must have the speaker clip's length)")
    if len(speaker) <= react.MAX_LAG:
        raise MetricInputError(f"clip {clip.key!r}: {len(speaker)} frames; TLCC's lags -{react.MAX_LAG}.."
                               f"{react.MAX_LAG} need more than {react.MAX_LAG}")
    if not clip.targets:
        raise MetricInputError(f"clip {clip.key!r}: no target")
    if not np.isfinite(pred).all():
        raise MetricInputError(f"clip {clip.key!r}: predictions have NaN or infinite values")


def _aligned(clip: ClipInput, resample: Callable[[np.ndarray, int], np.ndarray]) -> ClipInput:
    """The clip checked, its predictions float32, its targets resampled to its length."""
    check_clip(clip)
    pred = np.ascontiguousarray(clip.pred, dtype=np.float32)
    targets = [np.ascontiguousarray(resample(t, pred.shape[1]), dtype=np.float32) for t in clip.targets]
    return ClipInput(clip.key, pred, np.asarray(clip.speaker, dtype=np.float32), targets)


def _frd_sums(clips: Sequence[ClipInput], device: str, threads: int) -> list[float]:
    """Per clip, the sum over its predictions of the min over its targets of FRD's weighted DTW: one
    `dtw.frd_distances` call for a batch of clips, so the kernel sorts all their pairs into SIMD lanes."""
    preds = [p for c in clips for p in c.pred]
    targets = [c.targets for c in clips for _ in c.pred]
    best = np.array([d.min() for d in dtw.frd_distances(preds, targets, device=device, threads=threads)])
    bounds = np.cumsum([0] + [len(c.pred) for c in clips])
    return [float(best[lo:hi].sum()) for lo, hi in zip(bounds[:-1], bounds[1:])]


def _other_scores(clip: ClipInput) -> dict[str, float]:
    targets = np.stack(clip.targets)
    pred = clip.pred
    every = np.ones((1, len(targets)), dtype=np.uint8)
    diff = np.abs(pred[:, None, :, MAE_DIMS].astype(np.float64) - targets[None, :, :, MAE_DIMS])
    return {
        "FRC": react.frc(pred[None], targets, every),
        "TLCC": react.tlcc(pred[None, :1], clip.speaker[None]),
        "S-MSE": react.s_mse(pred[None]),
        "FRVar": react.fr_var(pred[None]),
        "MAE_sum": float(diff.mean(axis=(2, 3)).sum()),
        "MAE_pairs": float(diff.shape[0] * diff.shape[1]),
    }


def score_clips(clips: Sequence[ClipInput], resample: Callable[[np.ndarray, int], np.ndarray] = interpolate,
                device: str = "cpu", threads: int = 1) -> list[dict[str, float]]:
    """Each clip's contribution: FRC and FRD sums, TLCC offset, S-MSE, FRVar, MAE sum and pair count."""
    aligned = [_aligned(c, resample) for c in clips]
    return [{**_other_scores(c), "FRD": f} for c, f in zip(aligned, _frd_sums(aligned, device, threads))]


def score_clip(clip: ClipInput, resample: Callable[[np.ndarray, int], np.ndarray] = interpolate,
               device: str = "cpu", threads: int = 1) -> dict[str, float]:
    return score_clips([clip], resample, device, threads)[0]


BATCH_VALUES = 32_000_000
"""Prediction values (samples x frames x 25) scored together: ~128 MB of float32, which is 13 clips of
10 x 10,000 frames; larger batches only fill the DTW kernel's lanes a little better."""


def _batches(clips: Iterable[ClipInput]) -> Iterator[list[ClipInput]]:
    batch: list[ClipInput] = []
    size = 0
    for clip in clips:
        batch.append(clip)
        size += clip.pred.size
        if size >= BATCH_VALUES:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def compute_metrics(clips: Iterable[ClipInput], settings: Mapping | None = None,
                    device: str = "cpu", threads: int = 1) -> dict[str, float | str]:
    """The 2025/2026 metric set over a split, in batches of clips (memory: about BATCH_VALUES floats).

    `settings` is the `resampling` part of the evaluate section. The result also names the resampling.
    """
    resample, name = resampler(settings)
    totals = dict.fromkeys(("FRC", "FRD", "TLCC", "S-MSE", "FRVar", "MAE_sum", "MAE_pairs"), 0.0)
    count = 0
    for batch in _batches(clips):
        for scores in score_clips(batch, resample, device, threads):
            for key, value in scores.items():
                totals[key] += value
            count += 1
    if count == 0:
        raise MetricInputError("no clip to score")
    out: dict[str, float | str] = {m: totals[m] / count for m in ("FRC", "FRD", "TLCC", "S-MSE", "FRVar")}
    out["MAE"] = totals["MAE_sum"] / totals["MAE_pairs"]
    out["resampling"] = name
    return {**{m: out[m] for m in METRICS}, "resampling": name}
