"""The 2025/2026 metric set computed the official way: per clip, one tslearn DTW per pair, a process pool.

A deliberately plain, independent implementation following the structure of the official
`compute_metrics(speaker_inputs, predictions, targets, threads)` driver (notes/react2025.md §5): lists with
one entry per speaker clip, predictions (10, L, 25), targets (k, L, 25) already aligned to L. The tests check
`regnn.metrics.mars` against it; `benchmarks/evaluate.py --protocol react2025` times both.
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Sequence

import numpy as np
import torch

from regnn.metrics.reference import ccc, frd_pair, tlcc_offset


def _frc_clip(pred: np.ndarray, targets: np.ndarray) -> float:
    return sum(max(ccc(t, p) for t in targets) for p in pred)


def _frd_clip(pred: np.ndarray, targets: np.ndarray) -> float:
    return sum(min(frd_pair(p, t) for t in targets) for p in pred)


def _tlcc_clip(pred: np.ndarray, speaker: np.ndarray) -> int:
    return tlcc_offset(pred[0], speaker)  # sample 0 only, as the official driver


def _smse_clip(pred: torch.Tensor) -> float:
    n, length, dims = pred.shape
    flat = pred.reshape(n, -1)
    return float(torch.cdist(flat, flat).pow(2).sum()) / (n * (n - 1) * length * dims)


def _mae_pairs(pred: np.ndarray, targets: np.ndarray) -> list[float]:
    return [float(np.mean(np.abs(p[:, 15:] - t[:, 15:]))) for p in pred for t in targets]


def official_metrics(speakers: Sequence[np.ndarray], predictions: Sequence[np.ndarray],
                     targets: Sequence[np.ndarray], processes: int = 2) -> dict[str, float]:
    """FRC, FRD, TLCC, S-MSE, FRVar and MAE over lists of clips (targets already at each clip's length)."""
    predictions = [np.asarray(p, dtype=np.float32) for p in predictions]
    targets = [np.asarray(t, dtype=np.float32) for t in targets]
    speakers = [np.asarray(s, dtype=np.float32) for s in speakers]
    with mp.Pool(processes=processes) as pool:
        frc = pool.starmap(_frc_clip, zip(predictions, targets))
        frd = pool.starmap(_frd_clip, zip(predictions, targets))
        tlcc = pool.starmap(_tlcc_clip, zip(predictions, speakers))
    smse = [_smse_clip(torch.from_numpy(p)) for p in predictions]
    fr_var = torch.cat([torch.var(torch.from_numpy(p), dim=1) for p in predictions]).mean()
    mae = [m for p, t in zip(predictions, targets) for m in _mae_pairs(p, t)]
    return {"FRC": float(np.mean(frc)), "FRD": float(np.mean(frd)), "TLCC": float(np.mean(tlcc)),
            "S-MSE": float(np.mean(smse)), "FRVar": float(fr_var), "MAE": float(np.mean(mae))}
