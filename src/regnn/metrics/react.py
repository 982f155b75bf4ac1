"""The six official REACT metrics, computed exactly as the challenge code does, but batched.

Definitions (notes/react.md §4) with every quirk published numbers depend on:

- FRC: mean over speakers k of the sum over samples of max over appropriate listeners j of CCC, where a
  dimension whose correlation is NaN (constant series) contributes 0.
- FRD: the same with min over j of DTW(dims 0-14)/15 + DTW(15-16) + DTW(17-24)/8 (tslearn's DTW).
- S-MSE, FRVar, FRDvs: diversity across samples, over time, across speakers.
- TLCC: |lag| of the peak of the dimension-averaged lagged Pearson correlation between a prediction and the
  *speaker*, lags -49..49. The official driver scores sample 0 only, and a dimension that is constant over
  the overlap makes the average NaN, where torch.argmax returns the first NaN's index (offset 49).

`corrected=True` adds TLCC_corrected (all samples, a NaN correlation counted as 0), always in its own column.
Arrays: pred (N, samples, frames, 25), speaker and listener (N, frames, 25), neighbours (N, N) 0/1 with
neighbours[k, j] == 1 when listener j's real reaction is appropriate for speaker k.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from regnn.metrics import dtw

METRICS = ("FRC", "FRD", "S-MSE", "FRVar", "FRDvs", "TLCC")
CORRECTED = ("TLCC_corrected",)
FRD_WEIGHTS = dtw.FRD_WEIGHTS
MAX_LAG = 49  # the official lags: range(-(2 s * 25 fps - 1), 2 s * 25 fps)


class MetricInputError(ValueError):
    """Predictions or references that cannot be scored; the message names the clip and the problem."""


def _name(clips: Sequence[str] | None, k: int) -> str:
    return f"clip {clips[k]!r} (position {k})" if clips is not None else f"position {k}"


def check_inputs(pred: np.ndarray, speaker: np.ndarray, listener: np.ndarray, neighbours: np.ndarray,
                 clips: Sequence[str] | None = None) -> None:
    """Raise MetricInputError naming the first offending clip for any shape, value or matrix problem."""
    if pred.ndim != 4:
        raise MetricInputError(f"predictions must be (clips, samples, frames, dims), got shape {pred.shape}")
    n, _, frames, dims = pred.shape
    for name, arr in (("speaker emotions", speaker), ("listener emotions", listener)):
        if arr.shape != (n, frames, dims):
            raise MetricInputError(f"{name} have shape {arr.shape}, expected {(n, frames, dims)} to match the "
                                   f"predictions {pred.shape}")
    if dims != dtw.DIMS:
        raise MetricInputError(f"predictions have {dims} dims per frame, expected {dtw.DIMS}")
    if frames <= 2 * MAX_LAG + 1:
        raise MetricInputError(f"TLCC needs more than {2 * MAX_LAG + 1} frames, got {frames}")
    if n < 2:
        raise MetricInputError(f"FRDvs needs at least 2 clips, got {n}")
    if neighbours.shape != (n, n):
        raise MetricInputError(f"neighbour matrix has shape {neighbours.shape}, expected {(n, n)} for the "
                               f"{n} mirrored samples of the split")
    for name, arr in (("prediction", pred), ("speaker emotion", speaker), ("listener emotion", listener)):
        # per clip: a mask of the whole array would cost 0.3 GB at REACT-2024-test size
        bad = next((k for k in range(n) if not np.isfinite(arr[k]).all()), None)
        if bad is not None:
            raise MetricInputError(f"{_name(clips, bad)}: {name} has NaN or infinite values")
    if not np.isin(neighbours, (0, 1)).all():
        raise MetricInputError("neighbour matrix has values other than 0 and 1")
    empty = ~(neighbours == 1).any(axis=1)
    if empty.any():
        raise MetricInputError(f"{_name(clips, int(np.argmax(empty)))}: no appropriate listener in the "
                               "neighbour matrix (its row is all 0)")


def _neighbour_lists(neighbours: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Appropriate listeners of every speaker, flattened in row order: (listener index, count, offset)."""
    count = (neighbours == 1).sum(axis=1)
    if (count == 0).any():
        raise MetricInputError(f"position {int(np.argmin(count))}: no appropriate listener in the neighbour matrix")
    _, j = np.nonzero(neighbours == 1)
    return j, count, np.cumsum(count) - count


def frc(pred: np.ndarray, listener: np.ndarray, neighbours: np.ndarray) -> float:
    """FRC: CCC as 2·cov / (var_t + var_p + (mean_t - mean_p)² + 1e-8) with population moments.

    The official 2·r·sd_t·sd_p equals 2·cov when both series vary and is 0 (NaN r set to 0) when one is
    constant, which is what 2·cov gives too; float64 here, float32 moments there (~1e-7 apart).
    Covariances of one speaker's samples with all its neighbours are one batched matmul over dims.
    """
    _neighbour_lists(neighbours)  # every speaker needs at least one appropriate listener
    frames = pred.shape[2]
    lis = listener.astype(np.float64)
    lis_mean = lis.mean(1)  # (N, D)
    lis_c = np.ascontiguousarray((lis - lis_mean[:, None]).transpose(0, 2, 1))  # (N, D, T)
    lis_var = np.einsum("ndt,ndt->nd", lis_c, lis_c) / frames
    best = np.empty(pred.shape[:2])
    for k in range(pred.shape[0]):
        j = np.flatnonzero(neighbours[k] == 1)
        p = pred[k].astype(np.float64)  # (S, T, D)
        p_mean = p.mean(1)
        p_c = (p - p_mean[:, None]).transpose(2, 0, 1)  # (D, S, T)
        cov = np.matmul(p_c, lis_c[j].transpose(1, 2, 0)) / frames  # (D, S, J)
        denom = (lis_var[j].T[:, None, :] + np.einsum("dst,dst->ds", p_c, p_c)[:, :, None] / frames
                 + np.square(lis_mean[j].T[:, None, :] - p_mean.T[:, :, None]) + 1e-8)
        best[k] = (2 * cov / denom).mean(0).max(1)  # max over neighbours, per sample
    return float(best.sum(axis=1).mean())


def frd(pred: np.ndarray, listener: np.ndarray, neighbours: np.ndarray, device: str = "auto",
        threads: int = 1) -> float:
    """FRD: per sample, min over appropriate listeners of the group-weighted DTW; summed, then averaged."""
    n, samples = pred.shape[:2]
    j_idx, per_k, offset = _neighbour_lists(neighbours)
    # every (speaker, sample, neighbour) triple, ordered by speaker, then sample, then neighbour
    a_idx = np.repeat(np.arange(n * samples), np.repeat(per_k, samples))
    block = np.repeat(np.arange(n), samples * per_k)
    within = np.arange(len(a_idx)) - np.repeat(samples * offset, samples * per_k)
    b_idx = j_idx[offset[block] + within % per_k[block]]
    flat = np.ascontiguousarray(pred.reshape(n * samples, *pred.shape[2:]), dtype=np.float32)
    groups = dtw.dtw_groups(flat, np.ascontiguousarray(listener, dtype=np.float32), a_idx, b_idx,
                            device=device, threads=threads)
    weighted = groups @ np.array(FRD_WEIGHTS)
    starts = np.flatnonzero(np.r_[True, a_idx[1:] != a_idx[:-1]])
    best = np.minimum.reduceat(weighted, starts)  # one per (speaker, sample), in order
    return float(best.reshape(n, samples).sum(axis=1).mean())


CHUNK = 4  # speakers per float64 block in the diversity metrics: small blocks reuse heap memory (measured at
# 400 speakers: ~2x faster than 64-speaker blocks, whose fresh mmaps page-fault on every pass)


def s_mse(pred: np.ndarray) -> float:
    """Mean over speakers of the summed squared distances between their samples / (S·(S-1)·frames·dims).

    Σ_ab |x_a - x_b|² = 2·S·Σ_a |x_a - mean|², in float64 (the official torch.cdist runs in float32).
    """
    n, samples = pred.shape[:2]
    if samples == 1:
        return 0.0
    size = pred[0, 0].size
    total = 0.0
    for lo in range(0, n, CHUNK):
        flat = pred[lo:lo + CHUNK].reshape(-1, samples * size).astype(np.float64).reshape(-1, samples, size)
        flat -= flat.mean(axis=1, keepdims=True)
        total += 2 * samples * float(np.einsum("ijk,ijk->", flat, flat))
    return total / (samples * (samples - 1) * size) / n


def fr_var(pred: np.ndarray) -> float:
    """Mean of the unbiased variance over time of every (speaker, sample, dim) series."""
    n, samples, frames, dims = pred.shape
    total = 0.0
    for lo in range(0, n, CHUNK):
        dev = pred[lo:lo + CHUNK].astype(np.float64)
        dev -= dev.mean(axis=2, keepdims=True)
        total += float(np.einsum("i,i->", dev.ravel(), dev.ravel()))
    return total / (frames - 1) / (n * samples * dims)


def frdvs(pred: np.ndarray) -> float:
    """Squared distances between different speakers' i-th samples, summed, / (N·(N-1)·S) / (frames·dims).

    Per sample index: Σ_kl |x_k - x_l|² = 2·N·Σ_k |x_k - mean|² (mean over speakers), in float64.
    """
    n, samples = pred.shape[:2]
    size = pred[0, 0].size
    mean = sum(pred[lo:lo + CHUNK].astype(np.float64).sum(axis=0) for lo in range(0, n, CHUNK)) / n
    spread = 0.0
    for lo in range(0, n, CHUNK):
        dev = pred[lo:lo + CHUNK].astype(np.float64)
        dev -= mean
        spread += float(np.einsum("i,i->", dev.ravel(), dev.ravel()))
    return 2 * n * spread / (n * (n - 1) * samples) / size


def _run_lengths(series: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per (batch, dim): length of the leading run equal to the first frame, and start of the trailing run."""
    frames = series.shape[1]
    same_prev = series[:, 1:] == series[:, :-1]  # (B, T-1, D)
    lead = np.where(same_prev.all(axis=1), frames, np.argmin(same_prev, axis=1) + 1)
    trail = np.where(same_prev.all(axis=1), 0, frames - 1 - np.argmin(same_prev[:, ::-1], axis=1))
    return lead, trail


def _mean_is_exact(value: float, length: int, cache: dict[tuple[float, int], bool]) -> bool:
    """Whether numpy's mean of `length` copies of `value` is `value` again (then np.cov centres to exact 0)."""
    key = (value, length)
    if key not in cache:
        cache[key] = bool(np.full(length, value).mean() == value)
    return cache[key]


def _constant_overlap(x: np.ndarray, y: np.ndarray, lags: np.ndarray) -> np.ndarray:
    """(B, lags, D) mask of where np.corrcoef returns NaN: one of the shifted segments is constant.

    A constant segment whose numpy mean is not exactly its value leaves tiny non-zero deviations in np.cov
    and a near-zero (not NaN) correlation; those are left to the general formula.
    """
    frames = x.shape[1]
    x_lead, x_trail = _run_lengths(x)
    y_lead, y_trail = _run_lengths(y)
    lag = lags[None, :, None]
    length = frames - np.abs(lag)
    # lag > 0 pairs x[lag:] with y[:-lag]; lag < 0 pairs x[:lag] with y[-lag:]
    x_const = np.where(lag >= 0, x_trail[:, None] <= lag, x_lead[:, None] >= length)
    y_const = np.where(lag >= 0, y_lead[:, None] >= length, y_trail[:, None] <= -lag)
    cache: dict[tuple[float, int], bool] = {}
    for const, series, first in ((x_const, x, lag >= 0), (y_const, y, lag < 0)):
        b, li, d = np.nonzero(const)
        if len(b) == 0:
            continue
        # the constant value: the last frame for a trailing segment, the first for a leading one
        take_last = np.broadcast_to(first, const.shape)[b, li, d]
        values = np.where(take_last, series[b, -1, d], series[b, 0, d])
        exact = np.array([v == 0.0 or _mean_is_exact(float(v), int(length[0, l, 0]), cache)
                          for v, l in zip(values, li)], dtype=bool)
        const[b[~exact], li[~exact], d[~exact]] = False
    return x_const | y_const


def _smooth_length(n: int) -> int:
    """The smallest 2^a·3^b·5^c >= n: a fast FFT size (numpy's FFT, as scipy's import costs ~1 s of start-up)."""
    best = 1 << max(0, (n - 1).bit_length())
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            size = p35 << max(0, (-(-n // p35) - 1).bit_length())  # p35 times the next power of 2
            best = min(best, size)
            p35 *= 3
        p5 *= 5
    return best


def lagged_correlations(x: np.ndarray, y: np.ndarray, max_lag: int = MAX_LAG) -> np.ndarray:
    """Pearson r of x[t + lag] against y[t] for lags -max_lag..max_lag: (B, 2·max_lag+1, D) float64.

    NaN exactly where np.corrcoef gives NaN. Sums over each overlap come from prefix sums and one FFT
    cross-correlation per series, on series centred first (so the one-pass moments stay accurate).
    """
    x = x.astype(np.float64)
    y = y.astype(np.float64)
    frames = x.shape[1]
    lags = np.arange(-max_lag, max_lag + 1)
    nan_mask = _constant_overlap(x, y, lags)
    xc = x - x.mean(axis=1, keepdims=True)
    yc = y - y.mean(axis=1, keepdims=True)
    size = _smooth_length(2 * frames)
    cross = np.fft.irfft(np.fft.rfft(xc, size, axis=1) * np.conj(np.fft.rfft(yc, size, axis=1)), size, axis=1)
    sxy = cross[:, lags % size]  # Σ_u x[u] y[u - lag]
    zero = np.zeros_like(xc[:, :1])
    cx, cx2 = (np.concatenate([zero, np.cumsum(v, axis=1)], axis=1) for v in (xc, xc * xc))
    cy, cy2 = (np.concatenate([zero, np.cumsum(v, axis=1)], axis=1) for v in (yc, yc * yc))
    pos = np.maximum(lags, 0)
    neg = np.maximum(-lags, 0)
    # x runs over [pos, T - neg), y over [neg, T - pos)
    x_lo, x_hi, y_lo, y_hi = pos, frames - neg, neg, frames - pos
    length = (frames - np.abs(lags))[None, :, None]
    sx, sx2 = cx[:, x_hi] - cx[:, x_lo], cx2[:, x_hi] - cx2[:, x_lo]
    sy, sy2 = cy[:, y_hi] - cy[:, y_lo], cy2[:, y_hi] - cy2[:, y_lo]
    cov = sxy - sx * sy / length
    vx = sx2 - sx * sx / length
    vy = sy2 - sy * sy / length
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where((vx > 0) & (vy > 0), cov / np.sqrt(vx) / np.sqrt(vy), 0.0)
    r = np.clip(r, -1.0, 1.0)
    r[nan_mask] = np.nan
    return r


def torch_float32_mean(values: np.ndarray) -> np.ndarray:
    """Mean over the last axis of float32 values, rounded exactly like torch's CPU `mean` for TLCC's 25 dims
    (8 running sums over strided blocks, added left to right, / n; bit-identical to torch for 8 <= n < 64,
    checked in the tests). A NaN anywhere gives NaN. Spares a CPU evaluation torch's import (~2 s) while
    keeping TLCC's tie-breaking identical."""
    values = np.asarray(values, dtype=np.float32)
    n = values.shape[-1]
    acc = values[..., :8].copy()
    for k in range(8, n, 8):
        m = min(8, n - k)
        acc[..., :m] += values[..., k:k + m]
    total = acc[..., 0].copy()
    for i in range(1, acc.shape[-1]):
        total += acc[..., i]
    return total / np.float32(n)


def tlcc(pred: np.ndarray, speaker: np.ndarray, corrected: bool = False, batch: int = 256) -> float:
    """Mean |offset| of the peak lagged correlation between predictions and the speaker's emotions.

    Official: sample 0 only; per-dim r cast to float32 and averaged with torch (NaN if any dim is NaN);
    torch.argmax, which like np.argmax takes the first NaN as the peak. Corrected: every sample, NaN r
    counted as 0, float64 throughout.
    """
    n, samples = pred.shape[:2]
    use = range(samples) if corrected else range(1)
    offsets = []
    for s in use:
        for lo in range(0, n, batch):
            r = lagged_correlations(pred[lo:lo + batch, s], speaker[lo:lo + batch])
            if corrected:
                peak = np.nan_to_num(r, nan=0.0).mean(axis=2).argmax(axis=1)
            else:
                peak = torch_float32_mean(r.astype(np.float32)).argmax(axis=1)
            offsets.append(np.abs(MAX_LAG - peak))
    return float(np.concatenate(offsets).mean())


def compute_metrics(pred: np.ndarray, speaker: np.ndarray, listener: np.ndarray, neighbours: np.ndarray,
                    *, corrected: bool = False, device: str = "auto", threads: int = 1,
                    clips: Sequence[str] | None = None) -> dict[str, float]:
    """All official metrics (plus TLCC_corrected when asked), after checking the inputs."""
    pred = np.asarray(pred, dtype=np.float32)
    speaker = np.asarray(speaker, dtype=np.float32)
    listener = np.asarray(listener, dtype=np.float32)
    check_inputs(pred, speaker, listener, neighbours, clips)
    return _all_metrics(pred, speaker, listener, neighbours, corrected, device, threads)


def _all_metrics(pred: np.ndarray, speaker: np.ndarray, listener: np.ndarray, neighbours: np.ndarray,
                 corrected: bool, device: str, threads: int) -> dict[str, float]:
    # FRD's DTW runs in a side thread while this one computes the other metrics (~20 % of the CPU work at
    # 750 frames), on a GPU and on the CPU alike: the DTW's work comes in many small tasks, so its threads
    # and this one share the cores to the end (waited for first, the others ran on one core after it).
    with ThreadPoolExecutor(max_workers=1) as side:
        frd_value = side.submit(frd, pred, listener, neighbours, device, threads)
        others = {"S-MSE": s_mse(pred), "FRVar": fr_var(pred), "FRDvs": frdvs(pred), "TLCC": tlcc(pred, speaker)}
        if corrected:
            others["TLCC_corrected"] = tlcc(pred, speaker, corrected=True)
        return {"FRC": frc(pred, listener, neighbours), "FRD": frd_value.result(), **others}
