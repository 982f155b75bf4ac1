"""The official REACT metrics computed the official way: one pair at a time, tslearn DTW, a process pool.

An independent, deliberately plain implementation that follows the structure of the challenge's
`evaluation.py` and `metric/` modules (per-speaker worker functions mapped over a multiprocessing pool, one
`tslearn.metrics.dtw` call per group and pair, per-dimension `np.corrcoef`, torch `cdist` for the diversity
metrics). It is slow by design: the tests check `regnn.metrics.react` against it, and
`benchmarks/evaluate.py` times both side by side.
"""

from __future__ import annotations

import multiprocessing as mp
from functools import partial

import numpy as np
import torch
from tslearn.metrics import dtw

FRD_GROUPS = ((0, 15, 1 / 15), (15, 17, 1.0), (17, 25, 1 / 8))
TLCC_LAGS = range(-49, 50)


def _pearson_nan_to_zero(x: np.ndarray, y: np.ndarray) -> float:
    """Correlation as FRC's helper computes it: from np.cov, a NaN (constant input) becomes 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        c = np.cov(x, y)
        sd = np.sqrt(np.diag(c))
        r = np.nan_to_num(c / sd[:, None] / sd[None, :])
    return float(np.clip(r, -1, 1)[0, 1])


def ccc(truth: np.ndarray, pred: np.ndarray) -> float:
    """Concordance correlation, averaged over the columns of two (frames, dims) arrays."""
    values = []
    for d in range(truth.shape[1]):
        t, p = truth[:, d], pred[:, d]
        r = _pearson_nan_to_zero(t, p)
        values.append(2 * r * np.std(t) * np.std(p) / (np.var(t) + np.var(p) + (np.mean(t) - np.mean(p)) ** 2 + 1e-8))
    return float(np.mean(values))


def _frc_speaker(neighbour_row: np.ndarray, samples: np.ndarray, listener: np.ndarray) -> float:
    chosen = np.flatnonzero(neighbour_row == 1)
    return sum(max(ccc(listener[j], sample) for j in chosen) for sample in samples)


def frd_pair(pred: np.ndarray, truth: np.ndarray) -> float:
    """Group-weighted tslearn DTW of two (frames, 25) series, on float32 input like the official code."""
    pred, truth = pred.astype(np.float32), truth.astype(np.float32)
    return sum(w * dtw(pred[:, lo:hi], truth[:, lo:hi]) for lo, hi, w in FRD_GROUPS)


def _frd_speaker(neighbour_row: np.ndarray, samples: np.ndarray, listener: np.ndarray) -> float:
    chosen = np.flatnonzero(neighbour_row == 1)
    return sum(min(frd_pair(sample, listener[j]) for j in chosen) for sample in samples)


def _lagged_correlation(pred: np.ndarray, speaker: np.ndarray, lag: int) -> torch.Tensor:
    """Mean over dims of np.corrcoef of the two series shifted by `lag` (NaN for a constant dim)."""
    values = []
    for d in range(speaker.shape[1]):
        x, y = pred[:, d], speaker[:, d]
        if lag > 0:
            x, y = x[lag:], y[:-lag]
        elif lag < 0:
            x, y = x[:lag], y[-lag:]
        values.append(np.corrcoef(x, y)[0, 1].item())
    return torch.mean(torch.Tensor(values))


def tlcc_offset(pred: np.ndarray, speaker: np.ndarray) -> int:
    """|lag| of the peak lagged correlation; torch.argmax picks the first NaN when there is one."""
    with np.errstate(divide="ignore", invalid="ignore"):
        rs = [_lagged_correlation(pred, speaker, lag) for lag in TLCC_LAGS]
    return abs(len(rs) // 2 - int(torch.argmax(torch.Tensor(rs))))


def _tlcc_speaker(samples: np.ndarray, speaker: np.ndarray) -> int:
    return tlcc_offset(samples[0], speaker)  # the official multiprocess variant scores sample 0 only


def _diversity(pred: torch.Tensor) -> tuple[float, float, float]:
    """S-MSE, FRVar and FRDvs with torch like the official code; pred is (N, samples, frames, dims)."""
    n, samples = pred.shape[:2]
    flat = pred.reshape(n, samples, -1)
    smse = 0.0
    if samples > 1:
        for k in range(n):
            smse += float(torch.cdist(flat[k], flat[k]).pow(2).sum()) / (samples * (samples - 1) * flat.shape[2])
        smse /= n
    fr_var = float(torch.var(pred, dim=2).mean())
    per_sample = flat.transpose(0, 1)
    frdvs = float(torch.cdist(per_sample, per_sample).pow(2).sum()) / (n * (n - 1) * samples) / flat.shape[2]
    return smse, fr_var, frdvs


def official_metrics(pred: np.ndarray, speaker: np.ndarray, listener: np.ndarray, neighbours: np.ndarray,
                     processes: int = 2) -> dict[str, float]:
    """All six metrics the official way. pred (N, samples, frames, 25); speaker/listener (N, frames, 25)."""
    pred = np.asarray(pred, dtype=np.float32)
    speaker = np.asarray(speaker, dtype=np.float32)
    listener = np.asarray(listener, dtype=np.float32)
    with mp.Pool(processes=processes) as pool:
        tlcc = pool.starmap(_tlcc_speaker, zip(pred, speaker))
        frc = pool.starmap(partial(_frc_speaker, listener=listener), zip(neighbours, pred))
        frd = pool.starmap(partial(_frd_speaker, listener=listener), zip(neighbours, pred))
    smse, fr_var, frdvs = _diversity(torch.from_numpy(pred))
    return {"FRC": float(np.mean(frc)), "FRD": float(np.mean(frd)), "S-MSE": smse, "FRVar": fr_var,
            "FRDvs": frdvs, "TLCC": float(np.mean(tlcc))}
