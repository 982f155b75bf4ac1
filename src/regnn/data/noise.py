"""Smooth random signals shared by the synthetic dataset generators (REACT 2024 and MARS)."""

from __future__ import annotations

import numpy as np


def ar1_noise(rng: np.random.Generator, length: int, dims: int, rho: float) -> np.ndarray:
    """AR(1) noise with unit stationary variance, shape (length, dims): a slowly drifting mood or behaviour."""
    eps = rng.standard_normal((length, dims)) * np.sqrt(1 - rho**2)
    out = np.empty_like(eps)
    out[0] = rng.standard_normal(dims)
    for t in range(1, length):
        out[t] = rho * out[t - 1] + eps[t]
    return out
