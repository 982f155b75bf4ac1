"""Read one REACT Emotion CSV (a header row, then frames x 25 numbers) with numpy alone.

Both the dataset stage and `regnn evaluate` read these; numpy's C parser is as fast as pandas' here (~3 ms
per 750-frame file, both correctly rounded) and keeps pandas' ~1 s import out of the evaluation's start-up.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from regnn.data.layout import EMOTION_DIMS, FRAMES


def read_emotion_csv(path: Path, frames: int = FRAMES) -> np.ndarray:
    """One Emotion CSV (header + frames x 25) as float32; raises ValueError saying what is wrong."""
    if not Path(path).is_file():
        raise ValueError("emotion CSV is missing")
    try:
        with warnings.catch_warnings():  # an empty file warns, then fails the shape check below
            warnings.simplefilter("ignore", UserWarning)
            values = np.loadtxt(path, delimiter=",", skiprows=1, comments=None, dtype=np.float64, ndmin=2)
    except (OSError, ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"unreadable emotion CSV ({err})") from None
    if values.shape != (frames, EMOTION_DIMS):
        raise ValueError(f"emotion CSV has shape {values.shape}, expected ({frames}, {EMOTION_DIMS})")
    if not np.isfinite(values).all():
        bad = np.argwhere(~np.isfinite(values))[0]
        raise ValueError(f"emotion CSV has a non-finite value at data row {bad[0] + 1}, column {bad[1]}")
    return values.astype(np.float32)
